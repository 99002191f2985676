"""Beyond plain gradient descent: sign descent, diagonal preconditioning, the heavy ball.

Three update rules, each a steepest descent in another sense or gradient descent with memory:

- sign descent θ − η·sign(∇f): the steepest step in the ℓ∞ norm (signSGD; Adam with β₁ = β₂ = 0);
- preconditioned GD θ − η D⁻¹∇f, D = diag(H): steepest descent in the norm √(dᵀDd), the same
  iterates as GD after scaling each feature by 1/√D_jj (feature scaling);
- the heavy ball θ − α∇f(θ) + β(θ − θ_prev): with Polyak's α, β its rate is (√κ − 1)/(√κ + 1).

Full-batch, float64, on the article's toy with a bias (κ ≈ 14), whose condition number comes from
its uncentred x ∈ {0, …, 3}: `conditioning` shows what centring and scaling do to κ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import taylor
from ._lazy import torch
from .cache import cached
from .fmt import num
from .i18n import t
from .taylor import Quadratic, curvature_bounds, first_below

# --------------------------------------------------------------------------- update rules


def sign_step(theta: torch.Tensor, grad: torch.Tensor, eta: float) -> torch.Tensor:
    """θ − η·sign(∇f): the ℓ∞-steepest step of length η in every coordinate (0 where ∂f/∂θ_j = 0)."""
    return theta - eta * torch.sign(grad)


def preconditioned_step(theta: torch.Tensor, grad: torch.Tensor, eta: float, diag: torch.Tensor) -> torch.Tensor:
    """θ − η·D⁻¹∇f for a positive diagonal D (given as its diagonal)."""
    return theta - eta * grad / diag


def heavy_ball_step(theta: torch.Tensor, previous: torch.Tensor, grad: torch.Tensor, alpha: float, beta: float
                    ) -> torch.Tensor:
    """θ − α∇f(θ) + β(θ − θ_prev): Polyak's heavy ball (β = 0 is gradient descent)."""
    return theta - alpha * grad + beta * (theta - previous)


def heavy_ball_parameters(mu: float, L: float) -> tuple[float, float]:
    """Polyak's α = 4/(√L + √μ)², β = ((√L − √μ)/(√L + √μ))²: every mode then contracts by √β per step."""
    root_L, root_mu = math.sqrt(L), math.sqrt(mu)
    return 4 / (root_L + root_mu) ** 2, ((root_L - root_mu) / (root_L + root_mu)) ** 2


