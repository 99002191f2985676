"""Where constant-step SGD stops converging, for each way of drawing the examples: exact edges and the engine.

η < 2/L_B (every step lowers its own example's loss) is sufficient, not necessary. On the article's
clean toy (w·x on x = 0..3, a step of η on one example's (ŷ − y)², so e = w − 1 ← (1 − 2ηx²)e):

- reshuffled, an epoch in any order multiplies e by P(η) = Π(1 − 2ηx_i²) (eq-steepest-toy-epoch):
  stable iff |P(η)| < 1, i.e. η < (49 − √385)/144 or η inside a window where P dips through 0;
- with replacement, E e² is multiplied by E(1 − 2ηx²)² per step: mean-square stable iff
  η < mean x²/mean x⁴ = 1/7; almost surely stable iff E log|1 − 2ηx²| = log|P(η)|/n < 0.

On D2L's data with independent batches of B, E δδᵀ evolves by the operator of eq-lf-stationary-cov,
T(η) = I − η(I⊗H + H⊗I) + η²K_B; its spectral radius reaches 1 at the mean-square edge.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from . import article_log, data, engine, roundoff, sampling, sgd_floor, taylor
from ._lazy import torch
from .cache import cached
from .fmt import num
from .i18n import t

# --------------------------------------------------------------------------- the toy, exactly


def _squares(x) -> list[Fraction]:
    return [Fraction(str(v)) ** 2 for v in x]


def epoch_factor(eta, x=data.TOY_X):
    """P(η) = Π(1 − 2ηx_i²): what an epoch in any order multiplies w − w* by on the clean toy (exact for a Fraction)."""
    return article_log.clean_epoch_factor(eta, [Fraction(str(v)) for v in x])


def epoch_polynomial(x=data.TOY_X) -> tuple[Fraction, ...]:
    """The coefficients of P(η), constant first: (1, −2Σx², …)."""
    coeffs = [Fraction(1)]
    for s in _squares(x):  # multiply by (1 − 2s·η)
        coeffs = [a - 2 * s * b for a, b in zip([*coeffs, Fraction(0)], [Fraction(0), *coeffs], strict=True)]
    while len(coeffs) > 1 and coeffs[-1] == 0:
        coeffs.pop()
    return tuple(coeffs)


def _positive_roots(coeffs: tuple[Fraction, ...], level: int) -> list[float]:
    """The real roots η > 0 of P(η) = level, float64 (numpy's companion matrix)."""
    poly = [float(c) for c in coeffs]
    poly[0] -= level
    roots = np.roots(poly[::-1])
    return sorted(float(r.real) for r in roots if abs(r.imag) <= 1e-9 * abs(r) and r.real > 1e-12)


def reshuffled_intervals(x=data.TOY_X) -> list[tuple[float, float]]:
    """The step sizes η > 0 where reshuffled SGD converges on the clean toy, |P(η)| < 1, as intervals.

    |P| can only cross 1 where P = ±1; between consecutive crossings the midpoint decides. P's
    leading coefficient makes |P| → ∞, so the last stretch is unstable.
    """
    coeffs = epoch_polynomial(x)
    ends = [0.0, *sorted(_positive_roots(coeffs, 1) + _positive_roots(coeffs, -1))]
    intervals: list[tuple[float, float]] = []
    for lo, hi in itertools.pairwise(ends):
        if abs(epoch_factor((lo + hi) / 2, x)) >= 1:
            continue
        if intervals and intervals[-1][1] == lo:  # |P| touched 1 at lo without crossing it
            lo = intervals.pop()[0]
        intervals.append((lo, hi))
    return intervals


def reshuffled_edge_closed_form() -> float:
    """The toy's first edge (49 − √385)/144: P(η) − 1 = −4η(72η² − 49η + 7) for x = 0, 1, 2, 3."""
    return (49 - math.sqrt(385)) / 144


def mean_square_factor(eta, x=data.TOY_X):
    """E(1 − 2ηx²)² over a uniform example: what E e² is multiplied by per step with replacement (clean toy)."""
    s = _squares(x)
    return sum((1 - 2 * eta * v) ** 2 for v in s) / len(s)


def mean_square_edge(x=data.TOY_X) -> Fraction:
    """E(1 − 2ηx²)² = 1 − 4η·mean x² + 4η²·mean x⁴ < 1 iff η < mean x²/mean x⁴ (1/7 on the toy)."""
    s = _squares(x)
    return sum(s) / sum(v * v for v in s)


def lyapunov_exponent(eta: float, x=data.TOY_X) -> float:
    """E log|1 − 2ηx²| per step with replacement = log|P(η)|/n: below 0, almost every run converges."""
    return math.log(abs(float(epoch_factor(eta, x)))) / len(x)


def toy_second_moment_radius(eta: float, bias: bool, sampling_: str, x=data.TOY_X) -> float:
    """Spectral radius of the map E δδᵀ → E[A δδᵀ Aᵀ] of the toy's SGD (w·x or w·x + b, a step η on (ŷ − y)²).

    With replacement A = I − ηh_i for a uniform example (one step); reshuffled A = Π_π (I − ηh_i), one epoch in an
    order π, averaged over all n! orders (an epoch's order is independent of the past). Above 1, E‖δ‖² grows without
    bound; the labels only add a bounded push, so the radius is the same for the clean and the 3.1 labels.
    """
    xs = np.asarray(x, dtype=np.float64)
    Xa = np.stack([xs, np.ones_like(xs)], 1) if bias else xs[:, None]
    eye = np.eye(Xa.shape[1])
    steps = [eye - 2 * eta * np.outer(v, v) for v in Xa]  # h_i = 2 x_i x_iᵀ: the Hessian of (x_iᵀθ − y_i)²
    if sampling_ == "with replacement":
        maps = steps
    else:
        maps = [np.linalg.multi_dot([steps[i] for i in reversed(order)]) if len(order) > 1 else steps[order[0]]
                for order in itertools.permutations(range(len(steps)))]
    second = sum(np.kron(A, A) for A in maps) / len(maps)
    return float(np.abs(np.linalg.eigvals(second)).max())


def toy_mean_square_edge(bias: bool, sampling_: str, x=data.TOY_X, step: float = 1e-3, tol: float = 1e-12) -> float:
    """The least η > 0 where `toy_second_moment_radius` reaches 1: scanned in steps of `step`, then bisected."""
    hi = step
    while toy_second_moment_radius(hi, bias, sampling_, x) < 1:
        hi += step
    lo = hi - step
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if toy_second_moment_radius(mid, bias, sampling_, x) < 1 else (lo, mid)
    return (lo + hi) / 2


def toy_single_step_edge(bias: bool, x=data.TOY_X) -> Fraction:
    """2/L_max over the toy's single examples, exactly: 2 / max_i 2(x_i² + [bias]) on the toy's mean loss (no ½)."""
    return Fraction(2) / max(2 * (Fraction(str(v)) ** 2 + int(bias)) for v in x)


# --------------------------------------------------------------------------- independent mini-batches, any data


def _symmetric_basis(p: int) -> torch.Tensor:
    """An orthonormal basis of vec(symmetric p×p matrices), (p², p(p+1)/2): E δδᵀ lives there."""
    cols = []
    for i, j in itertools.combinations_with_replacement(range(p), 2):
        e = torch.zeros(p, p, dtype=torch.float64)
        e[i, j] = e[j, i] = 1.0
        cols.append(e.reshape(-1) / e.norm())
    return torch.stack(cols, 1)


def operator_radius(H: torch.Tensor, M4: torch.Tensor, batch_size: int, eta: float) -> float:
    """Spectral radius of T(η) on symmetric matrices: E δδᵀ grows without bound iff it exceeds 1."""
    A, K = sgd_floor.operator_parts(H, M4, batch_size)
    S = _symmetric_basis(H.shape[0])
    T = S.T @ (torch.eye(A.shape[0], dtype=A.dtype) - eta * A + eta**2 * K) @ S  # symmetric: A, K are
    return float(torch.linalg.eigvalsh(T).abs().max())


def operator_edge(H: torch.Tensor, M4: torch.Tensor, batch_size: int) -> float:
    """The mean-square edge of SGD with independent batches: the least η > 0 with radius T(η) = 1.

    T maps PSD matrices to PSD matrices, so its radius is an eigenvalue with a PSD eigenvector
    (Krein–Rutman); it reaches 1 where (−ηA + η²K)v = 0, i.e. at η = 1/λ with Kv = λAv: the
    first edge is 1/λ_max of that symmetric-definite pencil (A ≻ 0).
    """
    A, K = sgd_floor.operator_parts(H, M4, batch_size)
    S = _symmetric_basis(H.shape[0])
    chol = torch.linalg.cholesky(S.T @ A @ S)
    scaled = torch.linalg.solve_triangular(chol, torch.linalg.solve_triangular(chol, S.T @ K @ S, upper=False).T,
                                           upper=False)  # L⁻¹ K L⁻ᵀ
    return float(1 / torch.linalg.eigvalsh(scaled).max())


def replacement_batch_curvature(q: taylor.Quadratic) -> float:
    """L_max over every batch drawn with replacement, for any batch size B: max_i 2c‖x_i‖².

    A batch drawn with replacement may be B copies of one example, whose H_B = 2c·x_i x_iᵀ has
    λ_max = 2c‖x_i‖²; no batch does worse, because λ_max of the mean (1/B)Σ H_i is at most the mean of
    the λ_max(H_i) (λ_max is convex). On D2L's ½-loss (c = ½) this is max_i ‖x_i‖², x_i with its 1.
    """
    return float(taylor.per_sample_curvature(q).max())


# --------------------------------------------------------------------------- the edges, checked on the engine


@dataclass(frozen=True)
class StabilityConfig:
    """The toy's step-size edges on the engine, both samplings; D2L's data with independent batches (seed's data)."""

    seed: int = 20
    reshuffled_etas: tuple[float, ...] = (0.03, 0.2, 0.206, 0.5)  # the article's step, the edge's sides, the window
    runs: int = 8  # reshuffled order streams per η
    epochs: int = 2000  # at η = 0.206 |e| grows ×1.032 per epoch: the float32 loss overflows near epoch 1400
    replacement_etas: tuple[float, ...] = (0.13, 0.16, 0.25)  # below 1/7; above it, below the reshuffled edge; above
    enumerated_steps: int = 8  # expectations over all 4^t draw sequences: one engine run each
    batch_sizes: tuple[int, ...] = (1, 10)  # D2L's data: the operator edge per batch size (the article's B = 10)
    curvature_epochs: int = 300  # epochs of batches scanned for the largest batch curvature L_B (as steepest-curvature)


@dataclass(frozen=True)
class StabilityResult:
    """The edges (exact) and what the engine made of runs on either side of them."""

    config: StabilityConfig
    toy_edges: pd.DataFrame  # edge, eta: 2/L_max (B = 1: any sampling), mean square (with replacement), reshuffled, 2/L
    window: tuple[float, float]  # the second interval of |P(η)| < 1
    # eta, P, factor_min/max (every epoch's e_end/e_start, float64), diverged_runs, diverged_step (float32),
    # final_error; final_bound: where |P| < 1, |P|^E·|e₀| plus the float64 rounding floor (clean_toy_floor), else −1
    reshuffled: pd.DataFrame
    # eta, factor (E a²), exact_ratio (E e_t²/e_0²), engine_ratio, lyapunov, engine_lyapunov, shrunk_share
    replacement: pd.DataFrame
    # batch_size, edge, two_over_L; 2/L_max over the batches of the seed's order (reshuffled) and over every
    # batch drawn with replacement (B copies of the largest-norm example)
    baseline: pd.DataFrame

    def edge(self, name: str) -> float:
        """The toy's edge by name (the `edge` column of toy_edges)."""
        return float(self.toy_edges.set_index("edge").eta[name])

    def baseline_edge(self, batch_size: int, column: str = "edge") -> float:
        return float(self.baseline.set_index("batch_size")[column][batch_size])

    def edges_table(self) -> pd.DataFrame:
        """The edges side by side: the toy (B = 1) and D2L's data (B = 1 and the article's B), grouped by sampling.

        Each sampling's 2/L_max is over the batches that sampling can draw: with replacement, every
        batch (the worst is B copies of the largest-norm example); reshuffled, the batches of the seed's
        order (for B = 1 every order has the same batches, the single examples).
        """
        b = self.baseline.set_index("batch_size")
        toy = self.toy_edges.set_index("edge").eta
        cols = {t("toy w·x, B = 1"): [num(v, ".4f") for v in (toy["2/L_max"], toy["mean square, with replacement"],
                                                               toy["reshuffled"], toy["2/L_max"], toy["reshuffled"],
                                                               toy["2/L"])]}
        for B in b.index:
            cols[t("D2L's data, B = {}").format(B)] = [
                num(b.two_over_Lmax_replacement[B], ".4f"), num(b.edge[B], ".4f"), "—",
                num(b.two_over_Lmax_reshuffled[B], ".4f"), "—", num(b.two_over_L[B], ".4f")]
        rows = [t(r"replacement: $2/L_{\max}$, all batches"), t("replacement: E‖δ‖² bounded"),
                t("replacement: a.s. convergence"),
                t(r"reshuffled: $2/L_{{\max}}$, seed {}'s order").format(self.config.seed),
                t("reshuffled: convergence"),
                t("full batch: 2/L")]
        return pd.DataFrame(cols, index=pd.Index(rows, name=t("edge of")))

    def reshuffled_table(self) -> pd.DataFrame:
        """Reshuffled runs on the clean toy: the exact epoch factor, every epoch's measured one, the float32 flags."""
        r = self.reshuffled
        lo, hi = (r[c].map(lambda v: num(v, ".6f")) for c in ("factor_min", "factor_max"))
        same = [a if a == b else t("{} to {}").format(a, b)  # one value if equal to 6 digits
                for a, b in zip(lo, hi, strict=True)]
        return pd.DataFrame({t("A(η) exact"): r.P.map(lambda v: num(v, ".6f")).to_numpy(),
                             t("every epoch, engine"): same,
                             t("runs flagged"): [t("{0} of {1}").format(d, self.config.runs) for d in r.diverged_runs],
                             t("largest final error"): [self._final_error(row) for row in r.itertuples()]},
                            index=pd.Index(r.eta.map(num), name="η"))

    def _final_error(self, row) -> str:
        """A converging run's error once A^E·|e₀| is below float64 rounding is rounding: printed as its bound."""
        if 0 <= row.final_bound and row.final_error <= row.final_bound:  # a floor exists (|P| < 1), and covers it
            return t("below {} (rounding)").format(num(row.final_bound, '.1e'))
        return num(row.final_error, ".1e")

    def rounding_floor(self, eta: float) -> float:
        """The float64 rounding bound on a reshuffled run's final |w − 1| at this η (reshuffled_etas)."""
        return float(self.reshuffled.set_index("eta").final_bound[eta])

    def replacement_table(self) -> pd.DataFrame:
        """With replacement on the clean toy, over every draw sequence: E e_t² and E log|e_t|/t, exact and engine."""
        r, steps = self.replacement, self.config.enumerated_steps
        return pd.DataFrame({"E a²": r.factor.map(lambda v: num(v, ".4f")).to_numpy(),
                             t("E e²/e₀² at step {}, exact").format(steps):
                                 r.exact_ratio.map(lambda v: num(v, ".4g")).to_numpy(),
                             t("engine"): r.engine_ratio.map(lambda v: num(v, ".4g")).to_numpy(),
                             t("Lyapunov exp. exact"): r.lyapunov.map(lambda v: num(v, ".4f")).to_numpy(),
                             t("engine "): r.engine_lyapunov.map(lambda v: num(v, ".4f")).to_numpy(),
                             t("runs shrunk by step {}").format(steps):
                                 r.shrunk_share.map(lambda v: f"{100 * v:.1f} %").to_numpy()},
                            index=pd.Index(r.eta.map(num), name="η"))

    def summary(self) -> dict:
        """Keys: toy_edges, window, reshuffled, replacement, baseline (one list per column)."""
        return {"experiment": "steepest-stability", **asdict(self.config),
                "toy_edges": dict(zip(self.toy_edges.edge, self.toy_edges.eta, strict=True)),
                "window": list(self.window), "reshuffled": self.reshuffled.to_dict("list"),
                "replacement": self.replacement.to_dict("list"), "baseline": self.baseline.to_dict("list")}


_TOY_SGD = {"batch_size": 1, "model": engine.Model(bias=False), "loss": "plain", "grad_divisor": 1}  # step η on (ŷ−y)²
RATIO_FROM = 1e-6  # per-epoch ratios are read while |e| ≥ this: w = 1 + e carries e to ~1e-16/1e-6 relative


def _clean_toy_runs(config: StabilityConfig) -> pd.DataFrame:
    """Reshuffled SGD from w = 2 on the clean toy: e_end/e_start per epoch (float64), the divergence flag (float32)."""
    etas, R = config.reshuffled_etas, config.runs
    orders = sampling.orders_for("reshuffled", config.seed, R, config.epochs, len(data.TOY_X)).repeat(1, len(etas), 1)
    lr = torch.tensor(etas, dtype=torch.float64).repeat_interleave(R)
    trajs = {}
    for dtype in (torch.float64, torch.float32):
        ds = data.toy_data(noisy=False, dtype=dtype)
        trajs[dtype] = engine.train(ds.X, ds.y, torch.full((1, len(lr)), 2.0, dtype=dtype), lr.to(dtype), orders,
                                    **_TOY_SGD)
    e = trajs[torch.float64].epoch_params[:, 0] - 1  # (E + 1, K): w − w*
    flagged = trajs[torch.float32].diverged_step
    rows, u = [], roundoff.unit_roundoff(torch.float64)
    for j, eta in enumerate(etas):
        ej, runs = e[:, j * R : (j + 1) * R], flagged[j * R : (j + 1) * R]
        seen = ej[:-1].abs() >= RATIO_FROM
        ratio = (ej[1:] / ej[:-1])[seen]  # every epoch of every order: P(η) if the theory holds
        P = float(epoch_factor(Fraction(eta)))
        exact = abs(P) ** config.epochs * 1.0  # e₀ = w₀ − 1 = 1
        bound = exact + roundoff.clean_toy_floor(eta, data.TOY_X, u) if abs(P) < 1 else -1.0  # −1: none
        rows.append({"eta": eta, "P": P, "final_bound": bound, "factor_min": float(ratio.min()),
                     "factor_max": float(ratio.max()), "diverged_runs": int((runs >= 0).sum()),
                     "diverged_step": int(runs.max()),  # the last run's flag; -1: no run diverged
                     "final_error": float(ej[-1].abs().max())})
    return pd.DataFrame(rows)


def all_sequences(n: int, steps: int) -> torch.Tensor:
    """Every sequence of `steps` draws from range(n) as engine orders: (steps/n epochs, n^steps runs, n)."""
    seqs = torch.cartesian_prod(*[torch.arange(n)] * steps).reshape(-1, steps)  # (n^steps, steps)
    return seqs.reshape(len(seqs), steps // n, n).permute(1, 0, 2).contiguous()


def _replacement_runs(config: StabilityConfig) -> pd.DataFrame:
    """With replacement on the clean toy from e_0 = 1: expectations over every draw sequence, one engine run each."""
    t = config.enumerated_steps
    ds = data.toy_data(noisy=False, dtype=torch.float64)
    every = all_sequences(len(data.TOY_X), t)
    K = every.shape[1]
    traj = engine.train(ds.X, ds.y, torch.full((1, K * len(config.replacement_etas)), 2.0, dtype=torch.float64),
                        torch.tensor(config.replacement_etas, dtype=torch.float64).repeat_interleave(K),
                        every.repeat(1, len(config.replacement_etas), 1), **_TOY_SGD)
    rows = []
    for j, eta in enumerate(config.replacement_etas):
        e_t = traj.epoch_params[-1, 0, j * K : (j + 1) * K] - 1  # each sequence equally likely
        factor = mean_square_factor(Fraction(eta))
        rows.append({"eta": eta, "factor": float(factor), "exact_ratio": float(factor**t),
                     "engine_ratio": float(e_t.square().mean()), "lyapunov": lyapunov_exponent(eta),
                     "engine_lyapunov": float(e_t.abs().log().mean() / t),  # E log|e_t| = t·E log|a| exactly
                     "shrunk_share": float((e_t.abs() < 1).double().mean())})
    return pd.DataFrame(rows)


def _baseline_edges(config: StabilityConfig) -> pd.DataFrame:
    """D2L's data (the seed's): the operator edge per batch size, beside 2/L and 2/L_B of its batches."""
    q, _ = taylor.baseline_problem(config.seed)
    H, M4 = sgd_floor.per_example_moments(q.Xa, q.c)
    L, _ = taylor.curvature_bounds(H)
    orders = data.batch_orders(q.n, config.curvature_epochs, data.generator(config.seed, "order"))
    worst = replacement_batch_curvature(q)  # the same for every B
    return pd.DataFrame([{"batch_size": B, "edge": operator_edge(H, M4, B), "two_over_L": 2 / L,
                          "two_over_Lmax_reshuffled": 2 / float(taylor.batch_curvature(q, orders, B).max()),
                          "two_over_Lmax_replacement": 2 / worst}
                         for B in config.batch_sizes])


@cached
def stability(config: StabilityConfig = StabilityConfig()) -> StabilityResult:
    """The step-size edges of SGD for each sampling, exactly, and engine runs on either side of them."""
    toy, _ = taylor.toy_problem(noisy=False, bias=False)
    L, _ = taylor.curvature_bounds(toy.hessian)
    intervals = reshuffled_intervals()
    edges = pd.DataFrame({"edge": ["2/L_max", "mean square, with replacement", "reshuffled", "2/L"],
                          "eta": [2 / replacement_batch_curvature(toy), float(mean_square_edge()),
                                  intervals[0][1], 2 / L]})
    return StabilityResult(config, edges, intervals[1], _clean_toy_runs(config), _replacement_runs(config),
                           _baseline_edges(config))
