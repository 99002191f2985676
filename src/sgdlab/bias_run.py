"""The article's bias run: was b trained or never updated? And why that run is slow (κ, centring).

Section "The bias run" of report/02-loss-floor.qmd. The article printed w = 1.0359 and loss 0.000848
after 30000 epochs of w·x + b but never printed b, and its only loop calls `sgd([simple_w], …)`.
Two hypotheses: (A) b is trained from 0 with w; (B) b is never updated, frozen at the value that
(w, loss) imply. Each is simulated; the article's w is placed in each one's epoch-end distribution.
Centring x turns the bias model's κ = 14.1 into 1.25: the same model, fitted in fewer epochs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from . import data, engine, experiments, sampling, theory
from ._lazy import torch
from .article_log import ARTICLE_FINAL, train_toy
from .cache import cached
from .cycle import bias_roots, order_streams
from .fmt import num
from .i18n import t

BIAS = experiments.TOY_RUNS["toy-bias"]
CENTRE = Fraction(sum(Fraction(str(v)) for v in data.TOY_X), len(data.TOY_X))  # x̄ = 3/2


def hessian(centred: bool) -> list[list[Fraction]]:
    """H = (2/n) XᵀX of the bias model's mean loss (ŷ − y)², with X = [x − c, 1], exactly (c = x̄ or 0)."""
    c = CENTRE if centred else Fraction(0)
    x = [Fraction(str(v)) - c for v in data.TOY_X]
    n = len(x)
    return [[2 * sum(u * u for u in x) / n, 2 * sum(x) / n], [2 * sum(x) / n, Fraction(2)]]


def condition_number(centred: bool) -> float:
    """κ = λ_max/λ_min of `hessian`: (t + √(t² − 4d)) / (t − √(t² − 4d)), t the trace, d the determinant."""
    (a, b), (_, d) = hessian(centred)
    t, det = float(a + d), float(a * d - b * b)
    root = (t * t - 4 * det) ** 0.5
    return (t + root) / (t - root)


@dataclass(frozen=True)
class BiasConfig:
    """Both hypotheses under `runs` order seeds (float32, as the article); centring in float64."""

    seed: int = 20
    runs: int = 64
    epochs: int = 600  # trained b forgets its start within ~300 epochs (contraction 0.93 per epoch)
    tail: int = 300
    centring_epochs: int = 120


