"""Question 1, "why the loss does not reach zero": the exact floors, the four runs, the summary.

Sections "four runs", "loss floor" and "summary" of report/02-loss-floor.qmd; the article's log,
decoded and replayed, is in `article_log`, SGD's cycle in `cycle`, the noise floor and capacity
in `capacity`, what 0.000000 means in `precision`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from fractions import Fraction

import pandas as pd

from . import data, engine, experiments, theory
from ._lazy import torch
from .cache import cached
from .fmt import num
from .i18n import t

# --------------------------------------------------------------------------- the floor is least squares


def exact_least_squares(x, y, bias: bool) -> tuple[Fraction, Fraction, Fraction]:
    """(w*, b*, floor) of min mean (wx + b − y)² in exact rational arithmetic (normal equations)."""
    x, y = [Fraction(str(v)) for v in x], [Fraction(str(v)) for v in y]
    n, sx, sy = len(x), sum(x), sum(y)
    sxx, sxy = sum(v * v for v in x), sum(u * v for u, v in zip(x, y, strict=True))
    if bias:
        w = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        b = (sy - w * sx) / n
    else:
        w, b = sxy / sxx, Fraction(0)
    return w, b, sum((w * u + b - v) ** 2 for u, v in zip(x, y, strict=True)) / n


def target_loss(name: str) -> Fraction:
    """Mean (ŷ − x)² of a toy run's optimal model against the article's target y = x (its own words), exactly.

    The optimum is the least-squares θ* on the run's labels; for the piecewise model it is w = 1,
    the only w with zero training loss. A model that fits the label 3.1 better is further from y = x.
    """
    toy = experiments.TOY_RUNS[name]
    x = [Fraction(str(v)) for v in data.TOY_X]
    if toy.piecewise:
        jump, at = Fraction(str(toy.model.jump_height)), Fraction(str(toy.model.jump_at))
        y_hat = [u + (jump if u >= at else 0) for u in x]  # w = 1
    else:
        w, b, _ = exact_least_squares(data.TOY_X, data.TOY_Y_NOISY if toy.noisy else data.TOY_Y_CLEAN, toy.bias)
        y_hat = [w * u + b for u in x]
    return sum((h - u) ** 2 for h, u in zip(y_hat, x, strict=True)) / len(x)


@dataclass(frozen=True)
class FourRunsConfig:
    """The article's four 问题1 runs; long_epochs = 30000 as in the article (tests use fewer)."""

    seed: int = 20
    long_epochs: int = 30000
    short_epochs: int = 8


@dataclass(frozen=True)
class FourRunsResult:
    """The four toy runs and the decomposition final loss = floor + ½(θ − θ*)ᵀH(θ − θ*)."""

    config: FourRunsConfig
    runs: dict  # name -> experiments.ToyResult
    decomposition: pd.DataFrame  # run, model, w, b, w_star, b_star, exact_floor, floor, gap, loss64, final_loss

    def summary(self) -> dict:
        rows = self.decomposition.set_index("run")
        return {"experiment": "floor-four-runs", **asdict(self.config),
                "runs": {name: {k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}
                         for name, row in rows.iterrows()}}

    def _frame(self, columns: dict) -> pd.DataFrame:
        labels = [t(RUN_LABELS[r]) for r in self.decomposition.run]
        return pd.DataFrame(columns, index=pd.Index(labels, name=t("labels, model")))

    def optimum_table(self) -> pd.DataFrame:
        """Each run's final θ beside the least-squares θ*, its floor, and its loss against y = x, exactly."""
        d = self.decomposition

        def theta(ws, bs, digits):
            return [f"({w:.{digits}f}, {b:.{digits}f})" if m == "w·x + b" else f"{w:.{digits}f}"
                    for w, b, m in zip(ws, bs, d.model, strict=True)]

        return self._frame({
            t("final θ"): theta(d.w, d.b, 5), "θ*": theta(d.w_star, d.b_star, 4),
            t("floor (exact)"): d.exact_floor.to_numpy(),
            t("loss vs y = x (exact)"): [str(target_loss(r)) for r in d.run]})

    def table(self) -> pd.DataFrame:
        """Final loss = floor + gap, against the loss at the final θ in float64 and the logged float32 loss.

        A column per run: five columns of 7-digit numbers (× 10ⁿ) are wider than a page.
        """
        d = self.decomposition
        return self._frame({
            t("floor"): d.floor.map(lambda v: num(v, ".4e")).to_numpy(),
            t("gap"): d.gap.map(lambda v: num(v, ".3e")).to_numpy(),
            t("floor + gap"): (d.floor + d.gap).map(lambda v: num(v, ".6e")).to_numpy(),
            t("float64 loss"): d.loss64.map(lambda v: num(v, ".6e")).to_numpy(),
            t("float32 log"): d.final_loss.map(lambda v: num(v, ".6e")).to_numpy()}).T.rename_axis(
                index=t("loss"), columns=None)


