"""The data or the model? The noise floor on D2L's data, and the floor of a model with more capacity.

Sections "Noise sets the floor" and "Capacity" of report/02-loss-floor.qmd (the cycle of
constant-step SGD is in `cycle`). Closed forms (float64 least squares, batched) give each floor;
SGD runs go through `engine.train`, K at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from . import data, engine, stats, theory
from ._lazy import torch
from .article_log import checked
from .cache import cached
from .fmt import num
from .i18n import t

# --------------------------------------------------------------------------- noise sets the floor


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
    # What ks() and pooled_ks() return, computed with the result (torch's gammainc): reading a cached
    # result must not import torch.
    ks_tests: pd.DataFrame  # sigma, ks_d, ks_p
    pooled_ks_test: tuple[float, float]

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

    def ks(self) -> pd.DataFrame:
        """Kolmogorov–Smirnov test of the single-run floors against the scaled χ²_{n−p}, per σ: D and p-value."""
        return self.ks_tests

    def pooled_ks(self) -> tuple[float, float]:
        """The same test on all runs of every σ together."""
        return self.pooled_ks_test

    @property
    def chance_of_misses(self) -> float:
        """P(at least this many of the 95 % intervals miss 1) for independent intervals: a binomial tail."""
        return float(stats.binomial_tail(self.intervals_missing_one, len(self.config.sigmas), Fraction(1, 20)))

    def summary(self) -> dict:
        f, ks = self.frame, self.ks()
        return {"experiment": "floor-noise", **asdict(self.config), "article_floor": self.article_floor,
                "ratio": f.ratio.tolist(), "ratio_ci": [f.ratio_lo.tolist(), f.ratio_hi.tolist()],
                "pooled_ratio": list(self.pooled_ratio), "intervals_missing_one": self.intervals_missing_one,
                "largest_miss": float(np.maximum(f.ratio_lo - 1, 1 - f.ratio_hi).clip(lower=0).max()),
                "sgd_max_relative_excess": float((self.sgd.excess / self.sgd.floor).max()),
                "sgd_mean_relative_excess": float((self.sgd.excess / self.sgd.floor).mean()),
                "ks_d": ks.ks_d.tolist(), "ks_p": ks.ks_p.tolist(), "pooled_ks": list(self.pooled_ks()),
                "chance_of_misses": self.chance_of_misses}

    def table(self, sgd: pd.Series | None = None) -> pd.DataFrame:
        """Predicted vs measured per σ (the index), formatted to the digits that matter; `sgd`, if given, is a
        column of SGD's excess over the minimum per σ, as text (the claims registry's, over many seeds)."""
        f = self.frame
        table = pd.DataFrame({
            t("predicted"): f.predicted.map(lambda v: num(v, ".3e")).to_numpy(),
            t("measured"): f["mean"].map(lambda v: num(v, ".3e")).to_numpy(),
            t("ratio"): f.ratio.map("{:.4f}".format).to_numpy(),
            t("95 % CI"): [f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(f.ratio_lo, f.ratio_hi, strict=True)],
            t("KS p"): self.ks().ks_p.map("{:.2f}".format).to_numpy(),
        }, index=pd.Index([f"{s:.3g}" for s in f.sigma], name="σ"))
        return table if sgd is None else table.assign(**{t("SGD − min (%)"): sgd.reindex(table.index).to_numpy()})


def _scaled_floors(config: NoiseFloorConfig, runs: pd.DataFrame, sigma: float) -> torch.Tensor:
    """2n·floor/σ² of every data set at noise σ: χ²_{n−p} distributed by @thm-lf-noise-floor."""
    return torch.tensor(2 * config.n * runs[runs.sigma == sigma].floor.to_numpy() / sigma**2)


def _ks_tests(config: NoiseFloorConfig, runs: pd.DataFrame) -> tuple[pd.DataFrame, tuple[float, float]]:
    """Kolmogorov–Smirnov tests of the floors against the scaled χ²_{n−p}: per σ (D, p), and all σ pooled."""
    dof = config.n - 3
    scaled = [_scaled_floors(config, runs, s) for s in config.sigmas]
    per_sigma = [(s, *stats.ks_test(t, lambda v: stats.chi2_cdf(v, dof))) for s, t in zip(config.sigmas, scaled,
                                                                                          strict=True)]
    pooled = stats.ks_test(torch.cat(scaled), lambda v: stats.chi2_cdf(v, dof))
    return pd.DataFrame(per_sigma, columns=["sigma", "ks_d", "ks_p"]), pooled


@cached
def noise_floor_sweep(config: NoiseFloorConfig = NoiseFloorConfig()) -> NoiseFloorResult:
    """Draw runs × σ data sets at once, solve each least-squares problem (batched), train a subset by SGD."""
    S, R, n, p = len(config.sigmas), config.runs, config.n, 3
    gen = data.generator(config.seed, "noise-floor")
    X = torch.normal(0, 1, (S * R, n, 2), generator=gen)  # (K, n, d), float32 as D2L
    sigma = torch.tensor(config.sigmas).repeat_interleave(R)  # (K,)
    y = X @ torch.tensor(data.TRUE_W) + data.TRUE_B + sigma[:, None] * torch.randn(S * R, n, generator=gen)
    Xa = engine.augment(X.double(), bias=True)
    # gelsd, not the CPU default gelsy: MKL's gelsy differs in the last bits from call to call (it
    # depends on where the arrays sit in memory), and a second render must give the same numbers.
    theta = torch.linalg.lstsq(Xa, y.double().unsqueeze(-1), driver="gelsd").solution  # (K, p, 1), batched
    floor = 0.5 * ((Xa @ theta).squeeze(-1) - y.double()).square().mean(-1)  # D2L's ½ loss
    sigmas = np.repeat(config.sigmas, R)  # the configured values, not their float32 roundings
    runs = pd.DataFrame({"sigma": sigmas, "run": np.tile(np.arange(R), S), "floor": floor.numpy()})
    g = runs.groupby("sigma").floor
    frame = pd.DataFrame({"sigma": config.sigmas})
    frame["predicted"] = [theory.noise_floor(s, n, p) for s in config.sigmas]
    frame["mean"], half = g.mean().to_numpy(), 1.96 * (g.std() / np.sqrt(R)).to_numpy()  # 95 % CI of the mean
    frame["ci_lo"], frame["ci_hi"] = frame["mean"] - half, frame["mean"] + half
    frame["q_lo"], frame["q_hi"] = g.quantile(0.025).to_numpy(), g.quantile(0.975).to_numpy()  # single runs
    # A single run's floor is σ²/(2n)·χ²(n − p), the prediction times χ²(n − p)/(n − p): its 95 % range.
    lo, hi = (stats.chi2_quantile(q, n - p) / (n - p) for q in (0.025, 0.975))
    frame["band_lo"], frame["band_hi"] = frame.predicted * lo, frame.predicted * hi
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
    return NoiseFloorResult(config, runs, frame, sgd, theory.least_squares(ds.X, ds.y, bias=True).loss_floor,
                            *_ks_tests(config, runs))


# --------------------------------------------------------------------------- capacity


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
    frame: pd.DataFrame  # degree, p, train, train_lo, train_hi, test, test_lo, test_hi, train_expected, and where
    #   where p ≥ n: train_rounding (median bound over data sets), train_within_rounding (data sets below it)

    @property
    def noise_level(self) -> float:
        """σ²/2: the expected loss of the true function on fresh data."""
        return self.config.sigma**2 / 2

    def summary(self) -> dict:
        f = self.frame
        best = f.loc[f.test.idxmin()]
        return {"experiment": "floor-capacity", **asdict(self.config), "noise_level": self.noise_level,
                "best_degree": int(best.degree), "best_test": float(best.test),
                "train_at_max_degree": float(f.train.iloc[-1]), "test_at_max_degree": float(f.test.iloc[-1]),
                "train_rounding_at_max_degree": float(f.train_rounding.iloc[-1]),
                "train_within_rounding_at_max_degree": int(f.train_within_rounding.iloc[-1])}


def interpolation_rounding(A: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per data set, a float64 bound on the ½-mean-square training loss of a fit that interpolates exactly (p ≥ n):
    what a loss of exactly 0 may print as. (R, n, p), (R, n) -> (R,).

    A backward-stable least-squares solve errs by at most about n·p·u·κ(A)·‖y‖ in the residual (Higham, Accuracy
    and Stability, ch. 20; as loss_floor.model_error_rounding); the minimum-norm solve Aᵀ(AAᵀ)⁻¹y of a wide A goes
    through AAᵀ, whose condition number is κ(A)². Squared and divided by 2n as the loss is.
    """
    n, p = A.shape[-2:]
    kappa = torch.linalg.cond(A)
    residual = n * p * torch.finfo(torch.float64).eps * (kappa**2 if p > n else kappa) * y.norm(dim=-1)
    return residual**2 / (2 * n)


