"""Figures of chapter 3: the Taylor checks, step sizes across 2/L, rates, other norms, SGD noise."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ..display import report_figure
from ..i18n import t
from ..norms import LevelSetResult, NormsResult, SgdNoiseResult
from ..steepest import DescentLemmaResult, RateResult
from ..taylor import DirectionalResult, RemainderResult
from .style import PALETTE, figure


@report_figure
def directional(result: DirectionalResult) -> Figure:
    """D_d f(θ0) against the angle of d: measured (dots) and ∇fᵀd (line), minimum marked."""
    fig, axes = figure(ncols=2, width=7.6, height=3.2, sharey=True)
    labels = {"great circle through −∇f": t("angle from $-\\nabla f(\\theta_0)$ (degrees)"),
              "(w1, w2) plane, b fixed": t("angle of d from the w1 axis (degrees)")}
    for ax, (name, curve) in zip(axes, result.curves.groupby("circle", sort=False), strict=True):
        deg = np.degrees(curve.angle.to_numpy())
        ax.plot(deg, curve.exact, color=PALETTE[0], lw=1.4, label="$\\nabla f^\\top d$")
        ax.plot(deg[::12], curve.numeric.to_numpy()[::12], "o", ms=3, color=PALETTE[1],
                label=t("central difference"))
        i = int(curve.numeric.argmin())
        ax.plot(deg[i], curve.numeric.iloc[i], "v", ms=8, color="black",
                label=t("minimum {:.4f}").format(curve.numeric.iloc[i]))
        ax.set_xlabel(labels[name])
        ax.set_xticks(range(-180, 181, 90))
        ax.set_title(t(name), fontsize=9)
    axes[1].axvline(math.degrees(result.plane_expected_angle), color="black", lw=0.8, ls=":")
    axes[1].annotate("$-(\\partial f/\\partial w_1, \\partial f/\\partial w_2)$",
                     (math.degrees(result.plane_expected_angle) + 4, 3.0), fontsize=8)
    axes[0].axhline(-result.grad_norm, color="black", lw=0.8, ls=":")
    axes[0].annotate(f"$-\\|\\nabla f\\| = {-result.grad_norm:.4f}$", (-175, -result.grad_norm), va="bottom",
                     fontsize=8)
    axes[0].set_ylabel(t("directional derivative $D_d f(\\theta_0)$"))
    axes[0].legend(fontsize=8, loc="upper center")
    axes[1].legend(fontsize=8, loc="lower right")  # the curve's minimum is on the left, its maximum high
    return fig


@report_figure
def remainder(result: RemainderResult) -> Figure:
    """The first-order Taylor remainder against ε on log–log axes, with ε²/2·dᵀHd and the fitted slopes."""
    fig, ax = figure(width=6.0, height=3.8)
    markers = {"steepest": {"marker": "o", "ms": 4}, "random": {"marker": "s", "ms": 6, "mfc": "none"}}
    for (name, curve), color in zip(result.curves.groupby("direction", sort=False), PALETTE, strict=False):
        shown = curve[curve.remainder > 0]  # an exact 0 (rounding) has no place on a log axis
        ax.plot(shown.eps, shown.remainder, ls="none", color=color, **markers[name],
                label=t("{} d: fitted slope {:.6f}").format(t(name), result.slopes[name]))
        ax.plot(curve.eps, curve.exact, "-", lw=1.0, color=color, alpha=0.7,
                label=t("{} d: $h^2 d^\\top H d / 2$").format(t(name)))
    ax.axvspan(result.config.fit_min, result.config.eps_max, color="grey", alpha=0.12, lw=0, label=t("fitted range"))
    ax.annotate(t("rounding of $f$ in float64"), (2e-8, 8e-16), xytext=(3e-7, 6e-17), fontsize=7,
                arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(t("step length $h$"))
    ax.set_ylabel("$|f(\\theta_0+h d) - f(\\theta_0) - h \\nabla f^\\top d|$")
    ax.legend(fontsize=8, loc="upper left")
    return fig


@report_figure
def level_sets(result: LevelSetResult) -> Figure:
    """Level sets through the GD iterates, the path, and −∇f drawn at the first iterates."""
    fig, axes = figure(ncols=2, width=7.6, height=3.9)
    titles = {"baseline (w1, w2), b = b*": ("$w_1$", "$w_2$"), "toy (w, b)": ("$w$", "$b$")}
    for ax, (panel, path) in zip(axes, result.paths.groupby("panel", sort=False), strict=True):
        grid = result.grids[result.grids.panel == panel]
        side = math.isqrt(len(grid))
        X, Y, Z = (grid[c].to_numpy().reshape(side, side) for c in ("x", "y", "loss"))
        levels = np.unique(path.loss.to_numpy()[:6])
        ax.contour(X, Y, Z, levels=levels, colors=PALETTE[5], linewidths=0.8)
        ax.plot(path.x, path.y, "-o", ms=3, lw=1.0, color=PALETTE[0], label=t("gradient descent, $\\eta = 2/(\\mu+L)$"))
        opt = result.optima[result.optima.panel == panel].iloc[0]
        dist = np.hypot(path.x - opt.x, path.y - opt.y).to_numpy()
        for row, r in zip(path.head(4).itertuples(), dist[:4], strict=True):
            if r > 0.02 * dist[0]:  # an arrow scaled to the distance left, so that it stays readable
                d = -0.35 * r * np.array([row.gx, row.gy]) / math.hypot(row.gx, row.gy)
                ax.annotate("", (row.x + d[0], row.y + d[1]), (row.x, row.y),
                            arrowprops={"arrowstyle": "->", "color": PALETTE[1], "lw": 1.4})
        ax.plot([], [], color=PALETTE[1], lw=1.4, label=t("$-\\nabla f$ (direction)"))
        ax.plot(opt.x, opt.y, "*", ms=10, color="black", label="$\\theta^*$")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(titles[panel][0])
        ax.set_ylabel(titles[panel][1])
        ax.set_title(t("{}: κ = {:.3g}").format(t(panel), opt.kappa), fontsize=9)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    return fig


@report_figure
def descent_lemma(result: DescentLemmaResult) -> Figure:
    """Left: one step against its guarantee. Right: GD steps to converge, or divergence, across η·L = 2."""
    fig, (left, right) = figure(ncols=2, width=7.8, height=3.5)
    s = result.one_step
    left.plot(s.eta_L, s.loss_after, color=PALETTE[0], lw=1.6, label="$f(\\theta_0 - \\eta\\nabla f)$")
    left.plot(s.eta_L, s.bound, "--", color=PALETTE[1], lw=1.4,
              label="$f(\\theta_0) - \\eta(1 - L\\eta/2)\\|\\nabla f\\|^2$")
    left.axhline(result.loss0, color="black", lw=0.8, ls=":", label="$f(\\theta_0)$")
    for x in (1, 2):
        left.axvline(x, color="grey", lw=0.8)
    left.set_xlabel(t("step size $\\eta L$"))
    left.set_ylabel(t("loss after one step"))
    left.legend(fontsize=8, loc="upper center")

    w = result.sweep
    ok = w[w.steps_to_tol.notna()]
    right.plot(ok.factor, ok.steps_bound.astype(float), "-", color=PALETTE[1], lw=1.2,
               label=t("guaranteed by $\\rho(\\eta)^{2k}$"))
    right.plot(ok.factor, ok.steps_to_tol.astype(float), "o", ms=4, color=PALETTE[0],
               label=t("steps to excess ≤ $10^{{{}}}$ × start").format(round(math.log10(result.config.tolerance))))
    bad = w[w.diverged]
    right.plot(bad.factor, bad.diverged_step, "x", ms=7, mew=2, color=PALETTE[3],
               label=t("engine flags divergence (step)"))
    # predicted from the exact growth ½L·a_L²·ρ^(2k) of the top eigen-component: the step at which the float32
    # sum of squared residuals, (n/c)·f, passes FLT_MAX (the engine's loss is inf from there)
    right.plot(bad.factor, bad.overflow_predicted.astype(float), "_", ms=12, mew=1.5, color=PALETTE[3],
               label=t("predicted: float32 $\\sum r_i^2$ overflows"))
    stuck = w[w.steps_to_tol.isna() & ~w.diverged]
    right.plot(stuck.factor, [result.config.epochs] * len(stuck), "s", ms=5, mfc="none", color="black",
               label=t("neither, after {} steps").format(result.config.epochs))
    right.axvline(2, color="grey", lw=0.8)
    right.set_yscale("log")
    right.set_xlabel(t("learning rate $\\eta L$ (full batch)"))
    right.set_ylabel(t("steps"))
    right.legend(fontsize=8, loc="upper left")
    return fig


@report_figure
def rate(result: RateResult) -> Figure:
    """Excess loss per GD step (markers) against the guarantee ρ^(2k)·(f0 − f*) (dashed)."""
    fig, ax = figure(width=6.0, height=3.5)
    rates = result.rates.set_index("run")
    for (run, curve), color in zip(result.curves.groupby("run", sort=False), PALETTE, strict=False):
        shown = curve[curve.excess > 0]
        ax.plot(shown.step, shown.excess, "o", ms=3.5, color=color,
                label=t("{}: measured ratio {:.4g}").format(t(run), rates.loc[run, "measured"]))
        ax.plot(curve.step, curve.bound, "--", lw=1.0, color=color,
                label=t("{}: bound, $\\rho^2$ = {:.4g}").format(t(run), rates.loc[run, "predicted"]))
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-32)
    ax.set_xlabel(t("gradient-descent step $k$ (full batch, float64)"))
    ax.set_ylabel("$f(\\theta_k) - f(\\theta^*)$")
    ax.legend(fontsize=8)
    return fig


def _unit_ball(norm: str, H: np.ndarray, radius: float) -> np.ndarray:
    """Boundary points (m, 2) of a ball of the given norm, centred at 0; the H ball scaled to the circle's area."""
    t = np.linspace(0, 2 * np.pi, 361)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    if norm == "ℓ2":
        return radius * circle
    if norm == "ℓ1":
        return radius * circle / np.abs(circle).sum(1, keepdims=True)
    if norm == "ℓ∞":
        return radius * circle / np.abs(circle).max(1, keepdims=True)
    scaled = H / math.sqrt(np.linalg.det(H))  # det 1: same area as the circle
    return radius * circle / np.sqrt(np.einsum("mi,ij,mj->m", circle, scaled, circle))[:, None]


