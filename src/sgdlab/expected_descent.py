"""Reshuffling is not independent sampling: the "descent on average" lemma and D2L's data_iter.

The expected-descent lemma needs E[g_t | history] = ∇f(θ_t). Draws WITH replacement (torch.randint
with an explicit Generator) give it at every step. D2L's `data_iter` reshuffles once per epoch and
walks the examples WITHOUT replacement: the first batch of an epoch is a uniform draw, but every
later batch comes from what is left, so its conditional mean is the mean gradient of the remaining
examples, not ∇f. Two measurements on runs of the engine, for both samplings side by side:

- the gradient noise ε_t = g_t − ∇f(θ_t) of consecutive steps: uncorrelated under independent draws,
  correlated −B/(n − B) (relative to E‖ε‖²) within an epoch under reshuffling, at a fixed θ;
- on the article's four-point toy, where the remaining examples can be enumerated, the exact
  conditional expectation E[f(θ_{t+1}) | history] against the lemma's bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import data, engine, taylor
from ._lazy import torch
from .cache import cached
from .i18n import t
from .steepest import ARTICLE_BATCH, ARTICLE_LR, TOY
from .taylor import Quadratic, curvature_bounds

SAMPLINGS = ("reshuffled", "with replacement")


def orders_for(sampling: str, n: int, epochs: int, runs: int, generator: torch.Generator) -> torch.Tensor:
    """Index orders (epochs, runs, n): a permutation per epoch and run (data_iter), or n independent draws."""
    if sampling == "reshuffled":
        return torch.stack([torch.stack([torch.randperm(n, generator=generator) for _ in range(runs)])
                            for _ in range(epochs)])
    if sampling == "with replacement":
        return torch.randint(n, (epochs, runs, n), generator=generator)
    raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLINGS}")


def lag_one_correlation_predicted(n: int, batch_size: int, sampling: str) -> float:
    """E[ε_tᵀε_{t+1}] / E‖ε_t‖² for two batches of one epoch at a fixed θ: −B/(n − B), or 0 with replacement.

    Without replacement the means of two disjoint batches have covariance −Σ₁/(n − 1) and each has
    covariance (n − B)/(B(n − 1))·Σ₁ (@eq-steepest-variance): the ratio is −B/(n − B).
    """
    return -batch_size / (n - batch_size) if sampling == "reshuffled" else 0.0


def _noise(q: Quadratic, params: torch.Tensor, orders: torch.Tensor, batch_size: int) -> torch.Tensor:
    """ε_t = g_t − ∇f(θ_t) of every step of every run, (T, K, p); params (T+1, p, K), orders (E, K, n)."""
    E, K, n = orders.shape
    idx = orders.permute(0, 2, 1).reshape(E, n // batch_size, batch_size, K)  # (E, steps, B, K)
    idx = idx.permute(0, 1, 3, 2).reshape(-1, K, batch_size)  # (T, K, B), in step order
    theta = params[:-1].permute(0, 2, 1)  # (T, K, p): the point each step's gradient is taken at
    Xb, yb = q.Xa[idx], q.y[idx]  # (T, K, B, p), (T, K, B)
    residual = (Xb @ theta.unsqueeze(-1)).squeeze(-1) - yb
    g = 2 * q.c * (residual.unsqueeze(-1) * Xb).mean(2)  # the mini-batch gradient, (T, K, p)
    return g - (theta @ q.hessian - 2 * q.c * q.y @ q.Xa / q.n)  # ∇f = Hθ − (2c/n)Xaᵀy: no (T, K, n) product


def _lag_one(eps: torch.Tensor, steps_per_epoch: int, later: torch.Tensor | None = None
             ) -> tuple[float, float, float, float]:
    """Mean ε_tᵀε_{t+1} / mean ‖ε_t‖² and its standard error, for pairs inside an epoch and across an epoch's end.

    later: the second factor's noise per step, (T, K, p), if not eps itself (e.g. taken at the previous θ).
    The standard error treats the runs as independent and a run's pairs as one sample each (its mean).
    """
    later = eps if later is None else later
    dots = (eps[:-1] * later[1:]).sum(-1)  # (T − 1, K)
    within = (torch.arange(1, eps.shape[0]) % steps_per_epoch) != 0  # step t+1 is not an epoch's first
    scale = float((eps**2).sum(-1).mean())
    out = []
    for pairs in (dots[within], dots[~within]):  # (pairs per run, K)
        per_run = pairs.mean(0) / scale
        out += [float(per_run.mean()), float(per_run.std() / per_run.numel() ** 0.5)]
    return tuple(out)


def _lag_one_first(eps: torch.Tensor, later: torch.Tensor, steps_per_epoch: int) -> tuple[float, float]:
    """_lag_one's ratio over the pairs that open an epoch only (steps 1 and 2), normalised by their first noise.

    There θ_t is independent of the epoch's permutation, the premise of @eq-steepest-lag's fixed-θ value.
    """
    first = (torch.arange(eps.shape[0] - 1) % steps_per_epoch) == 0
    dots = (eps[:-1] * later[1:]).sum(-1)[first]  # (epochs, K)
    per_run = dots.mean(0) / float((eps[:-1] ** 2).sum(-1)[first].mean())
    return float(per_run.mean()), float(per_run.std() / per_run.numel() ** 0.5)


def previous_point_noise(q: Quadratic, params: torch.Tensor, orders: torch.Tensor, batch_size: int
                         ) -> torch.Tensor:
    """Each step's batch noise taken at the previous step's θ, (T, K, p): g_{t+1}(θ_t) − ∇f(θ_t) at row t + 1.

    Paired with ε_t = g_t(θ_t) − ∇f(θ_t), both noises are at one fixed θ_t, the draw of step t + 1
    is the run's own: the fixed-θ lag-one correlation on the run's draws and iterates (row 0 holds θ_0's).
    """
    previous = torch.cat([params[:1], params[:-2]])  # (T, p, K): θ_{t−1} for step t (θ_0 for t = 0), + a last row
    return _noise(q, torch.cat([previous, params[-1:]]), orders, batch_size)


def _toy_lemma(q: Quadratic, params: torch.Tensor, orders: torch.Tensor, sampling: str, eta: float
               ) -> pd.DataFrame:
    """Per position in the epoch: how often E[f(θ_{t+1}) | history] exceeds the expected-descent bound.

    B = 1 on the toy: the next example is uniform over all n (with replacement, or an epoch's first
    step) or over the examples left in this epoch's permutation (reshuffled).
    """
    E, K, n = orders.shape
    theta = params[:-1].permute(0, 2, 1)  # (T, K, p)
    G = 2 * q.c * ((theta @ q.Xa.T) - q.y).unsqueeze(-1) * q.Xa  # per-sample gradients (T, K, n, p)
    after = q.value(theta.unsqueeze(2) - eta * G)  # f after a step on each example, (T, K, n)
    position = torch.arange(E * n) % n
    if sampling == "reshuffled":  # the examples not yet drawn in this epoch
        drawn = torch.zeros(E * n, K, n, dtype=torch.bool)
        seq = orders.permute(0, 2, 1).reshape(E * n, K)  # (T, K): the example of each step
        for t in range(E * n):
            if position[t] > 0:
                drawn[t] = drawn[t - 1]
                drawn[t, torch.arange(K), seq[t - 1]] = True
        left = (~drawn).double()
    else:
        left = torch.ones(E * n, K, n, dtype=torch.float64)
    expected = (after * left).sum(-1) / left.sum(-1)  # exact E[f(θ_{t+1}) | history], (T, K)
    grad = q.gradient(theta)  # (T, K, p)
    centred = G - G.mean(2, keepdim=True)
    trace = (centred**2).sum(-1).mean(-1)  # tr Σ₁(θ_t), the noise of one uniform draw
    L, _ = curvature_bounds(q.hessian)
    bound = q.value(theta) - eta * (1 - L * eta / 2) * (grad**2).sum(-1) + L * eta**2 / 2 * trace
    fails = expected > bound + 1e-12 * bound.abs()
    return pd.DataFrame({"sampling": sampling, "position": np.arange(1, n + 1),
                         "fails": [float(fails[position == j].double().mean()) for j in range(n)],
                         "excess_over_bound": [float((expected - bound)[position == j].max()) for j in range(n)]})


@dataclass(frozen=True)
class SamplingConfig:
    """Both samplings side by side on the engine: the baseline (B = 10) and the label-3.1 toy (B = 1)."""

    seed: int = 20
    runs: int = 200  # independent runs per sampling (each with its own orders)
    baseline_epochs: int = 5  # 500 steps of B = 10: 99 within-epoch pairs per epoch and run
    toy_runs: int = 500
    toy_epochs: int = 40  # from the article's w = 2: 20,000 steps per position in the epoch and sampling


@dataclass(frozen=True)
class SamplingResult:
    """Lag-one noise correlation per problem and sampling; the toy's lemma check per position in an epoch."""

    config: SamplingConfig
    # problem, sampling, n, batch_size, within(_se), across(_se), predicted; within_fixed(_se): the within-epoch
    # ratio with both noises at step t's θ (previous_point_noise), on the same runs and draws; moving(_se):
    # within − within_fixed, what the iterate's move between the two steps adds, its se from the runs;
    # fixed_first(_se): the fixed-θ ratio over each epoch's first pair only, where θ does not depend on the order
    correlation: pd.DataFrame
    toy_lemma: pd.DataFrame  # sampling, position, fails, excess_over_bound

    def summary(self) -> dict:
        """Keys: within, across, predicted (per "problem, sampling"), toy_fails (per sampling, per position)."""
        c = self.correlation
        keys = c.problem + ", " + c.sampling
        fails = {s: [float(v) for v in f.fails] for s, f in self.toy_lemma.groupby("sampling", sort=False)}
        return {"experiment": "steepest-sampling", **asdict(self.config),
                **{k: dict(zip(keys, c[k].astype(float), strict=True)) for k in ("within", "across", "predicted")},
                "toy_fails": fails}

    def table(self) -> pd.DataFrame:
        """Lag-one correlations, formatted, one row per problem and sampling."""
        c = self.correlation
        def pm(mean, se):
            return [f"{m:+.4f} ± {e:.4f}" for m, e in zip(mean, se, strict=True)]

        return pd.DataFrame({"n, B": [f"{n}, {b}" for n, b in zip(c.n, c.batch_size, strict=True)],
                             t("within epoch"): pm(c.within, c.within_se),
                             t("predicted"): c.predicted.map(lambda v: f"{v:+.4f}").to_numpy(),
                             t("across epochs"): pm(c.across, c.across_se)},
                            index=pd.Index([t("{}, {}").format(t(p), t(s))
                                            for p, s in zip(c.problem, c.sampling, strict=True)],
                                           name=t("problem, sampling")))

    def z(self, problem: str, column: str, against: float = 0.0) -> float:
        """(value − against) / se of a reshuffled row's column (within, within_fixed, moving, fixed_first), in se's."""
        r = self.correlation.set_index(["problem", "sampling"]).loc[(problem, "reshuffled")]
        return float((r[column] - against) / r[f"{column}_se"])

    def lemma_table(self) -> pd.DataFrame:
        """The toy's lemma check: per sampling and position in an epoch, the share of steps whose exact
        E[f(θ_{t+1}) | past] exceeds the bound of the expected-descent lemma, over every run and epoch."""
        cols = {t("step {}").format(j): [f"{100 * self.fails(s, j):.0f} %" for s in SAMPLINGS]
                for j in sorted(self.toy_lemma.position.unique())}
        return pd.DataFrame(cols, index=pd.Index([t(s) for s in SAMPLINGS], name=t("sampling")))

    def fails(self, sampling: str, position: int) -> float:
        t = self.toy_lemma
        return float(t[(t.sampling == sampling) & (t.position == position)].fails.iloc[0])


def _runs(q: Quadratic, theta0: torch.Tensor, lr: float, grad_divisor: float, batch_size: int,
          orders: torch.Tensor) -> torch.Tensor:
    """Every step's parameters (T+1, p, K) of K float64 engine runs, one order per run."""
    K = orders.shape[1]
    traj = engine.train(q.X, q.y, theta0.unsqueeze(1).repeat(1, K), lr, orders, batch_size=batch_size,
                        model=engine.Model(bias=q.bias), loss=q.loss, grad_divisor=grad_divisor,
                        record_steps=True)
    return traj.step_params


@cached
def sampling(config: SamplingConfig = SamplingConfig()) -> SamplingResult:
    """Train with each sampling; measure the noise's lag-one correlation and the toy's one-step lemma."""
    base, base0 = taylor.baseline_problem(config.seed)
    toy, toy0 = taylor.toy_problem(noisy=True, bias=False)
    problems = {  # q, θ0, lr, sgd's divisor, B, runs, epochs
        "baseline": (base, base0, ARTICLE_LR, ARTICLE_BATCH, ARTICLE_BATCH, config.runs, config.baseline_epochs),
                "toy w·x": (toy, toy0, TOY.lr, TOY.grad_divisor, 1, config.toy_runs, config.toy_epochs)}
    rows, lemma = [], []
    for problem, (q, theta0, lr, divisor, B, runs, epochs) in problems.items():
        for sampling_ in SAMPLINGS:
            orders = orders_for(sampling_, q.n, epochs, runs, data.generator(config.seed, f"{problem}/{sampling_}"))
            params = _runs(q, theta0, lr, divisor, B, orders)
            eps = _noise(q, params, orders, B)
            within, within_se, across, across_se = _lag_one(eps, q.n // B)
            previous = previous_point_noise(q, params, orders, B)
            fixed, fixed_se, _, _ = _lag_one(eps, q.n // B, previous)
            gap, gap_se, _, _ = _lag_one(eps, q.n // B, eps - previous)  # along − fixed, per run: its own se
            first, first_se = _lag_one_first(eps, previous, q.n // B)
            rows.append({"problem": problem, "sampling": sampling_, "n": q.n, "batch_size": B, "within": within,
                         "within_se": within_se, "across": across, "across_se": across_se,
                         "within_fixed": fixed, "within_fixed_se": fixed_se, "moving": gap, "moving_se": gap_se,
                         "fixed_first": first, "fixed_first_se": first_se,
                         "predicted": lag_one_correlation_predicted(q.n, B, sampling_)})
            if problem == "toy w·x":
                lemma.append(_toy_lemma(q, params, orders, sampling_, lr / divisor))
    return SamplingResult(config, pd.DataFrame(rows), pd.concat(lemma, ignore_index=True))
