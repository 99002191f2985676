"""Reshuffling vs independent sampling: where SGD's iterate sits, exactly and measured.

Section "Two ways to draw the batches" of report/02-loss-floor.qmd. D2L's `data_iter` reshuffles
once per epoch and walks the examples without replacement; the textbook analyses of SGD (Robbins–
Monro, Bottou, Curtis & Nocedal) assume independent draws, with replacement. On the toy w·x with
the label 3.1 both stationary laws have exact closed forms (`stationary_*`, Fractions); the sweep
runs both samplings side by side on the engine (orders with replacement: torch.randint).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from . import data, engine, stats
from ._lazy import torch
from .article_log import checked
from .cache import cached
from .fmt import num
from .i18n import t
from .loss_floor import exact_least_squares

SAMPLINGS = ("reshuffled", "with replacement")


def replacement_orders(n: int, epochs: int, generator: torch.Generator) -> torch.Tensor:
    """n independent uniform draws per "epoch", (epochs, n): sampling with replacement."""
    return torch.randint(0, n, (epochs, n), generator=generator)


def orders_for(sampling: str, seed: int, runs: int, epochs: int, n: int) -> torch.Tensor:
    """(E, K, n) orders, one stream per run (seed + k), reshuffled or drawn with replacement."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}")
    draw = data.batch_orders if sampling == "reshuffled" else replacement_orders
    return torch.stack([draw(n, epochs, data.generator(seed + k, f"order/{sampling}")) for k in range(runs)], 1)


# --------------------------------------------------------------------------- exact stationary laws on the toy


def _toy_steps(eta: Fraction, x=data.TOY_X, y=data.TOY_Y_NOISY) -> list[tuple[Fraction, Fraction]]:
    """Each example's step on e = w − w* as an affine map e -> a e + c: a = 1 − 2ηx², c = −2ηx r (eq-lf-sgd-error)."""
    w_star, _, _ = exact_least_squares(x, y, bias=False)
    xs, ys = [Fraction(str(v)) for v in x], [Fraction(str(v)) for v in y]
    return [(1 - 2 * eta * u * u, -2 * eta * u * (u * w_star - v)) for u, v in zip(xs, ys, strict=True)]


def stationary_reshuffled(eta) -> tuple[Fraction, Fraction]:
    """Mean and variance of the epoch-end e = w − w* under reshuffling, exactly (all n! orders).

    An epoch in order π maps e -> A e + c(π), A = Π a_i the same for every order; in the stationary
    law m = E c / (1 − A) and E e² = (E c² + 2 A m E c) / (1 − A²).
    """
    steps = _toy_steps(Fraction(eta))
    cs = []
    for order in itertools.permutations(steps):
        c = Fraction(0)
        for a, b in order:
            c = a * c + b
        cs.append(c)
    A = math.prod(a for a, _ in steps)
    Ec, Ec2 = sum(cs) / len(cs), sum(c * c for c in cs) / len(cs)
    m = Ec / (1 - A)
    second = (Ec2 + 2 * A * m * Ec) / (1 - A * A)
    return m, second - m * m


def epoch_range_from_optimum(eta) -> Fraction:
    """Mean over all n! orders of w's range (max − min) over one reshuffled epoch started at w*, exactly.

    The same range as @eq-lf-width and `epoch_ranges`, with every step's contraction kept (no leading
    order) but from the one start e = 0: the engine's epochs start wherever the cycle has put them.
    """
    steps = _toy_steps(Fraction(eta))
    total = Fraction(0)
    orders = list(itertools.permutations(steps))
    for order in orders:
        e, seen = Fraction(0), [Fraction(0)]
        for a, c in order:
            e = a * e + c
            seen.append(e)
        total += max(seen) - min(seen)
    return total / len(orders)


def stationary_excess_reshuffled(eta) -> Fraction:
    """The stationary excess loss of the epoch ends under reshuffling (w·x, label 3.1), exactly: mean x²·(m² + v).

    The toy's loss mean (wx − y)² is its floor plus mean x²·(w − w*)², and E e² = m² + v (stationary_reshuffled).
    """
    m, v = stationary_reshuffled(eta)
    return sum(Fraction(str(x)) ** 2 for x in data.TOY_X) / len(data.TOY_X) * (m * m + v)


