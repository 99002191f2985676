"""Why constant-step SGD never settles: the cycle around w*, how it scales with η, and what ends it.

Section "Why constant-step SGD never settles" ({#sec-sgd-cycle}) of report/02-loss-floor.qmd.
Every sweep trains K runs at once through `engine.train`; the exact constants of the cycle
(`cycle_constants`) are the leading-order predictions each sweep is judged by.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import torch

from . import data, engine, experiments, theory
from .article_log import ARTICLE_FINAL, checked, train_toy
from .cache import cached
from .loss_floor import exact_least_squares


def _orders(seed: int, runs: int, epochs: int, n: int = 4) -> torch.Tensor:
    """One order stream per run, (E, K, n); run k uses seed + k (run 0 replays `experiments.toy`)."""
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
    fits: dict  # run -> theory.LeastSquares (float64)
    implied: dict  # run -> the loss the article's w implies (noisy), the b its w and loss imply (bias)

    def inside(self, run: str) -> bool:
        """Whether the article's w and loss (and, for the bias run, its implied b) lie in the epoch-end ranges."""
        f, art = self.epochs[self.epochs.run == run], ARTICLE_FINAL[run]
        ok = f.w.min() <= art["w"] <= f.w.max() and f.loss.min() <= art["loss"] <= f.loss.max()
        return bool(ok and (run != "toy-bias" or f.b.min() <= self.implied[run] <= f.b.max()))

    def tail_fraction(self, run: str) -> float:
        """Fraction of epoch-end w at least as far from the median, on the article's side, as the article's w."""
        w, art = self.epochs[self.epochs.run == run].w, ARTICLE_FINAL[run]["w"]
        return float((w >= art).mean() if art >= w.median() else (w <= art).mean())

    def summary(self) -> dict:
        e = self.epochs.groupby("run")
        return {"experiment": "floor-cycle", **asdict(self.config),
                "w_range": {r: [float(g.w.min()), float(g.w.max())] for r, g in e},
                "loss_range": {r: [float(g.loss.min()), float(g.loss.max())] for r, g in e},
                "article_inside": {r: self.inside(r) for r in self.fits}, "article_implied": self.implied,
                "article_tail_fraction": {r: self.tail_fraction(r) for r in self.fits}}

    def table(self) -> pd.DataFrame:
        """The article's printed values against the epoch-end ranges: one row per quantity, one column per run."""
        cols = {}
        for run, title in (("toy-noisy", "w·x"), ("toy-bias", "w·x + b")):
            f, art, imp = self.epochs[self.epochs.run == run], ARTICLE_FINAL[run], self.implied[run]
            bias = run == "toy-bias"
            cols[title] = [f"{art['w']:.4f}", f"{f.w.min():.4f} to {f.w.max():.4f}", f"{art['loss']:.6f}",
                           f"{f.loss.min():.6f} to {f.loss.max():.6f}", "–" if bias else f"{imp:.6f}",
                           f"{imp:.4f}" if bias else "–", f"{f.b.min():.4f} to {f.b.max():.4f}" if bias else "–",
                           "yes" if self.inside(run) else "no", f"{100 * self.tail_fraction(run):.2f} %"]
        rows = ["w, the article (quoted)", "w at epoch ends", "loss, the article (quoted)", "loss at epoch ends",
                "loss implied by the article's w", "b implied by its w and loss", "b at epoch ends",
                "the article inside the ranges", "epoch ends at least as far out"]
        return pd.DataFrame(cols, index=pd.Index(rows, name="quantity"))


def _implied(fit: theory.LeastSquares, w: float, loss: float, bias: bool, b_near: float) -> float:
    """Noisy run: the loss the article's w implies; bias run: the b that its (w, loss) imply (root nearest b_near)."""
    dw, H = w - float(fit.theta[0]), fit.hessian
    if not bias:
        return fit.loss_floor + 0.5 * float(H[0, 0]) * dw * dw
    # ½(h11 dw² + 2 h12 dw db + h22 db²) = loss − floor, a quadratic in db
    a, b, c = float(H[1, 1]), 2 * float(H[0, 1]) * dw, float(H[0, 0]) * dw * dw - 2 * (loss - fit.loss_floor)
    roots = np.roots([a, b, c]).real + float(fit.theta[1])
    return float(roots[np.argmin(abs(roots - b_near))])


