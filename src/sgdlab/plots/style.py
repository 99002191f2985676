"""The house style: one place for sizes, colours and fonts, shared by every figure."""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure

from .. import i18n

# Figures are built with Figure() directly, never through pyplot: no backend or global figure
# state is touched, so the same functions work in a script, the CLI and a Jupyter kernel.

# Colour-blind-safe (Okabe–Ito), in the order series are drawn.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "legend.frameon": False,
    "svg.hashsalt": "sgdlab",  # stable ids, so a re-render writes identical files
}


class _Figure(Figure):
    """A Figure that fits its texts' fonts to their language just before it is drawn (i18n.fit_fonts):
    labels are set after figure() returns, so this is the one moment every text is there."""

    def draw(self, renderer):
        i18n.fit_fonts(self)
        super().draw(renderer)


def figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 3.6, **kw) -> tuple[Figure, object]:
    """A new Figure and its axes in the house style (not registered with pyplot's global state)."""
    i18n.use_fonts()  # a CJK font when the words are Chinese (set once; a report kernel sets it first)
    with matplotlib.rc_context(STYLE):
        fig = _Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def save(fig: Figure, path) -> None:
    """Write a PNG without a timestamp or software tag, so identical figures give identical bytes."""
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, metadata={"Software": None})
