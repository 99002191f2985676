"""What can be reached: constant-step SGD's cycle, the noise floor, and the floor of a bigger model.

Sections 3–5 of report/02-loss-floor.qmd. Every sweep trains K runs at once through
`engine.train`; closed forms (float64 least squares) give the reference each run is judged by.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import torch

from . import data, engine, experiments, theory
from .loss_floor import ARTICLE_FINAL, checked, exact_least_squares, train_toy


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


# --------------------------------------------------------------------------- 3a. the article's values in the cycle


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
    table: pd.DataFrame  # the article against the cycle, formatted

    def summary(self) -> dict:
        e = self.epochs.groupby("run")
        return {"experiment": "article-cycle", **asdict(self.config),
                "w_range": {r: [float(g.w.min()), float(g.w.max())] for r, g in e},
                "loss_range": {r: [float(g.loss.min()), float(g.loss.max())] for r, g in e},
                "article_inside": {r: bool(v) for r, v in zip(self.table.run, self.table.inside, strict=True)},
                "article_implied": self.implied}


def _implied(fit: theory.LeastSquares, w: float, loss: float, bias: bool, b_near: float) -> float:
    """Noisy run: the loss the article's w implies; bias run: the b that its (w, loss) imply (root nearest b_near)."""
    dw, H = w - float(fit.theta[0]), fit.hessian
    if not bias:
        return fit.loss_floor + 0.5 * float(H[0, 0]) * dw * dw
    # ½(h11 dw² + 2 h12 dw db + h22 db²) = loss − floor, a quadratic in db
    a, b, c = float(H[1, 1]), 2 * float(H[0, 1]) * dw, float(H[0, 0]) * dw * dw - 2 * (loss - fit.loss_floor)
    roots = np.roots([a, b, c]).real + float(fit.theta[1])
    return float(roots[np.argmin(abs(roots - b_near))])


def article_cycle(config: CycleConfig = CycleConfig()) -> CycleResult:
    """Run the noisy and bias toy runs under many orders: where SGD's cycle lies, and the article's values in it."""
    frames, windows, ranges, fits, implied_by, rows = [], [], [], {}, {}, []
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
        implied = implied_by[name] = _implied(fit, art["w"], art["loss"], toy.bias, float(f.b.median()))
        inside = f.w.min() <= art["w"] <= f.w.max() and f.loss.min() <= art["loss"] <= f.loss.max()
        rows.append({"run": name, "article w": f"{art['w']:.4f}", "article loss": f"{art['loss']:.6f}",
                     "epoch-end w (range)": f"{f.w.min():.4f} – {f.w.max():.4f}",
                     "epoch-end loss (range)": f"{f.loss.min():.6f} – {f.loss.max():.6f}",
                     "implied by the article": (f"loss {implied:.6f}" if not toy.bias else f"b {implied:+.4f}"),
                     "b (range)": f"{f.b.min():+.4f} – {f.b.max():+.4f}" if toy.bias else "–", "inside": inside})
    return CycleResult(config, pd.concat(frames, ignore_index=True), pd.concat(windows, ignore_index=True),
                       pd.DataFrame(ranges), fits, implied_by, pd.DataFrame(rows))


# --------------------------------------------------------------------------- 3b. width vs step size, GD, Robbins–Monro


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
        return {"experiment": "step-size-sweep", **asdict(self.config), "slopes": self.slopes,
                "step_width": self.frame.step_width.tolist(), "epoch_sd": self.frame.epoch_sd.tolist()}


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
    runs: int = 16
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
        return {"experiment": "methods", **asdict(self.config), "decay_slope": self.decay_slope,
                "gd_factor": self.gd_factor,
                "final_distance": {m: self.final(m) for m in self.frame.method.unique()}}


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


# --------------------------------------------------------------------------- 4. noise sets the floor


@dataclass(frozen=True)
class NoiseFloorConfig:
    """D2L's data (w = [2, −3.4], b = 4.2, n = 1000) redrawn `runs` times per noise level σ."""

    seed: int = 20
    sigmas: tuple[float, ...] = tuple(10.0 ** (k / 2) for k in range(-6, 1))  # 0.001 … 1, with D2L's 0.01
    runs: int = 200
    n: int = data.NUM_EXAMPLES
    sgd_runs: int = 4  # per σ, also trained by SGD to show it reaches the closed-form minimum
    sgd_lr: float = 0.03  # D2L's lr
    sgd_epochs: int = 10
    batch_size: int = 10


