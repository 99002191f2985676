"""The article's experiments: one function each, a frozen config in, a typed result out.

`baseline` is section 五 (D2L's linear regression, three implementations side by side);
`toy_*` are the four runs of 问题1. Nothing here prints or plots.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from . import d2l, data, engine, theory
from ._lazy import torch
from .cache import cached

# What the article printed for section 五 (seed 20, lr 0.0003, 300 epochs, batch 10).
ARTICLE_BASELINE = {"final_loss": 0.000049, "w_error": [0.0004, -0.0008], "b_error": 0.0008}


class ConfigError(ValueError):
    """A configuration a user asked for that cannot run (bad lr, batch size, epochs...)."""


class Diverged(RuntimeError):
    """The training loss became inf or NaN."""

    def __init__(self, name: str, step: int, lr: float):
        super().__init__(f"{name}: training diverged at step {step} (loss became inf/NaN); lower --lr (now {lr:g})")
        self.step = step


@dataclass(frozen=True)
class RunConfig:
    """One training run. Seeds: data and init replay `torch.manual_seed(seed)`; batch order is its own stream."""

    seed: int = 20
    lr: float = 0.0003
    epochs: int = 300
    batch_size: int = 10
    device: str = "cpu"  # where the engine computes; results agree across devices within float rounding

    def validate(self, n: int) -> None:
        """Raise ConfigError naming the first bad value."""
        for key in ("lr", "batch_size", "epochs", "seed", "device"):
            check_setting(key, getattr(self, key))
        if self.batch_size > n:
            raise ConfigError(f"--batch-size must be between 1 and the data size {n}, got {self.batch_size}")


# torch.manual_seed takes seeds below 2**64; derived seeds add a run index and pass through int64
# numpy arrays (cycle.py), so the range stops well short of both.
MAX_SEED = 2**62
# What a run may keep in memory (its recorded history, batch orders and reference runs), estimated
# from its config before it starts: a run that would exceed this is refused, not left to swap.
MEMORY_BUDGET = 2 * 2**30


def check_setting(key: str, value) -> None:
    """Raise ConfigError for a bad value of a command-line setting, whichever experiment it is for."""
    flag = "--" + key.replace("_", "-")
    if key == "lr" and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag} must be a finite number > 0, got {value}")
    if key in ("epochs", "batch_size") and value < 1:
        raise ConfigError(f"{flag} must be at least 1, got {value}")
    if key == "seed" and not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{flag} must be between 0 and 2**62 = {MAX_SEED}, got {value}")
    if key == "device":
        check_device(value)


def epoch_bytes(n: int, runs: int = 1, steps: int = 0, per_step: int = 0) -> int:
    """Bytes a run keeps per epoch: its batch orders (int64, built from a list: twice n·8 per run)
    and `per_step` bytes for each of its `steps` steps per epoch and run (recorded parameters, losses, rows)."""
    return runs * (16 * n + steps * per_step)


def check_epochs(name: str, epochs: int, least: int, per_epoch: int, budget: int = MEMORY_BUDGET) -> None:
    """Raise ConfigError unless least ≤ epochs and epochs × per_epoch bytes fit the memory budget."""
    most = max(least, budget // max(per_epoch, 1))
    if not least <= epochs <= most:
        why = f" (beyond that its history would not fit {budget / 2**30:g} GiB of memory)" if epochs > most else ""
        raise ConfigError(f"--epochs must be between {least} and {most} for {name}, got {epochs}{why}")


def check_device(device: str) -> None:
    """Raise ConfigError unless torch can compute on `device` here."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ConfigError(f"--device must be a torch device such as cpu or cuda, got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available on this machine")
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device}: only cpu and cuda are supported")


def _params_frame(params: torch.Tensor, loss: torch.Tensor, names: list[str], index: dict) -> pd.DataFrame:
    """A history DataFrame: index columns, loss, one column per parameter. params: (T, p)."""
    frame = pd.DataFrame(index)
    frame["loss"] = loss.double().cpu().numpy()
    for j, name in enumerate(names):
        frame[name] = params[:, j].double().cpu().numpy()
    return frame


def _check(traj: engine.Trajectory, name: str, lr: float) -> None:
    if bool(traj.diverged.any()):
        raise Diverged(name, int(traj.diverged_step[traj.diverged].min()), lr)


# --------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class BaselineResult:
    """Section 五 regenerated: histories per implementation, final parameters, the floor."""

    config: RunConfig
    data: data.Dataset  # as numpy arrays (Dataset.numpy)
    history: pd.DataFrame  # implementation, epoch, loss, w1, w2, b
    final: pd.DataFrame  # one row per implementation: final_loss, w1, w2, b, w_error..., b_error
    loss_floor: float  # closed-form training loss (D2L's ½ loss), float64
    true_w: tuple[float, ...] = data.TRUE_W
    true_b: float = data.TRUE_B

    def summary(self) -> dict:
        rows = self.final.set_index("implementation")
        scratch = rows.loc["scratch"]
        return {
            "experiment": "baseline",
            **asdict(self.config),
            "final_loss": float(scratch.final_loss),
            "w_error": [float(scratch.w1_error), float(scratch.w2_error)],
            "b_error": float(scratch.b_error),
            "loss_floor": self.loss_floor,
            "implementations": {
                name: {"final_loss": float(r.final_loss), "w": [float(r.w1), float(r.w2)], "b": float(r.b)}
                for name, r in rows.iterrows()
            },
            "article": ARTICLE_BASELINE,
        }