def stationary_with_replacement(eta) -> tuple[Fraction, Fraction]:
    """Mean and variance of e = w − w* under independent uniform draws, exactly: 0 and E c² / (1 − E a²).

    E c = −2η mean(x r) = 0 (the normal equation), so the mean obeys m = E a · m: m = 0.
    """
    steps = _toy_steps(Fraction(eta))
    n = len(steps)
    Ea2, Ec2 = sum(a * a for a, _ in steps) / n, sum(c * c for _, c in steps) / n
    return Fraction(0), Ec2 / (1 - Ea2)


def second_moment_with_replacement(etas, e0: float) -> np.ndarray:
    """E[e_t²] under independent draws with step sizes etas[t], from e_0 = e0: an exact recursion (float64).

    E e' = E a · E e (E c = 0) and E e'² = E a² · E e² + 2 E[a c] · E e + E c², with a, c of `_toy_steps`.
    """
    x = np.array(data.TOY_X)
    w_star = float(exact_least_squares(data.TOY_X, data.TOY_Y_NOISY, bias=False)[0])
    r = x * w_star - np.array(data.TOY_Y_NOISY)
    mean, second, out = e0, e0 * e0, [e0 * e0]
    for eta in etas:
        a, c = 1 - 2 * eta * x * x, -2 * eta * x * r
        mean, second = a.mean() * mean, (a * a).mean() * second + 2 * (a * c).mean() * mean + (c * c).mean()
        out.append(second)
    return np.array(out)


# --------------------------------------------------------------------------- both samplings over η


@dataclass(frozen=True)
class SamplingConfig:
    """w·x on the label-3.1 data (float64), from w*: `runs` seeds per step size η and per sampling."""

    seed: int = 20
    runs: int = 16
    effective_lrs: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03)  # 1-2-5 steps up to the article's
    epochs: int = 2000  # η = 1e-3 forgets its start within 1/(2η·3.5) ≈ 140 steps; the rest averages
    burn_in: int = 200


@dataclass(frozen=True)
class SamplingResult:
    """Per (sampling, η): epoch-end offset and spread, measured and exact, and w's mean range within an epoch."""

    config: SamplingConfig
    frame: pd.DataFrame  # sampling, effective_lr, offset, offset_se, sd, offset_exact, sd_exact, epoch_range(_se)
    slopes: dict  # "offset"/"sd"/"epoch_range" -> sampling -> fitted log-log slope
    # per row of frame, the p-value of `offset_p`: computed with the result (torch), as reading it must not need torch
    offset_ps: tuple[float, ...]

    def _row(self, sampling: str, eta: float) -> int:
        f = self.frame
        return int(np.flatnonzero((f.sampling == sampling) & np.isclose(f.effective_lr, eta))[0])

    def at(self, sampling: str, eta: float) -> pd.Series:
        return self.frame.iloc[self._row(sampling, eta)]

    def offset_p(self, sampling: str, eta: float) -> float:
        """Two-sided t-test of the measured mean offset against the exact one, over the independent runs."""
        return self.offset_ps[self._row(sampling, eta)]

    def summary(self) -> dict:
        rows = {s: g.drop(columns="sampling").to_dict("list") for s, g in self.frame.groupby("sampling")}
        return {"experiment": "floor-sampling", **asdict(self.config), "by_sampling": rows, "slopes": self.slopes}

    def table(self) -> pd.DataFrame:
        """At each η: offset and sd of the epoch-end w, measured and (exact), for both samplings."""
        out = {}
        for s, g in self.frame.groupby("sampling", sort=False):
            out[t("offset, {}").format(t(s))] = [
                f"{num(m, '+.1e')} ({num(e, '+.1e')})" if e else f"{num(m, '+.1e')} (0)"
                for m, e in zip(g.offset, g.offset_exact, strict=True)]
            out[t("sd, {}").format(t(s))] = [f"{num(m, '.1e')} ({num(e, '.1e')})"
                                             for m, e in zip(g.sd, g.sd_exact, strict=True)]
        etas = self.frame.effective_lr.unique()  # the config's values as written there (round numbers)
        return pd.DataFrame(out, index=pd.Index([f"{v:g}" for v in etas], name="η"))


