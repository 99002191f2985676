"""Question 1, "why the loss does not reach zero": the article's logs decoded, floors, cycles, precision.

Sections 1–3, 6 and 7 of report/02-loss-floor.qmd; the noise floor and capacity are in `capacity`.
Toy runs train through `experiments.toy` or, with explicit orders, through `engine.train`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, replace
from fractions import Fraction

import numpy as np
import pandas as pd
import torch

from . import data, engine, experiments, theory

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


def _toy_setup(config: experiments.ToyConfig, dtype=torch.float32):
    ds = data.toy_data(config.noisy, dtype=dtype)
    theta0 = torch.tensor([[2.0]] + ([[0.0]] if config.bias else []), dtype=dtype)  # (p, 1): w = 2 (, b = 0)
    return ds, theta0


def checked(traj: engine.Trajectory, name: str, lr: float) -> engine.Trajectory:
    """The trajectory, or experiments.Diverged if any of its runs blew up (never plot NaNs)."""
    if bool(traj.diverged.any()):
        raise experiments.Diverged(name, int(traj.diverged_step[traj.diverged].min()), lr)
    return traj


def train_toy(config: experiments.ToyConfig, orders: torch.Tensor, theta0=None, dtype=torch.float32):
    """The article's toy loop on the engine with explicit batch orders (E, n) or (E, K, n)."""
    ds, start = _toy_setup(config, dtype)
    K = orders.shape[1] if orders.dim() == 3 else 1
    theta0 = start.expand(-1, K) if theta0 is None else theta0
    traj = checked(engine.train(ds.X, ds.y, theta0.contiguous(), config.lr, orders, batch_size=1, model=config.model,
                                loss="plain", grad_divisor=config.grad_divisor, record_steps=True), "toy", config.lr)
    Xr, yr = engine.runs_last(engine.augment(ds.X, config.bias), ds.y)
    return traj, engine.full_loss(config.model, Xr, yr, traj.step_params, "plain")  # (T+1, K) per-step loss


# --------------------------------------------------------------------------- 1. the article's log, decoded


@dataclass(frozen=True)
class DecodedOrder:
    """The batch order that reproduces a printed log: orders (E, n), and how many orders fit each epoch."""

    orders: torch.Tensor  # (E, n) sample indices; in the toy sets index i is x = i
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
    return DecodedOrder(torch.stack(chosen), tuple(consistent))


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
    steps: pd.DataFrame  # run, epoch, step, x, factor_logged, article, replay, seeded, closed_form
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

    def summary(self) -> dict:
        return {
            "experiment": "article-replay", **asdict(self.config), "shared_epochs": self.shared_epochs(),
            "steps": {run: int((self.steps.run == run).sum()) for run in self.decoded},
            "matches": {run: self.matches(run) for run in self.decoded},
            "orders": {run: d.orders.tolist() for run, d in self.decoded.items()},
            "consistent_orders": {run: list(d.consistent) for run, d in self.decoded.items()},
        }

    def table(self, run: str = "toy-clean") -> pd.DataFrame:
        """The per-step comparison, formatted for the report."""
        frame = self.steps[self.steps.run == run]
        return pd.DataFrame({
            "epoch": frame.epoch, "step": frame.step, "x drawn": frame.x,
            "factor from log": frame.factor_logged.map(lambda v: "–" if np.isnan(v) else f"{v:.3f}"),
            "article": frame.article, "replay": frame.replay, f"seed {self.config.seed}": frame.seeded,
            "closed form (epoch end)": frame.closed_form.map(lambda v: "" if np.isnan(v) else f"{v:f}"),
        }).reset_index(drop=True)


