"""The grids behind the explorable figures: every frame a reader can reach is a run of the engine.

`floor_grid` (chapter 2, "why the loss stalls"): the article's toy x = 0..3 trained with one
sample per step over a log-spaced range of step sizes — from far below the article's to past the
edge where the runs blow up — crossed with the labels (clean / the 3.1 label), the model (w·x,
w·x + b), the sampling (reshuffled each epoch / drawn with replacement) and the schedule
(constant, Robbins–Monro decay, Polyak–Ruppert averaging of the constant runs' iterates).
`steps_grid` (chapter 3): full-batch gradient descent on two 2-D losses at step sizes across 2/L,
with the level sets and the steepest unit directions of four norms at the start.

Both models share one engine batch: w·x is w·x + b·0, a second feature that is 0 everywhere, so
its b never moves (its gradient is 0·residual). float32, as the article trains: a run that blows
up overflows within the grid's epochs and the engine flags it with its step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import data, engine, experiments, norms, taylor, theory
from ._lazy import torch
from .cache import cached
from .loss_floor import exact_least_squares
from .sampling import epoch_ranges
from .steepest import ARTICLE_LR

TOY_ETA = experiments.TOY_RUNS["toy-noisy"].effective_lr  # the article's toy step: lr 0.3 / batch_size 10

# --------------------------------------------------------------------------- chapter 2: the floor grid

LABELS = ("clean", "3.1")  # the toy's last label: 3 (clean) or the article's 3.1
MODELS = ("w·x", "w·x + b")
SAMPLINGS = ("reshuffled", "with replacement")
SCHEDULES = ("constant", "Robbins–Monro", "Polyak–Ruppert")


@dataclass(frozen=True)
class FloorGridConfig:
    """The toy with one sample per step (the article's update, lr/10 = η), float32."""

    seed: int = 20
    epochs: int = 400  # η = 1e-3 forgets w0 = 2 within ~1/(2η·Σx²/n)/n·10 ≈ 360 epochs
    tail: int = 100  # epochs over which the cycle's width (w's mean range within an epoch) and offset are read
    show_epochs: int = 4  # epochs of w drawn step by step
    lr_half_octaves: tuple[int, ...] = tuple(range(-10, 8))  # η = 0.03·2^(k/2): 0.00094 … 0.34
    decay_steps: float = 40.0  # Robbins–Monro t0 (steps), as `cycle.MethodsConfig`
    loss_points: int = 30  # epochs at which the loss is kept (log-spaced), for the page's weight

    @property
    def effective_lrs(self) -> list[float]:
        """The step sizes η (the article's is 0.03 = lr 0.3 / 10, at k = 0)."""
        return [TOY_ETA * 2 ** (k / 2) for k in self.lr_half_octaves]


@dataclass(frozen=True)
class FloorGridResult:
    """One row per frame (labels, model, sampling, schedule, η) and its curves."""

    config: FloorGridConfig
    frames: pd.DataFrame  # labels, model, sampling, schedule, lr, w_star, floor, width, offset, final_loss,
    #                       diverged_step (−1: never)
    trace: np.ndarray  # (frames, show_epochs·4 + 1) w after each step of the last epochs (NaN after divergence)
    loss_epochs: np.ndarray  # (m,) epochs at which `loss` is kept
    loss: np.ndarray  # (frames, m) training loss at those epochs (NaN/inf after divergence)

    def at(self, labels: str = "3.1", model: str = "w·x", sampling: str = "reshuffled", schedule: str = "constant",
           lr: float = TOY_ETA) -> pd.Series:
        """One frame's row; the defaults are the article's run (label 3.1, w·x, reshuffled, constant η = 0.03)."""
        f = self.frames
        return f[(f.labels == labels) & (f.model == model) & (f.sampling == sampling) & (f.schedule == schedule)
                 & np.isclose(f.lr, lr)].iloc[0]

    def outcomes(self) -> pd.Series:
        """Per frame: "flagged" (the engine flags the run as diverged), "grows" (not flagged, but its final loss is
        above its loss at the start, w = 2 and b = 0) or "ends below its start" (every other frame)."""
        f, start = self.frames, self.loss[:, 0]  # loss_epochs[0] is epoch 0, the start
        flagged, grows = f.diverged_step.to_numpy() >= 0, f.final_loss.to_numpy() > start
        return pd.Series(np.where(flagged, "flagged", np.where(grows, "grows", "ends below its start")), index=f.index)

    def select(self, **where) -> pd.DataFrame:
        """The frames whose columns match `where`: a value, or a tuple of values (η matched to float rounding)."""
        f, keep = self.frames, np.ones(len(self.frames), dtype=bool)
        for column, value in where.items():
            values = value if isinstance(value, tuple) else (value,)
            if column == "lr":
                keep &= np.isclose(f.lr.to_numpy()[:, None], np.array(values)[None, :]).any(1)
            else:
                keep &= f[column].isin(values).to_numpy()
        return f[keep]

    def count(self, outcome: str, **where) -> tuple[int, int]:
        """(k, N): of the N frames matching `where`, the k whose outcome (`outcomes`) is `outcome`."""
        chosen = self.select(**where)
        return int((self.outcomes()[chosen.index] == outcome).sum()), len(chosen)

    def largest_excess(self, **where) -> float:
        """The largest final loss above the floor over the frames matching `where` (NaN for flagged frames)."""
        chosen = self.select(**where)
        return float((chosen.final_loss - chosen.floor).max())

    @property
    def largest_lrs(self) -> tuple[float, float]:
        """The grid's two largest step sizes."""
        return tuple(self.config.effective_lrs[-2:])

    def summary(self) -> dict:
        """Keys: frames, diverged (count), lr_min, lr_max, and the article's frame (3.1, w·x, reshuffled, constant,
        η = 0.03): its width, offset, final loss and floor."""
        f, art = self.frames, self.at()
        return {"experiment": "explore-floor", **asdict(self.config), "frames": len(f),
                "diverged": int((f.diverged_step >= 0).sum()), "lr_min": float(f.lr.min()),
                "lr_max": float(f.lr.max()), "article_width": float(art.width), "article_offset": float(art.offset),
                "article_final_loss": float(art.final_loss), "article_floor": float(art.floor)}


def _grid_orders(config: FloorGridConfig, sampling: list[int]) -> torch.Tensor:
    """(E, K, 4): the reshuffled stream (the toy's own order stream) or draws with replacement, per run."""
    E, n = config.epochs, len(data.TOY_X)
    reshuffled = data.batch_orders(n, E, data.generator(config.seed, "order"))  # (E, n)
    drawn = torch.randint(0, n, (E, n), generator=data.generator(config.seed, "replacement"))
    return torch.stack([reshuffled if s == 0 else drawn for s in sampling], 1)


def _averaged(step_params: torch.Tensor) -> torch.Tensor:
    """Polyak–Ruppert: the running mean of the iterates θ_0 … θ_t, (T+1, p, K)."""
    counts = torch.arange(1, step_params.shape[0] + 1, dtype=torch.float64).view(-1, 1, 1)
    return (step_params.double().cumsum(0) / counts).to(step_params.dtype)  # summed in float64: no drift


@cached
def floor_grid(config: FloorGridConfig = FloorGridConfig()) -> FloorGridResult:
    """The chapter-2 grid: two engine batches (constant and Robbins–Monro), averaging from the constant one."""
    lrs = config.effective_lrs
    cells = [(d, m, s, i) for d in range(2) for m in range(2) for s in range(2) for i in range(len(lrs))]
    K, x = len(cells), torch.tensor(data.TOY_X, dtype=torch.float64)  # float64 for the least-squares fits
    X = torch.stack([torch.stack([x, torch.full_like(x, float(m))], 1) for _, m, _, _ in cells])  # (K, n, 2)
    ys = [torch.tensor(v, dtype=torch.float64) for v in (data.TOY_Y_CLEAN, data.TOY_Y_NOISY)]
    y = torch.stack([ys[d] for d, _, _, _ in cells])  # (K, n)
    theta0 = torch.tensor([[2.0], [0.0]], dtype=torch.float64).expand(2, K).contiguous()  # w = 2, b = 0
    lr = torch.tensor([lrs[i] for *_, i in cells], dtype=torch.float64)
    orders = _grid_orders(config, [s for _, _, s, _ in cells])
    X, y, theta0, lr = X.float(), y.float(), theta0.float(), lr.float()
    common = {"batch_size": 1, "model": engine.Model(bias=False), "loss": "plain", "grad_divisor": 1,
              "record_steps": True}
    runs = {"constant": engine.train(X, y, theta0, lr, orders, **common),
            "Robbins–Monro": engine.train(X, y, theta0, lr, orders, lr_decay_steps=config.decay_steps, **common)}
    averaged = _averaged(runs["constant"].step_params)

    labels = (data.TOY_Y_CLEAN, data.TOY_Y_NOISY)
    fits = {(d, m): exact_least_squares(data.TOY_X, labels[d], bias=bool(m)) for d in range(2) for m in range(2)}
    Xd, yd = engine.runs_last(X, y)
    spe = 4  # steps per epoch: n = 4 samples, one per step
    keep = np.unique(np.geomspace(1, config.epochs + 1, config.loss_points).astype(int) - 1)
    tail, show = config.tail * spe, config.show_epochs * spe
    rows, traces, losses = [], [], []
    for schedule in SCHEDULES:
        params = averaged if schedule == "Polyak–Ruppert" else runs[schedule].step_params  # (T+1, 2, K)
        diverged = runs["Robbins–Monro" if schedule == "Robbins–Monro" else "constant"].diverged_step
        epoch_params = params[::spe]  # (E+1, 2, K)
        with np.errstate(invalid="ignore", over="ignore"):
            loss = engine.full_loss(engine.Model(bias=False), Xd, yd, epoch_params, "plain")  # (E+1, K)
        w = params[:, 0, :]  # (T+1, K)
        for k, (d, m, s, i) in enumerate(cells):
            w_star, _, floor = (float(v) for v in fits[(d, m)])  # exact: the clean floor is 0, not 1e-31
            blown = int(diverged[k]) >= 0
            rows.append({"labels": LABELS[d], "model": MODELS[m], "sampling": SAMPLINGS[s], "schedule": schedule,
                         "lr": lrs[i], "w_star": w_star, "floor": floor,
                         "width": math.nan if blown else float(epoch_ranges(w[-tail - 1 :, k : k + 1], spe).mean()),
                         "offset": math.nan if blown else float(epoch_params[-config.tail :, 0, k].mean()) - w_star,
                         "final_loss": math.nan if blown else float(loss[-1, k]),
                         "diverged_step": int(diverged[k])})
            traces.append(w[-show - 1 :, k].double().numpy())
            losses.append(loss[keep, k].double().numpy())
    return FloorGridResult(config, pd.DataFrame(rows), np.stack(traces), keep, np.stack(losses))


# --------------------------------------------------------------------------- chapter 3: steps across 2/L

PROBLEMS = ("baseline (w1, w2), b = b*", "toy (w, b), label 3.1")
NORMS = ("ℓ2", "ℓ1", "ℓ∞", "H")


@dataclass(frozen=True)
class StepsGridConfig:
    """Full-batch GD (float32, as the chapter's sweep across 2/L) at η = ratio/L on two 2-D losses."""

    seed: int = 20
    ratios: tuple[float, ...] = (0.03, 0.1, 0.3, 0.5, 1.0, 1.5, 1.8, 1.95, 2.1, 2.2, 2.5, 3.0)  # η·L, and
    #   the article's own η·L on the baseline (ARTICLE_LR·L), added in front: the figure's initial state
    steps: int = 600  # enough for the loss at η·L = 2.1 to overflow float32 (it grows 1.1² per step)
    path_steps: int = 40  # iterates drawn
    levels: int = 7  # level sets drawn, through evenly spaced fractions of the start's excess loss
    points: int = 64  # points per drawn ellipse or norm ball


@dataclass(frozen=True)
class StepsGridResult:
    """Per problem: GD paths per ratio, level-set and norm-ball polylines, the steepest direction per norm."""

    config: StepsGridConfig
    runs: pd.DataFrame  # problem, ratio, lr, L, mu, diverged_step, excess_final (float64 of the last iterate)
    paths: np.ndarray  # (problems, ratios, path_steps + 1, 2) iterates (NaN after divergence)
    levels: np.ndarray  # (problems, levels, points + 1, 2) level-set ellipses
    balls: np.ndarray  # (problems, norms, points + 1, 2) each norm's unit ball around θ0, drawn ×radius
    #                    (the H ball, and its direction, also ×det(H)^¼: the circle's area, as in fig-steepest-norms)
    directions: np.ndarray  # (problems, norms, 2) each norm's steepest unit direction, on its ball as drawn
    radius: np.ndarray  # (problems,) drawing scale of the balls and directions
    optimum: np.ndarray  # (problems, 2) θ*
    start: np.ndarray  # (problems, 2) θ0

    def L(self, problem: str) -> float:
        """The smoothness constant λ_max of the problem's 2-D Hessian (the slice's, not the full loss's)."""
        return float(self.runs[self.runs.problem == problem].L.iloc[0])

    def summary(self) -> dict:
        """Keys: L and κ per problem; which ratios diverged, with their steps."""
        out = {"experiment": "explore-steps", **asdict(self.config)}
        for problem, g in self.runs.groupby("problem", sort=False):
            out[problem] = {"L": float(g.L.iloc[0]), "kappa": float(g.L.iloc[0] / g.mu.iloc[0]),
                            "diverged": {f"{r.ratio:g}": int(r.diverged_step) for r in g.itertuples()
                                         if r.diverged_step >= 0}}
        return out


def _problems(seed: int) -> list[tuple[taylor.Quadratic, torch.Tensor]]:
    """The two 2-D losses of `norms.level_sets`: the baseline's (w1, w2) at b = b*, and the toy's (w, b)."""
    base, theta0 = taylor.baseline_problem(seed)
    sliced = taylor.Quadratic(base.X, base.y - float(base.fit.theta[-1]), bias=False, loss="half")
    toy, toy0 = taylor.toy_problem(noisy=True, bias=True)
    return [(sliced, theta0[:2]), (toy, toy0)]


def steepest_linf(g: torch.Tensor) -> torch.Tensor:
    """The ℓ∞ unit vector minimising gᵀd: −sign(g) (a corner of the cube)."""
    return -torch.sign(g)


def _ball(norm: str, H: torch.Tensor, points: int) -> torch.Tensor:
    """Boundary of the unit ball {‖d‖ = 1} of a norm, (points + 1, 2), closed."""
    t = torch.linspace(0, 2 * math.pi, points + 1, dtype=torch.float64)
    circle = torch.stack([t.cos(), t.sin()], 1)
    if norm == "ℓ2":
        return circle
    if norm == "H":  # dᵀHd = 1: d = H^(-1/2) u
        lam, V = torch.linalg.eigh(H)
        return circle @ (V / lam.sqrt()).T
    p = 1 if norm == "ℓ1" else math.inf
    return circle / torch.linalg.vector_norm(circle, ord=p, dim=1, keepdim=True)


def _ellipse(q: taylor.Quadratic, excess: float, points: int) -> torch.Tensor:
    """The level set {f = f* + excess}: θ* + √(2·excess)·H^(-1/2)(cos t, sin t)."""
    return q.fit.theta + math.sqrt(2 * excess) * _ball("H", q.hessian, points)


@cached
def steps_grid(config: StepsGridConfig = StepsGridConfig()) -> StepsGridResult:
    """The chapter-3 grid: per problem one engine batch of full-batch GD runs, one per η = ratio/L."""
    rows, paths, levels, balls, dirs, radius, optimum, start = [], [], [], [], [], [], [], []
    problems = _problems(config.seed)
    ratios = sorted({ARTICLE_LR * taylor.curvature_bounds(problems[0][0].hessian)[0], *config.ratios})
    for name, (q, theta0) in zip(PROBLEMS, problems, strict=True):
        L, mu = taylor.curvature_bounds(q.hessian)
        traj = taylor.full_batch_gd(q, theta0, [r / L for r in ratios], config.steps, dtype=torch.float32)
        final = traj.epoch_params[-1].double().T  # (K, 2)
        for k, r in enumerate(ratios):
            blown = int(traj.diverged_step[k]) >= 0
            rows.append({"problem": name, "ratio": r, "lr": r / L, "L": L, "mu": mu,
                         "diverged_step": int(traj.diverged_step[k]),
                         "excess_final": math.nan if blown else float(theory.excess_loss(final[k], q.fit))})
        paths.append(traj.epoch_params[: config.path_steps + 1].double().permute(2, 0, 1).numpy())  # (K, S+1, 2)
        excess0 = float(theory.excess_loss(theta0, q.fit))
        levels.append(torch.stack([_ellipse(q, excess0 * (j / config.levels) ** 2, config.points)
                                   for j in range(1, config.levels + 1)]).numpy())
        g = q.gradient(theta0)
        unit = {"ℓ2": norms.steepest_l2(g), "ℓ1": norms.steepest_l1(g), "ℓ∞": steepest_linf(g),
                "H": norms.steepest_hnorm(g, q.hessian)}
        r = 0.35 * float((theta0 - q.fit.theta).norm())  # a third of the way to θ*: visible, not crowding
        scale = {n: r * (float(torch.linalg.det(q.hessian)) ** 0.25 if n == "H" else 1.0) for n in NORMS}
        radius.append(r)
        balls.append(torch.stack([theta0 + scale[n] * _ball(n, q.hessian, config.points) for n in NORMS]).numpy())
        dirs.append(torch.stack([scale[n] * unit[n] for n in NORMS]).numpy())
        optimum.append(q.fit.theta.numpy())
        start.append(theta0.numpy())
    return StepsGridResult(config, pd.DataFrame(rows), np.stack(paths), np.stack(levels), np.stack(balls),
                           np.stack(dirs), np.array(radius), np.stack(optimum), np.stack(start))
