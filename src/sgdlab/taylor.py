"""Taylor's formula on the article's losses: the quadratics, their closed forms, two first-order checks.

f(θ) = c·mean((Xa θ − y)²) with c = ½ (D2L's squared_loss) or c = 1 (the article's toy loss), Xa the
features with a ones column for b. Everything here is float64. The experiments `directional`,
`remainder` and `level_sets` check the first-order expansion numerically; `steepest` holds the
experiments on step sizes and rates, `norms` those on other norms (Newton) and mini-batch noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from . import data, engine, roundoff, theory
from ._lazy import torch
from .cache import cached


@dataclass(frozen=True)
class Quadratic:
    """f(θ) = c·mean((Xa θ − y)²): gradient (2c/n)Xaᵀ(Xaθ − y), Hessian H = (2c/n)XaᵀXa."""

    X: torch.Tensor  # (n, d) float64 features, without the ones column
    y: torch.Tensor  # (n,) float64 labels
    bias: bool  # θ = (w, b) with b last, else θ = w
    loss: str = "half"  # "half": D2L's (ŷ−y)²/2; "plain": the article's toy (ŷ−y)²

    @cached_property
    def Xa(self) -> torch.Tensor:
        return engine.augment(self.X, self.bias)  # (n, p)

    @property
    def c(self) -> float:
        return theory.loss_scale(self.loss)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @cached_property
    def fit(self) -> theory.LeastSquares:
        """θ*, the floor f(θ*) and the Hessian, from theory.least_squares."""
        return theory.least_squares(self.X, self.y, self.bias, self.loss)

    @property
    def hessian(self) -> torch.Tensor:
        return self.fit.hessian  # (p, p) = (2c/n) XaᵀXa

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """f(θ) for θ of shape (..., p): (...)."""
        return self.c * ((theta @ self.Xa.T - self.y) ** 2).mean(-1)

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """∇f(θ) = (2c/n) Xaᵀ(Xaθ − y) for θ of shape (..., p): (..., p)."""
        return 2 * self.c * (theta @ self.Xa.T - self.y) @ self.Xa / self.n

    def per_sample_gradients(self, theta: torch.Tensor) -> torch.Tensor:
        """Gradient of each sample's loss c(x_iᵀθ − y_i)² at one θ (p,): (n, p); their mean is ∇f."""
        return 2 * self.c * (self.Xa @ theta - self.y).unsqueeze(1) * self.Xa


def baseline_problem(seed: int) -> tuple[Quadratic, torch.Tensor]:
    """D2L's ½ loss on the seed's data (θ = w1, w2, b) and the article's start θ0 = (w0, 0), float64."""
    gen = data.generator(seed)
    ds = data.d2l_data(gen)
    w0 = torch.normal(0, 0.01, size=(2,), generator=gen)  # the article's init: the same stream, after the data
    return Quadratic(ds.X.double(), ds.y.double(), True, "half"), torch.cat([w0.double(), torch.zeros(1).double()])


def toy_problem(noisy: bool, bias: bool) -> tuple[Quadratic, torch.Tensor]:
    """The article's toy loss mean (ŷ − y)² on x = 0..3 and its start w = 2 (b = 0)."""
    ds = data.toy_data(noisy, dtype=torch.float64)
    return Quadratic(ds.X, ds.y, bias, "plain"), torch.tensor([2.0, 0.0][: 1 + bias], dtype=torch.float64)


# --------------------------------------------------------------------------- closed forms


def curvature_bounds(hessian: torch.Tensor) -> tuple[float, float]:
    """(L, μ) = (λ_max, λ_min) of a symmetric Hessian; L through theory.smoothness."""
    return theory.smoothness(hessian), float(torch.linalg.eigvalsh(hessian.double()).min())


def per_sample_curvature(q: Quadratic) -> torch.Tensor:
    """λ_max of each sample's Hessian 2c·x_i x_iᵀ, that is 2c‖x_i‖²: (n,)."""
    return 2 * q.c * (q.Xa**2).sum(-1)