@dataclass(frozen=True)
class NoiseFloorResult:
    """Measured minimal losses (closed form per run) against σ²/2·(n − p)/n, and SGD on a subset."""

    config: NoiseFloorConfig
    runs: pd.DataFrame  # sigma, run, floor
    frame: pd.DataFrame  # sigma, predicted, mean, ci_lo/hi, q_lo/hi, band_lo/hi, ratio, ratio_lo/hi
    sgd: pd.DataFrame  # sigma, run, sgd_loss, floor, excess
    article_floor: float  # the closed-form floor of the article's own data set (seed 20, σ = 0.01)

    @property
    def intervals_missing_one(self) -> int:
        """Noise levels whose 95 % CI of measured / predicted does not contain 1."""
        return int(((self.frame.ratio_lo > 1) | (self.frame.ratio_hi < 1)).sum())

    @property
    def pooled_ratio(self) -> tuple[float, float, float]:
        """Measured / predicted over every run and σ: mean and its 95 % CI."""
        pred = self.frame.set_index("sigma").predicted.reindex(self.runs.sigma).to_numpy()
        r = self.runs.floor.to_numpy() / pred
        half = 1.96 * r.std(ddof=1) / np.sqrt(len(r))
        return float(r.mean()), float(r.mean() - half), float(r.mean() + half)

    def summary(self) -> dict:
        f = self.frame
        return {"experiment": "noise-floor", **asdict(self.config), "article_floor": self.article_floor,
                "ratio": f.ratio.tolist(), "ratio_ci": [f.ratio_lo.tolist(), f.ratio_hi.tolist()],
                "pooled_ratio": list(self.pooled_ratio), "intervals_missing_one": self.intervals_missing_one,
                "largest_miss": float(np.maximum(f.ratio_lo - 1, 1 - f.ratio_hi).clip(lower=0).max()),
                "sgd_max_relative_excess": float((self.sgd.excess / self.sgd.floor).max())}

    def table(self) -> pd.DataFrame:
        """Predicted vs measured per σ, formatted."""
        f = self.frame
        return pd.DataFrame({
            "σ": f.sigma.map("{:.4g}".format), "predicted σ²/2·(n−p)/n": f.predicted.map("{:.4e}".format),
            "measured mean": f["mean"].map("{:.4e}".format),
            "measured / predicted (95 % CI)": [f"{r:.4f} ({lo:.4f} – {hi:.4f})"
                                              for r, lo, hi in zip(f.ratio, f.ratio_lo, f.ratio_hi, strict=True)],
            "SGD / floor (max)": self.sgd.assign(r=self.sgd.sgd_loss / self.sgd.floor).groupby("sigma").r.max()
            .reindex(f.sigma).map("{:.4f}".format).to_numpy()})


def noise_floor_sweep(config: NoiseFloorConfig = NoiseFloorConfig()) -> NoiseFloorResult:
    """Draw runs × σ data sets at once, solve each least-squares problem (batched), train a subset by SGD."""
    S, R, n, p = len(config.sigmas), config.runs, config.n, 3
    gen = data.generator(config.seed, "noise-floor")
    X = torch.normal(0, 1, (S * R, n, 2), generator=gen)  # (K, n, d), float32 as D2L
    sigma = torch.tensor(config.sigmas).repeat_interleave(R)  # (K,)
    y = X @ torch.tensor(data.TRUE_W) + data.TRUE_B + sigma[:, None] * torch.randn(S * R, n, generator=gen)
    Xa = engine.augment(X.double(), bias=True)
    theta = torch.linalg.lstsq(Xa, y.double().unsqueeze(-1)).solution  # (K, p, 1), batched
    floor = 0.5 * ((Xa @ theta).squeeze(-1) - y.double()).square().mean(-1)  # D2L's ½ loss
    sigmas = np.repeat(config.sigmas, R)  # the configured values, not their float32 roundings
    runs = pd.DataFrame({"sigma": sigmas, "run": np.tile(np.arange(R), S), "floor": floor.numpy()})
    g = runs.groupby("sigma").floor
    frame = pd.DataFrame({"sigma": config.sigmas})
    frame["predicted"] = [theory.noise_floor(s, n, p) for s in config.sigmas]
    frame["mean"], half = g.mean().to_numpy(), 1.96 * (g.std() / np.sqrt(R)).to_numpy()  # 95 % CI of the mean
    frame["ci_lo"], frame["ci_hi"] = frame["mean"] - half, frame["mean"] + half
    frame["q_lo"], frame["q_hi"] = g.quantile(0.025).to_numpy(), g.quantile(0.975).to_numpy()  # single runs
    # A single run's floor is σ²/(2n)·χ²(n − p): its 95 % range, by the normal approximation to χ².
    spread = 1.96 * np.sqrt(2 * (n - p)) / (n - p)
    frame["band_lo"], frame["band_hi"] = frame.predicted * (1 - spread), frame.predicted * (1 + spread)
    for col, src in (("ratio", "mean"), ("ratio_lo", "ci_lo"), ("ratio_hi", "ci_hi")):
        frame[col] = frame[src] / frame.predicted

    pick = torch.tensor([s * R + r for s in range(S) for r in range(config.sgd_runs)])  # the first runs per σ
    K = len(pick)
    orders = torch.stack([data.batch_orders(n, config.sgd_epochs, data.generator(config.seed + k, "order"))
                          for k in range(K)], 1)  # (E, K, n)
    traj = checked(engine.train(X[pick], y[pick], torch.zeros(p, K), config.sgd_lr, orders,
                                batch_size=config.batch_size), "noise-floor", config.sgd_lr)
    sgd_loss = traj.epoch_loss[-1].double()
    sgd = pd.DataFrame({"sigma": sigmas[pick.numpy()], "run": np.tile(np.arange(config.sgd_runs), S),
                        "sgd_loss": sgd_loss.numpy(), "floor": floor[pick].numpy()})
    sgd["excess"] = sgd.sgd_loss - sgd.floor
    ds = data.d2l_data(data.generator(config.seed))  # the article's own data set
    return NoiseFloorResult(config, runs, frame, sgd, theory.least_squares(ds.X, ds.y, bias=True).loss_floor)


