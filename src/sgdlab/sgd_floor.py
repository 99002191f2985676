"""SGD's own floor on D2L's data: the stationary excess loss of constant-step SGD, predicted and measured.

Section "SGD's own floor" of report/02-loss-floor.qmd. With independent mini-batches of B examples
(drawn with replacement) and a step η on D2L's mean ½-loss, the deviation δ = θ − θ* obeys
δ ← (I − ηH_B)δ − ηξ_B; its stationary second moment C solves a p²-dimensional linear equation
(`independent_excess`, exact for that recursion), whose leading order is the Lyapunov equation
HC + CH = ηΣ₁/B, giving the excess ½ tr(HC) = (η/4B) tr Σ₁. Reshuffling is measured beside it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import engine, experiments, reshuffling, sampling, theory
from ._lazy import torch
from .article_log import checked
from .cache import cached
from .fmt import num
from .i18n import t


def per_example_moments(Xa: torch.Tensor, c: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, M4) of the loss c·mean (x_iᵀθ − y_i)², float64: the mean of h_i = 2c·x_i x_iᵀ and of h_i ⊗ h_i.

    M4 is laid out so that vec(mean h_i C h_i) = M4 vec(C).
    """
    h = 2 * c * Xa.double()[:, :, None] * Xa.double()[:, None, :]  # (n, p, p)
    return h.mean(0), torch.einsum("nij,nkl->ikjl", h, h).reshape(h.shape[1] ** 2, -1) / len(h)


def operator_parts(H: torch.Tensor, M4: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, K) of vec E[(I − ηH_B) C (I − ηH_B)] = (I − ηA + η²K) vec(C), batches of B drawn with replacement.

    A = I⊗H + H⊗I and K = (1 − 1/B) H⊗H + M4/B: E[H_B C H_B] = (1 − 1/B) HCH + (1/B) mean h_i C h_i.
    """
    eye = torch.eye(H.shape[0], dtype=H.dtype)
    return torch.kron(eye, H) + torch.kron(H, eye), (1 - 1 / batch_size) * torch.kron(H, H) + M4 / batch_size


def _moments(X: torch.Tensor, y: torch.Tensor):
    """Float64 (H, Σ₁, M4, floor) of D2L's ½-loss on (X with its ones column, y).

    H = XᵀX/n; Σ₁ = mean r_i² x_i x_iᵀ, the covariance of one example's gradient at θ*;
    M4 = mean (x_i x_iᵀ ⊗ x_i x_iᵀ), so that vec(mean x xᵀ C x xᵀ) = M4 vec(C).
    """
    Xa = engine.augment(X.double(), True)
    fit = theory.least_squares(X, y, bias=True)
    r = Xa @ fit.theta - y.double()
    H, M4 = per_example_moments(Xa)
    sigma1 = (r[:, None, None] ** 2 * Xa[:, :, None] * Xa[:, None, :]).mean(0)
    return H, sigma1, M4, fit.loss_floor


def stationary_covariance(X, y, eta: float, batch_size: int) -> torch.Tensor:
    """Stationary E δδᵀ of SGD with independent batches of B drawn with replacement (D2L's ½-loss, bias), exactly.

    E δ = 0 (E ξ_B = 0 by the normal equations) and C = E[(I − ηH_B) C (I − ηH_B)] + η²Σ₁/B with
    E[H_B C H_B] = (1 − 1/B) HCH + (1/B) mean x xᵀ C x xᵀ: one linear system in vec(C) (eq-lf-stationary-cov).
    """
    H, sigma1, M4, _ = _moments(X, y)
    A, K = operator_parts(H, M4, batch_size)
    p = H.shape[0]
    return torch.linalg.solve(A - eta * K, eta * sigma1.reshape(-1) / batch_size).reshape(p, p)


def independent_excess(X, y, eta: float, batch_size: int) -> tuple[float, float]:
    """(exact, leading-order) stationary excess E ½δᵀHδ: ½ tr(HC) and (η/4)·tr Σ₁/B (eq-lf-sgd-excess)."""
    H, sigma1, _, _ = _moments(X, y)
    C = stationary_covariance(X, y, eta, batch_size)
    return float(0.5 * torch.trace(H @ C)), float(eta / 4 * torch.trace(sigma1) / batch_size)


@dataclass(frozen=True)
class FixedStepBound:
    """Theorem 2.2's floor ηLM/(2cμ) for independent batches on D2L's ½-loss, beside the exact stationary excess."""

    eta: float
    batch_size: int
    L: float  # λ_max(H)
    c: float  # λ_min(H): the strong-convexity constant
    noise_at_optimum: float  # M0 = E‖ξ_B‖² = tr Σ₁/B: no admissible M is smaller
    M: float  # the least M admissible with the largest M_V the step allows, M_V = 1/(ηL) − 1
    exact: float  # ½ tr(HC), the exact stationary excess (independent_excess)
    floor: float  # the loss floor f*

    @property
    def at_least(self) -> float:
        """ηL·M0/(2c): the bound's floor can be no lower than this (μ = μ_G = 1 for unbiased draws)."""
        return self.eta * self.L * self.noise_at_optimum / (2 * self.c)

    @property
    def bound(self) -> float:
        """ηL·M/(2c): the lowest floor the theorem gives at this step, over all admissible (M, M_V)."""
        return self.eta * self.L * self.M / (2 * self.c)


def fixed_step_bound(X, y, eta: float, batch_size: int) -> FixedStepBound:
    """The constants of Theorem 2.2 for batches of B drawn with replacement, and the floor they give.

    With g = H_Bδ + ξ_B at θ = θ* + δ, Var g = δᵀQδ + 2bᵀδ + M0, with Q = (mean ‖x‖²xxᵀ − H²)/B,
    b = mean(‖x‖² r x)/B and M0 = tr Σ₁/B. Var g ≤ M + M_V‖Hδ‖² for every δ holds iff
    M ≥ M0 + bᵀ(M_V H² − Q)⁻¹b (M_V H² ≻ Q); the step condition η ≤ 1/(L(M_V + 1)) caps M_V.
    """
    H, sigma1, _, floor = _moments(X, y)
    Xa = engine.augment(X.double(), True)
    r = Xa @ theory.least_squares(X, y, bias=True).theta - y.double()
    sq = (Xa * Xa).sum(1)  # ‖x_i‖²
    Q = ((sq[:, None, None] * Xa[:, :, None] * Xa[:, None, :]).mean(0) - H @ H) / batch_size
    b = (sq * r) @ Xa / len(Xa) / batch_size
    M0 = float(torch.trace(sigma1)) / batch_size
    eig = torch.linalg.eigvalsh(H)
    L, c = float(eig[-1]), float(eig[0])
    spare = (1 / (eta * L) - 1) * H @ H - Q  # M_V H² − Q at the largest M_V allowed
    M = M0 + float(b @ torch.linalg.solve(spare, b)) if bool((torch.linalg.eigvalsh(spare) > 0).all()) else math.inf
    return FixedStepBound(eta, batch_size, L, c, M0, M, independent_excess(X, y, eta, batch_size)[0], floor)


def gd_gap(X, y, theta0: torch.Tensor, eta: float, steps: int) -> float:
    """Excess loss after `steps` full-batch steps of η on the mean ½-loss, exactly: δ_T = (I − ηH)^T δ_0."""
    H, _, _, _ = _moments(X, y)
    fit = theory.least_squares(X, y, bias=True)
    delta = torch.linalg.matrix_power(torch.eye(H.shape[0], dtype=torch.float64) - eta * H, steps) @ (
        theta0.double().flatten() - fit.theta)
    return float(0.5 * delta @ H @ delta)


@dataclass(frozen=True)
class SgdFloorConfig:
    """D2L's data (the article's seed); constant-step SGD from θ* under both samplings."""

    seed: int = 20
    lrs: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1)  # D2L's lr is 0.03
    batch_size: int = 10
    runs: int = 256  # resolves the reshuffled excess to about 1 % (one standard error) at D2L's step; 3 s, batched
    epochs: int = 25  # at η = 0.003 an epoch of 100 steps contracts the slowest mode by about 0.74
    burn_in: int = 5