def batch_curvature(q: Quadratic, orders: torch.Tensor, batch_size: int) -> torch.Tensor:
    """λ_max of each mini-batch loss's Hessian (2c/B)X_BᵀX_B, batches cut from orders (E, n): (E·n/B,)."""
    Xb = q.Xa[orders.reshape(-1, batch_size)]  # (batches, B, p)
    return torch.linalg.eigvalsh(2 * q.c * Xb.transpose(1, 2) @ Xb / batch_size)[:, -1]


def central_difference(q: Quadratic, theta: torch.Tensor, d: torch.Tensor, h: float) -> torch.Tensor:
    """(f(θ + hd) − f(θ − hd)) / 2h: a directional derivative that never calls the gradient. d: (..., p)."""
    return (q.value(theta + h * d) - q.value(theta - h * d)) / (2 * h)


def taylor_remainder(q: Quadratic, theta: torch.Tensor, d: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """|f(θ + εd) − f(θ) − ε∇f(θ)ᵀd| for each ε of eps (m,): (m,)."""
    slope = q.gradient(theta) @ d
    return (q.value(theta + eps.unsqueeze(1) * d) - q.value(theta) - eps * slope).abs()


def first_below(curve: np.ndarray, level: float) -> int | None:
    """First index where curve ≤ level, or None."""
    hits = np.flatnonzero(curve <= level)
    return int(hits[0]) if len(hits) else None


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def descent_bound(f: float, grad_norm_sq: float, L: float, eta):
    """The descent lemma's guarantee f(x) − η(1 − Lη/2)‖∇f‖² for f(x − η∇f)."""
    return f - eta * (1 - L * eta / 2) * grad_norm_sq


def local_model(q: Quadratic, theta: torch.Tensor, eta: float, delta: torch.Tensor) -> torch.Tensor:
    """m(Δ) = f(θ) + ∇f(θ)ᵀΔ + ‖Δ‖²/(2η), the first-order model with a proximity term, for Δ of shape (..., p)."""
    return q.value(theta) + delta @ q.gradient(theta) + (delta * delta).sum(-1) / (2 * eta)


@dataclass(frozen=True)
class ProxCheck:
    """The gradient step as the minimiser of the local model m, checked on sampled Δ (float64)."""

    step_gap: float  # max over Δ of |m(Δ) − m(−η∇f) − ‖Δ + η∇f‖²/(2η)|: 0 up to rounding, so −η∇f minimises m
    above: float  # min over Δ of m(Δ) − f(θ + Δ): ≥ 0 iff m lies above f there (η ≤ 1/L: Lemma 3.1)
    above_exact: float  # min of (m − f)(Δ)/‖Δ‖² over all Δ: 1/(2η) − L/2 for a quadratic
    decrease: float  # f(θ) − f(θ − η∇f)
    promised: float  # f(θ) − m(−η∇f) = (η/2)‖∇f‖²: what Cor. 3.2 guarantees when η ≤ 1/L


def prox_check(q: Quadratic, theta: torch.Tensor, eta: float, deltas: torch.Tensor) -> ProxCheck:
    """θ − η∇f = θ + argmin_Δ m(Δ): the completed square, m above f for η ≤ 1/L, and the decrease it buys.

    Completing the square, m(Δ) = f(θ) − (η/2)‖∇f‖² + ‖Δ + η∇f‖²/(2η): the least m is at Δ = −η∇f.
    m − f = ½Δᵀ(I/η − H)Δ on a quadratic, ≥ 0 for every Δ iff η ≤ 1/L.
    """
    g = q.gradient(theta)
    best = -eta * g
    m_best = local_model(q, theta, eta, best)
    completed = m_best + ((deltas - best) ** 2).sum(-1) / (2 * eta)
    f0 = q.value(theta)
    return ProxCheck(step_gap=float((local_model(q, theta, eta, deltas) - completed).abs().max()),
                     above=float((local_model(q, theta, eta, deltas) - q.value(theta + deltas)).min()),
                     above_exact=1 / (2 * eta) - theory.smoothness(q.hessian) / 2,
                     decrease=float(f0 - q.value(theta + best)), promised=float(f0 - m_best))


def gd_contraction(eta, mu: float, L: float):
    """ρ(η) = max(|1 − ημ|, |1 − ηL|): what one GD step multiplies ‖θ − θ*‖ by, at worst, on a quadratic."""
    return np.maximum(np.abs(1 - np.asarray(eta) * mu), np.abs(1 - np.asarray(eta) * L))


def full_batch_gd(q: Quadratic, theta0: torch.Tensor, lrs, steps: int, dtype: torch.dtype | None = None
                  ) -> engine.Trajectory:
    """K gradient-descent runs on the engine (batch_size = n: one step per epoch), one per lr in lrs (float32)."""
    dtype = torch.float32 if dtype is None else dtype
    orders = torch.arange(q.n).expand(steps, q.n)  # full batch: every order gives the same step
    theta = theta0.to(dtype).unsqueeze(1).repeat(1, len(lrs))  # (p, K)
    return engine.train(q.X.to(dtype), q.y.to(dtype), theta, torch.tensor(lrs, dtype=dtype), orders,
                        batch_size=q.n, model=engine.Model(bias=q.bias), loss=q.loss)


def excess_curves(q: Quadratic, traj: engine.Trajectory) -> np.ndarray:
    """f(θ_k) − f* in float64 per step and run, (E+1, K), as ½ΔᵀHΔ (exact for least squares)."""
    return theory.excess_loss(traj.epoch_params.permute(0, 2, 1), q.fit).numpy()


# --------------------------------------------------------------------------- directional derivative


@dataclass(frozen=True)
class DirectionalConfig:
    """Directional derivatives of the baseline loss at the article's θ0, over all angles."""

    seed: int = 20
    num_angles: int = 720  # grid over [−π, π) that contains φ = 0, the direction −∇f
    h: float = 1e-6  # central difference: exact on a quadratic, up to rounding ≈ 1e-16·f/h


@dataclass(frozen=True)
class DirectionalResult:
    """Curves (circle, angle, numeric, exact) on a great circle through −∇f and in the (w1, w2) plane."""

    config: DirectionalConfig
    curves: pd.DataFrame
    grad: tuple[float, ...]  # ∇f(θ0)
    grad_norm: float
    min_direction: tuple[float, ...]  # the grid direction with the smallest numerical derivative
    min_value: float
    plane_min_angle: float  # argmin angle in the (w1, w2) plane, radians from the w1 axis
    plane_expected_angle: float  # the angle of −(∂f/∂w1, ∂f/∂w2)
    max_error: float  # max |numeric − exact| over both curves
    error_bound: float  # the float64 rounding bound on that difference (roundoff.central_difference_error)

    @property
    def plane_min_degrees(self) -> float:
        return math.degrees(self.plane_min_angle)

    @property
    def plane_expected_degrees(self) -> float:
        return math.degrees(self.plane_expected_angle)

    def summary(self) -> dict:
        """Keys: grad, grad_norm, min_direction, min_value, plane_min_angle, plane_expected_angle, max_error."""
        out = {k: v for k, v in asdict(self).items() if k not in ("config", "curves")}
        return {"experiment": "steepest-directional", **asdict(self.config), **out}


@cached
def directional(config: DirectionalConfig = DirectionalConfig()) -> DirectionalResult:
    """D_d f(θ0) by central differences for unit d on two circles; the exact value is ∇fᵀd."""
    q, theta0 = baseline_problem(config.seed)
    g = q.gradient(theta0)
    angles = torch.arange(config.num_angles, dtype=torch.float64) * 2 * math.pi / config.num_angles - math.pi
    u = -g / g.norm()
    r = torch.randn(3, generator=data.generator(config.seed, "direction"), dtype=torch.float64)
    v = (r - (r @ u) * u) / (r - (r @ u) * u).norm()  # a second axis, orthogonal to u
    circles = {"great circle through −∇f": torch.cos(angles)[:, None] * u + torch.sin(angles)[:, None] * v,
               "(w1, w2) plane, b fixed": torch.stack([torch.cos(angles), torch.sin(angles), 0 * angles], 1)}
    frames, bound = [], 0.0
    u = roundoff.unit_roundoff(torch.float64)
    for name, d in circles.items():  # d: (m, 3) unit vectors
        bound = max(bound, float(roundoff.central_difference_error(q, theta0, d, config.h, u).max()))
        frames.append(pd.DataFrame({"circle": name, "angle": angles.numpy(),
                                    "numeric": central_difference(q, theta0, d, config.h).numpy(),
                                    "exact": (d @ g).numpy()}))
    curves = pd.concat(frames, ignore_index=True)
    great, plane = frames
    i = int(great.numeric.argmin())
    return DirectionalResult(
        config, curves, tuple(g.tolist()), float(g.norm()), tuple(circles["great circle through −∇f"][i].tolist()),
        float(great.numeric[i]), float(plane.angle[plane.numeric.argmin()]), math.atan2(-g[1], -g[0]),
        float((curves.numeric - curves.exact).abs().max()), bound)


# --------------------------------------------------------------------------- Taylor remainder


@dataclass(frozen=True)
class RemainderConfig:
    """The first-order Taylor remainder of the baseline loss at θ0, for ε on a log grid."""

    seed: int = 20
    eps_min: float = 1e-8
    eps_max: float = 1.0
    num_eps: int = 81
    fit_min: float = 1e-4  # below ε ≈ 1e-6 rounding of f (≈ 1e-15) swamps the ε² term: fit above this


@dataclass(frozen=True)
class RemainderResult:
    """Remainders (direction, eps, remainder, exact = ε²/2·dᵀHd, fitted) and the fitted log–log slopes."""

    config: RemainderConfig
    curves: pd.DataFrame
    slopes: dict  # direction -> fitted slope of log remainder against log ε on [fit_min, eps_max]
    max_relative_error: float  # max |remainder / (ε²/2·dᵀHd) − 1| on the fitted range
    relative_error_bound: float  # its float64 rounding bound there (roundoff.remainder_error)

    @property
    def slope(self) -> float:
        return self.slopes["steepest"]

    def summary(self) -> dict:
        """Keys: slope, slopes, max_relative_error."""
        return {"experiment": "steepest-remainder", **asdict(self.config), "slope": self.slope,
                "slopes": self.slopes, "max_relative_error": self.max_relative_error}


@cached
def remainder(config: RemainderConfig = RemainderConfig()) -> RemainderResult:
    """|f(θ0 + εd) − f(θ0) − ε∇fᵀd| against ε in float64; the exact value for a quadratic is ε²/2·dᵀHd."""
    q, theta0 = baseline_problem(config.seed)
    g = q.gradient(theta0)
    r = torch.randn(3, generator=data.generator(config.seed, "direction"), dtype=torch.float64)
    eps = torch.logspace(math.log10(config.eps_min), math.log10(config.eps_max), config.num_eps, dtype=torch.float64)
    frames, slopes, worst, bound = [], {}, 0.0, 0.0
    u = roundoff.unit_roundoff(torch.float64)
    for name, d in (("steepest", -g / g.norm()), ("random", r / r.norm())):
        rem = taylor_remainder(q, theta0, d, eps)
        exact = eps**2 / 2 * (d @ q.hessian @ d)
        fitted = (eps >= config.fit_min).numpy()
        slopes[name] = loglog_slope(eps.numpy()[fitted], rem.numpy()[fitted])
        worst = max(worst, float((rem / exact - 1).abs().numpy()[fitted].max()))
        bound = max(bound, float(roundoff.remainder_error(q, theta0, d, eps[fitted], u).max()))
        frames.append(pd.DataFrame({"direction": name, "eps": eps.numpy(), "remainder": rem.numpy(),
                                    "exact": exact.numpy(), "fitted": fitted}))
    return RemainderResult(config, pd.concat(frames, ignore_index=True), slopes, worst, bound)