# Table rows: the labels (clean, or with 3.1) and the model.
RUN_LABELS = {"toy-clean": "clean, w·x", "toy-noisy": "3.1, w·x", "toy-bias": "3.1, w·x + b",
              "toy-piecewise": "3.1, piecewise"}
MODELS = {"toy-clean": "w·x", "toy-noisy": "w·x", "toy-bias": "w·x + b", "toy-piecewise": "w·x + 0.1·[w·x ≥ 3]"}


@cached
def four_runs(config: FourRunsConfig = FourRunsConfig()) -> FourRunsResult:
    """Run the article's four toy experiments and split each final loss into floor + quadratic gap."""
    runs, rows = {}, []
    for name, toy in experiments.TOY_RUNS.items():
        epochs = config.long_epochs if toy.epochs > config.short_epochs else config.short_epochs
        result = runs[name] = experiments.toy(name, replace(toy, seed=config.seed, epochs=epochs))
        last = result.history.iloc[-1]
        theta = torch.tensor([last.w] + ([last.b] if toy.bias else []), dtype=torch.float64)
        # The piecewise model equals w·x on the clean labels for 1 ≤ w < 1.5, where its runs end.
        X64 = data.toy_data(toy.noisy and not toy.piecewise, dtype=torch.float64)
        fit = theory.least_squares(X64.X, X64.y, bias=toy.bias, loss="plain")
        w_star, b_star, floor = exact_least_squares(data.TOY_X, data.TOY_Y_NOISY if toy.noisy else data.TOY_Y_CLEAN,
                                                    toy.bias)
        exact = Fraction(0) if toy.piecewise else floor
        loss64 = engine.full_loss(toy.model, *engine.runs_last(engine.augment(X64.X, toy.bias), X64.y),
                                  theta.unsqueeze(1), "plain") if not toy.piecewise else _piecewise_loss64(toy, theta)
        rows.append({"run": name, "model": MODELS[name], "w": float(last.w), "b": float(last.b),
                     "w_star": float(w_star) if not toy.piecewise else result.ols_w,
                     "b_star": float(b_star), "exact_floor": str(exact), "floor": float(exact),
                     "gap": float(theory.excess_loss(theta, fit)), "loss64": float(loss64),
                     "final_loss": float(last.loss)})
    return FourRunsResult(config, runs, pd.DataFrame(rows))


def _piecewise_loss64(toy: experiments.ToyConfig, theta: torch.Tensor) -> torch.Tensor:
    """The piecewise model's loss at theta in float64 (the engine's jump term is a float32 0.1)."""
    ds = data.toy_data(True, dtype=torch.float64)
    y_hat = ds.X[:, 0] * theta[0]
    y_hat = y_hat + toy.model.jump_height * (y_hat >= toy.model.jump_at).double()
    return ((y_hat - ds.y) ** 2).mean()


# --------------------------------------------------------------------------- model error plus noise


MISSPECIFIED = {  # model -> the columns it keeps
    "x₁, x₂, b (D2L's)": ("x1", "x2", "b"), "no b": ("x1", "x2"), "no x₂": ("x1", "b"), "no x₁": ("x2", "b")}


@dataclass(frozen=True)
class MisspecifiedConfig:
    """D2L's data (the article's seed) fitted by its own model and by the models with one column left out."""

    seed: int = 20


