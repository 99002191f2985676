"""The book's random experiments over many seeds at once: what each seed gives, for the claims registry.

Seed s means what `sgdlab run NAME --seed s` means (for the baseline, the batch order's seed on the
article's own data set); the seeds checked are the article's, 20, and those after it (`first`).
Each function runs all its seeds through one `engine.train` batch per variant and returns
`Outcomes`: one array per quantity, one row per seed. `claims.py` reads them; tests check that a
seed's row is what that seed's own experiment gives.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import data, engine, experiments, explore, sgd_floor, taylor, theory
from ._lazy import torch
from .article_log import checked
from .cache import cached
from .capacity import NoiseFloorConfig
from .loss_floor import exact_least_squares

ARTICLE_SEED = 20
# The configs whose seeds are redone: the book's defaults (module-level, as argument defaults).
_GRID, _BASELINE, _NOISE = explore.FloorGridConfig(), experiments.RunConfig(), NoiseFloorConfig()


def first(n: int) -> tuple[int, ...]:
    """The article's seed and the n − 1 seeds after it."""
    return tuple(range(ARTICLE_SEED, ARTICLE_SEED + n))


@dataclass(frozen=True)
class Outcomes:
    """Per-seed outcomes of one experiment: values[name][k] belongs to seeds[k]."""

    experiment: str  # the registry name of the experiment the seeds redo
    seeds: tuple[int, ...]
    values: dict  # name -> np.ndarray, (N,) or (N, m)

    def summary(self) -> dict:
        return {"experiment": self.experiment, "seeds": list(self.seeds),
                "values": {k: v.tolist() for k, v in self.values.items()}}


