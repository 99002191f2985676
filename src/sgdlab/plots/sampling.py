"""Figures of SGD's own floor (chapter 2): the two samplings, the remedies, the bias run, double descent."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from matplotlib.figure import Figure

from ..article_log import ARTICLE_FINAL
from ..bias_run import BiasResult
from ..capacity import DoubleDescentResult
from ..display import report_figure
from ..i18n import t
from ..remedies import AVERAGED, DECAYING, DECAYING_INDEPENDENT, REMEDY_PANEL, SAMPLING_PANEL, RemediesResult
from ..sampling import SamplingResult, stationary_reshuffled, stationary_with_replacement
from .style import PALETTE, figure

SLOPED = (DECAYING, DECAYING_INDEPENDENT, AVERAGED)  # the methods whose decay is a power law


@report_figure
def samplings(result: SamplingResult) -> Figure:
    """Left: mean offset of the epoch-end w from w*; right: its spread; both samplings, measured and exact."""
    fig, (ax, bx) = figure(2, 1, width=7.2, height=3.6)
    f, s = result.frame, result.slopes
    grid = np.geomspace(f.effective_lr.min(), f.effective_lr.max(), 25)
    exact = {"reshuffled": [stationary_reshuffled(Fraction(v)) for v in grid],
             "with replacement": [stationary_with_replacement(Fraction(v)) for v in grid]}
    for color, (name, g) in zip(PALETTE, f.groupby("sampling", sort=False), strict=False):
        moments = exact[name]
        if name == "reshuffled":
            ax.plot(g.effective_lr, g.offset, "o", color=color, ms=4,
                    label=t("reshuffled, measured: slope {:.2f}").format(s["offset"][name]))
            ax.plot(grid, [float(m) for m, _ in moments], "-", color=color, lw=1, label=t("reshuffled, exact"))
        else:
            ax.errorbar(g.effective_lr, g.offset.abs(), yerr=2 * g.offset_se, fmt="s", color=color, ms=4, capsize=2,
                        label=t("with replacement, measured |offset| ± 2 se (exact: 0)"))
        bx.plot(g.effective_lr, g.sd, "o" if name == "reshuffled" else "s", color=color, ms=4,
                label=t("{}, measured: slope {:.2f}").format(t(name), s["sd"][name]))
        bx.plot(grid, [float(v) ** 0.5 for _, v in moments], "-", color=color, lw=1,
                label=t("{}, exact").format(t(name)))
    ax.set(xscale="log", yscale="log", xlabel=t("step size η (per example)"), ylabel=t("mean of w − w* at epoch ends"))
    bx.set(xscale="log", yscale="log", xlabel=t("step size η (per example)"), ylabel=t("sd of w at epoch ends"))
    for a in (ax, bx):
        a.legend(fontsize=7, loc="upper left")
    return fig


@report_figure
def remedies(result: RemediesResult) -> Figure:
    """|w − w*| per epoch: left, the two samplings with constant and decaying steps; right, the remedies."""
    fig, axes = figure(2, 1, width=7.2, height=3.8)
    for ax, panel in zip(axes, (SAMPLING_PANEL, REMEDY_PANEL), strict=True):
        for color, name in zip(PALETTE, panel, strict=False):
            g = result.frame[(result.frame.method == name) & (result.frame.epoch > 0)]
            g = g[g.rms > 0]
            slope = result.slopes[name]
            label = t("{}: slope {:.2f}").format(t(name), slope) if name in SLOPED else t(name)
            ax.plot(g.epoch, g.rms, color=color, lw=1.2, label=label)
            ax.fill_between(g.epoch, g.lo.clip(lower=1e-18), g.hi, color=color, alpha=0.15, lw=0)
            if panel is SAMPLING_PANEL and g.exact.notna().any():
                ax.plot(g.epoch, g.exact, "--", color=color, lw=0.9)
        ax.set(xscale="log", yscale="log", xlabel=t("epoch"))
        ax.legend(fontsize=6.5, loc="lower left")
    axes[0].plot([], [], "--", color="grey", lw=0.9, label=t("exact (with replacement), leading order (reshuffled)"))
    axes[0].legend(fontsize=6.5, loc="lower left")
    axes[0].set_ylabel(t("|w − w*| at epoch end (rms over seeds)"))
    axes[0].set_title(t("the two samplings"), fontsize=9)
    axes[1].set_title(t("remedies"), fontsize=9)
    axes[1].set_ylim(1e-17, 2)
    return fig


@report_figure
def bias_run(result: BiasResult) -> Figure:
    """Left: epoch-end w under the two hypotheses with the article's w. Right: excess loss with x and x − x̄."""
    fig, (ax, bx) = figure(2, 1, width=7.2, height=3.4)
    for color, (name, g) in zip(PALETTE, result.epochs.groupby("hypothesis", sort=False), strict=False):
        ax.hist(g.w, bins=60, color=color, alpha=0.5, label=t(name))
    ax.axvline(ARTICLE_FINAL["toy-bias"]["w"], color="black", ls=":", lw=1.2, label=t("the article's w (quoted)"))
    ax.set(xlabel=t("w at epoch ends (all order seeds)"), ylabel=t("count"))
    ax.legend(fontsize=7, loc="upper left")
    kappa = result.summary()["kappa"]
    for color, (name, g) in zip(PALETTE[2:], result.centring.groupby("inputs", sort=False), strict=False):
        g = g[g.epoch > 0]
        bx.plot(g.epoch, g["median"], color=color, lw=1.2, label=t("inputs {}: κ = {:.2f}").format(name, kappa[name]))
        bx.fill_between(g.epoch, g.lo, g.hi, color=color, alpha=0.2, lw=0)
    bx.set(yscale="log", xlabel=t("epoch"), ylabel=t("loss − floor (median, 10–90 %)"))
    bx.legend(fontsize=7)
    return fig


