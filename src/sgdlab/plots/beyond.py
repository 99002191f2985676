"""Figures of chapter 3 beyond the quadratics and plain GD: the piecewise loss, momentum and friends."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..display import report_figure
from ..i18n import t
from ..piecewise import PiecewiseResult
from ..updates import MomentumResult
from .style import PALETTE, figure


@report_figure
def piecewise(result: PiecewiseResult) -> Figure:
    """The piecewise toy's loss against w, its jumps (open: limit from the left; filled: value), and a zoom at w = 1."""
    fig, axes = figure(ncols=2, width=7.8, height=3.3)
    c, j = result.curve, result.jumps
    windows = ((0.5, 3.4), (0.96, 1.04))
    for ax, (lo, hi) in zip(axes, windows, strict=True):
        shown = c[(c.w >= lo) & (c.w <= hi)]
        ax.plot(shown.w, shown.smooth, ":", lw=1.0, color=PALETTE[5], label=t("without the jump: $(wx - y)^2$"))
        for left, right in zip([lo, *j.w], [*j.w, hi], strict=True):  # each quadratic piece, drawn separately
            piece = shown[(shown.w >= left) & (shown.w < right)]
            ax.plot(piece.w, piece.loss, "-", lw=1.6, color=PALETTE[0])
        inside = j[(j.w >= lo) & (j.w <= hi)]
        ax.plot(inside.w, inside.left_limit, "o", mfc="white", ms=6, color=PALETTE[1],
                label=t("$f(w^-)$, limit from the left"))
        ax.plot(inside.w, inside.value, "o", ms=6, color=PALETTE[1], label=t("$f(w)$, the value"))
        ax.set_xlabel("$w$")
        ax.set_xlim(lo, hi)
    axes[0].plot([], [], "-", color=PALETTE[0], lw=1.6, label=t("$f(w)$, quadratic by pieces"))
    top = float(c[(c.w >= windows[1][0]) & (c.w <= windows[1][1])].loss.max())
    axes[1].set_ylim(-0.05 * top, 1.05 * top)
    axes[0].set_ylabel(t("training loss $f(w)$"))
    axes[0].set_title(t("$\\hat y = wx + 0.1\\,[wx \\geq 3]$, labels 0, 1, 2, 3.1"), fontsize=9)
    axes[1].set_title(t("zoom at the minimiser $w = 1$"), fontsize=9)
    axes[0].legend(fontsize=8, loc="upper left")
    return fig


@report_figure
def momentum(result: MomentumResult) -> Figure:
    """Relative distance to θ* per step for GD, preconditioned GD, heavy ball and sign descent, with the theory."""
    fig, ax = figure(width=6.6, height=3.9)
    rates = result.rates.set_index("method")
    for (method, curve), color in zip(result.curves.groupby("method", sort=False), PALETTE, strict=False):
        shown = curve[curve.distance > 0]
        measured = rates.loc[method, "measured"]
        label = t(method) if np.isnan(measured) else t("{}: measured {:.3f}").format(t(method), measured)
        ax.plot(shown.step, shown.distance, "-", lw=1.4, color=color, label=label)
        predicted = rates.loc[method, "predicted"]
        if not np.isnan(predicted):
            ax.plot(curve.step, predicted ** curve.step.astype(float), "--", lw=0.9, color=color, alpha=0.8,
                    label=t("theory $\\rho^k$, $\\rho$ = {:.3f}").format(predicted))
    ax.set_yscale("log")
    ax.set_ylim(result.config.fit_to / 100, 3)
    ax.set_xlabel(t("full-batch step $k$ (float64)"))
    ax.set_ylabel("$\\|\\theta_k - \\theta^*\\| \\,/\\, \\|\\theta_0 - \\theta^*\\|$")
    ax.set_title(t("toy $wx + b$ from $(w, b) = (2, 0)$: $\\kappa$ = {:.3g}").format(result.kappa), fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return fig