@dataclass(frozen=True)
class BiasResult:
    """Epoch-end w and loss under each hypothesis; the excess loss per epoch with x as given and centred."""

    config: BiasConfig
    epochs: pd.DataFrame  # hypothesis, w, loss — epoch ends over the tail, all seeds
    frozen_b: float  # the root of loss(w_article, b) = loss_article that hypothesis (A) discards
    trained_b: float  # the other root, inside the band of trained b
    centring: pd.DataFrame  # inputs ("x" or "x − x̄"), epoch, median, lo, hi — excess loss over the floor

    def tail_fraction(self, hypothesis: str, w: float | None = None) -> float:
        """Share of epoch ends with w at least the article's (or `w`: a point of its rounding interval)."""
        ends = self.epochs[self.epochs.hypothesis == hypothesis].w
        return float((ends >= (ARTICLE_FINAL["toy-bias"]["w"] if w is None else w)).mean())

    def seeds_reaching(self, hypothesis: str, w: float | None = None) -> int:
        """How many order seeds have at least one epoch end in the tail with w at least the article's (or `w`).

        The k of "k of N seeds": the epoch ends of one seed are serially correlated, its seeds independent.
        """
        f = self.epochs[self.epochs.hypothesis == hypothesis]
        reached = f.w >= (ARTICLE_FINAL["toy-bias"]["w"] if w is None else w)
        return int(f.order_seed[reached].nunique())

    def w_range(self, hypothesis: str) -> tuple[float, float]:
        w = self.epochs[self.epochs.hypothesis == hypothesis].w
        return float(w.min()), float(w.max())

    def plateau(self, inputs: str) -> float:
        """The median excess loss over the last fifth of the epochs: the level of SGD's cycle."""
        f = self.centring[self.centring.inputs == inputs]
        return float(f["median"].iloc[-len(f) // 5 :].median())

    def epochs_to(self, inputs: str, level: float) -> int:
        """First epoch whose median excess loss is at most `level`."""
        f = self.centring[self.centring.inputs == inputs]
        return int(f[f["median"] <= level].epoch.iloc[0])

    def settle_epoch(self, inputs: str) -> int:
        """First epoch whose median excess loss is within twice its own plateau."""
        return self.epochs_to(inputs, 2 * self.plateau(inputs))

    def summary(self) -> dict:
        hyps = self.epochs.hypothesis.unique()
        return {"experiment": "floor-bias-run", **asdict(self.config), "frozen_b": self.frozen_b,
                "trained_b": self.trained_b, "kappa": {"x": condition_number(False), "x − x̄": condition_number(True)},
                "w_range": {h: list(self.w_range(h)) for h in hyps},
                "article_tail_fraction": {h: self.tail_fraction(h) for h in hyps},
                "article_seeds_reaching": {h: self.seeds_reaching(h) for h in hyps},
                "plateau": {i: self.plateau(i) for i in ("x", "x − x̄")},
                "settle_epoch": {i: self.settle_epoch(i) for i in ("x", "x − x̄")},
                "epochs_to_twice_uncentred_plateau": {i: self.epochs_to(i, 2 * self.plateau("x"))
                                                      for i in ("x", "x − x̄")}}

    def table(self) -> pd.DataFrame:
        """Per hypothesis: b, the epoch-end range of w and loss, and the share at least as far out as the article."""
        rows = {}
        for h, g in self.epochs.groupby("hypothesis", sort=False):
            b = t("{} (implied)").format(f"{self.trained_b:.4f}") if h.startswith("A") else f"{self.frozen_b:.4f}"
            lo, hi = self.w_range(h)
            rows[t(h)] = [b, t("{} to {}").format(f"{lo:.4f}", f"{hi:.4f}"),
                          t("{} to {}").format(f"{g.loss.min():.6f}", f"{g.loss.max():.6f}"),
                          t("{0} of {1}").format(self.seeds_reaching(h), self.config.runs),
                          f"{num(100 * self.tail_fraction(h), '.2g')} %"]
        index = pd.Index(["b", t("w at epoch ends"), t("loss at epoch ends"),
                          t("seeds with w ≥ the article's in {} epochs").format(self.config.tail),
                          t("(correlated) epoch ends with w ≥ the article's")], name=t("quantity"))
        return pd.DataFrame(rows, index=index)


def _centring(config: BiasConfig) -> pd.DataFrame:
    """The article's bias run (η, reshuffled orders, float64) with x as given and with x − x̄, from the same line."""
    K, E = config.runs, config.centring_epochs
    orders = sampling.orders_for("reshuffled", config.seed, K, E, len(data.TOY_X))
    frames = []
    for inputs, c in (("x", 0.0), ("x − x̄", float(CENTRE))):
        ds = data.toy_data(True, dtype=torch.float64)
        X = ds.X - c
        fit = theory.least_squares(X, ds.y, bias=True, loss="plain")
        start = torch.tensor([[2.0], [2.0 * c]], dtype=torch.float64).expand(-1, K)  # ŷ = 2x at every x
        traj = engine.train(X, ds.y, start.contiguous(), BIAS.effective_lr, orders, batch_size=1, loss="plain",
                            grad_divisor=1)
        excess = theory.excess_loss(traj.epoch_params.movedim(1, -1), fit)  # (E + 1, K)
        q = torch.quantile(excess, torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64), dim=1)
        frames.append(pd.DataFrame({"inputs": inputs, "epoch": np.arange(E + 1), "median": q[0].numpy(),
                                    "lo": q[1].numpy(), "hi": q[2].numpy()}))
    return pd.concat(frames, ignore_index=True)


@cached
def bias_hypotheses(config: BiasConfig = BiasConfig()) -> BiasResult:
    """Simulate (A) b trained with w and (B) b frozen at the root the article's (w, loss) imply; and centring."""
    art = ARTICLE_FINAL["toy-bias"]
    fit = theory.least_squares(*[t.double() for t in (data.toy_data(True).X, data.toy_data(True).y)], bias=True,
                               loss="plain")
    roots = bias_roots(fit, art["w"], art["loss"])
    frozen, trained = min(roots), max(roots)  # (A) keeps the root inside trained b's band, the upper one
    # The cycle's order streams: with the same runs and epochs, (A) is cycle.article_cycle's bias run.
    orders = order_streams(config.seed, config.runs, config.epochs, len(data.TOY_X))
    tail = slice(config.epochs - config.tail + 1, None)
    frames = []
    traj, _ = train_toy(BIAS, orders)
    frames.append(("A: b trained from 0", traj.epoch_params[tail, 0], traj.epoch_loss[tail]))
    # (B): w·x + b with b fixed is w·x on the labels y − b; float32, as the article's run.
    noisy = experiments.TOY_RUNS["toy-noisy"]
    ds = data.toy_data(True)
    traj = engine.train(ds.X, ds.y - frozen, torch.full((1, config.runs), 2.0), noisy.lr, orders, batch_size=1,
                        model=engine.Model(bias=False), loss="plain", grad_divisor=noisy.grad_divisor)
    frames.append(("B: b never updated", traj.epoch_params[tail, 0], traj.epoch_loss[tail]))
    seeds = np.tile(config.seed + np.arange(config.runs), config.tail)  # (tail, K) flattened, epoch by epoch
    epochs = pd.concat([pd.DataFrame({"hypothesis": h, "order_seed": seeds, "w": w.double().flatten().numpy(),
                                      "loss": loss.double().flatten().numpy()}) for h, w, loss in frames],
                       ignore_index=True)
    return BiasResult(config, epochs, frozen, trained, _centring(config))
