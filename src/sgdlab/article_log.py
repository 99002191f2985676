"""The article's 问题1 logs: its printed numbers quoted, its batch order decoded, and replayed.

The toy helpers (`train_toy`, `checked`) live here too: every chapter-2 module trains toy runs
through them (and so through `engine.train`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from . import data, engine, experiments
from ._lazy import torch
from .cache import cached
from .i18n import t

# The article's per-step logs, quoted verbatim (问题1; four prints per epoch, truncated by the author
# at the first 0.000000). The loss is printed after every step with f"{loss:f}".
ARTICLE_LOG_VALUES = {
    "toy-clean": """
        2.021600 2.021600 0.427771 0.377978  0.333982 0.333982 0.070670 0.040819
        0.008637 0.004989 0.004408 0.004408  0.003895 0.002250 0.000476 0.000476
        0.000476 0.000101 0.000089 0.000051  0.000045 0.000026 0.000026 0.000006
        0.000006 0.000005 0.000001 0.000001  0.000000""",
    "toy-piecewise": """
        2.035564 2.035564 0.414369 0.366136  0.323518 0.323518 0.068456 0.039540
        0.008367 0.004833 0.004270 0.004270  0.003773 0.002179 0.000461 0.000461
        0.000461 0.000098 0.000086 0.000050  0.000044 0.000025 0.000025 0.000005
        0.000005 0.000005 0.000001 0.000001  0.000000""",
}
# What the article printed after 30000 epochs (quoted): w and the loss; it never printed b.
ARTICLE_FINAL = {"toy-noisy": {"w": 1.0266, "loss": 0.000986}, "toy-bias": {"w": 1.0359, "loss": 0.000848}}
PRINT_ZERO = 5e-7  # f"{x:f}" keeps 6 decimals: any loss below this prints 0.000000


def article_log(name: str) -> tuple[str, ...]:
    """The article's printed losses for a toy run, one string per step."""
    return tuple(ARTICLE_LOG_VALUES[name].split())


def printed(values) -> list[str]:
    """Format losses as the article's log does: f"{loss:f}"."""
    return [f"{float(v):f}" for v in values]


def shrink_factor(effective_lr: float, x: float) -> float:
    """Factor by which a step on sample x multiplies w − 1 on clean data: 1 − 2ηx²."""
    return 1 - 2 * effective_lr * x * x


def divisors_explaining(factor: float, lr: float, x=data.TOY_X, largest: int = 1000, tol: float = 1e-3):
    """Every (x, d), x ≠ 0 an example and d ≤ largest a whole divisor of lr, with |1 − 2(lr/d)x²| within tol of factor.

    A logged factor √(ℓ_t/ℓ_{t−1}) names both the example and the step size; with lr known, the pairs
    that explain it say what the article's `sgd` divided lr by.
    """
    return [(v, d) for v in x if v != 0 for d in range(1, largest + 1)
            if abs(abs(shrink_factor(lr / d, v)) - factor) <= tol]


def _toy_setup(config: experiments.ToyConfig, dtype: torch.dtype | None = None):
    ds = data.toy_data(config.noisy, dtype=dtype)
    dtype = ds.X.dtype
    theta0 = torch.tensor([[2.0]] + ([[0.0]] if config.bias else []), dtype=dtype)  # (p, 1): w = 2 (, b = 0)
    return ds, theta0


def checked(traj: engine.Trajectory, name: str, lr: float) -> engine.Trajectory:
    """The trajectory, or experiments.Diverged if any of its runs blew up (never plot NaNs)."""
    if bool(traj.diverged.any()):
        raise experiments.Diverged(name, int(traj.diverged_step[traj.diverged].min()), lr)
    return traj


def train_toy(config: experiments.ToyConfig, orders: torch.Tensor, theta0=None, dtype: torch.dtype | None = None):
    """The article's toy loop on the engine with explicit batch orders (E, n) or (E, K, n); float32 by default."""
    ds, start = _toy_setup(config, dtype)
    K = orders.shape[1] if orders.dim() == 3 else 1
    theta0 = start.expand(-1, K) if theta0 is None else theta0
    traj = checked(engine.train(ds.X, ds.y, theta0.contiguous(), config.lr, orders, batch_size=1, model=config.model,
                                loss="plain", grad_divisor=config.grad_divisor, record_steps=True), "toy", config.lr)
    Xr, yr = engine.runs_last(engine.augment(ds.X, config.bias), ds.y)
    return traj, engine.full_loss(config.model, Xr, yr, traj.step_params, "plain")  # (T+1, K) per-step loss


