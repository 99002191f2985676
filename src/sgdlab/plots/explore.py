"""Static small multiples of the explorable figures' grids: what the PDF shows in their place."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..display import report_figure
from ..explore import LABELS, MODELS, NORMS, PROBLEMS, FloorGridResult, StepsGridResult
from ..i18n import t
from .style import PALETTE, figure

SHOWN_RATIOS = (1.0, 1.95, 2.2)  # η·L drawn beside the article's: just below and above the 2/L edge


@report_figure
def floor_grid(result: FloorGridResult) -> Figure:
    """Per labels × model: final loss above the floor against η, per schedule and sampling; × where a run diverged."""
    fig, axes = figure(2, 2, width=6.4, height=4.6, sharex=True)
    f = result.frames
    styles = {("constant", "reshuffled"): (PALETTE[0], "-"), ("constant", "with replacement"): (PALETTE[0], ":"),
              ("Robbins–Monro", "reshuffled"): (PALETTE[1], "-"), ("Polyak–Ruppert", "reshuffled"): (PALETTE[2], "-")}
    for r, labels in enumerate(LABELS):
        for c, model in enumerate(MODELS):
            ax = axes[r, c]
            for (schedule, sampling), (color, ls) in styles.items():
                g = f[(f.labels == labels) & (f.model == model) & (f.schedule == schedule) & (f.sampling == sampling)]
                gap = (g.final_loss - g.floor).clip(lower=1e-14)
                ax.plot(g.lr, gap, ls, color=color, marker="o", ms=2.5, lw=1,
                        label=t("{}, {}").format(t(schedule), t(sampling)))
                blown = g[g.diverged_step >= 0]
                ax.plot(blown.lr, np.full(len(blown), 1e1), "x", color=color, ms=6)
            ax.axvline(0.03, color="black", lw=0.8, ls="--")
            ax.set(xscale="log", yscale="log", ylim=(1e-15, 1e2), title=t("labels {}, {}").format(t(labels), model))
            ax.title.set_fontsize(9)
    for ax in axes[1]:
        ax.set_xlabel(t("step size η (dashed: the article's)"))
    for ax in axes[:, 0]:
        ax.set_ylabel(t("final loss − floor"))
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncol=2, fontsize=7,
               title=t("× at the top: diverged (the engine's flag)"), title_fontsize=7)
    return fig


@report_figure
def steps_grid(result: StepsGridResult) -> Figure:
    """Per problem: GD paths at the article's η·L and across 2/L on the level sets; the four norms' steepest steps."""
    ratios = list(result.runs.ratio.unique())
    nearest = {min(range(len(ratios)), key=lambda k: abs(ratios[k] - r)) for r in SHOWN_RATIOS}
    shown = sorted({0} | nearest)
    fig, axes = figure(len(shown) + 1, 2, width=7.2, height=3.4)
    for p, problem in enumerate(PROBLEMS):
        runs = result.runs[result.runs.problem == problem].reset_index(drop=True)
        view = _view(result, p)
        for c, k in enumerate(shown):
            ax = axes[p, c]
            _levels(ax, result, p)
            path = _until_outside(result.paths[p, k], view)
            ax.plot(path[:, 0], path[:, 1], "-o", color=PALETTE[0], ms=1.5, lw=0.7)
            step = int(runs.diverged_step[k])
            ax.set_title(f"η·L = {runs.ratio[k]:.3g}" + (t("\ndiverged at step {}").format(step) if step >= 0 else ""),
                         fontsize=7)
        ax = axes[p, -1]
        _levels(ax, result, p)
        for n, name in enumerate(NORMS):
            ball, d, s0 = result.balls[p, n], result.directions[p, n], result.start[p]
            ax.plot(ball[:, 0], ball[:, 1], color=PALETTE[n + 1], lw=0.8, label=name)
            ax.annotate("", s0 + d, s0, arrowprops={"arrowstyle": "->", "color": PALETTE[n + 1], "lw": 1})
        ax.set_title(t("steepest unit steps"), fontsize=7)
        if p == 0:
            ax.legend(fontsize=6, loc="lower right")
        for ax in axes[p]:
            ax.set(xlim=view[:2], ylim=view[2:], aspect="equal", xticks=[], yticks=[])
        axes[p, 0].set_ylabel(t(problem.split(" (")[0]), fontsize=8)
    return fig


def _view(result: StepsGridResult, p: int) -> list[float]:
    """A square around θ* that holds the start and the largest drawn level set."""
    half = 1.15 * float(np.abs(result.levels[p, -1] - result.optimum[p]).max())
    (x, y) = result.optimum[p]
    return [x - half, x + half, y - half, y + half]


def _until_outside(path: np.ndarray, view: list[float]) -> np.ndarray:
    """The iterates up to the first one outside the view (as the HTML draws them): (m, 2)."""
    inside = (path[:, 0] >= view[0]) & (path[:, 0] <= view[1]) & (path[:, 1] >= view[2]) & (path[:, 1] <= view[3])
    return path if inside.all() else path[: int(np.argmin(inside)) + 1]


def _levels(ax, result: StepsGridResult, p: int) -> None:
    for level in result.levels[p]:
        ax.plot(level[:, 0], level[:, 1], color="0.6", lw=0.5)
    ax.plot(*result.optimum[p], "*", color="black", ms=6)
