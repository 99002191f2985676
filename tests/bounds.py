"""Error bounds behind the tests' float tolerances: what an evaluation in float32/float64 can be off by.

Standard model (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §2.2): one
operation rounds to fl(x ∘ y) = (x ∘ y)(1 + δ), |δ| ≤ u, the unit roundoff (2⁻²⁴ in float32, 2⁻⁵³
in float64); k of them in a row stay within γ_k = k·u/(1 − k·u) (Lemma 3.1). A sum or dot product
of k terms is within γ_k of the sum of the absolute values in ANY order, with or without fused
multiply-adds (§3.1, (3.5)): the bounds hold for every BLAS kernel, ATen capability and compiled
copy, which is why the tests can use them on any CPU.

Trajectories (two implementations of the same SGD steps: the compiled loop and torch's, the engine
and autograd, nn.Linear and the hand-written loop) differ by rounding alone, and the tests bound
that difference by a few ulps of the largest |θ| (drift()). The model: each step adds at most
about an ulp of |θ| to the difference (each implementation rounds the new θ), and the next steps
carry it through I − ηH_B, which does not expand it while η·λmax(H_B) ≤ 2 (the tests check that
premise with largest_step_curvature) and damps it along every direction of positive curvature; so
the difference settles at a few ulps instead of growing with the steps. A worst-case bound (every
rounding the same way, no damping) would grow with the steps and be 100 to 1000 times looser.
"""

from __future__ import annotations

import torch

# the package's own (the report's rounding bounds use them), re-exported: the tests import them from here
from sgdlab.roundoff import gamma, unit_roundoff


def _evaluation_bound(r, a, terms: int, u: float, scale: float):
    """|computed − exact| of scale·mean(r²) when r = Σ (terms products) − y is computed with roundoff u.

    Residual: the dot product a computed ŷ within γ_terms·Σ|x_j θ_j| = γ_terms·a, the subtraction
    adds u·|r|: e ≤ γ_terms·a·(1 + u) + u·|r|. Square: |r̂² − r²| ≤ 2|r|·e + e², before its own
    rounding. Mean: n − 1 additions in any order, one conversion (the compiled loop sums in double)
    and one division: the n + 2 roundings of γ_(n+2) on every r̂². Where |y| ≫ |r| (labels near 5,
    residuals near 0.01) the 2|r|·e term dominates: a relative error of about 2·γ·|y|/|r|.
    """
    n = r.shape[-2]
    e = gamma(terms, u) * a * (1 + u) + u * r.abs()
    g = gamma(n + 2, u)
    exact = scale * r.square().mean(-2)
    return exact, scale * (2 * r.abs() * e + e.square()).mean(-2) * (1 + g) + g * exact


def loss_and_bound(Xa: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, dtype: torch.dtype, *,
                   half: bool = True, jump: tuple[float, float] | None = None):
    """The mean squared loss at theta, and how far its evaluation in `dtype` may be from it, (..., K) each.

    Xa: (n, p) shared or (K, n, p) per-run data with the ones column; y: (n,) or (K, n); theta: (..., p, K).
    half: D2L's ½ loss (the ½ is exact). jump = (at, height): the piecewise model, p = 1 only: the
    jump fires where the computed x·w ≥ at, a single product, rounded the same way everywhere.
    The loss is computed here in float64, itself a computation whose error bound (the same with
    float64's u) is added, so that the bound also covers comparisons of float64 evaluations.
    """
    X, t = Xa.double(), theta.double()
    shared = X.dim() == 2
    spec = "np,...pk->...nk" if shared else "knp,...pk->...nk"
    y_hat, a = torch.einsum(spec, X, t), torch.einsum(spec, X.abs(), t.abs())  # ŷ and Σ|x_j θ_j|, (..., n, K)
    terms = X.shape[-1]
    if jump is not None:
        at, height = jump
        assert terms == 1 and shared, "the jump's decision is reproducible for a single product only"
        fired = (torch.einsum(spec, Xa.to(dtype), theta.to(dtype)) >= at).double()
        step = float(torch.tensor(height, dtype=dtype))  # the height as the evaluation holds it
        y_hat, a, terms = y_hat + step * fired, a + abs(step) * fired, terms + 1
    r = y_hat - (y.double().unsqueeze(-1) if shared else y.double().T)
    scale = 0.5 if half else 1.0
    exact, bound = _evaluation_bound(r, a, terms, unit_roundoff(dtype), scale)
    _, own = _evaluation_bound(r, a, terms, unit_roundoff(torch.float64), scale)
    return exact, bound + own