@cached
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
        bound = interpolation_rounding(A, y_tr) if degree + 1 >= config.n_train else None  # the loss is 0 exactly
        rows.append({"degree": degree, "p": degree + 1, "train": float(q[0, 0]), "train_lo": float(q[1, 0]),
                     "train_hi": float(q[2, 0]), "test": float(q[0, 1]), "test_lo": float(q[1, 1]),
                     "test_hi": float(q[2, 1]),
                     "train_expected": theory.noise_floor(sig, config.n_train, degree + 1),
                     "train_rounding": np.nan if bound is None else float(bound.median()),
                     "train_within_rounding": 0 if bound is None else int((train <= bound).sum())})
    return CapacityResult(config, pd.DataFrame(rows))


# --------------------------------------------------------------------------- past the interpolation threshold


@dataclass(frozen=True)
class DoubleDescentConfig:
    """Linear data with a few strong and many weak features; fit the first p features by minimum-norm least squares.

    x ~ N(0, Λ) with Λ = diag(1, …, 1 (strong), 1/(D − k), … (weak)); y = xᵀβ + ε with β on the strong
    features only (D2L's (2, −3.4, 4.2), normalised). The weak features carry no signal; past p = n they
    give the minimum-norm fit room to put the noise where it costs little on fresh data.
    """

    seed: int = 20
    n_train: int = 20
    strong: int = 3
    features: int = 2000
    sigma: float = 0.5
    runs: int = 100
    ps: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 17, 18, 19, 20, 21, 22, 23, 25, 30, 40, 60, 100,
                           200, 400, 1000, 2000)
    # False: the weak variances sum to 1 (benign). True: each is 1, the bad case: the weak block's
    # Gram matrix ≈ (D − k)·I acts as a ridge penalty of D − k on the strong coefficients.
    unit_weak: bool = False