@cached
def article_cycle(config: CycleConfig = CycleConfig()) -> CycleResult:
    """Run the noisy and bias toy runs under many orders: where SGD's cycle lies, and the article's values in it."""
    frames, windows, ranges, fits, implied_by = [], [], [], {}, {}
    for name in ("toy-noisy", "toy-bias"):
        toy = experiments.TOY_RUNS[name]
        traj, _ = train_toy(toy, _orders(config.seed, config.runs, config.epochs))
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
        fit = fits[name] = theory.least_squares(ds.X, ds.y, bias=toy.bias, loss="plain")
        f, art = frames[-1], ARTICLE_FINAL[name]
        implied_by[name] = _implied(fit, art["w"], art["loss"], toy.bias, float(f.b.median()))
    return CycleResult(config, pd.concat(frames, ignore_index=True), pd.concat(windows, ignore_index=True),
                       pd.DataFrame(ranges), fits, implied_by)


# --------------------------------------------------------------------------- width vs step size, GD, Robbins–Monro


def _noisy64():
    ds = data.toy_data(True, dtype=torch.float64)  # float64: the asymptotics, not float32 rounding
    return ds, float(exact_least_squares(data.TOY_X, data.TOY_Y_NOISY, bias=False)[0])


@dataclass(frozen=True)
class SweepConfig:
    """Constant-step SGD on w·x (noisy labels, float64) from w*, `runs` order seeds per step size η."""

    seed: int = 20
    runs: int = 16
    effective_lrs: tuple[float, ...] = tuple(float(v) for v in np.geomspace(1e-4, 3e-2, 11))  # up to the article's
    epochs: int = 6000  # the smallest η needs ~1/(2ηΣx²) ≈ 360 epochs to forget its start, and a long tail
    tail: int = 5000  # to average the epoch-end spread over many of those correlation times


@dataclass(frozen=True)
class SweepResult:
    """Per step size: the width of w's cycle (steps), the spread and offset of epoch-end w, with fitted slopes."""

    config: SweepConfig
    frame: pd.DataFrame  # effective_lr, step_width, epoch_sd, epoch_offset, width_leading, offset_leading
    slopes: dict  # quantity -> fitted log-log slope

    def summary(self) -> dict:
        return {"experiment": "floor-step-size", **asdict(self.config), "slopes": self.slopes,
                "step_width": self.frame.step_width.tolist(), "epoch_sd": self.frame.epoch_sd.tolist()}


@cached
def step_size_sweep(config: SweepConfig = SweepConfig()) -> SweepResult:
    """How the cycle scales with η: K = len(lrs) × runs at once, each from w* so no burn-in is wasted."""
    ds, w_star = _noisy64()
    L, S = len(config.effective_lrs), config.runs
    lr = torch.tensor(config.effective_lrs, dtype=torch.float64).repeat_interleave(S)  # (K,)
    orders = _orders(config.seed, S, config.epochs).repeat(1, L, 1)  # same order seeds for every η
    traj = checked(engine.train(ds.X, ds.y, torch.full((1, L * S), w_star, dtype=torch.float64), lr, orders,
                                batch_size=1, model=engine.Model(bias=False), loss="plain", grad_divisor=1,
                                record_steps=True), "step-size-sweep", max(config.effective_lrs))
    e = traj.step_params[-4 * config.tail :, 0].reshape(-1, L, S) - w_star  # (steps, L, S)
    ends = traj.epoch_params[-config.tail :, 0].reshape(-1, L, S) - w_star
    width_coef, offset_coef = cycle_constants()
    eta = np.array(config.effective_lrs)
    frame = pd.DataFrame({
        "effective_lr": eta, "step_width": (e.amax(0) - e.amin(0)).mean(-1).numpy(),
        "epoch_sd": ends.std(0).mean(-1).numpy(), "epoch_offset": ends.mean((0, 2)).numpy(),
        "width_leading": float(width_coef) * eta, "offset_leading": float(offset_coef) * eta})
    slopes = {q: _slope(eta, frame[q]) for q in ("step_width", "epoch_sd", "epoch_offset")}
    return SweepResult(config, frame, slopes)


