"""Closed forms: least squares, the loss floor, smoothness constants (float64 throughout)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ._lazy import torch
from .engine import augment


@dataclass(frozen=True)
class LeastSquares:
    """The best linear fit: theta* = argmin mean loss, and that minimal loss (the floor)."""

    theta: torch.Tensor  # (p,) float64, b last when fitted
    loss_floor: float  # mean loss at theta*, with the same loss definition as training
    hessian: torch.Tensor  # (p, p) Hessian of the mean loss, constant for a quadratic

    def numpy(self) -> LeastSquares:
        """The same numbers with numpy arrays, for results: reading a cached result must not import torch."""
        return LeastSquares(self.theta.numpy(), self.loss_floor, self.hessian.numpy())


def loss_scale(loss: str) -> float:
    """Factor c in mean c·(ŷ-y)²: ½ for D2L's squared_loss, 1 for the article's toy loss."""
    return {"half": 0.5, "plain": 1.0}[loss]


def least_squares(X: torch.Tensor, y: torch.Tensor, bias: bool, loss: str = "half") -> LeastSquares:
    """Solve min mean c(ŷ-y)² in float64 with torch.linalg.lstsq."""
    Xa = augment(X.double(), bias)  # (n, p)
    y = y.double().reshape(-1)
    theta = torch.linalg.lstsq(Xa, y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    residual = Xa @ theta - y
    c = loss_scale(loss)
    floor = float(c * (residual**2).mean())
    hessian = 2 * c * Xa.T @ Xa / Xa.shape[0]
    return LeastSquares(theta, floor, hessian)


def smoothness(hessian: torch.Tensor) -> float:
    """L = λ_max(H): the Lipschitz constant of the gradient of a quadratic."""
    return float(torch.linalg.eigvalsh(hessian.double()).max())


def excess_loss(theta: torch.Tensor, fit: LeastSquares) -> torch.Tensor:
    """½ (θ − θ*)ᵀ H (θ − θ*): what a quadratic loss adds above its floor at θ. theta: (..., p)."""
    delta = theta.double() - fit.theta
    return 0.5 * torch.einsum("...i,ij,...j->...", delta, fit.hessian, delta)


def noise_floor(sigma: float, n: int, p: int) -> float:
    """Expected minimal training loss E[min ½·mean r²] = σ²/2 · (n − p)/n for Gaussian label noise."""
    return sigma**2 / 2 * (n - p) / n


def misspecified_floor(Xa: torch.Tensor, mean: torch.Tensor, sigma: float, loss: str = "half") -> tuple[float, float]:
    """E min_θ c·mean (Xaθ − y)² for y = m + ε (m the mean), E ε = 0, Cov ε = σ²I, split: (model error, noise), float64.

    The residual is (I − P)y, P the projection onto Xa's columns: E‖(I − P)(m + ε)‖² = ‖(I − P)m‖² +
    σ² tr(I − P), the cross term having mean 0. So the floor is (c/n)‖(I − P)m‖² + cσ²(n − p)/n: model
    error plus noise, whatever the law of ε (Gaussianity gives only the χ² law of the noise part).
    Xa (n, p) is the design as fitted (its ones column, if any, included); f (n,) the labels' mean.
    """
    Xa, f = Xa.double(), mean.double().reshape(-1)
    n, p = Xa.shape[0], int(torch.linalg.matrix_rank(Xa))
    beta = torch.linalg.lstsq(Xa, f.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    c = loss_scale(loss)
    return float(c * ((f - Xa @ beta) ** 2).mean()), c * sigma**2 * (n - p) / n


def jump_least_squares(
    x: torch.Tensor, y: torch.Tensor, jump_at: float, jump_height: float, loss: str = "plain"
) -> tuple[float, float]:
    """Best w and loss for the article's ŷ = wx + jump_height·[wx ≥ jump_at] (no bias), exactly.

    The jump set {i : w x_i ≥ jump_at} only changes at w = jump_at / x_i, so on each interval
    between those breakpoints the loss is a quadratic in w: minimise it there (clamped to the
    interval) and keep the best. Returns (w*, loss floor).
    """
    x, y = x.double().reshape(-1), y.double().reshape(-1)
    c = loss_scale(loss)

    def mean_loss(w: float) -> float:
        y_hat = w * x + jump_height * (w * x >= jump_at).double()  # a bool times a float is float32 in torch
        return float(c * ((y_hat - y) ** 2).mean())

    edges = sorted({jump_at / float(v) for v in x if v != 0})
    bounds = [-float("inf"), *edges, float("inf")]
    candidates = list(edges)
    for lo, hi in itertools.pairwise(bounds):
        probe = (lo + hi) / 2 if abs(lo) < float("inf") > abs(hi) else (hi - 1 if lo == -float("inf") else lo + 1)
        jumped = (probe * x >= jump_at).double()
        w = float((x * (y - jump_height * jumped)).sum() / (x * x).sum())
        candidates.append(min(max(w, lo), hi))
    best = min(candidates, key=mean_loss)
    return best, mean_loss(best)