# --------------------------------------------------------------------------- the article's log, decoded


@dataclass(frozen=True)
class DecodedOrder:
    """The batch order that reproduces a printed log: orders (E, n), and how many orders fit each epoch."""

    # (E, n) int64 sample indices; in the toy sets index i is x = i. numpy, not a tensor: a cached
    # ReplayResult holds it, and reading a result from the cache must not import torch.
    orders: np.ndarray
    consistent: tuple[int, ...]  # per epoch, how many of the n! orders reproduce the printed losses


def decode_order(name: str, log: tuple[str, ...] | None = None) -> DecodedOrder:
    """Recover the article's unseeded shuffles: per epoch, the orders whose replay prints its log.

    Each step multiplies w − 1 by a factor that names the sample (1 − 2ηx²); at losses near the
    printing resolution factors blur, so all n! orders of each epoch are replayed (K = n! runs at
    once) and those printing the logged strings are kept. The first is followed into the next epoch.
    """
    config = experiments.TOY_RUNS[name]
    log = article_log(name) if log is None else log
    ds, theta = _toy_setup(config)
    perms = torch.tensor(list(itertools.permutations(range(ds.n))))  # (n!, n)
    chosen, consistent = [], []
    for start in range(0, len(log), ds.n):
        logged = list(log[start : start + ds.n])
        traj, losses = train_toy(config, perms.unsqueeze(0), theta.expand(-1, len(perms)))
        ours = [printed(losses[1 : len(logged) + 1, k]) for k in range(len(perms))]
        fits = [k for k, p in enumerate(ours) if p == logged]
        errors = (losses[1 : len(logged) + 1] - torch.tensor([float(v) for v in logged]).unsqueeze(1)).abs()
        k = fits[0] if fits else int(errors.amax(0).argmin())  # nearest order if none prints exactly
        chosen.append(perms[k])
        consistent.append(len(fits))
        theta = traj.epoch_params[1][:, k : k + 1]
    return DecodedOrder(torch.stack(chosen).numpy(), tuple(consistent))


def clean_epoch_factor(effective_lr: float, x=data.TOY_X) -> float:
    """What one epoch multiplies w − 1 by on clean labels: Π(1 − 2ηx_i²), the same for every order."""
    return math.prod(shrink_factor(effective_lr, v) for v in x)


def clean_epoch_loss(epoch: int, effective_lr: float, w0: float = 2.0, x=data.TOY_X) -> float:
    """Epoch-end loss of w·x on y = x: mean(x²)·(w0 − 1)²·Π(1 − 2ηx_i²)^(2E), whatever the order."""
    return sum(v * v for v in x) / len(x) * (w0 - 1) ** 2 * clean_epoch_factor(effective_lr, x) ** (2 * epoch)


@dataclass(frozen=True)
class ReplayConfig:
    """Replay the article's decoded order; `seed` is our seeded run shown beside it."""

    seed: int = 20


