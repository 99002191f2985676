"""Every claim the book makes about a random outcome, checked over many seeds (DESIGN.md rule 8).

A claim has an id (the chapters cite it as `claim("id")` in an inline expression), one line of
text, the section it supports, the registry experiment it rests on, and a statistic — and, for a
comparison, a predicate — computed from each seed's outcome (`seeds.py`: all seeds of an
experiment in one engine batch, cached). It is checked on the article's seed 20 and the seeds after
it. A claim marked universal is one the book states as holding for every seed: `sgdlab claims`
exits 1, naming the seeds, when one breaks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import data, experiments, explore, fmt, seeds
from .capacity import NoiseFloorConfig
from .fmt import Markdown, num
from .i18n import t
from .seeds import ARTICLE_SEED

TAIL = 257  # seeds for a claim about a tail, or about where seed 20 falls: a percentile to ±2 points (1 se)
SEEDS = 33  # the article's seed and 32 others
MAX_SEEDS = 4096  # `sgdlab claims --seeds`: the toy replays and the grid's recorded steps stay under 1 GiB


@dataclass(frozen=True)
class Claim:
    """One claim about a random outcome and how each seed's outcome bears on it."""

    id: str
    text: str  # one line, as the book states it
    section: str  # the label of the section it supports
    experiment: str  # the registry name of the experiment it rests on
    outcomes: Callable = field(repr=False)  # seeds.* : seeds -> Outcomes, every seed in one batch
    statistic: str  # what `value` measures, for the command line and the appendix
    value: Callable = field(repr=False)  # Outcomes.values -> (N,) the statistic per seed
    holds: Callable | None = field(default=None, repr=False)  # values -> (N,) bool; None: a statistic only
    universal: bool = False  # the book says it holds for every seed
    seeds: int = SEEDS


@dataclass(frozen=True)
class Checked:
    """A claim checked on seeds first … first + N − 1: the statistic per seed, and whether it held."""

    id: str
    seeds: tuple[int, ...]
    values: np.ndarray  # (N,)
    held: np.ndarray | None  # (N,) bool, or None for a statistic only
    outcomes: seeds.Outcomes  # every quantity the seeds gave, for what the claim's one statistic leaves out

    @property
    def claim(self) -> Claim:
        return CLAIMS[self.id]

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def count(self) -> int | None:
        """Seeds for which the claim holds (None for a statistic only)."""
        return None if self.held is None else int(self.held.sum())

    @property
    def failing(self) -> list[int]:
        return [] if self.held is None else [s for s, ok in zip(self.seeds, self.held, strict=True) if not ok]

    @property
    def ok(self) -> bool:
        """False only when a universal claim fails for some seed."""
        return not (self.claim.universal and self.failing)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def se(self) -> float:
        """Standard error of the mean over the seeds (independent streams)."""
        return float(self.values.std(ddof=1) / np.sqrt(self.n))

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.values, q))

    @property
    def article(self) -> float:
        """The statistic on the article's seed."""
        return float(self.values[self.seeds.index(ARTICLE_SEED)])

    @property
    def article_rank(self) -> float:
        """The fraction of seeds whose statistic is at most the article seed's: where seed 20 falls."""
        return float((self.values <= self.article).mean())

    def holds_in(self) -> str:
        """ "all 33 seeds", "31 of 33 seeds" or "none of the 33 seeds", for prose, in the document's language."""
        k = self.count
        return (t("all {n} seeds") if k == self.n else t("none of the {n} seeds") if k == 0
                else t("{k} of {n} seeds")).format(k=k, n=self.n)

    def mean_se(self, spec: str | None = None, scale: float = 1.0, unit: str = "") -> Markdown:
        """ "2.93 × 10⁻⁵ ± 1.9 × 10⁻⁶ (mean ± standard error over 257 seeds)", for prose (fmt.num's numbers);
        scale 100 and unit " %" for a percentage (a unit in words is translated too). Without a spec the
        mean keeps only the digits its se supports (fmt.mean_se); a spec formats both alike (fmt.num)."""
        if spec is None:
            mean, se = fmt.mean_se(scale * self.mean, scale * self.se).split(" ± ")
        else:
            mean, se = (num(scale * v, spec) for v in (self.mean, self.se))
        return Markdown(t("{mean} ± {se}{unit} (mean ± standard error over {n} seeds)").format(
            mean=mean, se=se, unit=t(unit), n=self.n))

    def median_range(self, spec: str = ".2g", scale: float = 1.0, unit: str = "") -> Markdown:
        """ "1.6 × 10⁻⁵ (median; 10–90 %: 3.5 × 10⁻⁷–7.9 × 10⁻⁵, 257 seeds)", for prose (fmt.num's numbers)."""
        lo, mid, hi = (num(scale * self.quantile(q), spec) for q in (0.1, 0.5, 0.9))
        return Markdown(t("{mid}{unit} (median; 10–90 %: {lo}–{hi}{unit}, {n} seeds)").format(
            mid=mid, lo=lo, hi=hi, unit=t(unit), n=self.n))

    def summary(self) -> dict:
        """The JSON object of `sgdlab claims --json` (README, "Claims")."""
        c = self.claim
        return {"id": self.id, "text": c.text, "section": c.section, "experiment": c.experiment,
                "universal": c.universal, "statistic": c.statistic, "seeds": self.n, "first_seed": self.seeds[0],
                "holds": self.count, "failing_seeds": self.failing, "mean": self.mean, "se": self.se,
                "median": self.quantile(0.5), "q10": self.quantile(0.1), "q90": self.quantile(0.9),
                "article_seed": ARTICLE_SEED, "article_value": self.article}


