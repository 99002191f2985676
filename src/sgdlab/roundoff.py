"""Rounding bounds for values that are rounding: what two float computations of one exact quantity may differ by.

Chapter 3's checks compare two float64 computations of the same exact number (a central difference
and ∇fᵀd, a Taylor remainder and ε²/2·dᵀHd, a right angle, a Newton step and θ*, an error that
is exactly 0 in the limit). Their differences are rounding, not quantities, and the book prints
"below the float64 rounding bound of X" with X from here.

Standard model (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §2.2): each
operation rounds to (x ∘ y)(1 + δ), |δ| ≤ u = 2⁻⁵³ in float64 (2⁻²⁴ in float32); k in a row stay
within γ_k = k·u/(1 − k·u) (Lemma 3.1); a sum or dot product of k terms errs by at most γ_k times
the sum of the absolute values, in any order (§3.1), so the bounds hold for every BLAS kernel.
The bounds are worst-case: the measured differences sit far below them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._lazy import torch

if TYPE_CHECKING:  # taylor imports this module: the type only
    from .taylor import Quadratic


def unit_roundoff(dtype: torch.dtype) -> float:
    """u: the largest relative error of one rounding to dtype (half the machine epsilon)."""
    return torch.finfo(dtype).eps / 2


def gamma(k: int, u: float) -> float:
    """γ_k = k·u/(1 − k·u): the relative error of k roundings in a row (Higham, Lemma 3.1)."""
    return k * u / (1 - k * u)


def _residual_error(q: Quadratic, theta: torch.Tensor, u: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact residuals r = Xaθ − y at θ (..., p) and a bound on how far their computation is off, (..., n) each.

    ŷ is a dot product of p terms (γ_p of Σ|x_j θ_j|), the subtraction of y one more rounding.
    """
    r = theta @ q.Xa.T - q.y
    size = theta.abs() @ q.Xa.abs().T + q.y.abs()
    return r, gamma(q.Xa.shape[1] + 1, u) * size


def loss_error(q: Quadratic, theta: torch.Tensor, u: float) -> torch.Tensor:
    """A bound on |computed − exact| of Quadratic.value at θ (..., p): (...).

    Squares: (r + e)² − r² = 2re + e², then their own rounding; the mean: n − 1 additions and a
    division, γ_(n+1) of the sum of the computed squares; the scale c (½ or 1) is exact.
    """
    r, e = _residual_error(q, theta, u)
    g = gamma(q.n + 1, u)
    return q.c * ((2 * r.abs() * e + e**2).mean(-1) * (1 + g) + g * (r**2).mean(-1))


def gradient_error(q: Quadratic, theta: torch.Tensor, u: float) -> torch.Tensor:
    """A bound on |computed − exact| of Quadratic.gradient at θ (..., p), per component: (..., p).

    (2c/n)Σ_i r̂_i x_ij: the residuals' errors carried by |x|, and n products summed (γ_(n+1) of
    Σ|x||r̂|, with the division by n).
    """
    r, e = _residual_error(q, theta, u)
    return _gradient_error(q, r.abs(), e, u)


def _gradient_error(q: Quadratic, r_abs: torch.Tensor, e: torch.Tensor, u: float) -> torch.Tensor:
    """gradient_error from bounds on |r| and on the residuals' rounding e, (..., n) each."""
    return 2 * q.c / q.n * (gamma(q.n + 1, u) * (r_abs + e) @ q.Xa.abs() + e @ q.Xa.abs())


def _point_error(q: Quadratic, theta: torch.Tensor, step: torch.Tensor, u: float) -> torch.Tensor:
    """A bound on the change of f from rounding the point θ + step (step itself a rounded product): (...)."""
    moved = (theta + step).abs() * u + step.abs() * u  # each component: the product and the sum
    slope = q.gradient(theta + step).abs() + gradient_error(q, theta + step, u)
    L = float(torch.linalg.eigvalsh(q.hessian)[-1])
    return (slope * moved).sum(-1) + L / 2 * (moved**2).sum(-1)  # f is quadratic: exact to second order


def slope_error(q: Quadratic, theta: torch.Tensor, d: torch.Tensor, u: float) -> torch.Tensor:
    """A bound on |computed − exact| of ∇f(θ)ᵀd for unit d (..., p): the gradient's errors, then p products."""
    g = q.gradient(theta)
    G = gradient_error(q, theta, u)
    return d.abs() @ G + gamma(q.Xa.shape[1], u) * (d.abs() @ (g.abs() + G))


def central_difference_error(q: Quadratic, theta: torch.Tensor, d: torch.Tensor, h: float, u: float) -> torch.Tensor:
    """A bound on |taylor.central_difference − ∇fᵀd| as both are computed, for unit d (m, p): (m,).

    On a quadratic the central difference is exact for every h, so the difference is rounding: the
    two losses and their points (each /2h), the subtraction and the division, and the computed slope.
    """
    parts = [loss_error(q, theta + s * h * d, u) + _point_error(q, theta, s * h * d, u) for s in (1, -1)]
    diff = (q.value(theta + h * d) - q.value(theta - h * d)).abs()
    return ((parts[0] + parts[1] + u * diff) / (2 * h)) * (1 + gamma(2, u)) + slope_error(q, theta, d, u)