def epoch_ranges(w: torch.Tensor, n: int) -> torch.Tensor:
    """Per epoch and run, max − min of w over the epoch: its start and its n steps, (E, K) from (E·n + 1, K).

    The width of the cycle as @eq-lf-width measures it, one epoch from its own start; the mean over epochs
    and runs is the cycle's width in the report (a range over many epochs would grow with their number).
    """
    windows = w.unfold(0, n + 1, n)  # (E, K, n + 1): epoch E's start is epoch E − 1's end
    return windows.amax(-1) - windows.amin(-1)


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(np.abs(y)), 1)[0])


def noisy64():
    """The label-3.1 data in float64 (the asymptotics, not float32 rounding) and w* = 143/140."""
    ds = data.toy_data(True, dtype=torch.float64)
    return ds, float(exact_least_squares(data.TOY_X, data.TOY_Y_NOISY, bias=False)[0])


def train_noisy(ds, start, lr, orders, batch_size: int = 1, **kw) -> engine.Trajectory:
    """w·x on (ds), a step of lr on the batch's mean loss (ŷ − y)², K runs at once."""
    traj = engine.train(ds.X, ds.y, start, lr, orders, batch_size=batch_size, model=engine.Model(bias=False),
                        loss="plain", grad_divisor=batch_size, **kw)
    return checked(traj, "w·x, label 3.1", float(torch.as_tensor(lr).max()))


@cached
def sampling_comparison(config: SamplingConfig = SamplingConfig()) -> SamplingResult:
    """Constant-step SGD under both samplings, K = η × runs at once per sampling, against the exact laws."""
    ds, w_star = noisy64()
    L, S, E = len(config.effective_lrs), config.runs, config.epochs
    rows = []
    for sampling in SAMPLINGS:
        orders = orders_for(sampling, config.seed, S, E, ds.n).repeat(1, L, 1)  # same streams for every η
        lr = torch.tensor(config.effective_lrs, dtype=torch.float64).repeat_interleave(S)
        traj = train_noisy(ds, torch.full((1, L * S), w_star, dtype=torch.float64), lr, orders, record_steps=True)
        ends = traj.epoch_params[config.burn_in + 1 :, 0].reshape(-1, L, S) - w_star
        ranges = epoch_ranges(traj.step_params[config.burn_in * ds.n :, 0], ds.n).reshape(-1, L, S)
        exact = stationary_reshuffled if sampling == "reshuffled" else stationary_with_replacement
        for j, eta in enumerate(config.effective_lrs):
            m, v = exact(Fraction(eta))
            run_means = ends[:, j].mean(0)  # the runs are independent; epochs within a run are not
            rows.append({"sampling": sampling, "effective_lr": eta, "offset": float(ends[:, j].mean()),
                         "offset_se": float(run_means.std() / S**0.5), "sd": float(ends[:, j].std()),
                         "offset_exact": float(m), "sd_exact": float(v) ** 0.5,
                         "epoch_range": float(ranges[:, j].mean()),
                         "epoch_range_se": float(ranges[:, j].mean(0).std() / S**0.5)})
    frame = pd.DataFrame(rows)
    slopes = {q: {s: _slope(g.effective_lr, g[q]) for s, g in frame.groupby("sampling")}
              for q in ("offset", "sd", "epoch_range")}
    return SamplingResult(config, frame, slopes, offset_p_values(frame, config.runs))


def offset_p_values(frame: pd.DataFrame, runs: int) -> tuple[float, ...]:
    """Per row of a SamplingResult's frame: two-sided t-test of the mean offset of `runs` runs against the exact."""
    return tuple(stats.t_two_sided((row.offset - row.offset_exact) / row.offset_se, runs - 1)
                 for _, row in frame.iterrows())