@dataclass(frozen=True)
class DoubleDescentResult:
    """Per number of features p: training loss and expected test loss (½ squared error), median and 10–90 % band."""

    config: DoubleDescentConfig
    frame: pd.DataFrame  # p, train, train_lo, train_hi, test, test_lo, test_hi, train_rounding, train_within_rounding

    @property
    def noise_level(self) -> float:
        return self.config.sigma**2 / 2

    @property
    def weak_trace(self) -> float:
        """tr Λ of the weak features: X_w X_wᵀ ≈ that times I, so past p = n the fit is ridge with this penalty."""
        c = self.config
        return float(c.features - c.strong) if c.unit_weak else 1.0

    @property
    def null_test_loss(self) -> float:
        """½(βᵀΛβ + σ²) = ½(1 + σ²): the test loss of predicting 0 (β normalised on unit-variance strong features)."""
        return 0.5 * (1 + self.config.sigma**2)

    def test_at(self, p: int) -> float:
        return float(self.frame.set_index("p").test.loc[p])

    def summary(self) -> dict:
        f = self.frame
        under = f[f.p <= self.config.n_train]
        best = under.loc[under.test.idxmin()]
        return {"experiment": "floor-double-descent", **asdict(self.config), "noise_level": self.noise_level,
                "best_underparameterised_p": int(best.p), "best_underparameterised_test": float(best.test),
                "test_at_threshold": self.test_at(self.config.n_train),
                "test_at_most_features": float(f.test.iloc[-1]), "train_at_most_features": float(f.train.iloc[-1]),
                "train_rounding_at_most_features": float(f.train_rounding.iloc[-1]),
                "train_within_rounding_at_most_features": int(f.train_within_rounding.iloc[-1])}


def _min_norm(A: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The least-squares solution of least norm, batched: (R, n, p), (R, n) -> (R, p).

    Under-determined (p > n, full row rank): Aᵀ(AAᵀ)⁻¹y, an n × n solve, cheaper than an SVD of A.
    """
    if A.shape[-1] <= A.shape[-2]:
        return torch.linalg.lstsq(A, y.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    return (A.mT @ torch.linalg.solve(A @ A.mT, y.unsqueeze(-1))).squeeze(-1)


@cached
def double_descent(config: DoubleDescentConfig = DoubleDescentConfig()) -> DoubleDescentResult:
    """Minimum-norm least squares (gelsd, batched over data sets) on the first p features, for every p in `ps`.

    The test loss is exact in expectation over a fresh example: ½((c − β)ᵀΛ(c − β) + σ²), c padded with zeros.
    """
    D, k, R, n = config.features, config.strong, config.runs, config.n_train
    scale = torch.ones(D, dtype=torch.float64)
    scale[k:] = 1.0 if config.unit_weak else (D - k) ** -0.5  # the weak features' sd: variances 1, or summing to 1
    beta = torch.zeros(D, dtype=torch.float64)
    beta[:k] = torch.tensor([*data.TRUE_W, data.TRUE_B][:k], dtype=torch.float64)
    beta /= beta.norm()
    gen = data.generator(config.seed, "double-descent")
    X = torch.randn(R, n, D, generator=gen, dtype=torch.float64) * scale
    y = X[..., :k] @ beta[:k] + config.sigma * torch.randn(R, n, generator=gen, dtype=torch.float64)
    variance = scale.square()
    unfitted = (variance * beta.square()).flip(0).cumsum(0).flip(0)  # Σ_{j ≥ p} λ_j β_j², for every p
    rows = []
    for p in config.ps:
        coef = _min_norm(X[..., :p], y)  # (R, p)
        train = 0.5 * ((X[..., :p] @ coef.unsqueeze(-1)).squeeze(-1) - y).square().mean(-1)
        missed = unfitted[p] if p < D else 0.0
        test = 0.5 * (((coef - beta[:p]).square() * variance[:p]).sum(-1) + missed + config.sigma**2)
        q = torch.quantile(torch.stack([train, test]), torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64), dim=1)
        bound = interpolation_rounding(X[..., :p], y) if p >= n else None  # the training loss is 0 exactly
        rows.append({"p": p, "train": float(q[0, 0]), "train_lo": float(q[1, 0]), "train_hi": float(q[2, 0]),
                     "test": float(q[0, 1]), "test_lo": float(q[1, 1]), "test_hi": float(q[2, 1]),
                     "train_rounding": np.nan if bound is None else float(bound.median()),
                     "train_within_rounding": 0 if bound is None else int((train <= bound).sum())})
    return DoubleDescentResult(config, pd.DataFrame(rows))
