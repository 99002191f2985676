"""Figures of the chapter "Why the loss does not reach zero": one function per figure, result in, Figure out."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..article_log import ARTICLE_FINAL, PRINT_ZERO
from ..capacity import CapacityResult, NoiseFloorResult
from ..cycle import CycleResult
from ..data import NOISE_STD
from ..display import report_figure
from ..experiments import ARTICLE_BASELINE
from ..fmt import num
from ..i18n import t
from ..loss_floor import FourRunsResult
from ..precision import PrecisionResult
from .style import PALETTE, figure

TITLES = {"toy-clean": "clean labels, w·x", "toy-noisy": "label 3.1, w·x", "toy-bias": "label 3.1, w·x + b",
          "toy-piecewise": "label 3.1, w·x + 0.1·[wx ≥ 3]"}


@report_figure
def four_runs(result: FourRunsResult) -> Figure:
    """Per-step training loss of the article's four runs (log-log), with each model's least-squares floor."""
    fig, axes = figure(2, 2, width=7.2, height=5.2, sharey=True)
    for ax, (name, run) in zip(axes.flat, result.runs.items(), strict=True):
        h = run.history.iloc[1:]
        ax.plot(h.step / 4, h.loss.clip(lower=1e-12), lw=0.8, color=PALETTE[0], label=t("SGD loss (float32)"))
        if run.loss_floor > 1e-12:
            ax.axhline(run.loss_floor, color="black", lw=1.0, ls="--",
                       label=t("floor {}").format(num(run.loss_floor, ".3e")))
        ax.axhline(PRINT_ZERO, color=PALETTE[1], lw=0.8, ls=":", label=t("prints 0.000000 below"))
        long = run.config.epochs > 100
        ax.set(xscale="log" if long else "linear", yscale="log", title=t(TITLES[name]), xlabel=t("epoch"))
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="lower left" if long else "upper right")
    for ax in axes[:, 0]:
        ax.set_ylabel(t("training loss (ŷ − y)²"))
    return fig


@report_figure
def article_cycle(result: CycleResult) -> Figure:
    """Top: w step by step over the last epochs, inside the cycle's range. Bottom: epoch-end (w, loss) points."""
    fig, axes = figure(2, 2, width=7.2, height=5.6)
    for j, name in enumerate(("toy-noisy", "toy-bias")):
        fit, win = result.fits[name], result.window[result.window.run == name]
        rng = result.step_range.set_index("run").loc[name]
        ends = result.epochs[result.epochs.run == name]
        art = ARTICLE_FINAL[name]
        w_star, ax = float(fit.theta[0]), axes[0, j]
        ax.axhspan(rng.w_min, rng.w_max, color=PALETTE[5], alpha=0.2, label=t("range over all steps, all orders"))
        ax.axhspan(ends.w.min(), ends.w.max(), color=PALETTE[0], alpha=0.2, label=t("range at epoch ends"))
        ax.plot(win.step, win.w, "-o", ms=2.5, lw=0.8, color=PALETTE[0],
                label=t("w, order seed {}").format(result.config.seed))
        ax.plot(win.step[::4], win.w[::4], "s", ms=5, mfc="none", color=PALETTE[0], label=t("epoch ends"))
        ax.axhline(w_star, color="black", ls="--", lw=1, label=t("w* (least squares)"))
        ax.axhline(art["w"], color=PALETTE[1], ls=":", lw=1.2, label=t("the article's w (quoted)"))
        ax.set(title=t(TITLES[name]), xlabel=t("step"), ylabel="w")
        ax.title.set_fontsize(9)
        ax = axes[1, j]
        ax.scatter(ends.w, ends.loss, s=3, alpha=0.3, color=PALETTE[0], linewidths=0, label=t("epoch ends, all orders"))
        ax.axhline(fit.loss_floor, color="black", ls="--", lw=1, label=t("floor"))
        if name == "toy-noisy":
            w = np.linspace(ends.w.min(), ends.w.max(), 100)
            parabola = fit.loss_floor + 0.5 * float(fit.hessian[0, 0]) * (w - w_star) ** 2
            ax.plot(w, parabola, color=PALETTE[2], lw=1, label=t("floor + ½H(w − w*)²"))
        ax.plot(art["w"], art["loss"], "*", ms=12, color=PALETTE[1],
                label=t("the article (quoted)"))
        ax.set(xlabel=t("w at epoch end"), ylabel=t("training loss"))
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncol=3, fontsize=7)
    for ax in axes[1]:
        ax.legend(fontsize=7, loc="upper left")
    return fig