@dataclass(frozen=True)
class ReplayResult:
    """The article's log beside the replay of its decoded order and beside our seeded order."""

    config: ReplayConfig
    steps: pd.DataFrame  # run, epoch, step, x, factor_logged, article, replay, seeded_x, seeded, closed_form
    decoded: dict  # run -> DecodedOrder

    def matches(self, run: str) -> int:
        """Steps whose replayed loss prints exactly as the article's."""
        frame = self.steps[self.steps.run == run]
        return int((frame.article == frame.replay).sum())

    def shared_epochs(self) -> int:
        """Fully logged epochs whose decoded clean and piecewise orders coincide (the same shuffles)."""
        clean, jump = self.decoded["toy-clean"], self.decoded["toy-piecewise"]
        full = len(article_log("toy-clean")) // clean.orders.shape[1]
        return int((clean.orders[:full] == jump.orders[:full]).all(1).sum())

    def chance_agreement(self) -> float:
        """Chance of the shared orders if the piecewise run's shuffles were independent of the clean run's.

        Per fully logged epoch, an independent uniform order prints the piecewise log of the clean
        run's order with probability k / n!, k the number of orders that print that log.
        """
        jump, n = self.decoded["toy-piecewise"], self.decoded["toy-clean"].orders.shape[1]
        full = len(article_log("toy-clean")) // n
        return math.prod(k / math.factorial(n) for k in jump.consistent[:full])

    def summary(self) -> dict:
        return {
            "experiment": "floor-replay", **asdict(self.config), "shared_epochs": self.shared_epochs(),
            "steps": {run: int((self.steps.run == run).sum()) for run in self.decoded},
            "matches": {run: self.matches(run) for run in self.decoded},
            "orders": {run: d.orders.tolist() for run, d in self.decoded.items()},
            "consistent_orders": {run: list(d.consistent) for run, d in self.decoded.items()},
        }

    def table(self, run: str = "toy-clean") -> pd.DataFrame:
        """The article's printed losses beside the replay of its decoded order, one row per step."""
        f = self.steps[self.steps.run == run]
        return pd.DataFrame({
            t("epoch"): f.epoch.to_numpy(), t("x drawn"): f.x.to_numpy(),
            t("factor"): f.factor_logged.map(lambda v: "–" if np.isnan(v) else f"{v:.3f}").to_numpy(),
            t("article"): f.article.to_numpy(), t("replay"): f.replay.to_numpy(),
        }, index=pd.Index(f.step.to_numpy(), name=t("step")))

    def epoch_table(self, run: str = "toy-clean") -> pd.DataFrame:
        """Epoch ends: the article's order and loss, our seeded order and loss, and the closed form."""
        f = self.steps[self.steps.run == run]
        full = f.groupby("epoch").filter(lambda g: len(g) == self.decoded[run].orders.shape[1])
        ends = full.groupby("epoch")
        orders = ends.x.agg(lambda v: " ".join(str(int(i)) for i in v)).to_numpy()
        seeded = ends.seeded_x.agg(lambda v: " ".join(str(int(i)) for i in v)).to_numpy()
        last = ends.tail(1)
        seed = t("seed {}").format(self.config.seed)
        return pd.DataFrame({
            t("article's x"): orders, t("article"): last.article.to_numpy(), t("{}'s x").format(seed): seeded,
            seed: last.seeded.to_numpy(), t("closed form"): last.closed_form.map("{:f}".format).to_numpy(),
        }, index=pd.Index(last.epoch.to_numpy(), name=t("epoch")))


@cached
def article_replay(config: ReplayConfig = ReplayConfig()) -> ReplayResult:
    """Decode the article's orders (clean and piecewise runs), replay them, compare every printed step."""
    frames, decoded = [], {}
    for name in ARTICLE_LOG_VALUES:
        log = article_log(name)
        toy = experiments.TOY_RUNS[name]
        decoded[name] = decode_order(name, log)
        _, losses = train_toy(toy, torch.from_numpy(decoded[name].orders))
        seeded = experiments.toy(name, replace(toy, seed=config.seed, epochs=-(-len(log) // 4)))
        steps = np.arange(1, len(log) + 1)
        logged = np.array([losses[0, 0].item(), *map(float, log)])  # the initial loss is not printed: ours
        epoch = (steps - 1) // 4 + 1
        seeded_x = data.batch_orders(4, seeded.config.epochs, data.generator(config.seed, "order"))  # toy()'s
        frames.append(pd.DataFrame({
            "run": name, "epoch": epoch, "step": steps,
            "x": decoded[name].orders.flatten()[: len(log)],
            # √(L_t / L_{t−1}) from the printed numbers; undefined where either printed 0.000000
            "factor_logged": np.sqrt(np.divide(logged[1:], logged[:-1], out=np.full(len(log), np.nan),
                                               where=(logged[:-1] > 0) & (logged[1:] > 0))),
            "article": list(log), "replay": printed(losses[1 : len(log) + 1, 0]),
            "seeded_x": seeded_x.flatten()[: len(log)].numpy(),
            "seeded": printed(seeded.history.loss.iloc[1 : len(log) + 1]),
            "closed_form": [clean_epoch_loss(e, toy.effective_lr) if s % 4 == 0 and name == "toy-clean"
                            else np.nan for e, s in zip(epoch, steps, strict=True)],
        }))
    return ReplayResult(config, pd.concat(frames, ignore_index=True), decoded)
