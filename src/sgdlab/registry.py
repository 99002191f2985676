"""Every experiment by name, with its default config, its figure and a one-line description.

`sgdlab list` / `sgdlab run NAME` and the reproducibility appendix read this table; the report's
chapters call the same functions directly.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from . import (
    article_log,
    averaging,
    bias_run,
    capacity,
    cycle,
    data,
    expected_descent,
    explore,
    loss_floor,
    norms,
    piecewise,
    precision,
    remedies,
    sampling,
    sgd_floor,
    stability,
    steepest,
    taylor,
    updates,
)
from . import experiments as ex
from .experiments import ConfigError, check_setting


@dataclass(frozen=True)
class Experiment:
    """A named experiment: default config, the function config -> result, its figure."""

    name: str
    description: str
    config: object  # a frozen dataclass with a `seed`
    run: Callable = field(repr=False)
    figure: Callable | None = field(default=None, repr=False)
    # For configs with `epochs`: the fewest epochs the experiment can summarise, and the bytes it
    # keeps per epoch (ex.epoch_bytes), which bound --epochs by ex.MEMORY_BUDGET.
    min_epochs: Callable = field(default=lambda config: 1, repr=False)
    memory: Callable | None = field(default=None, repr=False)


def _figure(path: str) -> Callable:
    """The plot function `module.function` of sgdlab.plots, imported only when a figure is drawn:
    matplotlib takes longer to import than a toy run takes to train."""
    module, name = path.rsplit(".", 1)

    def draw(result):
        plot = getattr(importlib.import_module(f"{__package__}.plots.{module}"), name)
        return plot.draw(result)  # a Figure even in a report kernel (display.report_figure)

    draw.__qualname__ = path
    return draw


def _toy(name: str) -> Callable:
    return lambda config: ex.toy(name, config)


_TOY_DESCRIPTIONS = {
    "toy-clean": "问题1: y = x on x = 0..3, w·x — the loss prints 0.000000 in epoch 8",
    "toy-noisy": "问题1: last label 3.1, w·x — the loss stalls at the least-squares floor 1/1120",
    "toy-bias": "问题1: last label 3.1, w·x + b — a lower floor (3/4000), still not zero",
    "toy-piecewise": "问题1: last label 3.1, the article's +0.1 jump where ŷ ≥ 3 — zero again",
}

EXPERIMENTS: dict[str, Experiment] = {
    "baseline": Experiment(
        "baseline", "the article's section 五: D2L linear regression, scratch vs concise vs closed form",
        ex.RunConfig(), ex.baseline, _figure("baseline.baseline_loss"),
    ),
    **{
        name: Experiment(name, description, ex.TOY_RUNS[name], _toy(name), _figure("baseline.toy_loss"))
        for name, description in _TOY_DESCRIPTIONS.items()
    },
    "baseline-orders": Experiment(
        "baseline-orders",
        "the baseline retrained under 32 batch orders: the article's digits do not depend on its shuffle",
        ex.RunConfig(), ex.baseline_order_spread,
    ),
}

_QUESTION_1 = [  # chapter 2: why the loss does not reach zero
    ("floor-replay", "the article's per-step log decoded into its batch order and replayed, digit for digit",
     article_log.article_replay, article_log.ReplayConfig, None),
    ("floor-four-runs", "the four toy runs with their least-squares floors: final loss = floor + quadratic gap",
     loss_floor.four_runs, loss_floor.FourRunsConfig, _figure("loss_floor.four_runs")),
    ("floor-cycle", "constant-step SGD circles w* on the label-3.1 data; the article's w lies inside the band",
     cycle.article_cycle, cycle.CycleConfig, _figure("loss_floor.article_cycle")),
    ("floor-bias-run", "the article's bias run: b trained vs b never updated; and centring x (κ 14.1 -> 1.25)",
     bias_run.bias_hypotheses, bias_run.BiasConfig, _figure("sampling.bias_run")),
    ("floor-sampling", "reshuffled vs independent batches over η: epoch-end offset and spread, measured and exact",
     sampling.sampling_comparison, sampling.SamplingConfig, _figure("sampling.samplings")),
    ("floor-sgd-floor", "SGD's stationary excess loss on D2L's data, both samplings, against (η/4B)·tr Σ₁",
     sgd_floor.sgd_floor, sgd_floor.SgdFloorConfig, None),
    ("floor-remedies", "constant step under both samplings, decaying step, averaging, larger batches, SVRG",
     remedies.remedies, remedies.RemediesConfig, _figure("sampling.remedies")),
    ("floor-averaging", "Polyak–Ruppert averages: biased under reshuffling (exactly), t^(−1/2) with replacement",
     averaging.averaging, averaging.AveragingConfig, None),
    ("floor-misspecified", "the floor as model error plus noise: D2L's data fitted without b, x₂ or x₁",
     loss_floor.misspecified, loss_floor.MisspecifiedConfig, None),
    ("floor-noise", "the noise floor σ²/2·(n−p)/n on D2L's data over σ and seeds: predicted vs measured",
     capacity.noise_floor_sweep, capacity.NoiseFloorConfig, _figure("loss_floor.noise_floor")),
    ("floor-capacity", "polynomial features of growing degree: training loss to zero, test loss above the floor",
     capacity.capacity_sweep, capacity.CapacityConfig, _figure("loss_floor.capacity")),
    ("floor-double-descent", "minimum-norm least squares past p = n: the test loss peaks at p = n and descends again",
     capacity.double_descent, capacity.DoubleDescentConfig, _figure("sampling.double_descent")),
    ("floor-precision", "what a printed 0.000000 means in float32",
     precision.precision, precision.PrecisionConfig, _figure("loss_floor.precision")),
]

_QUESTION_2 = [  # chapter 3: why minus the gradient is the steepest way down
    ("steepest-directional", "directional derivative around θ0 over all angles: a cosine, least at −∇f",
     taylor.directional, taylor.DirectionalConfig, _figure("steepest.directional")),
    ("steepest-remainder", "Taylor remainder |f(x+εd) − f(x) − ε∇fᵀd| against ε: slope 2 (exact: a code check)",
     taylor.remainder, taylor.RemainderConfig, _figure("steepest.remainder")),
    ("steepest-curvature", "L = λ_max(H) of the article's losses and where its learning rates sit against 2/L",
     steepest.curvature, steepest.CurvatureConfig, None),
    ("steepest-descent-lemma",
     "one-step decrease against η with the descent-lemma bound; a learning-rate sweep across 2/L",
     steepest.descent_lemma, steepest.DescentLemmaConfig, _figure("steepest.descent_lemma")),
    ("steepest-stability", "SGD's step-size edges per sampling, exactly: the toy (1/9, 1/7, 0.204, 2/7) and D2L's data",
     stability.stability, stability.StabilityConfig, None),
    ("steepest-rate", "linear convergence of gradient descent at η = 1/L and 2/(μ+L): predicted vs measured",
     steepest.rate, steepest.RateConfig, _figure("steepest.rate")),
    ("steepest-level-sets", "level sets of the loss with a gradient-descent path, −∇f perpendicular to them",
     norms.level_sets, norms.LevelSetConfig, _figure("steepest.level_sets")),
    ("steepest-norms", "steepest directions in the ℓ2, ℓ1, ℓ∞ and H norms; Newton's one step to the optimum",
     norms.norms, norms.NormsConfig, _figure("steepest.norms")),
    ("steepest-sgd-noise", "mini-batch gradient variance against batch size, and the expected one-step decrease",
     norms.sgd_noise, norms.SgdNoiseConfig, _figure("steepest.sgd_noise")),
    ("steepest-piecewise", "the piecewise model's loss jumps at w = 1, 1.5, 3: limits, values, autograd's slope",
     piecewise.piecewise, piecewise.PiecewiseConfig, _figure("beyond.piecewise")),
    ("steepest-sampling", "reshuffled vs with-replacement batches: noise correlation and the expected-descent bound",
     expected_descent.sampling, expected_descent.SamplingConfig, None),
    ("steepest-momentum", "GD, diagonal preconditioning, heavy ball and sign descent on the toy w·x + b; κ vs centring",
     updates.momentum, updates.MomentumConfig, _figure("beyond.momentum")),
]

_EXPLORE = [  # the grids behind the explorable figures (HTML); their figures are the PDF's small multiples
    ("explore-floor", "chapter 2's explorable grid: η × labels × model × sampling × schedule on the toy",
     explore.floor_grid, explore.FloorGridConfig, _figure("explore.floor_grid")),
    ("explore-steps", "chapter 3's explorable grid: gradient descent across 2/L, steepest steps in four norms",
     explore.steps_grid, explore.StepsGridConfig, _figure("explore.steps_grid")),
]

EXPERIMENTS.update({
    name: Experiment(name, description, config(), function, figure)
    for name, description, function, config, figure in _QUESTION_1 + _QUESTION_2 + _EXPLORE
})



def _steps(n: int, config) -> int:
    return -(-n // config.batch_size)


# Per-step bytes were measured as the growth of peak RSS with --epochs (docs/DESIGN.md), then doubled.
_N = data.NUM_EXAMPLES
_LIMITS = {  # name: (fewest epochs, bytes kept per epoch)
    # torch.optim's reference run keeps one small tensor per step (about 500 bytes each)
    "baseline": (None, lambda c: ex.epoch_bytes(_N, 1, _steps(_N, c), 1024)),
    "baseline-orders": (None, lambda c: ex.epoch_bytes(_N, 32, _steps(_N, c), 16)),
    # per step: the recorded parameters and loss, a history row, the step's epoch as a Python int
    **{name: (None, lambda c: ex.epoch_bytes(4, 1, _steps(4, c), 256)) for name in _TOY_DESCRIPTIONS},
    "floor-cycle": (lambda c: max(c.tail, c.show_epochs), lambda c: ex.epoch_bytes(4, c.runs, 4, 64)),
    # chapter 2's newer runs (four points, batches of one; D2L's data for the SGD floor): every step of
    # every run may be recorded, so count the parameters and loss of each step (64 bytes, generously)
    "floor-bias-run": (lambda c: max(c.tail, c.centring_epochs), lambda c: ex.epoch_bytes(4, 3 * c.runs, 4, 64)),
    "floor-sampling": (lambda c: c.burn_in + 2, lambda c: ex.epoch_bytes(4, 2 * c.runs * len(c.effective_lrs), 4, 64)),
    "floor-sgd-floor": (lambda c: c.burn_in + 1,
                        lambda c: ex.epoch_bytes(_N, c.runs, _steps(_N, c), 64)),  # one η and sampling at a time
    "floor-remedies": (lambda c: c.average_from + 2, lambda c: ex.epoch_bytes(4, 8 * c.runs, 4, 64)),
    "floor-averaging": (lambda c: c.average_from + 1, lambda c: ex.epoch_bytes(4, 2 * c.runs, 4, 64)),
    # float64 and float32 runs, every epoch kept (no steps recorded)
    "steepest-stability": (None, lambda c: ex.epoch_bytes(4, 2 * c.runs * len(c.reshuffled_etas), 1, 64)),
    "explore-floor": (lambda c: max(c.tail, c.show_epochs), lambda c: ex.epoch_bytes(4, 2 * 144, 4, 64)),
    "floor-precision": (lambda c: 8, lambda c: ex.epoch_bytes(4, 2, 4, 256)),  # the clean run prints 0 in epoch 8
    "steepest-descent-lemma": (None, lambda c: ex.epoch_bytes(0, len(c.lr_factors), 1, 256)),
    "steepest-sgd-noise": (None, lambda c: ex.epoch_bytes(_N, 1, _N, 384)),  # every sample's gradient, reshuffled
}
for _name, (_least, _memory) in _LIMITS.items():
    EXPERIMENTS[_name] = dataclasses.replace(EXPERIMENTS[_name], min_epochs=_least or (lambda c: 1), memory=_memory)


def run(name: str, **overrides) -> object:
    """Run a registered experiment with its defaults, overriding any of its config's fields."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; `sgdlab list` shows the experiments")
    experiment = EXPERIMENTS[name]
    given = {key: value for key, value in overrides.items() if value is not None}
    fields = {f.name for f in dataclasses.fields(experiment.config)}
    for key, value in given.items():
        if key not in fields:
            raise ConfigError(f"--{key.replace('_', '-')} does not apply to {name}")
        check_setting(key, value)
    config = dataclasses.replace(experiment.config, **given)
    if experiment.memory is not None:
        ex.check_epochs(name, config.epochs, experiment.min_epochs(config), experiment.memory(config))
    return experiment.run(config)