@dataclass(frozen=True)
class MethodsConfig:
    """Constant step vs full-batch GD vs Robbins–Monro η_t = η·t0/(t0 + t), on w·x (noisy, float64)."""

    seed: int = 20
    runs: int = 64  # the median of 16 runs makes the fitted decay slope wobble by ~0.1
    effective_lr: float = 0.03  # the article's lr / 10
    decay_steps: float = 40.0  # t0, in steps: the step halves after 10 epochs
    epochs: int = 1000


@dataclass(frozen=True)
class MethodsResult:
    """|w − w*| after each epoch: median and 10–90 % band over order seeds, per method."""

    config: MethodsConfig
    frame: pd.DataFrame  # method, epoch, median, lo, hi, leading (the leading-order mean offset)
    decay_slope: float  # fitted log-log slope of Robbins–Monro's median distance over the second half

    def final(self, method: str) -> float:
        """Median distance to w* after the last epoch."""
        return float(self.frame[self.frame.method == method].iloc[-1]["median"])

    @property
    def gd_factor(self) -> float:
        """Full-batch GD multiplies w − w* by 1 − 2ηΣx² per epoch (one step on the summed loss)."""
        return 1 - 2 * self.config.effective_lr * sum(v * v for v in data.TOY_X)

    def summary(self) -> dict:
        return {"experiment": "floor-methods", **asdict(self.config), "decay_slope": self.decay_slope,
                "gd_factor": self.gd_factor,
                "final_distance": {m: self.final(m) for m in self.frame.method.unique()}}


@cached
def methods(config: MethodsConfig = MethodsConfig()) -> MethodsResult:
    """Does w reach w*? Constant-step SGD no; full-batch GD and a decaying step yes."""
    ds, w_star = _noisy64()
    K, E, eta = config.runs, config.epochs, config.effective_lr
    orders = _orders(config.seed, K, E)
    start = torch.full((1, K), 2.0, dtype=torch.float64)
    common = {"model": engine.Model(bias=False), "loss": "plain", "grad_divisor": 1}
    runs = {
        "SGD, constant η": engine.train(ds.X, ds.y, start, eta, orders, batch_size=1, **common),
        "SGD, η_t = η·t₀/(t₀ + t)": engine.train(ds.X, ds.y, start, eta, orders, batch_size=1,
                                                  lr_decay_steps=config.decay_steps, **common),
        # Full batch: the same step per epoch as SGD's four; orders are irrelevant to a sum.
        "full-batch GD": engine.train(ds.X, ds.y, start[:, :1], eta, orders[:, 0], batch_size=4, **common),
    }
    offset = float(cycle_constants()[1])  # mean epoch-end offset ≈ offset·η (@eq-lf-offset)
    steps = torch.arange(E + 1, dtype=torch.float64) * 4
    leading = {"SGD, constant η": offset * eta * torch.ones(E + 1),
               "SGD, η_t = η·t₀/(t₀ + t)": offset * eta * config.decay_steps / (config.decay_steps + steps)}
    frames = []
    for name, traj in runs.items():
        checked(traj, name, eta)
        d = (traj.epoch_params[:, 0] - w_star).abs()  # (E+1, K)
        q = torch.quantile(d, torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64), dim=1)
        frames.append(pd.DataFrame({"method": name, "epoch": np.arange(E + 1), "median": q[0].numpy(),
                                    "lo": q[1].numpy(), "hi": q[2].numpy(),
                                    "leading": leading[name].numpy() if name in leading else np.nan}))
    frame = pd.concat(frames, ignore_index=True)
    rm = frame[(frame.method == "SGD, η_t = η·t₀/(t₀ + t)") & (frame.epoch >= E // 2)]
    return MethodsResult(config, frame, _slope(rm.epoch, rm["median"]))