def remainder_error(q: Quadratic, theta: torch.Tensor, d: torch.Tensor, eps: torch.Tensor, u: float) -> torch.Tensor:
    """A bound on |remainder/(ε²/2·dᵀHd) − 1| as taylor.remainder computes both, per ε of eps (m,): (m,).

    The remainder f(θ + εd) − f(θ) − ε∇fᵀd: two losses, the point, ε times the slope and two
    subtractions; the exact term: dᵀHd with H = (2c/n)XaᵀXa, each entry within γ_(n+1) of the
    sums of |products|, then p² products and sums and the factor ε²/2.
    """
    step = eps.unsqueeze(1) * d  # (m, p)
    f1, f0, s = q.value(theta + step), q.value(theta), q.gradient(theta) @ d
    absolute = (loss_error(q, theta + step, u) + _point_error(q, theta, step, u) + loss_error(q, theta, u)
                + eps * slope_error(q, theta, d, u) + gamma(3, u) * (f1.abs() + f0.abs() + eps * s.abs()))
    p = q.Xa.shape[1]
    H_abs = 2 * q.c * q.Xa.abs().T @ q.Xa.abs() / q.n
    dHd = d @ q.hessian @ d
    exact_rel = (gamma(q.n + 1, u) * (d.abs() @ H_abs @ d.abs()) + gamma(p * p + 3, u) * (d.abs() @ H_abs @ d.abs())
                 ) / dHd
    exact = eps**2 / 2 * dHd
    return absolute / exact * (1 + exact_rel) + exact_rel


def solution_error(q: Quadratic, u: float) -> float:
    """A bound on ‖θ̂* − θ*‖ for the computed least-squares θ̂* (q.fit.theta), a posteriori.

    ∇f(θ) = H(θ − θ*) on the quadratic, so ‖θ̂* − θ*‖ ≤ ‖∇f(θ̂*)‖/μ, with ∇f(θ̂*) as computed plus its
    rounding bound (μ itself from eigvalsh: its relative error γ_(4p²) is covered by the factor 1 + 2γ).
    """
    star = q.fit.theta
    g = q.gradient(star).abs() + gradient_error(q, star, u)
    mu = float(torch.linalg.eigvalsh(q.hessian)[0])
    return float(g.norm()) / mu * (1 + 2 * gamma(4 * q.Xa.shape[1] ** 2, u))


def newton_error(q: Quadratic, theta: torch.Tensor, u: float) -> float:
    """A bound on ‖norms.newton_step(q, θ) − θ̂*‖ as computed: the exact Newton step lands on θ*.

    θ − solve(H, ∇f): the gradient's errors through H⁻¹; the solve (LU, backward stable: a relative
    perturbation γ_(3p) of |L||U|, taken as ≤ p·γ_(3p)·‖H‖ per entry) through κ(H); H's own rounding
    (γ_(n+1) per entry of the |products|); the subtraction; and θ̂*'s own distance from θ*.
    """
    p = q.Xa.shape[1]
    lam = torch.linalg.eigvalsh(q.hessian)
    mu, L = float(lam[0]), float(lam[-1])
    step = torch.linalg.solve(q.hessian, q.gradient(theta))
    H_abs = 2 * q.c * q.Xa.abs().T @ q.Xa.abs() / q.n
    dH = float((gamma(q.n + 1, u) * H_abs).norm()) + p * gamma(3 * p, u) * L * p  # Frobenius ≥ 2-norm
    solve = (float(gradient_error(q, theta, u).norm()) + dH * float(step.norm())) / (mu - dH)
    subtraction = u * float((theta - step).abs().norm())
    return solve + subtraction + solution_error(q, u)


def angle_error(q: Quadratic, theta: torch.Tensor, u: float) -> float:
    """A bound, in degrees, on |angle − 90°| of norms._tangent_angle at θ (p = 2): the exact angle is 90°.

    The tangent is built from eigh(H) and θ̂*: it is perpendicular, up to its own rounding, to
    Ĥ(θ − θ̂*) with Ĥ = V̂Λ̂V̂ᵀ = H + E (eigh is backward stable, ‖E‖ ≤ γ_(4p²)‖H‖_F taken as its
    low-degree constant), while the gradient is H(θ − θ*) with its rounding. The angle between two
    vectors a and a + δa is at most asin(‖δa‖/‖a‖); the tangent's four products (two rotations by V,
    two scalings by λ^(±½)) lose at most γ_(2p+4)·κ of its length in direction; the cosine's dot
    product γ_p. All angles add.
    """
    p = q.Xa.shape[1]
    lam = torch.linalg.eigvalsh(q.hessian)
    kappa = float(lam[-1] / lam[0])
    H_abs = 2 * q.c * q.Xa.abs().T @ q.Xa.abs() / q.n
    E = float((gamma(q.n + 1, u) * H_abs).norm()) + gamma(4 * p * p, u) * float(q.hessian.norm())
    delta = theta - q.fit.theta
    exact = q.hessian @ delta  # the gradient, exactly H(θ − θ*), up to θ̂*'s error below
    a = float(exact.norm())
    centre = E * float(delta.norm()) + float(lam[-1]) * solution_error(q, u)  # Ĥ(θ − θ̂*) − H(θ − θ*)
    grad = float(gradient_error(q, theta, u).norm())
    radians = sum(math.asin(min(1.0, x / a)) for x in (centre, grad))
    radians += gamma(2 * p + 4, u) * kappa + gamma(p + 2, u)
    return math.degrees(radians)


