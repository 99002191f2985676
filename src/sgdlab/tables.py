"""Tables the report shows, built from experiment results (formatted here, not in the report)."""

from __future__ import annotations

import pandas as pd

from .experiments import ARTICLE_BASELINE, BaselineResult, OrderSpreadResult
from .fmt import num

IMPLEMENTATION_NAMES = {
    "scratch": "scratch (hand-written sgd)",
    "concise": "concise (nn.Linear + optim.SGD)",
    "closed_form": "closed form (least squares)",
}


def baseline_comparison(result: BaselineResult) -> pd.DataFrame:
    """One column per implementation plus the article's printed numbers, one row per quantity."""
    rows = result.final.set_index("implementation")
    table = pd.DataFrame({
        IMPLEMENTATION_NAMES[name]: [
            f"{r.final_loss:.6f}", f"{r.w1_error:+.4f}", f"{r.w2_error:+.4f}", f"{r.b_error:+.4f}",
            num(r.final_loss, ".3e"),
        ]
        for name, r in rows.iterrows()
    }, index=["training loss (printed as the article)", "w₁ error", "w₂ error", "b error", "training loss"])
    table["the article (published)"] = [
        f"{ARTICLE_BASELINE['final_loss']:.6f}", f"{ARTICLE_BASELINE['w_error'][0]:+.4f}",
        f"{ARTICLE_BASELINE['w_error'][1]:+.4f}", f"{ARTICLE_BASELINE['b_error']:+.4f}", "—",
    ]
    table.index.name = "quantity"
    return table


def order_spread(result: OrderSpreadResult) -> pd.DataFrame:
    """Range of the final numbers over batch orders, beside the article's published ones."""
    f = result.final
    rows = [
        ("training loss", "final_loss", ARTICLE_BASELINE["final_loss"], ".4e", "{:.6f}"),
        ("w₁ error", "w1_error", ARTICLE_BASELINE["w_error"][0], "+.6f", "{:+.4f}"),
        ("w₂ error", "w2_error", ARTICLE_BASELINE["w_error"][1], "+.6f", "{:+.4f}"),
        ("b error", "b_error", ARTICLE_BASELINE["b_error"], "+.6f", "{:+.4f}"),
    ]
    return pd.DataFrame(
        [{"quantity": label, "min over orders": num(f[col].min(), spec), "max over orders": num(f[col].max(), spec),
          "printed (all orders)": " / ".join(sorted({printed.format(v) for v in f[col]})),
          "the article": printed.format(article)} for label, col, article, spec, printed in rows]
    ).set_index("quantity")


def loss_over_floor(result: BaselineResult, epoch: int, implementation: str = "scratch") -> float:
    """Training loss after `epoch` epochs divided by the closed-form floor (1 means: on the floor)."""
    h = result.history
    loss = h[(h.implementation == implementation) & (h.epoch == epoch)].loss
    return float(loss.iloc[0]) / result.loss_floor


def implementation_gap(result: BaselineResult, first: str = "scratch", second: str = "concise") -> float:
    """Largest |difference| of any parameter between two implementations over all epoch ends (float32 rounding)."""
    h = result.history.set_index(["implementation", "epoch"])[["w1", "w2", "b"]]
    return float((h.loc[first] - h.loc[second]).abs().to_numpy().max())