def article_start(seed: int, n: int = data.NUM_EXAMPLES):
    """D2L's data and the article's initial weights, drawn in its order from one stream.

    Returns the Dataset, w0 (2, 1) and theta0 = (w1, w2, b = 0) as the engine's (3, 1).
    """
    gen = data.generator(seed)
    ds = data.d2l_data(gen, n=n)
    w0 = torch.normal(0, 0.01, size=(2, 1), generator=gen)  # after X and the noise, as in the article
    return ds, w0, torch.cat([w0.flatten(), torch.zeros(1)]).unsqueeze(1)


@cached
def baseline(config: RunConfig = RunConfig()) -> BaselineResult:
    """D2L 3.2 on y = Xw + b + ε: scratch (engine), concise (nn.Linear + optim.SGD), closed form."""
    ds, w0, theta0 = article_start(config.seed)
    config.validate(ds.n)
    orders = data.batch_orders(ds.n, config.epochs, data.generator(config.seed, "order"))

    traj = engine.train(ds.X, ds.y, theta0, config.lr, orders, batch_size=config.batch_size, device=config.device)
    _check(traj, "baseline", config.lr)
    concise_steps = d2l.concise(ds.X, ds.y, w0, 0.0, config.lr, orders, batch_size=config.batch_size)
    concise_epochs = concise_steps[:: traj.steps_per_epoch]  # (E+1, 3)
    Xr, yr = engine.runs_last(engine.augment(ds.X, True), ds.y)
    concise_loss = engine.full_loss(engine.LINEAR, Xr, yr, concise_epochs.unsqueeze(-1), "half")  # (E+1, 1)
    if not bool(torch.isfinite(concise_loss).all()):
        raise Diverged("baseline (concise)", int((~torch.isfinite(concise_loss)).nonzero()[0, 0]), config.lr)

    fit = theory.least_squares(ds.X, ds.y, bias=True)
    epochs = {"epoch": range(config.epochs + 1)}
    names = ["w1", "w2", "b"]
    history = pd.concat(
        [
            _params_frame(
                traj.epoch_params[:, :, 0], traj.epoch_loss[:, 0], names, {"implementation": "scratch", **epochs}
            ),
            _params_frame(concise_epochs, concise_loss[:, 0], names, {"implementation": "concise", **epochs}),
        ],
        ignore_index=True,
    )
    final = history.groupby("implementation", sort=False).tail(1).drop(columns="epoch")
    final = pd.concat(
        [final.rename(columns={"loss": "final_loss"}),
         pd.DataFrame([{"implementation": "closed_form", "final_loss": fit.loss_floor,
                        **dict(zip(names, fit.theta.tolist(), strict=True))}])],
        ignore_index=True,
    )
    final["w1_error"] = data.TRUE_W[0] - final.w1
    final["w2_error"] = data.TRUE_W[1] - final.w2
    final["b_error"] = data.TRUE_B - final.b
    return BaselineResult(config, ds.numpy(), history, final.reset_index(drop=True), fit.loss_floor)


@dataclass(frozen=True)
class OrderSpreadResult:
    """The baseline retrained under many batch orders (the article's was unseeded): how much moves."""

    config: RunConfig
    order_seeds: list[int]
    final: pd.DataFrame  # order_seed, final_loss, w1_error, w2_error, b_error

    def summary(self) -> dict:
        cols = ["final_loss", "w1_error", "w2_error", "b_error"]
        return {
            "experiment": "baseline-orders",
            **asdict(self.config),
            "runs": len(self.order_seeds),
            "min": {c: float(self.final[c].min()) for c in cols},
            "max": {c: float(self.final[c].max()) for c in cols},
        }


@cached
def baseline_order_spread(config: RunConfig = RunConfig(), runs: int = 32) -> OrderSpreadResult:
    """Same data and init as `baseline`, `runs` different batch orders, trained at once (K = runs)."""
    ds, _, theta0 = article_start(config.seed)
    config.validate(ds.n)
    theta0 = theta0.repeat(1, runs)
    seeds = list(range(runs))
    orders = torch.stack(
        [data.batch_orders(ds.n, config.epochs, data.generator(s, "order")) for s in seeds], dim=1
    )  # (E, K, n): one order stream per run
    traj = engine.train(ds.X, ds.y, theta0, config.lr, orders, batch_size=config.batch_size, device=config.device)
    _check(traj, "baseline-orders", config.lr)
    final = traj.epoch_params[-1].cpu().double()  # (3, K)
    frame = pd.DataFrame({
        "order_seed": seeds,
        "final_loss": traj.epoch_loss[-1].cpu().double().numpy(),
        "w1_error": (data.TRUE_W[0] - final[0]).numpy(),
        "w2_error": (data.TRUE_W[1] - final[1]).numpy(),
        "b_error": (data.TRUE_B - final[2]).numpy(),
    })
    return OrderSpreadResult(config, seeds, frame)


