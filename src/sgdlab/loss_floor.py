"""Question 1, "why the loss does not reach zero": the article's logs decoded, the exact floors, the summary.

Sections "four runs", "loss floor" and "summary" of report/02-loss-floor.qmd; SGD's cycle is in
`cycle`, the noise floor and capacity in `capacity`, what 0.000000 means in `precision`. Toy runs
train through `experiments.toy` or, with explicit orders, through `train_toy` (`engine.train`).
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


# --------------------------------------------------------------------------- the article's log, decoded


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
            "epoch": f.epoch.to_numpy(), "x drawn": f.x.to_numpy(),
            "factor": f.factor_logged.map(lambda v: "–" if np.isnan(v) else f"{v:.3f}").to_numpy(),
            "article": f.article.to_numpy(), "replay": f.replay.to_numpy(),
        }, index=pd.Index(f.step.to_numpy(), name="step"))

    def epoch_table(self, run: str = "toy-clean") -> pd.DataFrame:
        """Epoch ends: the article's order and loss, our seeded order and loss, and the closed form."""
        f = self.steps[self.steps.run == run]
        full = f.groupby("epoch").filter(lambda g: len(g) == self.decoded[run].orders.shape[1])
        ends = full.groupby("epoch")
        orders = ends.x.agg(lambda v: " ".join(str(int(i)) for i in v)).to_numpy()
        seeded = ends.seeded_x.agg(lambda v: " ".join(str(int(i)) for i in v)).to_numpy()
        last = ends.tail(1)
        seed = f"seed {self.config.seed}"
        return pd.DataFrame({
            "article's x": orders, "article": last.article.to_numpy(), f"{seed}'s x": seeded,
            seed: last.seeded.to_numpy(), "closed form": last.closed_form.map("{:f}".format).to_numpy(),
        }, index=pd.Index(last.epoch.to_numpy(), name="epoch"))


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
        seeded_x = data.batch_orders(4, seeded.config.epochs, data.generator(config.seed, "order"))  # toy()'s
        frames.append(pd.DataFrame({
            "run": name, "epoch": epoch, "step": steps,
            "x": decoded[name].orders.flatten()[: len(log)].numpy(),
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
        labels = [RUN_LABELS[r] for r in self.decomposition.run]
        return pd.DataFrame(columns, index=pd.Index(labels, name="labels, model"))

    def optimum_table(self) -> pd.DataFrame:
        """Each run's final θ beside the least-squares θ*, its floor, and its loss against y = x, exactly."""
        d = self.decomposition

        def theta(ws, bs, digits):
            return [f"({w:.{digits}f}, {b:.{digits}f})" if m == "w·x + b" else f"{w:.{digits}f}"
                    for w, b, m in zip(ws, bs, d.model, strict=True)]

        return self._frame({
            "final θ": theta(d.w, d.b, 5), "θ*": theta(d.w_star, d.b_star, 4),
            "floor (exact)": d.exact_floor.to_numpy(),
            "loss vs y = x (exact)": [str(target_loss(r)) for r in d.run]})

    def table(self) -> pd.DataFrame:
        """Final loss = floor + gap, against the loss at the final θ in float64 and the logged float32 loss."""
        d = self.decomposition
        return self._frame({
            "floor": d.floor.map(lambda v: f"{v:.4e}" if v else "0").to_numpy(),
            "gap": d.gap.map("{:.3e}".format).to_numpy(),
            "floor + gap": (d.floor + d.gap).map("{:.6e}".format).to_numpy(),
            "float64 loss": d.loss64.map("{:.6e}".format).to_numpy(),
            "float32 log": d.final_loss.map("{:.6e}".format).to_numpy()})


# Table rows: the labels (clean, or with 3.1) and the model.
RUN_LABELS = {"toy-clean": "clean, w·x", "toy-noisy": "3.1, w·x", "toy-bias": "3.1, w·x + b",
              "toy-piecewise": "3.1, piecewise"}
MODELS = {"toy-clean": "w·x", "toy-noisy": "w·x", "toy-bias": "w·x + b", "toy-piecewise": "w·x + 0.1·[w·x ≥ 3]"}


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


# --------------------------------------------------------------------------- summary


def causes() -> pd.DataFrame:
    """Each cause of a non-zero training loss, and two misleading zeros: how each shows, what helps, where."""
    rows = {  # cause -> (symptom, what helps, in the article); cells short enough for a PDF page
        "label noise": ("stops at the floor", "nothing: it is the target", "0.000049; 3.1 runs"),
        "too little capacity": ("train, test ≫ σ²/2", "a richer model", "none"),
        "constant step": ("jitters above the floor", "decaying step, full batch", "3.1 runs: the gap"),
        "too few steps": ("still falling", "more epochs", "baseline's last gap; clean run"),
        # The last two are zeros that mislead, not causes of a non-zero loss.
        "(zero) too much capacity": ("train → 0, test ≫ σ²/2", "fewer parameters", "piecewise model"),
        "(zero) printing": ("0.000000 while loss > 0", 'f"{loss:e}"', "clean run"),
    }
    return pd.DataFrame(list(rows.values()), columns=["symptom", "what helps", "in the article"],
                        index=pd.Index(list(rows), name="cause"))
