"""Reshuffled SGD's own floor on a least-squares loss: a closed form, and its orders in η.

Each epoch walks a random permutation in m = n/B batches. With every batch Hessian replaced by H
(the batch-to-batch spread of x xᵀ is dropped; for independent draws on D2L's data the same
approximation moves the exact stationary excess by 0.5 % at η = 0.03), a step is δ ← Gδ − ηg_j,
G = I − ηH, g_j the batch's mean gradient at θ*. The batches of one permutation are drawn without
replacement, Cov(g_i, g_j) = n/(B(n − 1))·[i = j]·Σ₁ − Σ₁/(n − 1), so every second moment is a sum
of powers of G, and the epoch ends δ_m = G^m δ_0 + c, c = −η Σ_i G^(m−i) g_i, have a stationary law
in closed form. The pairs (h_a, ∇ℓ_b) of one epoch add a mean offset, O(η) (epoch_end_offset).

For small ηmL the excess is O(η²) over all steps; at epoch ends the offset gives O(η²) and the
variance O(η³). With replacement it is O(η) (eq-lf-sgd-excess). The O(η²) neighbourhood of the
epoch ends is the known rate of random reshuffling (Ying, Yuan, Vlaski & Sayed 2018; Mishchenko,
Khaled & Richtárik 2020 bound it by O(η²·m·L·σ²_*/μ)); on D2L's data the offset's coefficient is
so small that the O(η³) variance dominates at every step size above 10⁻⁶.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import engine, theory
from ._lazy import torch
from .fmt import num
from .i18n import t


@dataclass(frozen=True)
class ReshuffledExcess:
    """Stationary excess loss ½E δᵀHδ of reshuffled SGD: at epoch ends and over all steps, and its bias part."""

    eta: float
    epoch_end: float  # variance (constant batch curvature, exact in η) + bias
    all_steps: float  # the mean over the m positions of an epoch (the last is the epoch end), + bias
    bias: float  # ½ oᵀHo for the mean offset o of the epoch ends, to leading order: O(η²)


def _moments(Xa: torch.Tensor, residual: torch.Tensor, c: float):
    """H, Σ₁ (covariance of one example's gradient at θ*) and T = Σ_a h_a ∇ℓ_a for the loss c·(xᵀθ − y)²."""
    Xa, r = Xa.double(), residual.double()
    grads = 2 * c * r[:, None] * Xa  # ∇ℓ_a(θ*), (n, p); they sum to 0 (normal equations)
    H = 2 * c * Xa.T @ Xa / len(Xa)
    return H, grads.T @ grads / len(Xa), 2 * c * ((Xa * Xa).sum(1)[:, None] * grads).sum(0)


def epoch_end_offset(Xa: torch.Tensor, residual: torch.Tensor, batch_size: int, eta: float, c: float = 0.5
                     ) -> torch.Tensor:
    """E θ − θ* at epoch ends to leading order: −η(n − B)/(2Bn(n − 1))·H⁻¹T, T = Σ_a h_a ∇ℓ_a(θ*).

    The epoch map is δ → Aδ + c(π) with 1 − E A ≈ ηmH and, to second order, E c = η² Σ_{j<k} E[H_k g_j]; a pair of
    distinct examples has E[h_a ∇ℓ_b] = −T/(n(n − 1)) (the gradients sum to 0), and m(m − 1)/2 batch pairs
    carry B² such pairs each. For the toy (B = 1) it is cycle.cycle_constants's −η Σx³r/Σx².
    """
    n, B = len(Xa), batch_size
    H, _, T = _moments(Xa, residual, c)
    return -eta * (n - B) / (2 * B * n * (n - 1)) * torch.linalg.solve(H, T)


def reshuffled_excess(Xa: torch.Tensor, residual: torch.Tensor, batch_size: int, eta: float, c: float = 0.5
                      ) -> ReshuffledExcess:
    """Reshuffled SGD's stationary excess on the loss c·mean (xᵀθ − y)² (rows Xa, residuals at θ*).

    The variance part is exact for δ ← (I − ηH)δ − ηg_j over random permutations: after j steps,
    Cov(−ηΣ_{i≤j} G^(j−i) g_i)_aa = η² s_a [n/(B(n−1))·Σ_k g_a^(2k) − (Σ_k g_a^k)²/(n−1)] (k < j, g_a = 1 − ηλ_a,
    s_a = (UᵀΣ₁U)_aa in H's eigenbasis); the epoch ends' stationary C_aa is its j = m value over 1 − g_a^(2m).
    """
    n, B = len(Xa), batch_size
    if n % B:
        raise ValueError(f"batch size {B} does not divide n = {n}")
    m = n // B
    H, sigma1, _ = _moments(Xa, residual, c)
    lam, U = torch.linalg.eigh(H)
    s = torch.diagonal(U.T @ sigma1 @ U).numpy()
    lam = lam.numpy()
    g = 1 - eta * lam
    powers = g[None, :] ** np.arange(m)[:, None]  # (m, p): g^k, k = 0..m−1
    same, total = np.cumsum(powers**2, 0), np.cumsum(powers, 0)  # over k < j, for j = 1..m
    within = eta**2 * s * (n / (B * (n - 1)) * same - total**2 / (n - 1))  # (m, p)
    C = within[-1] / (1 - g ** (2 * m))  # stationary epoch-end variances (diagonal)
    after = g[None, :] ** (2 * np.arange(1, m + 1))[:, None] * C + within  # position j = 1..m
    o = epoch_end_offset(Xa, residual, B, eta, c)
    bias = 0.5 * float(o @ H @ o)
    return ReshuffledExcess(eta, 0.5 * float(lam @ C) + bias, 0.5 * float((after @ lam).mean()) + bias, bias)


def leading_orders(Xa: torch.Tensor, residual: torch.Tensor, batch_size: int, c: float = 0.5
                   ) -> tuple[float, float, float]:
    """(a, b, d): epoch_end ≈ a·η³ + d·η² and all_steps ≈ b·η² as ηmL → 0.

    To first order δ_j − δ_0 = −ηS_j, S_j the partial sum of j batch gradients, Cov S_j = k(n−k)/(B²(n−1))·Σ₁
    (k = jB): b = tr(HΣ₁)(m+1)(n−B)/(12B(n−1)). At epoch ends c = η²H Σ_{l<m} S_l to leading order, with
    Cov = κΣ₁, κ = Σ_{l,l'<m} min(l,l')(n − B·max(l,l'))/(B(n−1)); HC + CH = η³κHΣ₁H/m gives a = κ tr(H²Σ₁)/(4m).
    d·η² is the bias ½oᵀHo of epoch_end_offset.
    """
    n, B = len(Xa), batch_size
    m = n // B
    H, sigma1, _ = _moments(Xa, residual, c)
    ls = np.arange(1, m, dtype=np.float64)
    lo, hi = np.minimum.outer(ls, ls), np.maximum.outer(ls, ls)
    kappa = float((lo * (n - B * hi)).sum()) / (B * (n - 1))
    o = epoch_end_offset(Xa, residual, B, 1.0, c)
    return (kappa * float(torch.trace(H @ H @ sigma1)) / (4 * m),
            float(torch.trace(H @ sigma1)) * (m + 1) * (n - B) / (12 * B * (n - 1)), 0.5 * float(o @ H @ o))


def relative_orders(X: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float, float]:
    """`leading_orders` on D2L's ½-loss with a bias fitted on (X, y), divided by the loss floor."""
    fit = theory.least_squares(X, y, bias=True)
    Xa = engine.augment(X.double(), True)
    a, b, d = leading_orders(Xa, Xa @ fit.theta - y.double(), batch_size)
    return a / fit.loss_floor, b / fit.loss_floor, d / fit.loss_floor


def slopes(etas, values) -> np.ndarray:
    """Local log–log slopes between consecutive step sizes."""
    return np.diff(np.log(np.asarray(values, dtype=float))) / np.diff(np.log(np.asarray(etas, dtype=float)))


def compare(result, X: torch.Tensor, y: torch.Tensor) -> pd.DataFrame:
    """sgd_floor's reshuffled measurements beside the closed form, relative to the floor, with local slopes.

    result: a SgdFloorResult on D2L's ½-loss with a bias, fitted on (X, y). One row per η: measured and
    predicted epoch-end and all-steps excess, the slope from the previous η (NaN on the first row), and the engine's
    distance from the closed form in its standard errors (`*_z`).
    """
    fit = theory.least_squares(X, y, bias=True)
    Xa = engine.augment(X.double(), True)
    r = Xa @ fit.theta - y.double()
    rr = result.frame[result.frame.sampling == "reshuffled"]
    predicted = [reshuffled_excess(Xa, r, result.config.batch_size, float(eta)) for eta in rr.lr]
    out = pd.DataFrame({"eta": rr.lr.to_numpy(), "epoch_end": rr.epoch_end.to_numpy(),
                        "epoch_end_theory": [p.epoch_end / fit.loss_floor for p in predicted],
                        "all_steps": rr.all_steps.to_numpy(),
                        "all_steps_theory": [p.all_steps / fit.loss_floor for p in predicted]})
    for column in ("epoch_end", "epoch_end_theory", "all_steps", "all_steps_theory"):
        out[f"{column}_slope"] = np.concatenate([[np.nan], slopes(out.eta, out[column])])
    for column in ("epoch_end", "all_steps"):  # engine − closed form in the engine's standard errors over its runs
        out[f"{column}_z"] = (out[column] - out[f"{column}_theory"]) / rr[f"{column}_se"].to_numpy()
    return out


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """`compare`'s frame formatted: one column per η, rows engine vs closed form (% of the floor) and their slopes."""
    def pct(values) -> list:
        return [num(100 * v, "#.3g") for v in values]  # three digits, trailing zeros kept

    def slope(values) -> list:
        return ["—" if np.isnan(v) else num(v, ".2f") for v in values]

    rows = {t("epoch ends, engine (% of floor)"): pct(frame.epoch_end),
            t("epoch ends, closed form"): pct(frame.epoch_end_theory),
            t("slope from the η before, engine"): slope(frame.epoch_end_slope),
            t("slope from the η before, closed form"): slope(frame.epoch_end_theory_slope),
            t("all steps, engine (% of floor)"): pct(frame.all_steps),
            t("all steps, closed form"): pct(frame.all_steps_theory),
            t("slope from the η before, engine "): slope(frame.all_steps_slope),
            t("slope from the η before, closed form "): slope(frame.all_steps_theory_slope)}
    return pd.DataFrame(rows.values(), columns=[f"η = {num(e)}" for e in frame.eta],
                        index=pd.Index(rows.keys(), name=t("excess over the floor")))