def clean_toy_floor(eta: float, x, u: float) -> float:
    """A bound on |w − 1| at an epoch's end once the exact error A(η)^E·|e₀| has died out: reshuffled
    SGD on the clean toy (labels y = x, a step of η on (wx − y)², w near 1), any order.

    Each step is e ← a_i e + ε with a_i = 1 − 2ηx_i² exact and ε its rounding. With |e| ≤ s, the
    residual r = xe is computed within u|x|(1 + s) + u|x|s (wx, then − y), the step η·2x·r within
    γ_4 of 2ηx² times that and of its own size (at most four roundings: 2x, ·r, ·η, a divisor), and
    w − step within u(1 + s): ε ≤ u(1 + s) + 2ηx²·γ_4·(1 + 3s). An epoch carries each step's ε by the later
    factors, at most Π_(j≠i) max(1, |a_j|) over any order: N per epoch, and |e| settles within
    N/(1 − |A|) when |A(η)| < 1. s is iterated to a fixed point (twice suffices for s ≪ 1).
    """
    a = [1 - 2 * eta * v * v for v in x]
    A = math.prod(a)
    assert abs(A) < 1, "the rounding floor exists only where reshuffled SGD converges"
    s = 0.0
    for _ in range(3):
        w = 1 + s
        per_step = [u * w + 2 * eta * v * v * gamma(4, u) * (1 + 3 * s) for v in x]
        carry = [math.prod(max(1.0, abs(b)) for j, b in enumerate(a) if j != i) for i in range(len(a))]
        s = sum(e * c for e, c in zip(per_step, carry, strict=True)) / (1 - abs(A))
    return s


def excess_relative_error(q: Quadratic, theta: torch.Tensor, drift, u: float) -> torch.Tensor:
    """A bound on the relative error of ½ΔᵀHΔ, Δ = θ − θ̂* (theory.excess_loss), against the excess of the
    exact-arithmetic iterate, when θ is within `drift` (2-norm) of it: (...).

    ‖Δ − Δ_exact‖ ≤ drift + ‖θ̂* − θ*‖ + u‖Δ‖; in the H-norm that is at most √κ times the relative
    size, and the square doubles it; the quadratic form adds γ_(p²+2).
    """
    lam = torch.linalg.eigvalsh(q.hessian)
    root_kappa = math.sqrt(float(lam[-1] / lam[0]))
    delta = (theta - q.fit.theta).norm(dim=-1)
    rel = root_kappa * (drift + solution_error(q, u) + u * delta) / delta
    p = q.Xa.shape[1]
    return 2 * rel + rel**2 + gamma(p * p + 2, u)


def gd_drift(q: Quadratic, path: torch.Tensor, eta: float, u: float) -> torch.Tensor:
    """A bound on ‖θ_k − θ_k^exact‖ for full-batch GD run in float (a step of η on the mean loss): (E+1,).

    path: the computed iterates (E+1, p), from θ_0 exactly. Step k adds at most
    r_k = η‖gradient_error(θ_k)‖ + u·η‖∇f(θ_k)‖ + 2u‖θ_k‖ (the gradient's rounding, the product and
    the subtraction); the step map carries earlier errors by I − ηH, of 2-norm ρ = max|1 − ηλ| < 1,
    so D_(k+1) = ρD_k + r_k. r_k is evaluated at the computed θ_k, which is D_k from the exact one:
    the bound holds to first order in u (a posteriori, as the rounding of a run is usually bounded).
    """
    lam = torch.linalg.eigvalsh(q.hessian)
    rho = max(abs(1 - eta * float(lam[0])), abs(1 - eta * float(lam[-1])))
    assert rho < 1, "a drift bound needs a contracting step"
    added = (eta * gradient_error(q, path, u).norm(dim=-1) + u * eta * q.gradient(path).norm(dim=-1)
             + 2 * u * path.norm(dim=-1))
    drift = [0.0]
    for r in added[:-1].tolist():
        drift.append(rho * drift[-1] + r)
    return torch.tensor(drift, dtype=torch.float64)
