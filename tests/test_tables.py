"""Report tables and the reproducibility appendix: built from results, never typed."""

import dataclasses
import itertools
import json

import pytest
import torch
from bounds import drift

from sgdlab import data, fmt, registry, repro, steepest, tables
from sgdlab import experiments as ex


def test_order_spread_keeps_the_articles_printed_digits():
    spread = ex.baseline_order_spread(runs=6)
    table = tables.order_spread(spread)
    assert list(table.index) == ["training loss", "w₁ error", "w₂ error", "b error"]
    # Every batch order prints what the article printed: the unseeded shuffle does not matter.
    assert (table["printed (all orders)"] == table["the article"]).all()
    assert spread.final.order_seed.tolist() == list(range(6))
    assert spread.final.final_loss.nunique() > 1  # the orders really differ


def test_baseline_comparison_has_every_implementation_and_the_article():
    result = ex.baseline(ex.RunConfig(epochs=5))
    table = tables.baseline_comparison(result)
    assert len(table.columns) == 4 and table.columns[-1] == "the article (published)"
    assert table.loc["training loss (printed as the article)", "the article (published)"] == "0.000049"


def test_digest_is_stable_and_sensitive():
    s = registry.run("toy-clean").summary()
    assert repro.summary_digest(s) == repro.summary_digest(json.loads(json.dumps(s)))
    assert repro.summary_digest(s) != repro.summary_digest({**s, "final_loss": s["final_loss"] * (1 + 1e-15)})


def test_environment_lists_versions():
    env = repro.environment()
    assert {"Python", "torch", "numpy", "platform"} <= set(env.index)


def test_loss_over_floor_reads_the_history():
    result = ex.baseline(ex.RunConfig(epochs=5))
    first = result.history[result.history.implementation == "scratch"].loss.iloc[0]
    assert tables.loss_over_floor(result, 0) == first / result.loss_floor
    # The loss falls towards, never below, the least-squares floor.
    ratios = [tables.loss_over_floor(result, e) for e in range(6)]
    assert all(a > b > 1 for a, b in itertools.pairwise(ratios))


def test_implementation_gap_is_the_largest_parameter_difference():
    result = ex.baseline(ex.RunConfig(epochs=5))
    h = result.history
    scratch, concise = (h[h.implementation == name][["w1", "w2", "b"]].to_numpy() for name in ("scratch", "concise"))
    assert tables.implementation_gap(result) == abs(scratch - concise).max()
    # the same steps, up to float32 rounding: bounds.py's drift model, 4 ulps of |θ| ≤ 4.2 (as test_engine's)
    assert tables.implementation_gap(result) < drift(4.2, torch.float32, 4)
    assert tables.implementation_gap(result, "scratch", "scratch") == 0.0


def test_implementation_gap_bound_is_the_drift_model_and_can_fail():
    """The bound chapter 1 prints: bounds.py's drift, GAP_ULPS ulps of the largest |θ|; the gap lies below it,
    and a history with one parameter moved by the bound does not."""
    result = ex.baseline(ex.RunConfig(epochs=5))
    h = result.history
    largest = float(h[["w1", "w2", "b"]].abs().to_numpy().max())
    bound = tables.implementation_gap_bound(result)
    assert bound == drift(largest, torch.float32, tables.GAP_ULPS)
    assert tables.implementation_gap(result) < bound
    moved = h.copy()
    moved.loc[moved.implementation == "concise", "b"] += bound
    assert tables.implementation_gap(dataclasses.replace(result, history=moved)) >= bound


def test_excess_factor_per_epoch_is_the_geometric_mean_ratio():
    result = ex.baseline(ex.RunConfig(epochs=6))
    excess = [tables.loss_over_floor(result, e) - 1 for e in range(7)]
    assert tables.excess_factor_per_epoch(result, 2, 6) == pytest.approx((excess[6] / excess[2]) ** 0.25, rel=1e-15)
    # far above the floor the run follows full-batch GD: at most ρ² per step, ρ = 1 − ημ (@thm-linear-rate)
    curv = steepest.curvature(steepest.CurvatureConfig(baseline_epochs=2)).constants.set_index("name").loc["baseline"]
    per_epoch = (1 - result.config.lr * curv.mu) ** (2 * -(-data.NUM_EXAMPLES // result.config.batch_size))
    assert tables.excess_factor_per_epoch(result, 0, 6) < per_epoch


def test_conventions_move_L_by_the_loss_scale_and_keep_eta_L():
    """Scaling a loss by s scales L by s; the same update is a step of η/s on it, so η·L is the same."""
    curv = steepest.curvature(steepest.CurvatureConfig(baseline_epochs=2))
    t = tables.conventions(curv)
    base, toy = t.loc["baseline"], t.loc["toy"]
    assert len(set(base["η·L"])) == 1  # ½ mean, MSELoss, summed: one update
    assert toy["η·L"].iloc[0] == toy["η·L"].iloc[-1]  # plain mean vs D2L's ½ on the toy
    L = curv.constants.set_index("name").L
    assert base.L.tolist() == [fmt.num(v, ".4g") for v in (L.baseline, 2 * L.baseline, data.NUM_EXAMPLES * L.baseline)]


def test_notation_gives_each_symbol_once():
    symbols = [s.strip() for cell in tables.notation().index for s in cell.split(", ")]
    assert len(symbols) == len(set(symbols))