@dataclass(frozen=True)
class SgdFloorResult:
    """Per (sampling, η): the mean excess loss over the floor, measured at epoch ends and over all steps."""

    config: SgdFloorConfig
    # sampling, lr, epoch_end, all_steps (relative to the floor), epoch_end_se and all_steps_se (their standard
    # errors over the independent runs: steps within a run are correlated, runs are not), exact, leading
    frame: pd.DataFrame
    floor: float
    baseline_gd_gap: float  # excess over the floor, relative, of full-batch GD with the baseline's steps
    baseline_noise: float  # predicted relative excess of independent sampling at the baseline's η and B

    def at(self, sampling: str, lr: float) -> pd.Series:
        f = self.frame
        return f[(f.sampling == sampling) & np.isclose(f.lr, lr)].iloc[0]

    def summary(self) -> dict:
        return {"experiment": "floor-sgd-floor", **asdict(self.config), "floor": self.floor,
                "baseline_gd_gap": self.baseline_gd_gap, "baseline_noise": self.baseline_noise,
                "relative_excess": {s: g.drop(columns="sampling").to_dict("list")
                                    for s, g in self.frame.groupby("sampling")}}

    def largest_relative_se(self) -> float:
        """The largest standard error of the table's measured columns, relative to its value."""
        ind, rr = self.frame[self.frame.sampling == "with replacement"], self.frame[self.frame.sampling == "reshuffled"]
        return float(max((ind.all_steps_se / ind.all_steps).max(), (rr.epoch_end_se / rr.epoch_end).max(),
                         (rr.all_steps_se / rr.all_steps).max()))

    def table(self) -> pd.DataFrame:
        """Relative excess (%) per η: independent draws predicted and measured, reshuffling measured."""
        ind, rr = self.frame[self.frame.sampling == "with replacement"], self.frame[self.frame.sampling == "reshuffled"]
        def pct(v: float) -> str:
            return f"{num(v, '#.3g')} %"  # three digits, trailing zeros kept: as reshuffling.comparison_table
        return pd.DataFrame({
            "(η/4B)·tr Σ₁": ind.leading.map(lambda v: pct(100 * v)).to_numpy(),
            t("exact, indep."): ind.exact.map(lambda v: pct(100 * v)).to_numpy(),
            t("measured, indep."): ind.all_steps.map(lambda v: pct(100 * v)).to_numpy(),
            t("reshuffled, epoch ends"): rr.epoch_end.map(lambda v: pct(100 * v)).to_numpy(),
            t("reshuffled, all steps"): rr.all_steps.map(lambda v: pct(100 * v)).to_numpy(),
        }, index=pd.Index([f"{v:g}" for v in ind.lr], name="η"))