@report_figure
def norms(result: NormsResult) -> Figure:
    """Left: the toy's steepest unit steps in three norms at θ0. Right: ‖θ_k − θ*‖ for GD and Newton."""
    fig, (left, right) = figure(ncols=2, width=8.0, height=4.6)
    g = result.toy_grid
    side = math.isqrt(len(g))
    W, B, Z = (g[c].to_numpy().reshape(side, side) for c in ("w", "b", "loss"))
    theta0, star, H = np.array(result.toy_theta0), np.array(result.toy_optimum), np.array(result.toy_hessian)
    f0, floor = result.toy_loss0, result.toy_floor
    left.contour(W, B, Z, levels=floor + (f0 - floor) * np.array([0.01, 0.05, 0.2, 0.5, 1.0]), colors=PALETTE[5],
                 linewidths=0.7)
    toy = result.directions[result.directions.problem == "toy w·x + b"]
    radius = 0.45
    for (norm, row), color in zip(toy.set_index("norm").iterrows(), PALETTE[:4], strict=True):
        ball = theta0 + _unit_ball(norm, H, radius)
        left.plot(ball[:, 0], ball[:, 1], lw=1.0, color=color, alpha=0.8)
        d = np.array(row.d)
        tip = theta0 + radius * d / _norm_of(norm, d, H)  # the steepest point on this (scaled) ball
        left.annotate("", tip, theta0, arrowprops={"arrowstyle": "->", "color": color, "lw": 1.8})
        left.plot([], [], color=color, lw=1.8, label=f"{norm}: $\\nabla f^\\top d$ = {row.slope:.3f}")
    left.plot(*zip(theta0, star, strict=True), ":", color="black", lw=1.0, label=t("Newton step, to $\\theta^*$"))
    left.plot(*star, "*", ms=10, color="black")
    left.plot(*theta0, "o", ms=4, color="black")
    left.set_aspect("equal", adjustable="datalim")
    left.set_xlabel("$w$")
    left.set_ylabel("$b$")
    left.set_title(t("toy $wx + b$: steepest unit steps at $(w, b) = ({:g}, {:g})$").format(*theta0), fontsize=9)
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)

    styles = {"GD, η = 1/L": "-", "GD, η = 2/(μ+L)": "--", "Newton": "-o"}
    for (problem, method), curve in result.errors.groupby(["problem", "method"], sort=False):
        color = PALETTE[0] if problem == "baseline" else PALETTE[1]
        right.plot(curve.step, curve.error.clip(lower=1e-17), styles[method], ms=4, lw=1.2, color=color,
                   label=t("{}: {}").format(t(problem), t(method.removeprefix("GD, "))))
    right.set_xscale("symlog", linthresh=10)
    right.set_yscale("log")
    right.set_xlabel(t("step $k$"))
    right.set_ylabel("$\\|\\theta_k - \\theta^*\\|$")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below: the curves fill the axes
    return fig


