"""Why constant-step SGD never settles: the cycle around w*, how it scales with η, and what ends it.

Section "Why constant-step SGD never settles" ({#sec-sgd-cycle}) of report/02-loss-floor.qmd.
Every sweep trains K runs at once through `engine.train`; the exact constants of the cycle
(`cycle_constants`) are the leading-order predictions each sweep is judged by.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from . import data, experiments, theory
from ._lazy import torch
from .article_log import ARTICLE_FINAL, train_toy
from .cache import cached
from .fmt import num
from .i18n import t
from .loss_floor import exact_least_squares


def order_streams(seed: int, runs: int, epochs: int, n: int = 4) -> torch.Tensor:
    """One order stream per run, (E, K, n); run k uses seed + k (run 0 replays `experiments.toy`).

    The bias run's hypotheses (bias_run.py) draw the same streams: hypothesis (A) is this module's bias run.
    """
    return torch.stack([data.batch_orders(n, epochs, data.generator(seed + k, "order")) for k in range(runs)], 1)


def _slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def cycle_constants(x=data.TOY_X, y=data.TOY_Y_NOISY) -> tuple[Fraction, Fraction]:
    """Leading-order constants of SGD's cycle on w·x, exactly: width 2Σ|x r| · η and mean offset −Σx³r/Σx² · η.

    r_i = x_i w* − y_i are the residuals at the optimum (Σ x r = 0); derivations: eq-lf-width, eq-lf-offset.
    """
    w_star, _, _ = exact_least_squares(x, y, bias=False)
    x, y = [Fraction(str(v)) for v in x], [Fraction(str(v)) for v in y]
    xr = [u * (u * w_star - v) for u, v in zip(x, y, strict=True)]
    return 2 * sum(abs(t) for t in xr), -sum(u * u * t for u, t in zip(x, xr, strict=True)) / sum(u * u for u in x)


def epoch_range_constant(x=data.TOY_X, y=data.TOY_Y_NOISY) -> Fraction:
    """The mean single-epoch range of w to leading order, over uniformly random orders, per unit η, exactly.

    To first order in η an epoch from w* moves w by the partial sums of the pushes −2η x_i r_i
    (eq-lf-sgd-error without its contraction); the range of an epoch in order π is the largest minus
    the smallest partial sum, the empty sum 0 (the epoch's start) included. Averaged over all n! orders.
    Over orders the largest minus the smallest partial sum is 2Σ|x r| (`cycle_constants`), the envelope.
    """
    w_star, _, _ = exact_least_squares(x, y, bias=False)
    pushes = [-2 * u * (u * w_star - v) for u, v in zip(map(Fraction, map(str, x)), map(Fraction, map(str, y)),
                                                          strict=True)]
    total, count = Fraction(0), 0
    for order in itertools.permutations(pushes):
        sums = list(itertools.accumulate(order, initial=Fraction(0)))
        total, count = total + max(sums) - min(sums), count + 1
    return total / count


# --------------------------------------------------------------------------- the article's values in the cycle


@dataclass(frozen=True)
class CycleConfig:
    """The noisy and bias runs under `runs` batch-order seeds; the cycle is read over the last `tail` epochs."""

    seed: int = 20
    runs: int = 64
    epochs: int = 600  # the bias run forgets its start within ~300 epochs (contraction 0.93 per epoch)
    tail: int = 300
    show_epochs: int = 8  # epochs of run `seed` drawn step by step


@dataclass(frozen=True)
class CycleResult:
    """Epoch-end states over the tail, a step-level window of one run, and the article's values against them."""

    config: CycleConfig
    epochs: pd.DataFrame  # run, order_seed, epoch, w, b, loss — epoch ends over the tail
    window: pd.DataFrame  # run, step, w, b — run `seed`, last show_epochs epochs, every step
    step_range: pd.DataFrame  # run, w_min, w_max over every step of the tail, all seeds
    fits: dict  # run -> theory.LeastSquares (float64, numpy arrays: LeastSquares.numpy)
    implied: dict  # run -> the loss the article's w implies (noisy), the b its w and loss imply (bias)

    def inside(self, run: str) -> bool:
        """Whether the article's w and loss (and, for the bias run, its implied b) lie in the epoch-end ranges."""
        f, art = self.epochs[self.epochs.run == run], ARTICLE_FINAL[run]
        ok = f.w.min() <= art["w"] <= f.w.max() and f.loss.min() <= art["loss"] <= f.loss.max()
        return bool(ok and (run != "toy-bias" or f.b.min() <= self.implied[run] <= f.b.max()))

    def tail_fraction(self, run: str, art: float | None = None) -> float:
        """Fraction of epoch-end w at least as far from the median, on the article's side, as the article's w.

        `art` replaces the printed w, e.g. by an end of its rounding interval (the article printed 4 decimals).
        """
        w = self.epochs[self.epochs.run == run].w
        art = ARTICLE_FINAL[run]["w"] if art is None else art
        return float((w >= art).mean() if art >= w.median() else (w <= art).mean())

    def seeds_reaching(self, run: str, art: float | None = None) -> int:
        """How many order seeds have at least one epoch end in the tail as far out as the article's w (or `art`).

        The same side of the median as `tail_fraction`; a seed's epoch ends are serially correlated, the
        seeds independent: "k of N seeds reach it at least once in their last `tail` epochs".
        """
        f = self.epochs[self.epochs.run == run]
        art = ARTICLE_FINAL[run]["w"] if art is None else art
        reached = f.w >= art if art >= f.w.median() else f.w <= art
        return int(f.order_seed[reached].nunique())

    def summary(self) -> dict:
        e = self.epochs.groupby("run")
        return {"experiment": "floor-cycle", **asdict(self.config),
                "w_range": {r: [float(g.w.min()), float(g.w.max())] for r, g in e},
                "loss_range": {r: [float(g.loss.min()), float(g.loss.max())] for r, g in e},
                "article_inside": {r: self.inside(r) for r in self.fits}, "article_implied": self.implied,
                "article_tail_fraction": {r: self.tail_fraction(r) for r in self.fits},
                "article_seeds_reaching": {r: self.seeds_reaching(r) for r in self.fits}}

    def table(self) -> pd.DataFrame:
        """The article's printed values against the epoch-end ranges: one row per quantity, one column per run."""
        cols = {}
        for run, title in (("toy-noisy", "w·x"), ("toy-bias", "w·x + b")):
            f, art, imp = self.epochs[self.epochs.run == run], ARTICLE_FINAL[run], self.implied[run]
            bias = run == "toy-bias"
            cols[title] = [f"{art['w']:.4f}", t("{} to {}").format(f"{f.w.min():.4f}", f"{f.w.max():.4f}"),
                           f"{art['loss']:.6f}", t("{} to {}").format(f"{f.loss.min():.6f}", f"{f.loss.max():.6f}"),
                           "–" if bias else f"{imp:.6f}",
                           f"{imp:.4f}" if bias else "–",
                           t("{} to {}").format(f"{f.b.min():.4f}", f"{f.b.max():.4f}") if bias else "–",
                           t("yes") if self.inside(run) else t("no"),
                           t("{0} of {1}").format(self.seeds_reaching(run), self.config.runs),
                           f"{num(100 * self.tail_fraction(run), '.2g')} %"]
        rows = ["w, the article (quoted)", "w at epoch ends", "loss, the article (quoted)", "loss at epoch ends",
                "loss implied by the article's w", "b implied by its w and loss", "b at epoch ends",
                "the article inside the ranges"]
        labels = [t(r) for r in rows] + [t("seeds as far out at least once in {} epochs").format(self.config.tail),
                                         t("share of the (correlated) epoch ends as far out")]
        return pd.DataFrame(cols, index=pd.Index(labels, name=t("quantity")))


def bias_roots(fit: theory.LeastSquares, w: float, loss: float) -> tuple[float, float]:
    """The two b with loss(w, b) = loss for the bias model: ½(h11 dw² + 2 h12 dw db + h22 db²) = loss − floor."""
    dw, H = w - float(fit.theta[0]), fit.hessian
    a, b, c = float(H[1, 1]), 2 * float(H[0, 1]) * dw, float(H[0, 0]) * dw * dw - 2 * (loss - fit.loss_floor)
    low, high = sorted(np.roots([a, b, c]).real + float(fit.theta[1]))
    return float(low), float(high)


def _implied(fit: theory.LeastSquares, w: float, loss: float, bias: bool, b_near: float) -> float:
    """Noisy run: the loss the article's w implies; bias run: the b that its (w, loss) imply (root nearest b_near)."""
    if not bias:
        return fit.loss_floor + 0.5 * float(fit.hessian[0, 0]) * (w - float(fit.theta[0])) ** 2
    return min(bias_roots(fit, w, loss), key=lambda b: abs(b - b_near))


@cached
def article_cycle(config: CycleConfig = CycleConfig()) -> CycleResult:
    """Run the noisy and bias toy runs under many orders: where SGD's cycle lies, and the article's values in it."""
    frames, windows, ranges, fits, implied_by = [], [], [], {}, {}
    for name in ("toy-noisy", "toy-bias"):
        toy = experiments.TOY_RUNS[name]
        traj, _ = train_toy(toy, order_streams(config.seed, config.runs, config.epochs))
        tail = slice(config.epochs - config.tail + 1, None)
        p = traj.epoch_params[tail].double()  # (tail, p, K)
        frames.append(pd.DataFrame({
            "run": name, "order_seed": np.tile(config.seed + np.arange(config.runs), config.tail),
            "epoch": np.repeat(np.arange(config.epochs - config.tail + 1, config.epochs + 1), config.runs),
            "w": p[:, 0].flatten().numpy(), "b": (p[:, 1] if toy.bias else 0 * p[:, 0]).flatten().numpy(),
            "loss": traj.epoch_loss[tail].double().flatten().numpy()}))
        steps = traj.step_params[-4 * config.tail :].double()  # (4·tail, p, K)
        shown = traj.step_params[-4 * config.show_epochs - 1 :, :, 0].double()
        windows.append(pd.DataFrame({"run": name, "step": np.arange(-len(shown) + 1, 1) + 4 * config.epochs,
                                     "w": shown[:, 0].numpy(), "b": shown[:, -1].numpy() if toy.bias else 0.0}))
        ranges.append({"run": name, "w_min": float(steps[:, 0].min()), "w_max": float(steps[:, 0].max())})
        ds = data.toy_data(True, dtype=torch.float64)
        fit = fits[name] = theory.least_squares(ds.X, ds.y, bias=toy.bias, loss="plain").numpy()
        f, art = frames[-1], ARTICLE_FINAL[name]
        implied_by[name] = _implied(fit, art["w"], art["loss"], toy.bias, float(f.b.median()))
    return CycleResult(config, pd.concat(frames, ignore_index=True), pd.concat(windows, ignore_index=True),
                       pd.DataFrame(ranges), fits, implied_by)