def check(claim_id: str, n: int | None = None) -> Checked:
    """The claim checked on the article's seed and the n − 1 after it (default: the claim's own number)."""
    c = CLAIMS[claim_id]
    outcome = c.outcomes(seeds.first(c.seeds if n is None else n))
    values = outcome.values
    return Checked(claim_id, outcome.seeds, np.asarray(c.value(values), dtype=np.float64),
                   None if c.holds is None else np.asarray(c.holds(values), dtype=bool), outcome)


def claim(claim_id: str) -> Checked:
    """A claim as the book cites it (`claim("id")` in a chapter): checked on its own seeds."""
    return check(claim_id)


_CLEAN, _PIECEWISE, _NOISY = (experiments.TOY_RUNS[name].epochs for name in ("toy-clean", "toy-piecewise", "toy-noisy"))
_GRID, _BASELINE = explore.FloorGridConfig(), experiments.RunConfig()
_BATCHES = _BASELINE.epochs * -(-data.NUM_EXAMPLES // _BASELINE.batch_size)

CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("toy-clean-zero-epoch", f"With clean labels the printed loss first reads 0.000000 in epoch {_CLEAN}",
          "sec-lf-four-runs", "floor-four-runs", seeds.toy_ends, "first epoch printed as 0.000000",
          lambda v: v["clean_zero_epoch"], lambda v: v["clean_zero_epoch"] == _CLEAN, universal=True, seeds=TAIL),
    Claim("toy-piecewise-zero",
          f"The piecewise model's printed loss first reads 0.000000 in epoch {_PIECEWISE}",
          "sec-lf-four-runs", "floor-four-runs", seeds.toy_ends, "first epoch printed as 0.000000",
          lambda v: v["piecewise_zero_epoch"], lambda v: v["piecewise_zero_epoch"] == _PIECEWISE, universal=True,
          seeds=TAIL),
    Claim("toy-bias-lower", "With the label 3.1, adding a bias b ends the run at a lower loss than w·x alone",
          "sec-lf-four-runs", "floor-four-runs", seeds.toy_ends, "final loss with b (float64 at the final θ)",
          lambda v: v["bias_loss"], lambda v: v["bias_loss"] < v["noisy_loss"], universal=True, seeds=TAIL),
    Claim("toy-noisy-gap", "The label-3.1 run ends a small gap above its floor, set by its last shuffles",
          "sec-lf-floor", "floor-four-runs", seeds.toy_ends, f"gap ½δᵀHδ above the floor after {_NOISY} epochs",
          lambda v: v["noisy_gap"], seeds=TAIL),
    Claim("grid-constant-excess", "A constant step ends the explorable grid's article run above the floor",
          "sec-lf-explore", "explore-floor", seeds.explore_ends,
          f"excess loss after {_GRID.epochs} epochs, constant step",
          lambda v: v["constant_excess"], seeds=TAIL),
    Claim("grid-averaging",
          f"After {_GRID.epochs} epochs a constant step's last iterate is closer to the floor than Polyak–Ruppert's"
          " mean of all iterates",
          "sec-lf-explore", "explore-floor", seeds.explore_ends, "excess loss of the mean of all iterates",
          lambda v: v["averaged_excess"], lambda v: v["constant_excess"] < v["averaged_excess"], seeds=TAIL),
    Claim("grid-decay", "Robbins–Monro's decaying step ends closer to the floor than a constant one",
          "sec-lf-explore", "explore-floor", seeds.explore_ends,
          f"excess loss after {_GRID.epochs} epochs, decaying step",
          lambda v: v["rm_excess"], lambda v: v["rm_excess"] < v["constant_excess"], seeds=TAIL),
    Claim("grid-replacement", "Drawing the samples with replacement widens the cycle of w",
          "sec-lf-explore", "explore-floor", seeds.explore_ends,
          f"mean range of w within an epoch over the last {_GRID.tail} epochs, with replacement",
          lambda v: v["width_replacement"], lambda v: v["width_replacement"] > v["width_reshuffled"], seeds=TAIL),
    Claim("baseline-digits",
          "Under any batch order the baseline prints the article's loss and errors (to the digits printed)",
          "sec-baseline", "baseline-orders", seeds.baseline_ends, "final training loss",
          lambda v: v["final_loss"], lambda v: v["prints_as_article"], universal=True),
    Claim("batch-curvature", "The largest mini-batch curvature $L_B$ a run of the baseline meets",
          "sec-steepest-quadratics", "baseline-orders", seeds.baseline_ends,
          f"largest $L_B$ over the run's {_BATCHES:,} mini-batches", lambda v: v["batch_curvature"]),
    Claim("noise-sgd-excess",
          "SGD at D2L's step ends just above the closed-form minimum, below the floor of independent draws",
          "sec-lf-sgd-floor", "floor-noise", seeds.noise_sgd, "relative excess over the minimum, mean over σ",
          lambda v: v["mean_relative_excess"], lambda v: v["mean_relative_excess"] < v["independent"]),
    Claim("noise-sgd-no-trend", "SGD's relative excess over the minimum does not depend on the noise level σ",
          "sec-lf-noise", "floor-noise", seeds.noise_sgd, "slope of the relative excess per decade of σ",
          lambda v: v["slope_per_decade"]),
]}