def assert_losses_within_bound(traj, Xa, y, dtype, **model) -> None:
    """Every recorded epoch loss of traj is the loss at its recorded parameters, within loss_and_bound."""
    exact, bound = loss_and_bound(Xa, y, traj.epoch_params, dtype, **model)
    off = (traj.epoch_loss.double() - exact).abs()
    worst = int((off / bound).argmax())
    assert bool((off <= bound).all()), f"a loss off by {off.flatten()[worst]:.3g}, bound {bound.flatten()[worst]:.3g}"


def largest_step_curvature(Xa: torch.Tensor, orders: torch.Tensor, batch_size: int, lr, divisor: float,
                           grad_scale: float = 1.0) -> float:
    """max over the steps of η·λmax(H_B), H_B = grad_scale·X_BᵀX_B/divisor: at most 2, the step map
    θ ↦ θ − η∇ carries an earlier difference by I − ηH_B without expanding it (‖I − ηH_B‖₂ ≤ 1).

    Shared data (n, p) and shared orders (E, n) with n a multiple of batch_size; lr a float or (K,).
    """
    X = Xa.double()[orders.reshape(-1)].reshape(-1, batch_size, Xa.shape[-1])  # (steps, B, p)
    lam = torch.linalg.eigvalsh(X.transpose(1, 2) @ X).max()
    return float(torch.as_tensor(lr, dtype=torch.float64).max()) * grad_scale * float(lam) / divisor


def gradient_bound(Xa: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """|computed − exact| of the summed gradient Xᵀ(Xθ − y) in dtype, per parameter (p,): θ (p,), Xa (B, p).

    The residuals within e (as in _evaluation_bound); the B products and sums within γ_B·Σ|x||r̂|,
    |r̂| ≤ |r| + e; and the residuals' own errors carried by x: Σ|x|·e.
    """
    u = unit_roundoff(dtype)
    X, t = Xa.double(), theta.double()
    r = X @ t - y.double()
    e = gamma(X.shape[1], u) * (X.abs() @ t.abs()) * (1 + u) + u * r.abs()
    return gamma(X.shape[0], u) * (X.abs().T @ (r.abs() + e)) + X.abs().T @ e


def gradient_step_bound(Xa: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, lr: float, divisor: float,
                        dtype: torch.dtype) -> torch.Tensor:
    """|computed − exact| of one step θ − (lr·Xᵀ(Xθ − y))/divisor in dtype, per parameter (p,).

    The gradient within gradient_bound, then lr·g and the division (γ₂ of |lr·g|/divisor) and the
    subtraction (u of the new θ), one rounding each.
    """
    u = unit_roundoff(dtype)
    X, t = Xa.double(), theta.double()
    g = X.T @ (X @ t - y.double())
    new = t - lr * g / divisor
    err = gradient_bound(Xa, y, theta, dtype)
    return lr * (err + gamma(2, u) * (g.abs() + err)) / divisor * (1 + u) + u * new.abs()


def lstsq_bound(Xa: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> float:
    """‖computed − exact‖₂ of a float64 least-squares solution by a backward-stable solver (QR, SVD).

    Backward error ε = γ_(m·p) (Higham, Thm 19.3/20.3); first-order perturbation bound (Thm 20.1):
    ‖δθ‖ ≤ ε·κ·(2‖θ‖ + (κ + 1)·‖r‖/‖X‖₂), κ = κ₂(X).
    """
    X = Xa.double()
    s = torch.linalg.svdvals(X)
    kappa = float(s[0] / s[-1])
    eps = gamma(X.shape[0] * X.shape[1], unit_roundoff(torch.float64))
    r = float((X @ theta.double() - y.double()).norm())
    return eps * kappa * (2 * float(theta.double().norm()) + (kappa + 1) * r / float(s[0]))


def drift(largest: float, dtype: torch.dtype, ulps: int) -> float:
    """`ulps` units in the last place of `largest` (at most eps·|largest| each): the trajectory model above."""
    return ulps * torch.finfo(dtype).eps * largest