# --------------------------------------------------------------------------- toy runs


@dataclass(frozen=True)
class ToyConfig(RunConfig):
    """The article's 问题1 loop: w starts at 2, batches of one, loss (ŷ-y)², sgd dividing by 10."""

    lr: float = 0.3
    epochs: int = 8
    batch_size: int = 1
    grad_divisor: int = 10  # the article's global batch_size, left over from section 五
    noisy: bool = False  # last label 3.1 instead of 3
    bias: bool = False
    piecewise: bool = False  # + 0.1 where ŷ ≥ 3

    @property
    def effective_lr(self) -> float:
        """The step size per sample actually taken: lr / grad_divisor."""
        return self.lr / self.grad_divisor

    @property
    def model(self) -> engine.Model:
        return engine.Model(bias=self.bias, jump_at=3.0 if self.piecewise else None, jump_height=0.1)


TOY_RUNS = {
    "toy-clean": ToyConfig(),
    "toy-noisy": ToyConfig(noisy=True, epochs=30000),
    "toy-bias": ToyConfig(noisy=True, bias=True, epochs=30000),
    "toy-piecewise": ToyConfig(noisy=True, piecewise=True),
}


@dataclass(frozen=True)
class ToyResult:
    """One 问题1 run: the per-step log (the article prints the loss after every step)."""

    name: str
    config: ToyConfig
    history: pd.DataFrame  # step, epoch, loss, w, b — row 0 is the initial point
    ols_w: float  # the best parameters of this model on this data (least squares, float64)
    ols_b: float
    loss_floor: float  # the training loss at (ols_w, ols_b): the lowest this model can reach

    @property
    def first_zero_epoch(self) -> int | None:
        """First epoch in which the printed loss (f"{loss:f}", as the article) reads 0.000000."""
        printed = self.history.loss.iloc[1:].map(lambda v: f"{v:f}")
        zero = self.history.epoch.iloc[1:][printed == "0.000000"]
        return int(zero.iloc[0]) if len(zero) else None

    def summary(self) -> dict:
        last = self.history.iloc[-1]
        return {
            "experiment": self.name,
            **asdict(self.config),
            "effective_lr": self.config.effective_lr,
            "final_loss": float(last.loss),
            "w": float(last.w),
            "b": float(last.b),
            "ols_w": self.ols_w,
            "ols_b": self.ols_b,
            "loss_floor": self.loss_floor,
            "first_zero_epoch": self.first_zero_epoch,
        }


@cached
def toy(name: str, config: ToyConfig | None = None) -> ToyResult:
    """Run one of the article's toy experiments (see TOY_RUNS) on the engine."""
    config = TOY_RUNS[name] if config is None else config
    ds = data.toy_data(config.noisy)
    config.validate(ds.n)
    orders = data.batch_orders(ds.n, config.epochs, data.generator(config.seed, "order"))
    theta0 = torch.tensor([[2.0]] + ([[0.0]] if config.bias else []))  # w = 2 (and b = 0)
    traj = engine.train(
        ds.X, ds.y, theta0, config.lr, orders, batch_size=config.batch_size, model=config.model,
        loss="plain", grad_divisor=config.grad_divisor, record_steps=True, device=config.device,
    )
    _check(traj, name, config.lr)
    Xr, yr = engine.runs_last(engine.augment(ds.X, config.bias), ds.y)
    params = traj.step_params.cpu()
    losses = engine.full_loss(config.model, Xr, yr, params, "plain")[:, 0]
    params = params[:, :, 0]
    total = params.shape[0] - 1
    steps = pd.DataFrame({
        "step": range(total + 1),
        "epoch": [0] + [1 + s // traj.steps_per_epoch for s in range(total)],
        "loss": losses.double().numpy(),
        "w": params[:, 0].double().numpy(),
        "b": params[:, 1].double().numpy() if config.bias else 0.0,
    })
    return ToyResult(name, config, steps, *toy_optimum(config))


def toy_optimum(config: ToyConfig) -> tuple[float, float, float]:
    """(w*, b*, loss floor) of the toy config's model on its data, in float64."""
    ds = data.toy_data(config.noisy, dtype=torch.float64)
    if config.piecewise:
        model = config.model
        w, floor = theory.jump_least_squares(ds.X, ds.y, model.jump_at, model.jump_height, "plain")
        return w, 0.0, floor
    fit = theory.least_squares(ds.X, ds.y, bias=config.bias, loss="plain")
    return float(fit.theta[0]), float(fit.theta[1]) if config.bias else 0.0, fit.loss_floor