@report_figure
def noise_floor(result: NoiseFloorResult) -> Figure:
    """Left: minimal training loss vs σ (log-log), predicted and measured. Right: measured / predicted with 95 % CIs."""
    fig, (ax, bx) = figure(2, 1, width=7.2, height=3.6)
    f = result.frame
    ax.fill_between(f.sigma, f.q_lo, f.q_hi, color=PALETTE[0], alpha=0.25, lw=0,
                    label=t("measured: 95 % of single runs"))
    ax.plot(f.sigma, f.predicted, color="black", lw=1, label=t("predicted σ²/2·(n − p)/n"))
    ax.plot(f.sigma, f["mean"], "o", ms=4, color=PALETTE[0], label=t("measured mean"))
    printed = ARTICLE_BASELINE["final_loss"]
    ax.plot(NOISE_STD, printed, "*", ms=11, color=PALETTE[1], label=t("the article's {:f} (quoted)").format(printed))
    ax.set(xscale="log", yscale="log", xlabel=t("noise σ"), ylabel=t("minimal training loss (½ squared error)"))
    ax.legend(fontsize=7)
    bx.fill_between(f.sigma, f.band_lo / f.predicted, f.band_hi / f.predicted, color="grey", alpha=0.15, lw=0,
                    label=t("predicted 95 % range of a single run"))
    bx.errorbar(f.sigma, f.ratio, yerr=[f.ratio - f.ratio_lo, f.ratio_hi - f.ratio], fmt="o", ms=4, capsize=3,
                color=PALETTE[0], label=t("mean of runs, 95 % CI"))
    sgd = result.sgd
    pred = sgd.sigma**2 / 2 * (1 - 3 / result.config.n)
    bx.plot(sgd.sigma * 1.1, sgd.floor / pred, "o", ms=6, mfc="none", color=PALETTE[2],
            label=t("single runs: closed-form minimum"))
    bx.plot(sgd.sigma * 1.1, sgd.sgd_loss / pred, "x", ms=4, color=PALETTE[1],
            label=t("the same runs: SGD after {} epochs").format(result.config.sgd_epochs))
    bx.axhline(1, color="black", lw=1)
    bx.set(xscale="log", xlabel=t("noise σ"), ylabel=t("measured / predicted"))
    bx.legend(fontsize=7, loc="upper left")
    return fig


@report_figure
def capacity(result: CapacityResult, ymin: float = 1e-5, ymax: float = 1e3) -> Figure:
    """Training and test loss against polynomial degree: median and 10–90 % band over data sets."""
    fig, ax = figure(width=6.4, height=4.0)
    f = result.frame
    for col, label, color in (("train", "training loss", PALETTE[0]), ("test", "test loss", PALETTE[1])):
        ax.plot(f.degree, f[col].clip(ymin / 10, ymax * 10), "o-", ms=3, color=color, label=t(f"{label} (median)"))
        ax.fill_between(f.degree, f[f"{col}_lo"].clip(ymin / 10, ymax * 10), f[f"{col}_hi"].clip(ymin / 10, ymax * 10),
                        color=color, alpha=0.2, lw=0)
    ax.axhline(result.noise_level, color="black", lw=1, ls="--", label=t("noise level σ²/2"))
    ax.plot(f.degree, f.train_expected.clip(lower=ymin / 10), color="black", lw=0.8, ls=":",
            label=t("σ²/2·(n − p)/n (training floor if the model contains the truth)"))
    last = f.iloc[-1]
    arrow = {"arrowstyle": "->", "color": PALETTE[0], "lw": 0.8}
    ax.annotate(t("train {}\n(below the axis)").format(num(last.train, ".0e")), (last.degree, ymin),
                xytext=(last.degree - 4, ymin * 3), ha="center", fontsize=7, color=PALETTE[0], arrowprops=arrow)
    ax.annotate(t("test {}").format(num(last.test, ".0e")), (last.degree, ymax), xytext=(-4, -12),
                textcoords="offset points", ha="right", fontsize=7, color=PALETTE[1])
    ax.set(yscale="log", ylim=(ymin, ymax), xlabel=t("polynomial degree (n_train = {})").format(result.config.n_train),
           ylabel=t("loss (½ squared error)"))
    ax.set_xticks(range(0, len(f), 2))
    ax.legend(fontsize=7, loc="upper left")
    return fig


@report_figure
def precision(result: PrecisionResult) -> Figure:
    """The clean run past epoch 8: float32 (as logged) and float64 losses per step, with the thresholds."""
    fig, ax = figure(width=6.4, height=4.0)
    s = result.steps[result.steps.step > 0]
    nz = s[s.loss32 > 0]
    ax.plot(nz.step, nz.loss32, "o-", ms=2, lw=0.8, color=PALETTE[0], label=t("float32 loss (as the article logs it)"))
    ax.plot(s.step, s.loss64, lw=1, color=PALETTE[2], label=t("float64, same batch order"))
    ax.axhline(PRINT_ZERO, color=PALETTE[1], ls=":", lw=1, label=t('f"{loss:f}" prints 0.000000 below 5e-7'))
    ax.axhline(result.smallest_nonzero_loss, color="black", ls="--", lw=0.8,
               label=t("3.5·eps²: w one float32 step from 1"))
    ax.axvline(result.first_print_zero, color=PALETTE[1], lw=0.8)
    if result.first_exact_zero is not None:
        ax.axvline(result.first_exact_zero, color=PALETTE[0], lw=0.8, ls="--")
        ax.annotate(t("float32 w = 1 exactly:\nloss 0 (off the log axis)"), (result.first_exact_zero, 1e-6),
                    xytext=(4, 0), textcoords="offset points", fontsize=7)
    ax.annotate(t("log reads 0.000000"), (result.first_print_zero, 1e-1), xytext=(4, 0), textcoords="offset points",
                fontsize=7)
    ax.set(yscale="log", xlabel=t("step"), ylabel=t("training loss (ŷ − y)²"))
    ax.legend(fontsize=7, loc="lower left")
    return fig
