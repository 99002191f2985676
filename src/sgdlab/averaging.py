"""Polyak–Ruppert averaging of constant-step SGD on the label-3.1 toy, exactly, under both samplings.

The average of all iterates converges to the mean of the stationary law over every step, not to w*.
With replacement that mean is w* (E c = 0), and the average closes in like t^(−1/2). Reshuffled, each
epoch is the same affine map in a random order (sampling._toy_steps): the iterates of the stationary
cycle average to w* plus an O(η) bias that no number of steps removes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from . import data, sampling, stats
from ._lazy import torch
from .cache import cached
from .fmt import num
from .i18n import t
from .loss_floor import exact_least_squares


def averaged_offset_reshuffled(eta) -> Fraction:
    """lim of the average of all iterates − w* under reshuffling: the mean of e over the n steps of a stationary epoch.

    The epoch starts at e_0 with E e_0 = m (sampling.stationary_reshuffled), independent of its order π;
    after j steps e_j = (Π_{s≤j} a_{π_s}) e_0 + c_j(π), so E e_j = E[Π a]·m + E c_j, averaged over all n!
    orders and the n positions j = 1..n (the last is the next epoch's start).
    """
    steps = sampling._toy_steps(Fraction(eta))
    m, _ = sampling.stationary_reshuffled(eta)
    total, orders = Fraction(0), list(itertools.permutations(steps))
    for order in orders:
        gain, c = Fraction(1), Fraction(0)
        for a, b in order:
            gain, c = gain * a, a * c + b
            total += gain * m + c
    return total / (len(orders) * len(steps))


@dataclass(frozen=True)
class AveragingBias:
    """The reshuffled average's bias on the toy w·x (label 3.1), exactly."""

    eta: Fraction
    offset: Fraction  # lim average − w*
    epoch_end_offset: Fraction  # E e at epoch ends, for comparison
    excess: Fraction  # f(w* + offset) − f* = ½·f''·offset², f'' = 2·mean x²
    floor: Fraction  # f* = 1/1120

    @property
    def relative_excess(self) -> Fraction:
        return self.excess / self.floor


def averaging_bias(eta) -> AveragingBias:
    """The bias that Polyak–Ruppert averaging of reshuffled SGD never removes, and the excess loss it leaves."""
    offset = averaged_offset_reshuffled(eta)
    _, _, floor = exact_least_squares(data.TOY_X, data.TOY_Y_NOISY, bias=False)
    curvature = 2 * sum(Fraction(str(v)) ** 2 for v in data.TOY_X) / len(data.TOY_X)  # of mean (wx − y)²
    return AveragingBias(Fraction(eta), offset, sampling.stationary_reshuffled(eta)[0],
                         curvature * offset**2 / 2, floor)


# --------------------------------------------------------------------------- with replacement: the t^(−1/2) rate


def _replacement_moments(eta: float) -> tuple[float, float, float, float]:
    """E a, E a², E[a c], E c² of one step e -> a e + c with a uniform example (float64)."""
    a, c = (np.array([float(v) for v in col]) for col in zip(*sampling._toy_steps(Fraction(eta)), strict=True))
    return a.mean(), (a * a).mean(), (a * c).mean(), (c * c).mean()


def averaged_rms_with_replacement(eta: float, e0: float, start: int, steps: int) -> np.ndarray:
    """RMS of ē_T = (e_start + … + e_{start+T−1})/T for T = 1..steps, with replacement from e_0 = e0, exactly.

    With S the running sum: E e' = Ea·E e (E c = 0), E e'² = Ea²·E e² + 2E[ac]·E e + E c²,
    E[S e'] = Ea·E[S e] and E S'² = E S² + 2E[S e'] + E e'² (a, c independent of the past).
    """
    Ea, Ea2, Eac, Ec2 = _replacement_moments(eta)
    m1, m2 = Ea**start * e0, float(sampling.second_moment_with_replacement([eta] * start, e0)[-1])  # E e, E e²
    S_e, S2, out = m2, m2, [m2]  # S = e_start after the first term: E[S e] = E S² = E e²
    for _ in range(steps - 1):
        S_e_next = Ea * S_e  # E[S e'] with e' the next iterate
        m1, m2 = Ea * m1, Ea2 * m2 + 2 * Eac * m1 + Ec2
        S2 += 2 * S_e_next + m2
        S_e = S_e_next + m2  # E[S' e'] = E[S e'] + E e'²
        out.append(S2)
    T = np.arange(1, steps + 1)
    return np.sqrt(np.array(out)) / T


def asymptotic_rms(eta: float, T: int) -> tuple[float, float]:
    """RMS of the average of T stationary iterates, to leading order in 1/T: (at this η, as η → 0).

    At a fixed η the autocovariance is γ_k = (E a)^k γ_0 (E c = 0), so T·Var ē → γ_0 (1 + E a)/(1 − E a),
    γ_0 = E c²/(1 − E a²) (sampling.stationary_with_replacement). As η → 0 this tends to Polyak and
    Juditsky's E g²/f''² (g = ∇ℓ_i(w*), f'' the mean loss's curvature), which does not depend on η.
    """
    Ea, Ea2, _, Ec2 = _replacement_moments(eta)
    gamma0 = Ec2 / (1 - Ea2)
    curvature = 2 * float(np.mean(np.square(data.TOY_X)))
    return math.sqrt(gamma0 * (1 + Ea) / ((1 - Ea) * T)), math.sqrt(Ec2 / eta**2 / curvature**2 / T)


# --------------------------------------------------------------------------- both, measured on the engine


@dataclass(frozen=True)
class AveragingConfig:
    """Polyak–Ruppert averages of constant-step SGD on w·x (label 3.1, float64) from w = 2, both samplings."""

    seed: int = 20
    runs: int = 32
    effective_lr: float = 0.03  # the article's lr / 10
    epochs: int = 1000
    average_from: int = 10  # the mean of the iterates from this epoch's end on (as floor-remedies)


@dataclass(frozen=True)
class AveragingResult:
    """The averages' distance to w*: the reshuffled bias (exact vs measured), the t^(−1/2) rate with replacement."""

    config: AveragingConfig
    bias: AveragingBias
    reshuffled_offset: float  # measured: the runs' mean of (final average − w*)
    reshuffled_offset_se: float  # its standard error over the independent runs
    epochs: np.ndarray  # average_from … epochs
    replacement_rms: np.ndarray  # measured rms over the runs of (average − w*) at those epochs
    replacement_exact: np.ndarray  # the exact rms (averaged_rms_with_replacement)
    asymptotic: tuple[float, float]  # asymptotic_rms at the final count: (this η, η → 0)

    @property
    def averaged_steps(self) -> int:
        """Iterates in the final average: the epoch-end iterate of average_from and every step after it."""
        return (self.config.epochs - self.config.average_from) * len(data.TOY_X) + 1

    def slope(self, curve: np.ndarray, first: int | None = None) -> float:
        """Log–log slope of a curve against the epoch, from epoch `first` (default E/10, as floor-remedies)."""
        keep = self.epochs >= (self.config.epochs // 10 if first is None else first)
        return float(np.polyfit(np.log(self.epochs[keep]), np.log(curve[keep]), 1)[0])

    @property
    def rms_probability(self) -> float:
        """P(χ²_K ≤ K·(measured/exact)²): how low the measured rms is for K independent, Gaussian averages."""
        K = self.config.runs
        ratio = (self.replacement_rms[-1] / self.replacement_exact[-1]) ** 2
        return float(stats.chi2_cdf(torch.tensor([K * ratio], dtype=torch.float64), K)[0])

    def table(self) -> pd.DataFrame:
        """Both samplings' averages: the exact limit or rms beside the engine's, formatted."""
        b, K, T = self.bias, self.config.runs, self.averaged_steps
        first = self.config.epochs // 10
        rows = {
            t("reshuffled: limit of the average − w*"): (  # the engine's digits: as many as its standard error carries
                num(float(b.offset), ".4e"),
                f"{num(self.reshuffled_offset, '.3e')} ± {num(self.reshuffled_offset_se, '.1e')}"),
            t("reshuffled: mean of the epoch ends − w*"): (num(float(b.epoch_end_offset), ".4e"), "—"),
            t("reshuffled: excess loss of that limit"): (t("{} ({:.3f} % of the floor)").format(
                num(float(b.excess), '.3e'), 100 * float(b.relative_excess)), "—"),
            t("with replacement: rms of the average of T = {}").format(f"{T:,}"): (
                num(self.replacement_exact[-1], ".3e"), num(self.replacement_rms[-1], ".3e")),
            t("with replacement: its t^(−1/2) asymptote, this η"): (num(self.asymptotic[0], ".3e"), "—"),
            t("with replacement: the same as η → 0 (Polyak–Juditsky)"): (num(self.asymptotic[1], ".3e"), "—"),
            t("with replacement: log–log slope, epochs {}–{}").format(first, self.config.epochs):
                (num(self.slope(self.replacement_exact), ".3f"), num(self.slope(self.replacement_rms), ".3f")),
        }
        return pd.DataFrame(rows.values(), columns=[t("exact"), t("engine ({} runs)").format(K)],
                            index=pd.Index(rows.keys(), name=t("quantity")))

    def summary(self) -> dict:
        b = self.bias
        return {"experiment": "floor-averaging", **asdict(self.config),
                "reshuffled_offset_exact": float(b.offset), "reshuffled_offset": self.reshuffled_offset,
                "reshuffled_offset_se": self.reshuffled_offset_se, "epoch_end_offset_exact": float(b.epoch_end_offset),
                "reshuffled_excess_exact": float(b.excess), "reshuffled_relative_excess": float(b.relative_excess),
                "replacement_rms": float(self.replacement_rms[-1]),
                "replacement_rms_exact": float(self.replacement_exact[-1]),
                "asymptotic_rms": list(self.asymptotic), "slope": self.slope(self.replacement_rms),
                "slope_exact": self.slope(self.replacement_exact)}


@cached
def averaging(config: AveragingConfig = AveragingConfig()) -> AveragingResult:
    """Both samplings on the engine, the average of all iterates from epoch `average_from`, against the closed forms."""
    ds, w_star = sampling.noisy64()
    n, K, E = ds.n, config.runs, config.epochs
    start = torch.full((1, K), 2.0, dtype=torch.float64)
    first = config.average_from * n
    means = {}
    for s in sampling.SAMPLINGS:
        traj = sampling.train_noisy(ds, start, config.effective_lr, sampling.orders_for(s, config.seed, K, E, n),
                                    record_steps=True)
        steps = traj.step_params[first:, 0] - w_star  # (T, K)
        means[s] = steps.cumsum(0)[::n] / torch.arange(1, len(steps) + 1, n, dtype=torch.float64)[:, None]
    final = means["reshuffled"][-1]
    T = (E - config.average_from) * n + 1
    exact = averaged_rms_with_replacement(config.effective_lr, 2.0 - w_star, first, T)[::n]
    return AveragingResult(config, averaging_bias(Fraction(str(config.effective_lr))), float(final.mean()),
                           float(final.std() / K**0.5), np.arange(config.average_from, E + 1),
                           means["with replacement"].square().mean(1).sqrt().numpy(), exact,
                           asymptotic_rms(config.effective_lr, T))
