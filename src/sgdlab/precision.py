"""What "0.000000" means: the printing threshold, float32's resolution near w = 1, and exact zeros.

Section "Precision" of report/02-loss-floor.qmd: the clean toy run continued past the article's
last logged epoch, in float32 as logged and, with the same batch orders, in float64.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace

import numpy as np
import pandas as pd

from . import data, experiments
from ._lazy import torch
from .article_log import PRINT_ZERO, article_log, decode_order, printed, train_toy
from .cache import cached
from .fmt import num, or_list
from .i18n import t

# float32's limits as Python floats (the same IEEE numbers torch.finfo gives; numpy's, so that importing this
# module does not import torch).
FLOAT32 = SimpleNamespace(eps=float(np.finfo(np.float32).eps), tiny=float(np.finfo(np.float32).tiny))


@dataclass(frozen=True)
class PrecisionConfig:
    """The clean run continued past the article's epoch 8, in float32 and, same orders, float64."""

    seed: int = 20
    epochs: int = 20


@dataclass(frozen=True)
class PrecisionResult:
    """Per-step losses in both precisions, and where they cross the printing and float32 thresholds."""

    config: PrecisionConfig
    steps: pd.DataFrame  # step, epoch, loss32, loss64, w32, loss_of_w32 (float64 loss at the float32 w)
    first_print_zero: int  # first step whose float32 loss prints 0.000000
    loss_at_print_zero: float
    first_exact_zero: int | None  # first step where float32 w == 1 exactly, so the loss is exactly 0
    article_loss_at_print_zero: float  # the article's own step 29, replayed through its decoded order
    # The same step under every order of its partly logged last epoch that prints the log: one value per
    # example that can come first (the log of one step does not say which one did).
    article_losses_at_print_zero: tuple[float, ...] = ()

    @property
    def smallest_nonzero_loss(self) -> float:
        """Loss at w = 1 + eps, the float32 neighbour of 1 from above: mean(x²)·eps²."""
        return sum(v * v for v in data.TOY_X) / len(data.TOY_X) * FLOAT32.eps**2

    def summary(self) -> dict:
        return {"experiment": "floor-precision", **asdict(self.config), "first_print_zero": self.first_print_zero,
                "loss_at_print_zero": self.loss_at_print_zero, "first_exact_zero": self.first_exact_zero,
                "article_loss_at_print_zero": self.article_loss_at_print_zero,
                "article_losses_at_print_zero": list(self.article_losses_at_print_zero), "print_zero": PRINT_ZERO,
                "float32_eps": FLOAT32.eps, "float32_smallest_normal": FLOAT32.tiny,
                "smallest_nonzero_loss": self.smallest_nonzero_loss}

    def table(self) -> pd.DataFrame:
        """The thresholds, from the printed log down to float32's limits."""
        rows = {
            t('`f"{loss:f}"` prints 0.000000 below'): num(PRINT_ZERO, ".0e"),
            t("the article's loss at its first 0.000000"): or_list(
                num(v, ".3e") for v in self.article_losses_at_print_zero),
            t("seed {}'s loss at its first 0.000000").format(self.config.seed): num(self.loss_at_print_zero, ".3e"),
            t("float32 eps (1 + eps: next float32 above 1)"): num(FLOAT32.eps, ".3e"),
            t("loss at w = 1 + eps (nearest above 1): 3.5·eps²"): num(self.smallest_nonzero_loss, ".3e"),
            t("smallest normal float32"): num(FLOAT32.tiny, ".3e"),
        }
        return pd.DataFrame({t("value"): list(rows.values())}, index=pd.Index(list(rows), name=t("quantity")))


@cached
def precision(config: PrecisionConfig = PrecisionConfig()) -> PrecisionResult:
    """Continue the clean run and locate 'prints 0.000000' vs 'is 0' in float32 (float64 alongside)."""
    toy = replace(experiments.TOY_RUNS["toy-clean"], seed=config.seed, epochs=config.epochs)
    run32 = experiments.toy("toy-clean", toy).history
    orders = data.batch_orders(4, config.epochs, data.generator(config.seed, "order"))  # toy()'s orders
    _, loss64 = train_toy(toy, orders, dtype=torch.float64)
    w32 = torch.tensor(run32.w.to_numpy())  # float32 values, held exactly in float64
    steps = pd.DataFrame({"step": run32.step, "epoch": run32.epoch, "loss32": run32.loss,
                          "loss64": loss64[:, 0].numpy(), "w32": run32.w,
                          "loss_of_w32": (3.5 * (w32 - 1) ** 2).numpy()})  # mean(x²) = 3.5
    zero = steps.index[(steps.loss32 < PRINT_ZERO) & (steps.step > 0)]
    exact = steps.index[(steps.w32 == 1.0) & (steps.step > 0)]
    log = article_log("toy-clean")
    orders = torch.from_numpy(decode_order("toy-clean", log).orders)
    _, article = train_toy(toy, orders)
    return PrecisionResult(config, steps, int(zero[0]), float(steps.loss32[zero[0]]),
                           int(exact[0]) if len(exact) else None, float(article[len(log), 0]),
                           losses_of_consistent_orders(toy, orders, log))


def losses_of_consistent_orders(toy: experiments.ToyConfig, orders: torch.Tensor, log: tuple[str, ...]):
    """The loss after the log's last step under every order of its last epoch that prints that epoch's log.

    `orders` (E, n) are the decoded orders; only the last epoch's is re-chosen, among all n! orders.
    Returns the distinct losses, sorted (float32 values, as the run logs them).
    """
    n = orders.shape[1]
    last = (len(log) - 1) // n  # the epoch of the log's last step
    perms = torch.tensor(list(itertools.permutations(range(n))))
    candidates = orders[: last + 1].unsqueeze(1).repeat(1, len(perms), 1)  # (E, n!, n)
    candidates[last] = perms
    _, losses = train_toy(toy, candidates)
    logged = list(log[last * n :])
    fits = [k for k in range(len(perms)) if printed(losses[last * n + 1 : len(log) + 1, k]) == logged]
    return tuple(sorted({float(losses[len(log), k]) for k in fits}))