def article_replay(config: ReplayConfig = ReplayConfig()) -> ReplayResult:
    """Decode the article's orders (clean and piecewise runs), replay them, compare every printed step."""
    frames, decoded = [], {}
    for name in ARTICLE_LOG_VALUES:
        log = article_log(name)
        toy = experiments.TOY_RUNS[name]
        decoded[name] = decode_order(name, log)
        _, losses = train_toy(toy, decoded[name].orders)
        seeded = experiments.toy(name, replace(toy, seed=config.seed, epochs=-(-len(log) // 4)))
        steps = np.arange(1, len(log) + 1)
        logged = np.array([losses[0, 0].item(), *map(float, log)])  # the initial loss is not printed: ours
        epoch = (steps - 1) // 4 + 1
        frames.append(pd.DataFrame({
            "run": name, "epoch": epoch, "step": steps,
            "x": decoded[name].orders.flatten()[: len(log)].numpy(),
            "factor_logged": np.sqrt(np.divide(logged[1:], logged[:-1], out=np.full(len(log), np.nan),
                                               where=logged[:-1] > 0)),
            "article": list(log), "replay": printed(losses[1 : len(log) + 1, 0]),
            "seeded": printed(seeded.history.loss.iloc[1 : len(log) + 1]),
            "closed_form": [clean_epoch_loss(e, toy.effective_lr) if s % 4 == 0 and name == "toy-clean"
                            else np.nan for e, s in zip(epoch, steps, strict=True)],
        }))
    return ReplayResult(config, pd.concat(frames, ignore_index=True), decoded)


# --------------------------------------------------------------------------- 2. the floor is least squares


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
        return {"experiment": "four-runs", **asdict(self.config),
                "runs": {name: {k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}
                         for name, row in rows.iterrows()}}

    def table(self) -> pd.DataFrame:
        """The decomposition, formatted for the report."""
        d = self.decomposition
        theta = [f"({w:.5f}, {b:+.5f})" if m == "w·x + b" else f"{w:.5f}"
                 for w, b, m in zip(d.w, d.b, d.model, strict=True)]
        star = [f"({w:.4f}, {b:+.4f})" if m == "w·x + b" else f"{w:.4f}"
                for w, b, m in zip(d.w_star, d.b_star, d.model, strict=True)]
        return pd.DataFrame({
            "run": d.run, "model": d.model, "final θ": theta, "θ*": star, "floor (exact)": d.exact_floor,
            "gap ½δᵀHδ": d.gap.map("{:.4e}".format), "floor + gap": (d.floor + d.gap).map("{:.6e}".format),
            "loss at θ (float64)": d.loss64.map("{:.6e}".format), "logged (float32)": d.final_loss.map("{:.6e}".format),
        })


MODELS = {"toy-clean": "w·x", "toy-noisy": "w·x", "toy-bias": "w·x + b", "toy-piecewise": "w·x + 0.1·[wx ≥ 3]"}


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
                     "b_star": float(b_star), "exact_floor": str(exact), "floor": result.loss_floor,
                     "gap": float(theory.excess_loss(theta, fit)), "loss64": float(loss64),
                     "final_loss": float(last.loss)})
    return FourRunsResult(config, runs, pd.DataFrame(rows))


def _piecewise_loss64(toy: experiments.ToyConfig, theta: torch.Tensor) -> torch.Tensor:
    """The piecewise model's loss at theta in float64 (the engine's jump term is a float32 0.1)."""
    ds = data.toy_data(True, dtype=torch.float64)
    y_hat = ds.X[:, 0] * theta[0]
    y_hat = y_hat + toy.model.jump_height * (y_hat >= toy.model.jump_at).double()
    return ((y_hat - ds.y) ** 2).mean()


# --------------------------------------------------------------------------- 6. what 0.000000 means

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
        return {"experiment": "precision", **asdict(self.config), "first_print_zero": self.first_print_zero,
                "loss_at_print_zero": self.loss_at_print_zero, "first_exact_zero": self.first_exact_zero,
                "article_loss_at_print_zero": self.article_loss_at_print_zero, "print_zero": PRINT_ZERO,
                "float32_eps": FLOAT32.eps, "float32_smallest_normal": FLOAT32.tiny,
                "smallest_nonzero_loss": self.smallest_nonzero_loss}

    def table(self) -> pd.DataFrame:
        """The thresholds, from the printed log down to float32's limits."""
        rows = [
            ('losses that f"{loss:f}" prints as 0.000000', f"< {PRINT_ZERO:.0e}"),
            ("the article's loss when its log first reads 0.000000 (replayed)",
             f"{self.article_loss_at_print_zero:.3e}"),
            (f"seed {self.config.seed}: loss when the log first reads 0.000000", f"{self.loss_at_print_zero:.3e}"),
            ("float32 eps: gap between 1 and the next float32", f"{FLOAT32.eps:.3e}"),
            ("smallest non-zero loss of w·x next to w = 1 in float32: 3.5·eps²", f"{self.smallest_nonzero_loss:.3e}"),
            ("smallest normal float32 (how small a loss float32 can hold)", f"{FLOAT32.tiny:.3e}"),
        ]
        return pd.DataFrame(rows, columns=["quantity", "value"])


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


# --------------------------------------------------------------------------- 7. summary


def causes() -> pd.DataFrame:
    """Each cause of a non-zero training loss: how to recognise it, what helps, where this chapter shows it."""
    rows = [
        ("noise in the labels (the data)",
         "loss stalls at the least-squares floor ≈ σ²/2·(n − p)/n; test loss ≈ training loss",
         "nothing in the optimiser: the floor is the right target; only cleaner labels lower it",
         "The loss floor is the least-squares optimum; Noise sets the floor on D2L's data"),
        ("too little capacity (the model)",
         "floor well above the noise level; training and test losses both high; structured residuals",
         "a richer model (a bias, features, a nonlinearity), judged on held-out data",
         "Capacity: the data or the model?"),
        ("constant step size (the optimiser)",
         "loss just above the floor, moving step to step; the gap grows with the step size",
         "decay the step (Robbins–Monro), full batches at the end, or average the iterates",
         "Why constant-step SGD never settles"),
        ("too few steps", "loss still falling at the last epoch", "more epochs or a larger (stable) step",
         "The article's four runs, regenerated"),
        ("zero training loss on noisy labels (too much capacity)",
         "training loss → 0 while the test loss rises above the noise level",
         "less capacity or regularisation, chosen by held-out loss",
         "Capacity: the data or the model?"),
        ("printing: 0.000000 is not 0", "the log shows 0.000000 while the loss is 1e-7 … 1e-14",
         'print with an exponent: f"{loss:e}"', 'Precision: what "0.000000" means'),
    ]
    return pd.DataFrame(rows, columns=["cause", "how to recognise it", "what helps", "section"])
