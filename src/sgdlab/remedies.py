"""What ends SGD's cycle: the remedies side by side on w·x with the label 3.1 (float64, the article's η).

Section "SGD's own floor, and its remedies" of report/02-loss-floor.qmd. Every method sees the same
order streams; each is judged by |w − w*| after each epoch (root mean square and 10–90 % band over seeds):
constant step under both samplings, Polyak–Ruppert averaging, a Robbins–Monro decaying step, larger
batches (2 and all 4 examples, one step of η on the batch's mean loss), and SVRG.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import sampling
from ._lazy import torch
from .cache import cached
from .cycle import cycle_constants

CONSTANT, INDEPENDENT = "constant η, reshuffled", "constant η, with replacement"
DECAYING, DECAYING_INDEPENDENT = "η_t = η·t₀/(t₀ + t), reshuffled", "η_t = η·t₀/(t₀ + t), with replacement"
AVERAGED, BATCH2, FULL, SVRG = "averaged, with replacement", "batch 2, reshuffled", "full batch (GD)", "SVRG"
SAMPLING_PANEL = (CONSTANT, INDEPENDENT, DECAYING, DECAYING_INDEPENDENT)
REMEDY_PANEL = (CONSTANT, AVERAGED, BATCH2, FULL, SVRG)
METHODS = SAMPLING_PANEL + REMEDY_PANEL[1:]


@dataclass(frozen=True)
class RemediesConfig:
    """The remedies on w·x (label 3.1, float64) from the article's w = 2, `runs` order seeds each."""

    seed: int = 20
    runs: int = 32
    effective_lr: float = 0.03  # the article's lr / 10, a step of η on one example's loss
    decay_steps: float = 40.0  # t0, in steps: the step halves after 10 epochs
    average_from: int = 10  # Polyak–Ruppert: the mean of all iterates after this epoch
    epochs: int = 1000


@dataclass(frozen=True)
class RemediesResult:
    """|w − w*| after each epoch: root mean square and 10–90 % band over order seeds, per method."""

    config: RemediesConfig
    frame: pd.DataFrame  # method, epoch, rms, lo, hi (10–90 % of |w − w*|), exact (where a closed form applies)
    slopes: dict  # method -> fitted log-log slope of the rms from epoch E/10 on

    def final(self, method: str) -> float:
        """Root-mean-square distance to w* over the seeds after the last epoch."""
        return float(self.frame[self.frame.method == method].iloc[-1]["rms"])

    def final_band(self, method: str) -> tuple[float, float]:
        """The 10–90 % range of |w − w*| over the seeds after the last epoch."""
        last = self.frame[self.frame.method == method].iloc[-1]
        return float(last.lo), float(last.hi)

    def epochs_to(self, method: str, level: float) -> int:
        """First epoch whose rms distance to w* is at most `level`."""
        f = self.frame[self.frame.method == method]
        return int(f[f.rms <= level].epoch.iloc[0])

    def summary(self) -> dict:
        return {"experiment": "floor-remedies", **asdict(self.config), "slopes": self.slopes,
                "final_distance": {m: self.final(m) for m in METHODS}}


def svrg(x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, eta: float, orders: torch.Tensor) -> torch.Tensor:
    """SVRG on mean (wx − y)² for K runs, (E, K, n) orders: a snapshot and its full gradient at each epoch start.

    Step on example i: w ← w − η(∇ℓ_i(w) − ∇ℓ_i(w̃) + ∇ℓ(w̃)) = w − η(2x_i²(w − w̃) + ∇ℓ(w̃)): at w = w* it is zero.
    Returns w after each epoch, (E + 1, K).
    """
    w, out = w0.clone(), [w0.clone()]
    for order in orders:  # (K, n)
        snap = w.clone()
        full = 2 * (x[:, None] * (x[:, None] * snap - y[:, None])).mean(0)  # ∇ℓ(w̃), (K,)
        for i in order.T:  # (K,) one example per run
            w -= eta * (2 * x[i] ** 2 * (w - snap) + full)
        out.append(w.clone())
    return torch.stack(out)


@cached
def remedies(config: RemediesConfig = RemediesConfig()) -> RemediesResult:
    """Does w reach w*? Constant-step SGD no, under either sampling; the five remedies, measured side by side."""
    ds, w_star = sampling.noisy64()
    _train = sampling.train_noisy
    K, E, eta = config.runs, config.epochs, config.effective_lr
    shuffled = sampling.orders_for("reshuffled", config.seed, K, E, ds.n)
    drawn = sampling.orders_for("with replacement", config.seed, K, E, ds.n)
    start = torch.full((1, K), 2.0, dtype=torch.float64)
    independent = _train(ds, start, eta, drawn, record_steps=True)
    first = config.average_from * ds.n  # Polyak–Ruppert: mean of the iterates after this step
    steps = independent.step_params[first:, 0]  # (T, K)
    averaged = steps.cumsum(0)[:: ds.n] / torch.arange(1, len(steps) + 1, ds.n, dtype=torch.float64)[:, None]
    ends = {
        CONSTANT: _train(ds, start, eta, shuffled).epoch_params[:, 0],
        INDEPENDENT: independent.epoch_params[:, 0],
        AVERAGED: torch.cat([independent.epoch_params[: config.average_from, 0], averaged]),
        DECAYING: _train(ds, start, eta, shuffled, lr_decay_steps=config.decay_steps).epoch_params[:, 0],
        DECAYING_INDEPENDENT: _train(ds, start, eta, drawn, lr_decay_steps=config.decay_steps).epoch_params[:, 0],
        BATCH2: _train(ds, start, eta, shuffled, batch_size=2).epoch_params[:, 0],
        FULL: _train(ds, start[:, :1], eta, shuffled[:, 0], batch_size=ds.n).epoch_params[:, 0].expand(-1, K),
        SVRG: svrg(ds.X[:, 0], ds.y, start[0], eta, shuffled),
    }
    offset = float(cycle_constants()[1]) * eta  # reshuffling's leading-order mean offset (@eq-lf-offset)
    t = torch.arange(E * ds.n, dtype=torch.float64)
    eta_t = (eta * config.decay_steps / (config.decay_steps + t)).numpy()
    exact = {CONSTANT: np.full(E + 1, offset),  # leading order, not exact: labelled so in the figure
             DECAYING_INDEPENDENT: np.sqrt(sampling.second_moment_with_replacement(eta_t, 2.0 - w_star)[:: ds.n]),
             DECAYING: np.concatenate([[np.nan], offset / eta * eta_t[ds.n - 1 :: ds.n]]),
             INDEPENDENT: np.full(E + 1, float(sampling.stationary_with_replacement(eta)[1]) ** 0.5)}
    frames, slopes = [], {}
    fit = slice(E // 10, None)
    for name in METHODS:
        d = (ends[name] - w_star).abs()  # (E + 1, K)
        q = torch.quantile(d, torch.tensor([0.1, 0.9], dtype=torch.float64), dim=1)
        rms = d.square().mean(1).sqrt().numpy()
        frames.append(pd.DataFrame({"method": name, "epoch": np.arange(E + 1), "rms": rms, "lo": q[0].numpy(),
                                    "hi": q[1].numpy(), "exact": exact.get(name, np.full(E + 1, np.nan))}))
        epochs = np.arange(E + 1)[fit]
        slopes[name] = float(np.polyfit(np.log(epochs), np.log(np.maximum(rms[fit], 1e-300)), 1)[0])
    return RemediesResult(config, pd.concat(frames, ignore_index=True), slopes)