@report_figure
def double_descent(result: DoubleDescentResult, bad: DoubleDescentResult | None = None) -> Figure:
    """Training and expected test loss against the number of features p, past the interpolation threshold p = n.

    `bad`: the same data with weak features of variance 1 each (DoubleDescentConfig.unit_weak), its test loss beside.
    """
    fig, ax = figure(width=6.4, height=4.0)
    f = result.frame
    weak = t("weak features' variances sum to {}").format(f"{result.weak_trace:g}")
    curves = [(f, "train", t("training loss (median)"), PALETTE[0]),
              (f, "test", t("test loss, {} (median)").format(weak), PALETTE[1])]
    if bad is not None:
        label = t("test loss, weak variances 1 each (sum {}) (median)").format(f"{bad.weak_trace:g}")
        curves.append((bad.frame, "test", label, PALETTE[3]))
        ax.axhline(bad.null_test_loss, color=PALETTE[3], lw=0.8, ls=":", label=t("test loss of predicting 0"))
    for frame, col, label, color in curves:
        ax.plot(frame.p, frame[col].clip(lower=1e-6), "o-", ms=3, color=color, label=label)
        ax.fill_between(frame.p, frame[f"{col}_lo"].clip(lower=1e-6), frame[f"{col}_hi"].clip(lower=1e-6),
                        color=color, alpha=0.2, lw=0)
    ax.axhline(result.noise_level, color="black", lw=1, ls="--", label=t("noise level σ²/2"))
    ax.axvline(result.config.n_train, color="grey", lw=0.8, ls=":", label=f"p = n = {result.config.n_train}")
    ax.set(xscale="log", yscale="log", ylim=(1e-3, 100), xlabel=t("number of features p (minimum-norm least squares)"),
           ylabel=t("loss (½ squared error)"))
    ax.annotate(t("training loss 0 from p = n on\n(below the axis)"), (result.config.n_train * 1.1, 1.2e-3),
                fontsize=7, color=PALETTE[0])
    ax.legend(fontsize=6.5, loc="upper left")  # above the curves at small p, clear of the peak
    return fig