def _one_thread(function):
    """Run with one torch thread. These batches are tens of runs: a second thread saves little, and its
    hand-offs cost more CPU than the work (OpenMP spins while it waits) when two chapter kernels share
    two cores. Measured on this machine, loaded: 1.3 s of CPU for every claim's seeds with one thread,
    5.2 s with two."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return run


class Narrow:
    """Orders (E, K, n) of a small data set held as uint8 (an eighth of int64's memory), read as int64 slices."""

    def __init__(self, orders: torch.Tensor):
        self.orders, self.shape = orders.to(torch.uint8), tuple(orders.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, epochs: slice) -> torch.Tensor:
        return self.orders[epochs].long()


def _orders(n: int, epochs: int, seeds) -> Narrow:
    """(epochs, K, n): each seed's own stream of batch orders, as its single run draws them (n ≤ 22)."""
    return Narrow(torch.stack([data.batch_orders(n, epochs, data.generator(s, "order")) for s in seeds], 1))


def _last_orders(n: int, epochs: int, last: int, seeds) -> Narrow:
    """(last, K, n): the final `last` epochs of each seed's stream of `epochs` orders (n ≤ 22)."""
    return Narrow(torch.stack([data.fisher_yates(data.swap_draws(n, epochs, data.generator(s, "order"))[-last:])
                               for s in seeds], 1))


# --------------------------------------------------------------------------- the toy runs (floor-four-runs)

# Epochs replayed from θ* at the end of a 30000-epoch run: every epoch multiplies the distance between
# two runs by at most 0.329 (w·x: Π(1 − 2ηx²)) or 0.929 (w·x + b: the largest ‖Π(I − 2η x xᵀ)‖ over the
# 24 orders), so after these epochs a start at θ* and the run's own iterate differ by less than 1e-30
# in exact arithmetic, far below float32's rounding; tests/test_claims.py checks seeds bit for bit.
REPLAY = {"toy-noisy": 64, "toy-bias": 1024}


def _print_zero_epoch(losses: torch.Tensor, steps_per_epoch: int) -> np.ndarray:
    """Per run, the first epoch whose printed loss (f"{loss:f}", as the article) reads 0.000000; −1 if none."""
    printed = np.array([[f"{v:f}" == "0.000000" for v in row] for row in losses[1:].double().T.tolist()])
    first_step = np.where(printed.any(1), printed.argmax(1), -1)
    return np.where(first_step >= 0, 1 + first_step // steps_per_epoch, -1)


@cached
@_one_thread
def toy_ends(seeds: tuple[int, ...]) -> Outcomes:
    """The four toy runs of the article's Question 1 for every seed: gaps above the floors, first printed zeros."""
    values = {}
    for name in ("toy-noisy", "toy-bias"):
        toy = experiments.TOY_RUNS[name]
        ds, ds64 = data.toy_data(toy.noisy), data.toy_data(toy.noisy, dtype=torch.float64)
        fit = theory.least_squares(ds64.X, ds64.y, bias=toy.bias, loss="plain")
        orders = _last_orders(ds.n, toy.epochs, REPLAY[name], seeds)
        start = fit.theta.float()[:, None].repeat(1, len(seeds))  # θ*, in float32
        traj = checked(engine.train(ds.X, ds.y, start, toy.lr, orders, batch_size=1, model=toy.model, loss="plain",
                                    grad_divisor=toy.grad_divisor, keep_every=len(orders)), name, toy.lr)
        gap = theory.excess_loss(traj.epoch_params[-1].double().T, fit).numpy()  # ½δᵀHδ, float64
        key = name.removeprefix("toy-")
        values[f"{key}_gap"], values[f"{key}_loss"] = gap, fit.loss_floor + gap
    for name in ("toy-clean", "toy-piecewise"):
        toy = experiments.TOY_RUNS[name]
        ds = data.toy_data(toy.noisy)
        traj = checked(engine.train(ds.X, ds.y, torch.full((1, len(seeds)), 2.0), toy.lr,
                                    _orders(ds.n, toy.epochs, seeds), batch_size=1, model=toy.model, loss="plain",
                                    grad_divisor=toy.grad_divisor, record_steps=True), name, toy.lr)
        Xr, yr = engine.runs_last(engine.augment(ds.X, toy.bias), ds.y)
        losses = engine.full_loss(toy.model, Xr, yr, traj.step_params, "plain")  # (T + 1, K), as toy() logs them
        values[f"{name.removeprefix('toy-')}_zero_epoch"] = _print_zero_epoch(losses, traj.steps_per_epoch)
    return Outcomes("floor-four-runs", seeds, values)


# --------------------------------------------------------------------------- the article's frame of explore-floor


@cached
@_one_thread
def explore_ends(seeds: tuple[int, ...], config: explore.FloorGridConfig = _GRID) -> Outcomes:
    """The explorable grid's article frame (label 3.1, w·x, η = 0.03, float32) for every seed.

    Excess loss above the floor after the grid's epochs for a constant step, Robbins–Monro's decaying
    step and Polyak–Ruppert's mean of all iterates (the grid's three schedules), in float64 from w;
    the width of w over the last `tail` epochs, reshuffled and drawn with replacement.
    """
    K, E = len(seeds), config.epochs
    ds = data.toy_data(True)
    w_star, _, floor = (float(v) for v in exact_least_squares(data.TOY_X, data.TOY_Y_NOISY, bias=False))
    drawn = Narrow(torch.stack([torch.randint(0, ds.n, (E, ds.n), generator=data.generator(s, "replacement"))
                                for s in seeds], 1))
    reshuffled = _orders(ds.n, E, seeds)
    common = {"batch_size": 1, "model": engine.Model(bias=False), "loss": "plain", "grad_divisor": 1,
              "record_steps": True}
    lr = explore.TOY_ETA
    runs = {"constant": engine.train(ds.X, ds.y, torch.full((1, K), 2.0), lr, reshuffled, **common),
            "rm": engine.train(ds.X, ds.y, torch.full((1, K), 2.0), lr, reshuffled,
                               lr_decay_steps=config.decay_steps, **common),
            "replacement": engine.train(ds.X, ds.y, torch.full((1, K), 2.0), lr, drawn, **common)}
    for name, traj in runs.items():
        checked(traj, f"explore-floor ({name})", lr)
    sum_x2 = sum(x * x for x in data.TOY_X) / ds.n  # the gap is mean x² · (w − w*)²

    def excess(w):
        return sum_x2 * (w.double().numpy() - w_star) ** 2

    def width(traj):
        w = traj.step_params[-config.tail * ds.n - 1 :, 0]  # (steps, K), as the grid reads its cycle
        return (w.amax(0) - w.amin(0)).double().numpy()

    averaged = explore._averaged(runs["constant"].step_params)[-1, 0]
    return Outcomes("explore-floor", seeds, {
        "floor": np.full(K, floor), "constant_excess": excess(runs["constant"].step_params[-1, 0]),
        "rm_excess": excess(runs["rm"].step_params[-1, 0]), "averaged_excess": excess(averaged),
        "width_reshuffled": width(runs["constant"]), "width_replacement": width(runs["replacement"])})


# --------------------------------------------------------------------------- the baseline under other batch orders


def _largest_eigenvalue(h: torch.Tensor) -> torch.Tensor:
    """λ_max of symmetric 3 × 3 matrices given as (..., 6) entries (h11, h22, h33, h12, h13, h23), by the
    trigonometric formula: a few elementwise passes, no LAPACK call per matrix."""
    d1, d2, d3, a, b, c = h.unbind(-1)
    q = (d1 + d2 + d3) / 3
    d1, d2, d3 = d1 - q, d2 - q, d3 - q  # h − qI
    p = ((d1 * d1 + d2 * d2 + d3 * d3) / 6 + (a * a + b * b + c * c) / 3).sqrt()
    det = d1 * (d2 * d3 - c * c) - a * (a * d3 - b * c) + b * (a * c - b * d2)
    r = (det / (2 * p**3)).clamp(-1, 1)
    return q + 2 * p * torch.cos(torch.acos(r) / 3)


class LargestBatchCurvature:
    """Per run, the largest λ_max((2c/B) X_BᵀX_B) over its mini-batches, fed the orders (C, K, n) chunk by chunk.

    Every batch by the closed form (float64, relative error far below 1e-9); the few within 1e-9 of
    a run's largest are kept and recomputed by taylor.batch_curvature, so that `result` is that
    function's number, bit for bit. p = 3 (the baseline's w1, w2, b).
    """

    def __init__(self, q: taylor.Quadratic, batch_size: int, runs: int):
        self.q, self.B = q, batch_size
        X = q.Xa
        pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
        self.entries = torch.stack([X[:, i] * X[:, j] for i, j in pairs], 1) * (2 * q.c / batch_size)  # (n, 6)
        self.best = torch.full((runs,), -torch.inf, dtype=torch.float64)
        self.near: list[list[torch.Tensor]] = [[] for _ in range(runs)]  # candidate batches per run

    def _lam(self, batches: torch.Tensor) -> torch.Tensor:
        return _largest_eigenvalue(self.entries[batches].sum(-2))  # (..., B) sample indices -> (...)

    def __call__(self, orders: torch.Tensor) -> None:
        for k, near in enumerate(self.near):  # run by run: a chunk's gathered entries for all runs would be 200 MB
            batches = orders[:, k].reshape(-1, self.B)  # (batches, B)
            lam = self._lam(batches)
            self.best[k] = torch.maximum(self.best[k], lam.max())
            near.append(batches[lam >= self.best[k] * (1 - 1e-9)])

    def result(self) -> torch.Tensor:
        exact = []
        for k, near in enumerate(self.near):
            candidates = torch.cat(near)
            candidates = candidates[self._lam(candidates) >= self.best[k] * (1 - 1e-9)]
            exact.append(taylor.batch_curvature(self.q, candidates, self.B).max())
        return torch.stack(exact)


class SeedOrders:
    """Each seed's own stream of batch orders (data.LazyOrders), drawn a chunk of epochs at a time.

    Slices are (C, K·repeat, n): seed-major, each seed's order repeated for its `repeat` runs; `tap`,
    if given, sees every slice (so that a scan of the batches needs no second draw).
    """

    def __init__(self, n: int, epochs: int, seeds, repeat: int = 1, tap=None):
        self.streams = [data.LazyOrders(n, epochs, data.generator(s, "order")) for s in seeds]
        self.shape, self.repeat, self.tap = (epochs, len(seeds) * repeat, n), repeat, tap

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, epochs: slice) -> torch.Tensor:
        orders = torch.stack([stream[epochs] for stream in self.streams], 1)
        if self.tap is not None:
            self.tap(orders)
        return orders.repeat_interleave(self.repeat, 1) if self.repeat > 1 else orders


@cached
@_one_thread
def baseline_ends(seeds: tuple[int, ...], config: experiments.RunConfig = _BASELINE) -> Outcomes:
    """The article's data set and start (seed 20) trained under each seed's batch order, K at once:
    final loss and parameter errors, whether they print as the article's, and the run's largest L_B."""
    ds, _, theta0 = experiments.article_start(config.seed)
    q, _ = taylor.baseline_problem(config.seed)
    curvature = LargestBatchCurvature(q, config.batch_size, len(seeds))
    orders = SeedOrders(ds.n, config.epochs, seeds, tap=curvature)
    traj = checked(engine.train(ds.X, ds.y, theta0.repeat(1, len(seeds)), config.lr, orders,
                                batch_size=config.batch_size, keep_every=config.epochs), "baseline", config.lr)
    loss = traj.epoch_loss[-1].double().numpy()
    errors = np.array([*data.TRUE_W, data.TRUE_B])[:, None] - traj.epoch_params[-1].double().numpy()  # (3, K)
    article = experiments.ARTICLE_BASELINE
    printed = [f"{v:f}" == f"{article['final_loss']:f}"
               and [f"{e:.4f}" for e in col] == [f"{e:.4f}" for e in [*article["w_error"], article["b_error"]]]
               for v, col in zip(loss, errors.T, strict=True)]
    return Outcomes("baseline-orders", seeds, {
        "final_loss": loss, "w1_error": errors[0], "w2_error": errors[1], "b_error": errors[2],
        "prints_as_article": np.array(printed), "batch_curvature": curvature.result().numpy()})


# --------------------------------------------------------------------------- SGD on redrawn data (floor-noise)


BLOCK = 256  # seeds per engine batch where each seed brings its own data sets: 1792 runs of 1000 × 3


@cached
@_one_thread
def noise_sgd(seeds: tuple[int, ...], config: NoiseFloorConfig = _NOISE) -> Outcomes:
    """SGD's final excess over the closed-form minimum on D2L-like data, one data set per seed and noise level σ.

    As floor-noise's SGD subset: D2L's lr, batch and epochs, reshuffled, from zero, float32; each seed
    draws its data sets (one per σ) from its own stream. The excess is ½δᵀHδ in float64, relative
    to the data set's floor; `independent` is the exact relative excess of independent draws on the
    article's data set (floor-sgd-floor), for comparison. Seeds run BLOCK at a time.
    """
    relative = np.concatenate([_noise_block(seeds[i : i + BLOCK], config) for i in range(0, len(seeds), BLOCK)])
    article, _, _ = experiments.article_start(ARTICLE_SEED)
    exact, _ = sgd_floor.independent_excess(article.X, article.y, config.sgd_lr, config.batch_size)
    independent = exact / theory.least_squares(article.X, article.y, bias=True).loss_floor
    return Outcomes("floor-noise", seeds, {
        "relative_excess": relative, "mean_relative_excess": relative.mean(1),
        "slope_per_decade": np.polyfit(np.log10(config.sigmas), relative.T, 1)[0],
        "independent": np.full(len(seeds), independent)})


def _noise_block(seeds: tuple[int, ...], config: NoiseFloorConfig) -> np.ndarray:
    """(K, S): SGD's relative excess for each seed and σ; one engine batch of K·S runs."""
    S, K, n, p = len(config.sigmas), len(seeds), config.n, 3
    X, y = [], []
    for s in seeds:
        gen = data.generator(s, "noise-sgd")
        Xs = torch.normal(0, 1, (S, n, 2), generator=gen)
        noise = torch.tensor(config.sigmas)[:, None] * torch.randn(S, n, generator=gen)
        X.append(Xs)
        y.append(Xs @ torch.tensor(data.TRUE_W) + data.TRUE_B + noise)
    X, y = torch.cat(X), torch.cat(y)  # (K·S, n, 2), seed-major
    orders = SeedOrders(n, config.sgd_epochs, seeds, repeat=S)  # one order stream per seed, for all its σ
    traj = checked(engine.train(X, y, torch.zeros(p, K * S), config.sgd_lr, orders, batch_size=config.batch_size,
                                keep_every=config.sgd_epochs), "noise-sgd", config.sgd_lr)
    Xa = engine.augment(X.double(), True)
    theta = torch.linalg.lstsq(Xa, y.double().unsqueeze(-1), driver="gelsd").solution[..., 0]  # (K·S, p)
    floor = 0.5 * ((Xa @ theta[..., None])[..., 0] - y.double()).square().mean(-1)
    delta = traj.epoch_params[-1].double().T - theta
    excess = 0.5 * torch.einsum("ki,kij,kj->k", delta, Xa.mT @ Xa / n, delta)
    return (excess / floor).reshape(K, S).numpy()