@dataclass(frozen=True)
class MisspecifiedResult:
    """Per model: p, the expected floor split into model error and noise, and the floor least squares reaches."""

    config: MisspecifiedConfig
    frame: pd.DataFrame  # model, p, model_error, model_error_rounding, noise, expected, floor (D2L's ½-loss, float64)

    def at(self, model: str) -> pd.Series:
        return self.frame.set_index("model").loc[model]

    def summary(self) -> dict:
        return {"experiment": "floor-misspecified", **asdict(self.config),
                **{k: dict(zip(self.frame.model, self.frame[k], strict=True))
                   for k in ("model_error", "noise", "expected", "floor")}}

    def table(self) -> pd.DataFrame:
        """The split per model, formatted: model error + noise = expected floor, beside the one reached."""
        f = self.frame
        def fmt4(col: pd.Series) -> list:
            return col.map(lambda v: num(v, ".4g")).tolist()

        # a model error below its float64 rounding bound carries no digit: it is 0 to rounding
        model_error = [num(v, ".4g") if v > bound else t("0 (rounding)")
                       for v, bound in zip(f.model_error, f.model_error_rounding, strict=True)]
        return pd.DataFrame({"p": f.p.to_numpy(), t("model error"): model_error,
                             t("noise σ²/2·(n−p)/n"): fmt4(f.noise), t("expected floor"): fmt4(f.expected),
                             t("floor reached"): fmt4(f.floor)},
                            index=pd.Index(f.model.map(t), name=t("model")))


@cached
def misspecified(config: MisspecifiedConfig = MisspecifiedConfig()) -> MisspecifiedResult:
    """The misspecified noise floor on the article's data: (1/2n)‖(I − P)m‖² + (σ²/2)(n − p)/n per model."""
    ds = data.d2l_data(data.generator(config.seed))
    X, y = ds.X.double(), ds.y.double()
    columns = {"x1": X[:, 0], "x2": X[:, 1], "b": torch.ones(ds.n, dtype=torch.float64)}
    f = X @ torch.tensor(data.TRUE_W, dtype=torch.float64) + data.TRUE_B  # the labels' mean m: y = m + ε
    rows = []
    for name, keep in MISSPECIFIED.items():
        Xa = torch.stack([columns[k] for k in keep], 1)
        model_error, noise = theory.misspecified_floor(Xa, f, data.NOISE_STD)
        rounding = model_error_rounding(Xa, f)
        fit = theory.least_squares(Xa, y, bias=False)  # Xa carries the ones column where b is kept
        rows.append({"model": name, "p": len(keep), "model_error": model_error,
                     "model_error_rounding": rounding, "noise": noise,
                     "expected": model_error + noise, "floor": fit.loss_floor})
    return MisspecifiedResult(config, pd.DataFrame(rows))


def model_error_rounding(Xa: torch.Tensor, f: torch.Tensor) -> float:
    """A float64 rounding bound on (1/2n)‖(I − P)m‖²: what a model error of exactly 0 may print as.

    A backward-stable least-squares projection errs by at most about n·p·u·κ(Xa)·‖f‖ in the residual
    (Higham, Accuracy and Stability, ch. 20); squared and divided by 2n as the loss is.
    """
    n, p = Xa.shape
    residual = n * p * torch.finfo(torch.float64).eps * float(torch.linalg.cond(Xa)) * float(f.norm())
    return residual**2 / (2 * n)


# --------------------------------------------------------------------------- summary


def causes() -> pd.DataFrame:
    """Each cause of a non-zero training loss, and two misleading zeros: how each shows, what helps, where."""
    rows = {  # cause -> (symptom, what helps, in the article); cells short enough for a PDF page
        "label noise": ("stops at the floor", "nothing: it is the target", "0.000049; 3.1 runs"),
        "too little capacity": ("train, test ≫ σ²/2", "a richer model", "none"),
        # the Polyak–Ruppert mean of the iterates; unbiased only with replacement (averaging.py)
        "constant step (SGD's floor)": ("jitters above the floor",
                                        "decaying η, Polyak–Ruppert (iid), batch, SVRG", "3.1 runs: the gap"),
        "too few steps": ("still falling", "more epochs", "baseline's last gap; clean run"),
        # The last two are zeros that mislead, not causes of a non-zero loss.
        "(zero) capacity near p = n": ("train → 0, test ≫ σ²/2", "fewer (or min-norm, many weak)", "piecewise model"),
        "(zero) printing": ("0.000000 while loss > 0", '`f"{loss:e}"`', "clean run"),
    }
    return pd.DataFrame([[t(c) for c in row] for row in rows.values()],
                        columns=[t("symptom"), t("what helps"), t("in the article")],
                        index=pd.Index([t(c) for c in rows], name=t("cause")))
