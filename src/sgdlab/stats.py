"""Small exact statistics the report's checks need: χ² CDF and quantiles, a Kolmogorov–Smirnov test, binomial tails."""

from __future__ import annotations

import math
from fractions import Fraction

from ._lazy import torch


def chi2_cdf(x: torch.Tensor, dof: int) -> torch.Tensor:
    """P(χ²_dof ≤ x) = P(dof/2, x/2), the regularised lower incomplete gamma function (float64)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.special.gammainc(torch.full_like(x, dof / 2), x / 2)


def chi2_quantile(q: float, dof: int) -> float:
    """The x with P(χ²_dof ≤ x) = q, 0 < q < 1: bisection on `chi2_cdf` down to adjacent float64 numbers.

    The CDF increases, so the bracket [0, hi] (hi doubled until its CDF passes q) keeps the root;
    the result is as accurate as chi2_cdf itself allows.
    """
    if not 0 < q < 1:
        raise ValueError(f"q = {q} is not in (0, 1)")
    lo, hi = 0.0, float(dof)
    while float(chi2_cdf(hi, dof)) < q:
        lo, hi = hi, 2 * hi
    while (mid := (lo + hi) / 2) not in (lo, hi):
        lo, hi = (mid, hi) if float(chi2_cdf(mid, dof)) < q else (lo, mid)
    return hi


def kolmogorov_sf(lam: float, terms: int = 100) -> float:
    """P(K > λ) for Kolmogorov's limit law: 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²λ²)."""
    if lam < 0.2:  # the series converges slowly there; the probability is 1 to double precision
        return 1.0
    return float(min(1.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, terms))))


def ks_test(samples: torch.Tensor, cdf) -> tuple[float, float]:
    """One-sample Kolmogorov–Smirnov test of `samples` against a continuous `cdf`: (D, p-value).

    D = sup |F_n − F|; the p-value uses Kolmogorov's law with Stephens's small-sample correction
    λ = (√n + 0.12 + 0.11/√n) D (Stephens 1970), accurate to a few per cent for n ≥ 5.
    """
    u = cdf(torch.sort(torch.as_tensor(samples, dtype=torch.float64).flatten()).values)
    n = u.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = float(torch.maximum(i / n - u, u - (i - 1) / n).max())
    root = math.sqrt(n)
    return d, kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def binomial_tail(k: int, n: int, p: Fraction) -> Fraction:
    """P(X ≥ k) for X ~ Binomial(n, p), exactly."""
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def t_two_sided(t: float, dof: int, upper: float = 200.0, points: int = 200_001) -> float:
    """P(|T| ≥ |t|) for Student's T with `dof` degrees of freedom: Simpson's rule on its density, float64.

    The tail beyond `upper` is below 1e-20 for dof ≥ 10; the rule is exact to about 1e-10 here.
    """
    s = torch.linspace(abs(t), max(upper, abs(t) + 1.0), points, dtype=torch.float64)
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    f = torch.exp(log_norm - (dof + 1) / 2 * torch.log1p(s * s / dof))
    h = float(s[1] - s[0])
    weights = torch.ones(points, dtype=torch.float64)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return float(min(1.0, 2 * h / 3 * (weights * f).sum()))
