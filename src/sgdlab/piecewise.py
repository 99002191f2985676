"""The article's piecewise model is not a quadratic: its loss jumps where a prediction crosses 3.

ŷ = w·x + 0.1·[w·x ≥ 3] on x = 0..3 with the last label 3.1 (问题1's third run, no bias). The
indicator of sample i switches at w = 3/x_i, so the loss f(w) = mean((ŷ − y)²) is a quadratic on
each interval between the breakpoints 1, 1.5 and 3 and jumps at each of them; the value at a
breakpoint is the right limit, because the jump fires at ŷ ≥ 3. Taylor's expansion and the
steepest-descent theorem hold inside the pieces, not at a jump, and autograd differentiates only
the piece it is on: the indicator is constant by pieces, so it contributes nothing to ∂ŷ/∂w.
Closed forms in float64; the loss is the article's own `simple_squared_loss` and `simple_non_linearity`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from . import d2l, data
from ._lazy import torch
from .cache import cached
from .fmt import num
from .i18n import t

JUMP_AT, JUMP_HEIGHT = 3.0, 0.1  # the article's simple_non_linearity


def toy_loss(w: torch.Tensor, jumps: bool = True, strict: bool = False) -> torch.Tensor:
    """f(w) for w of any shape, float64: the article's loss code on the label-3.1 toy.

    strict=True fires the jump only where ŷ > 3: the left limit of f at a breakpoint.
    """
    ds = data.toy_data(noisy=True, dtype=torch.float64)
    y_hat = w.unsqueeze(-1) * ds.X[:, 0]  # (..., n)
    if jumps:
        fired = y_hat > JUMP_AT if strict else y_hat >= JUMP_AT
        y_hat = y_hat + JUMP_HEIGHT * fired.to(y_hat.dtype)  # a float times a bool tensor would be float32
    return d2l.simple_squared_loss(y_hat, ds.y.expand_as(y_hat)).mean(-1)


def exact_loss(w: Fraction, strict: bool = False) -> Fraction:
    """f(w) in rational arithmetic (labels 0, 1, 2, 31/10; jump 1/10 where ŷ ≥ 3, or ŷ > 3 if strict)."""
    labels = [Fraction(v).limit_denominator(100) for v in data.TOY_Y_NOISY]
    total = Fraction(0)
    for x, y in zip(data.TOY_X, labels, strict=True):
        y_hat = w * Fraction(x)
        fired = y_hat > JUMP_AT if strict else y_hat >= JUMP_AT
        total += (y_hat + Fraction(1, 10) * fired - y) ** 2
    return total / len(labels)


def autograd_slope(w: float) -> float:
    """df/dw as torch.autograd computes it through the loss at w: the slope of the piece w lies on."""
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    toy_loss(wt).backward()
    return float(wt.grad)


def breakpoints() -> list[float]:
    """w = 3/x_i for the samples with x_i > 0: where a prediction crosses the jump."""
    return sorted(JUMP_AT / x for x in data.TOY_X if x > 0)


@dataclass(frozen=True)
class PiecewiseConfig:
    """Where the piecewise toy's loss jumps, and what a one-sided difference quotient sees there."""

    seed: int = 20  # unused: everything here is a closed form; kept for the CLI's --seed
    h: tuple[float, ...] = (1e-3, 1e-6)  # left difference quotients (f(w) − f(w − h))/h
    w_min: float = 0.0
    w_max: float = 3.5
    num_w: int = 3501  # the loss curve for the figure: a grid with the breakpoints on it


@dataclass(frozen=True)
class PiecewiseResult:
    """One row per breakpoint (w, left limit, value, jump, autograd slope, left quotients), and the curve."""

    config: PiecewiseConfig
    jumps: pd.DataFrame  # w, x, left_limit, value, jump, autograd, quotient_<h> ...
    curve: pd.DataFrame  # w, loss, smooth (the loss without the jump: the quadratic of the w·x toy)
    minimiser: float  # argmin f: w = 1, where f = 0
    minimum: float

    def summary(self) -> dict:
        """Keys: breakpoints, left_limit, value, jump, autograd (per breakpoint), minimiser, minimum."""
        j = self.jumps
        per = {k: [float(v) for v in j[k]] for k in ("left_limit", "value", "jump", "autograd")}
        return {"experiment": "steepest-piecewise", **asdict(self.config), "breakpoints": [float(w) for w in j.w],
                **per, "minimiser": self.minimiser, "minimum": self.minimum}

    def row(self, w: float) -> pd.Series:
        return self.jumps.set_index("w").loc[w]

    def table(self) -> pd.DataFrame:
        """The jumps, formatted: limit from the left, value, autograd's slope, left difference quotients."""
        j = self.jumps
        four = lambda v: f"{v + 0.0:.4f}"  # noqa: E731  (+ 0.0: no "−0.0000")
        cols = {"x": j.x.map(lambda v: f"{v:g}"), "f(w⁻)": j.left_limit.map(four),
                "f(w)": j.value.map(four), t("autograd f′"): j.autograd.map(four)}
        cols |= {f"Δf/h, h={num(h, 'g')}": j[f"quotient_{h:g}"].map(lambda v: num(v, ".3g")) for h in self.config.h}
        return pd.DataFrame({k: v.to_numpy() for k, v in cols.items()},
                            index=pd.Index(j.w.map(lambda v: f"{v:g}"), name="w"))


@cached
def piecewise(config: PiecewiseConfig = PiecewiseConfig()) -> PiecewiseResult:
    """The piecewise toy's loss at and around its breakpoints, computed with the article's code."""
    rows = []
    for w in breakpoints():
        at, exact = torch.tensor(w, dtype=torch.float64), Fraction(w).limit_denominator(100)
        left, value = exact_loss(exact, strict=True), exact_loss(exact)  # limits of quadratics: exact rationals
        row = {"w": w, "x": JUMP_AT / w, "left_limit": float(left), "value": float(value),
               "jump": float(value - left), "autograd": autograd_slope(w)}
        for h in config.h:  # the slope a difference quotient from the left sees: jump/h + the piece's slope
            row[f"quotient_{h:g}"] = (value - float(toy_loss(at - h))) / h
        rows.append(row)
    grid = np.union1d(np.linspace(config.w_min, config.w_max, config.num_w), breakpoints())
    w = torch.tensor(grid, dtype=torch.float64)
    curve = pd.DataFrame({"w": grid, "loss": toy_loss(w).numpy(), "smooth": toy_loss(w, jumps=False).numpy()})
    best = int(curve.loss.argmin())
    return PiecewiseResult(config, pd.DataFrame(rows), curve, float(curve.w[best]), float(curve.loss[best]))