@cached
def sgd_floor(config: SgdFloorConfig = SgdFloorConfig()) -> SgdFloorResult:
    """Measure the stationary excess of constant-step SGD on the article's data, both samplings, against theory."""
    ds, _, _ = experiments.article_start(config.seed)
    X, y = ds.X.double(), ds.y.double()
    fit = theory.least_squares(X, y, bias=True)
    S, E, B = config.runs, config.epochs, config.batch_size
    rows = []
    for s in sampling.SAMPLINGS:
        orders = sampling.orders_for(s, config.seed, S, E, ds.n)  # the same S orders at every η
        for eta in config.lrs:  # one engine batch per η: only one η's recorded steps are held at a time
            lr = torch.full((S,), eta, dtype=torch.float64)
            traj = checked(engine.train(X, y, fit.theta[:, None].repeat(1, S), lr, orders, batch_size=B,
                                        record_steps=True), "sgd-floor", eta)
            steps = traj.step_params[config.burn_in * traj.steps_per_epoch + 1 :]  # (T, p, S)
            ends = traj.epoch_params[config.burn_in + 1 :]
            excess = [theory.excess_loss(t.movedim(1, -1), fit).reshape(len(t), S) / fit.loss_floor
                      for t in (ends, steps)]
            del traj, steps, ends
            exact, leading = independent_excess(X, y, eta, B)
            rows.append({"sampling": s, "lr": eta, "epoch_end": float(excess[0].mean()),
                         "epoch_end_se": float(excess[0].mean(0).std() / S**0.5),
                         "all_steps": float(excess[1].mean()),
                         "all_steps_se": float(excess[1].mean(0).std() / S**0.5), "exact": exact / fit.loss_floor,
                         "leading": leading / fit.loss_floor})
    split = baseline_split(experiments.RunConfig(config.seed))
    return SgdFloorResult(config, pd.DataFrame(rows), fit.loss_floor, *split)


@dataclass(frozen=True)
class BaselineSplit:
    """The baseline's remaining gap over the floor, split in two; both relative to the floor."""

    config: experiments.RunConfig
    gd_gap: float  # full-batch GD's gap after the baseline's number of steps
    sgd_noise: float  # SGD's own predicted excess: independent batches at the baseline's η and B

    def summary(self) -> dict:
        return {"experiment": "floor-baseline-split", **asdict(self.config), "gd_gap": self.gd_gap,
                "sgd_noise": self.sgd_noise}


@cached
def baseline_gap_split(base: experiments.RunConfig) -> BaselineSplit:
    """Both closed forms, in float64: δ_T = (I − ηH)^T δ_0 with T = epochs·⌈n/B⌉ steps of η on the mean loss,
    and the exact stationary excess of independent batches of B at that η. Cached: 1.6 s of torch, and
    chapters 01 and 02 show it.
    """
    ds, _, theta0 = experiments.article_start(base.seed)
    X, y = ds.X.double(), ds.y.double()
    floor = theory.least_squares(X, y, bias=True).loss_floor
    steps = base.epochs * -(-ds.n // base.batch_size)
    return BaselineSplit(base, gd_gap(X, y, theta0, base.lr, steps) / floor,
                         independent_excess(X, y, base.lr, base.batch_size)[0] / floor)


def baseline_split(base: experiments.RunConfig) -> tuple[float, float]:
    """The baseline's remaining gap, split: (full-batch GD's gap after the same steps, SGD's own predicted excess)."""
    split = baseline_gap_split(base)
    return split.gd_gap, split.sgd_noise


@cached
def baseline_reshuffled(base: experiments.RunConfig) -> reshuffling.ReshuffledExcess:
    """SGD's own floor for the baseline's sampling (reshuffled batches), relative to the loss floor.

    reshuffling.reshuffled_excess (every batch curvature replaced by H, the bias at leading order) at the
    baseline's η and B on the article's data; each field divided by the floor. `baseline_split`'s sgd_noise is
    the same quantity for independent draws. Cached: chapter 1 reads it back without torch.
    """
    ds, _, _ = experiments.article_start(base.seed)
    X, y = ds.X.double(), ds.y.double()
    fit = theory.least_squares(X, y, bias=True)
    Xa = engine.augment(X, True)
    r = reshuffling.reshuffled_excess(Xa, Xa @ fit.theta - y, base.batch_size, base.lr)
    f = fit.loss_floor
    return reshuffling.ReshuffledExcess(r.eta, r.epoch_end / f, r.all_steps / f, r.bias / f)