def _norm_of(norm: str, d: np.ndarray, H: np.ndarray) -> float:
    """The size of d in the scaled norm its ball was drawn with."""
    if norm == "ℓ2":
        return float(np.linalg.norm(d))
    if norm == "ℓ1":
        return float(np.abs(d).sum())
    if norm == "ℓ∞":
        return float(np.abs(d).max())
    return float(math.sqrt(d @ (H / math.sqrt(np.linalg.det(H))) @ d))


@report_figure
def sgd_noise(result: SgdNoiseResult) -> Figure:
    """tr Cov of the mini-batch gradient against B at θ0 and θ*: measured, without-replacement law, 1/B."""
    fig, ax = figure(width=6.0, height=3.6)
    for (point, v), color in zip(result.variance.groupby("point", sort=False), PALETTE, strict=False):
        ax.plot(v.batch_size, v.measured, "o", ms=5, color=color, label=t("{}: measured").format(t(point)))
        ax.plot(v.batch_size, v.predicted, "-", lw=1.2, color=color,
                label=t("{}: $(n-B)/(B(n-1))\\,$tr$\\Sigma_1$").format(t(point)))
        ax.plot(v.batch_size, v.one_over_B, ":", lw=1.2, color=color, label=t("{}: tr$\\Sigma_1/B$").format(t(point)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(t("batch size $B$"))
    ax.set_ylabel(t("tr Cov of the mini-batch gradient"))
    ax.legend(fontsize=8, ncol=2)
    return fig