def heavy_ball_matrix(H: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """The (2p, 2p) map (θ_k − θ*, θ_{k−1} − θ*) ↦ (θ_{k+1} − θ*, θ_k − θ*) on a quadratic with Hessian H."""
    p = H.shape[0]
    eye = torch.eye(p, dtype=H.dtype)
    return torch.cat([torch.cat([(1 + beta) * eye - alpha * H, -beta * eye], 1),
                      torch.cat([eye, torch.zeros_like(eye)], 1)])


def kappa(H: torch.Tensor) -> float:
    """L/μ of a symmetric positive definite matrix."""
    L, mu = curvature_bounds(H)
    return L / mu


def iterate(q: Quadratic, theta0: torch.Tensor, method: str, steps: int, **kw) -> torch.Tensor:
    """θ_0 … θ_steps, (steps + 1, p), of one full-batch method on q: gd, sign, preconditioned, heavy_ball."""
    path = [theta0]
    previous = theta0
    for _ in range(steps):
        theta, g = path[-1], q.gradient(path[-1])
        if method == "gd":
            new = theta - kw["eta"] * g
        elif method == "sign":
            new = sign_step(theta, g, kw["eta"])
        elif method == "preconditioned":
            new = preconditioned_step(theta, g, kw["eta"], kw["diag"])
        elif method == "heavy_ball":
            new = heavy_ball_step(theta, previous, g, kw["alpha"], kw["beta"])
        else:
            raise ValueError(f"unknown method {method!r}")
        previous = theta
        path.append(new)
    return torch.stack(path)


# --------------------------------------------------------------------------- conditioning of the toy


def _standardised(q: Quadratic, centre: bool, scale: bool) -> Quadratic:
    """The same model with x replaced by (x − x̄)/s: centring removes the w–b correlation, scaling the units."""
    X = q.X - q.X.mean(0) if centre else q.X
    s = X.pow(2).mean(0).sqrt() if scale else torch.ones(X.shape[1], dtype=X.dtype)
    return Quadratic(X / s, q.y, q.bias, q.loss)


@dataclass(frozen=True)
class MomentumConfig:
    """Full-batch methods on the toy w·x + b from the article's start (w, b) = (2, 0), float64."""

    seed: int = 20  # unused: no randomness; kept for the CLI's --seed
    steps: int = 350  # GD at η = 1/L (ρ ≈ 0.93) needs ~315 steps to 1e-10 of the start's distance
    tolerance: float = 1e-10  # "arrived": ‖θ_k − θ*‖ ≤ tolerance·‖θ0 − θ*‖
    fit_from: float = 1e-3  # measured rates: log-linear fit on distances between fit_to and fit_from (relative)
    fit_to: float = 1e-12
    sign_eta: float = 0.02  # the fixed step of sign descent


@dataclass(frozen=True)
class MomentumResult:
    """Distances per method and step; predicted and measured rates; κ of the toy under four parametrisations."""

    config: MomentumConfig
    curves: pd.DataFrame  # method, step, distance (relative to the start)
    rates: pd.DataFrame  # method, predicted, measured, steps_to_tol, parameters
    conditioning: pd.DataFrame  # features, kappa, gd_rate, hb_rate
    kappa: float
    jacobi_kappa: float  # κ(D^(-1/2) H D^(-1/2)), D = diag H
    alpha: float
    beta: float
    sign_floor: float  # max relative distance of sign descent over its last 20 steps

    def summary(self) -> dict:
        """Keys: kappa, jacobi_kappa, alpha, beta, predicted, measured, steps_to_tol (per method), conditioning."""
        r = self.rates.set_index("method")
        return {"experiment": "steepest-momentum", **asdict(self.config), "kappa": self.kappa,
                "jacobi_kappa": self.jacobi_kappa, "alpha": self.alpha, "beta": self.beta,
                "predicted": {k: float(v) for k, v in r.predicted.dropna().items()},
                "measured": {k: float(v) for k, v in r.measured.dropna().items()},
                "steps_to_tol": {k: (None if pd.isna(v) else int(v)) for k, v in r.steps_to_tol.items()},
                "conditioning": dict(zip(self.conditioning.features, self.conditioning.kappa.astype(float),
                                         strict=True)),
                "sign_floor": self.sign_floor}

    def rate(self, method: str, column: str = "measured") -> float:
        return float(self.rates.set_index("method").loc[method, column])

    @property
    def start(self) -> tuple[float, ...]:
        """(w, b) where every method starts: the toy's own start (taylor.toy_problem), w = 2 and b = 0."""
        return tuple(taylor.toy_problem(noisy=True, bias=True)[1].tolist())

    def table(self) -> pd.DataFrame:
        """Predicted and measured per-step rates, and the steps to the tolerance, formatted."""
        r = self.rates
        return pd.DataFrame({t("rate (theory)"): r.predicted.map(num).to_numpy(),
                             t("measured"): r.measured.map(num).to_numpy(),
                             t("steps to {}").format(num(self.config.tolerance, '.1e')):
                                 r.steps_to_tol.map(num).to_numpy()},
                            index=pd.Index(r.method.map(t), name=t("method")))

    def conditioning_table(self) -> pd.DataFrame:
        """κ of the toy w·x + b as its feature is centred and scaled, with the rates of GD and heavy ball."""
        c = self.conditioning
        return pd.DataFrame({"κ": c.kappa.map(lambda v: f"{v:.4g}").to_numpy(),
                             t("GD (κ−1)/(κ+1)"): c.gd_rate.map(num).to_numpy(),
                             t("heavy ball (√κ−1)/(√κ+1)"): c.hb_rate.map(num).to_numpy()},
                            index=pd.Index(c.features.map(t), name=t("feature x")))


def _measured_rate(distance: np.ndarray, hi: float, lo: float) -> float:
    """exp of the slope of log distance against the step, fitted where lo ≤ distance ≤ hi."""
    k = np.flatnonzero((distance <= hi) & (distance >= lo))
    return float(np.exp(np.polyfit(k, np.log(distance[k]), 1)[0])) if len(k) > 2 else float("nan")


@cached
def momentum(config: MomentumConfig = MomentumConfig()) -> MomentumResult:
    """GD, Jacobi-preconditioned GD, the heavy ball and sign descent on the toy w·x + b."""
    q, theta0 = taylor.toy_problem(noisy=True, bias=True)
    H, star = q.hessian, q.fit.theta
    L, mu = curvature_bounds(H)
    k = L / mu
    diag = torch.diagonal(H).clone()
    scaled = H / torch.sqrt(diag[:, None] * diag[None, :])  # D^(-1/2) H D^(-1/2)
    Ld, mud = curvature_bounds(scaled)
    alpha, beta = heavy_ball_parameters(mu, L)
    methods = {  # name: (method, keyword arguments, predicted rate of ‖θ_k − θ*‖)
        "GD, η = 1/L": ("gd", {"eta": 1 / L}, 1 - 1 / k),
        "GD, η = 2/(μ+L)": ("gd", {"eta": 2 / (mu + L)}, (k - 1) / (k + 1)),
        "diagonal preconditioning": ("preconditioned", {"eta": 2 / (mud + Ld), "diag": diag},
                                     (Ld / mud - 1) / (Ld / mud + 1)),
        "heavy ball": ("heavy_ball", {"alpha": alpha, "beta": beta}, math.sqrt(beta)),
        f"sign descent, η = {config.sign_eta:g}": ("sign", {"eta": config.sign_eta}, float("nan")),
    }
    curves, rates, sign_floor = [], [], float("nan")
    start = float((theta0 - star).norm())
    for name, (method, kw, predicted) in methods.items():
        path = iterate(q, theta0, method, config.steps, **kw)
        distance = ((path - star).norm(dim=1) / start).numpy()
        curves.append(pd.DataFrame({"method": name, "step": np.arange(len(distance)), "distance": distance}))
        measured = float("nan") if method == "sign" else _measured_rate(distance, config.fit_from, config.fit_to)
        rates.append({"method": name, "predicted": predicted, "measured": measured,
                      "steps_to_tol": first_below(distance, config.tolerance)})
        if method == "sign":
            sign_floor = float(distance[-20:].max())
    conditioning = []
    for features, centre, scale in (("raw x ∈ {0,…,3}", False, False), ("scaled x/rms(x)", False, True),
                                    ("centred x − x̄", True, False), ("standardised", True, True)):
        kf = kappa(_standardised(q, centre, scale).hessian)
        conditioning.append({"features": features, "kappa": kf, "gd_rate": (kf - 1) / (kf + 1),
                             "hb_rate": (math.sqrt(kf) - 1) / (math.sqrt(kf) + 1)})
    return MomentumResult(config, pd.concat(curves, ignore_index=True), pd.DataFrame(rates),
                          pd.DataFrame(conditioning), k, Ld / mud, alpha, beta, sign_floor)
