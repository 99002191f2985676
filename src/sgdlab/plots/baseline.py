"""Figures of the article's own experiments: the baseline data and losses, the toy runs."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..display import report_figure
from ..experiments import BaselineResult, ToyResult
from ..i18n import t
from .style import PALETTE, figure


@report_figure
def baseline_data(result: BaselineResult) -> Figure:
    """The article's scatter: the second feature against the label, as in its section 二."""
    fig, ax = figure(width=5.0, height=3.4)
    X, y = result.data.X, result.data.y
    ax.scatter(X[:, 1], y, s=4, alpha=0.6, color=PALETTE[0], linewidths=0)
    ax.set_xlabel(t("feature $x_2$"))
    ax.set_ylabel(t("label $y$"))
    return fig


@report_figure
def baseline_loss(result: BaselineResult) -> Figure:
    """Training loss per epoch for scratch and concise, with the closed-form floor."""
    fig, ax = figure()
    for (name, frame), style in zip(result.history.groupby("implementation", sort=False), ["-", "--"], strict=True):
        ax.plot(frame.epoch, frame.loss, style, label=t(name), lw=1.6)
    ax.axhline(result.loss_floor, color="black", lw=0.8, ls=":", label=t("closed-form floor"))
    ax.set_yscale("log")
    ax.set_xlabel(t("epoch"))
    ax.set_ylabel(t("training loss (½ squared error)"))
    ax.legend()
    return fig


@report_figure
def toy_loss(result: ToyResult) -> Figure:
    """Per-step training loss of one toy run on a log scale, with its least-squares floor."""
    fig, ax = figure()
    steps = result.history
    ax.plot(steps.step, steps.loss.clip(lower=1e-16), lw=1.0, label=t("SGD ({})").format(result.name))
    if result.loss_floor > 0:
        ax.axhline(result.loss_floor, color="black", lw=0.8, ls=":", label=t("least-squares floor"))
    ax.set_xscale("symlog", linthresh=10)  # linear for the first steps, then logarithmic
    ax.set_xlim(left=0)
    ax.set_yscale("log")
    ax.set_xlabel(t("step"))
    ax.set_ylabel(t("training loss (squared error)"))
    ax.legend()
    return fig
