"""What "0.000000" means: the printing threshold, float32's resolution near w = 1, and exact zeros.

Section "Precision" of report/02-loss-floor.qmd: the clean toy run continued past the article's
last logged epoch, in float32 as logged and, with the same batch orders, in float64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import pandas as pd
import torch

from . import data, experiments
from .article_log import PRINT_ZERO, article_log, decode_order, train_toy
from .cache import cached

FLOAT32 = torch.finfo(torch.float32)


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

    @property
    def smallest_nonzero_loss(self) -> float:
        """Loss at w = 1 + eps, the float32 neighbour of 1 from above: mean(x²)·eps²."""
        return sum(v * v for v in data.TOY_X) / len(data.TOY_X) * FLOAT32.eps**2

    def summary(self) -> dict:
        return {"experiment": "floor-precision", **asdict(self.config), "first_print_zero": self.first_print_zero,
                "loss_at_print_zero": self.loss_at_print_zero, "first_exact_zero": self.first_exact_zero,
                "article_loss_at_print_zero": self.article_loss_at_print_zero, "print_zero": PRINT_ZERO,
                "float32_eps": FLOAT32.eps, "float32_smallest_normal": FLOAT32.tiny,
                "smallest_nonzero_loss": self.smallest_nonzero_loss}

    def table(self) -> pd.DataFrame:
        """The thresholds, from the printed log down to float32's limits."""
        rows = {
            '`f"{loss:f}"` prints 0.000000 below': f"{PRINT_ZERO:.0e}",
            "the article's loss at its first 0.000000": f"{self.article_loss_at_print_zero:.3e}",
            f"seed {self.config.seed}'s loss at its first 0.000000": f"{self.loss_at_print_zero:.3e}",
            "float32 eps (1 + eps: next float32 above 1)": f"{FLOAT32.eps:.3e}",
            "smallest non-zero loss next to w = 1: 3.5·eps²": f"{self.smallest_nonzero_loss:.3e}",
            "smallest normal float32": f"{FLOAT32.tiny:.3e}",
        }
        return pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name="quantity"))


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
    _, article = train_toy(toy, decode_order("toy-clean", log).orders)
    return PrecisionResult(config, steps, int(zero[0]), float(steps.loss32[zero[0]]),
                           int(exact[0]) if len(exact) else None, float(article[len(log), 0]))