GRID_CHECK_SEEDS = 4096  # seeds for testing grid-constant-excess's mean against its exact value: se ≈ 1.6 % of it


def grid_constant_excess_over(count: int = GRID_CHECK_SEEDS) -> tuple[float, float]:
    """Mean and standard error over seeds.first(count) of `grid-constant-excess`'s outcome (seeds.explore_ends):
    one epoch end per seed, so independent values; more seeds than the claim's, to test its mean."""
    excess = seeds.explore_ends(seeds.first(count)).values["constant_excess"]
    return float(excess.mean()), float(excess.std(ddof=1) / len(excess) ** 0.5)


def sgd_excess_by_sigma() -> pd.Series:
    """Per noise level σ (as floor-noise's table labels it): SGD's relative excess over the closed-form
    minimum, "mean ± standard error %" over the seeds of `noise-sgd-excess`."""
    c = claim("noise-sgd-excess")
    relative = 100 * c.outcomes.values["relative_excess"]  # (N, S), in %
    se = relative.std(0, ddof=1) / np.sqrt(c.n)
    return pd.Series([f"{num(m, '.2f')} ± {num(e, '.2f')}" for m, e in zip(relative.mean(0), se, strict=True)],
                     index=pd.Index([f"{s:.3g}" for s in NoiseFloorConfig().sigmas], name="σ"))


def table() -> pd.DataFrame:
    """The appendix: per claim, the section it supports, its id and text, its seeds, how many hold, its statistic."""
    rows = []
    for claim_id in CLAIMS:
        c = check(claim_id)
        rows.append({t("supports"): f"@{c.claim.section}",
                     t("claim (statistic)"): t("`{0}`: {1} ({2})").format(claim_id, t(c.claim.text),
                                                                         t(c.claim.statistic)),
                     t("seeds"): f"{c.seeds[0]}–{c.seeds[-1]}",
                     t("holds in"): "—" if c.count is None else t("{0} of {1}").format(c.count, c.n),
                     t("mean ± se; median (10–90 %)"): f"{fmt.mean_se(c.mean, c.se)};"
                                                       f" {num(c.quantile(0.5), '.3g')} ({num(c.quantile(0.1), '.3g')}"
                                                       f" – {num(c.quantile(0.9), '.3g')})"})
    return pd.DataFrame(rows).set_index(t("supports"))
