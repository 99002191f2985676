"""One function per figure: a result in, a matplotlib Figure out. `FIGURES` maps experiments to theirs."""

from .baseline import baseline_data, baseline_loss, toy_loss
from .style import figure

FIGURES = {
    "baseline": baseline_loss,
    "toy-clean": toy_loss,
    "toy-noisy": toy_loss,
    "toy-bias": toy_loss,
    "toy-piecewise": toy_loss,
}

__all__ = ["FIGURES", "baseline_data", "baseline_loss", "figure", "toy_loss"]