# --------------------------------------------------------------------------- 5. capacity


def legendre(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Legendre features P_0 … P_degree of x ∈ [−1, 1], (..., n) -> (..., n, degree + 1): well conditioned."""
    P = [torch.ones_like(x), x]
    for k in range(1, degree):
        P.append(((2 * k + 1) * x * P[k] - k * P[k - 1]) / (k + 1))  # Bonnet's recursion
    return torch.stack(P[: degree + 1], -1)


@dataclass(frozen=True)
class CapacityConfig:
    """Polynomials of every degree fitted to y = sin(πx) + ε on n_train points; `runs` data sets at once."""

    seed: int = 20
    n_train: int = 20
    n_test: int = 200
    sigma: float = 0.1
    runs: int = 100


@dataclass(frozen=True)
class CapacityResult:
    """Per degree: training and test loss (½ squared error), median and 10–90 % band over data sets."""

    config: CapacityConfig
    frame: pd.DataFrame  # degree, p, train, train_lo, train_hi, test, test_lo, test_hi, train_expected

    @property
    def noise_level(self) -> float:
        """σ²/2: the expected loss of the true function on fresh data."""
        return self.config.sigma**2 / 2

    def summary(self) -> dict:
        f = self.frame
        best = f.loc[f.test.idxmin()]
        return {"experiment": "capacity", **asdict(self.config), "noise_level": self.noise_level,
                "best_degree": int(best.degree), "best_test": float(best.test),
                "train_at_max_degree": float(f.train.iloc[-1]), "test_at_max_degree": float(f.test.iloc[-1])}


def capacity_sweep(config: CapacityConfig = CapacityConfig()) -> CapacityResult:
    """Closed-form least squares (float64, batched over data sets) for degrees 0 … n_train − 1."""
    gen = data.generator(config.seed, "capacity")
    R, sig = config.runs, config.sigma

    def draw(n):
        x = torch.rand(R, n, generator=gen, dtype=torch.float64) * 2 - 1
        return x, torch.sin(torch.pi * x) + sig * torch.randn(R, n, generator=gen, dtype=torch.float64)

    (x_tr, y_tr), (x_te, y_te) = draw(config.n_train), draw(config.n_test)
    rows = []
    for degree in range(config.n_train):
        A = legendre(x_tr, degree)  # (R, n_train, p)
        coef = torch.linalg.lstsq(A, y_tr.unsqueeze(-1), driver="gelsd").solution  # (R, p, 1)
        train = 0.5 * ((A @ coef).squeeze(-1) - y_tr).square().mean(-1)
        test = 0.5 * ((legendre(x_te, degree) @ coef).squeeze(-1) - y_te).square().mean(-1)
        q = torch.quantile(torch.stack([train, test]), torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64), dim=1)
        rows.append({"degree": degree, "p": degree + 1, "train": float(q[0, 0]), "train_lo": float(q[1, 0]),
                     "train_hi": float(q[2, 0]), "test": float(q[0, 1]), "test_lo": float(q[1, 1]),
                     "test_hi": float(q[2, 1]),
                     "train_expected": theory.noise_floor(sig, config.n_train, degree + 1)})
    return CapacityResult(config, pd.DataFrame(rows))
