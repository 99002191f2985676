"""Chapter 2 (why the loss does not reach zero): decoded article log, exact floors, cycles, noise floor, capacity."""

import json
import math
from dataclasses import replace
from fractions import Fraction

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from sgdlab import article_log as al
from sgdlab import capacity as cap
from sgdlab import cycle as cy
from sgdlab import data, engine, experiments, fmt, theory
from sgdlab import loss_floor as lf
from sgdlab import precision as fp
from sgdlab.plots import loss_floor as plots

X, Y_NOISY = data.TOY_X, data.TOY_Y_NOISY


# --------------------------------------------------------------------------- small configs, shared


@pytest.fixture(scope="module")
def replay():
    return al.article_replay()


@pytest.fixture(scope="module")
def four():
    return lf.four_runs(lf.FourRunsConfig(long_epochs=400))


@pytest.fixture(scope="module")
def cycle():
    return cy.article_cycle()  # the default: its range must hold the article's quoted values


@pytest.fixture(scope="module")
def noise():
    return cap.noise_floor_sweep(cap.NoiseFloorConfig(sigmas=(0.01, 0.1), runs=100, n=200, sgd_runs=2, sgd_epochs=50))


@pytest.fixture(scope="module")
def capacity():
    return cap.capacity_sweep(cap.CapacityConfig(runs=40))


@pytest.fixture(scope="module")
def precision():
    return fp.precision()


# --------------------------------------------------------------------------- 1. the article's log


def test_article_log_has_29_steps_and_shrink_factors():
    for name in al.ARTICLE_LOG_VALUES:
        assert len(al.article_log(name)) == 29
    assert [al.shrink_factor(0.03, v) for v in X] == pytest.approx([1, 0.94, 0.76, 0.46])


def test_decoded_order_of_the_clean_run(replay):
    """Epochs 1–7 have exactly one order that prints the article's losses; epoch 8 logs one step."""
    decoded = replay.decoded["toy-clean"]
    assert decoded.orders[:7].tolist() == [[2, 0, 3, 1], [1, 0, 3, 2], [3, 2, 1, 0], [1, 2, 3, 0],
                                           [0, 3, 1, 2], [1, 2, 0, 3], [0, 1, 3, 2]]
    assert decoded.consistent[:7] == (1,) * 7
    assert decoded.consistent[7] > 1


def test_replay_prints_the_article_log(replay):
    """The article's order through the engine gives its printed loss at every step, to 6 decimals."""
    for name in al.ARTICLE_LOG_VALUES:
        frame = replay.steps[replay.steps.run == name]
        assert list(frame.replay) == list(al.article_log(name)), name
        assert replay.matches(name) == 29


def test_first_factor_identifies_x_equal_2(replay):
    first = replay.steps[replay.steps.run == "toy-clean"].iloc[0]
    assert first.factor_logged == pytest.approx(0.76, abs=1e-6)  # sqrt(2.021600 / 3.5)
    assert first.x == 2


def test_clean_epoch_loss_closed_form_matches_article():
    """Epoch ends of the article's clean log equal mean(x²)·Π(1 − 2ηx²)^(2E), whatever the order."""
    log = al.article_log("toy-clean")
    for epoch in range(1, 8):
        assert f"{al.clean_epoch_loss(epoch, 0.03):f}" == log[4 * epoch - 1]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.permutations(range(4)), min_size=1, max_size=6), st.floats(0.001, 0.1))
def test_clean_epoch_end_loss_is_order_independent(orders, eta):
    """Property: any orders give the same epoch-end loss (float64 engine vs the closed form).

    The engine holds w, not e = w − 1: near w = 1 each step rounds e by up to ~ulp(1) ≈ 2e-16, so
    the loss 3.5·e² carries an absolute error ~ 7·|e|·(a few ulp); the tolerance says so.
    """
    toy = replace(experiments.TOY_RUNS["toy-clean"], lr=eta, grad_divisor=1)
    traj, _ = al.train_toy(toy, torch.tensor(orders), dtype=torch.float64)
    for epoch in range(1, len(orders) + 1):
        expected = al.clean_epoch_loss(epoch, eta)
        e = al.clean_epoch_factor(eta) ** epoch  # w0 − 1 = 1
        assert float(traj.epoch_params[epoch, 0, 0]) - 1 == pytest.approx(e, rel=1e-9, abs=1e-14)
        assert float(traj.epoch_loss[epoch, 0]) == pytest.approx(expected, rel=1e-9, abs=1e-13 * math.sqrt(expected))


def test_replay_summary_is_json_and_deterministic(replay):
    s = replay.summary()
    assert {"steps", "matches", "orders", "consistent_orders"} <= s.keys()
    json.dumps(s)
    assert al.article_replay().summary() == s
    assert list(replay.table().columns)[:2] == ["epoch", "x drawn"]
    assert replay.table().index.name == "step"


# --------------------------------------------------------------------------- 2. exact floors and the decomposition


def test_exact_least_squares_fractions():
    assert lf.exact_least_squares(X, Y_NOISY, bias=False) == (Fraction(143, 140), 0, Fraction(1, 1120))
    assert lf.exact_least_squares(X, Y_NOISY, bias=True) == (Fraction(103, 100), Fraction(-1, 50), Fraction(3, 4000))
    assert lf.exact_least_squares(X, data.TOY_Y_CLEAN, bias=False) == (1, 0, 0)


def test_target_loss_reverses_the_floors():
    """Against y = x: w* = 143/140 gives (3/140)²·mean(x²) = 9/5600; (1.03, −0.02) gives 7/4000; the jump 1/400."""
    assert lf.target_loss("toy-clean") == 0
    assert lf.target_loss("toy-noisy") == Fraction(9, 5600)
    assert lf.target_loss("toy-bias") == Fraction(7, 4000)
    assert lf.target_loss("toy-piecewise") == Fraction(1, 400)
    # Independent float64 check: each optimal model's mean squared distance from y = x.
    x = torch.tensor(X, dtype=torch.float64)
    for name, bias in (("toy-noisy", False), ("toy-bias", True)):
        fit = theory.least_squares(x.reshape(-1, 1), torch.tensor(Y_NOISY, dtype=torch.float64), bias=bias)
        y_hat = x * fit.theta[0] + (fit.theta[1] if bias else 0)
        assert float(((y_hat - x) ** 2).mean()) == pytest.approx(float(lf.target_loss(name)), rel=1e-12)


def test_chance_agreement_is_the_product_over_epochs(replay):
    """k orders print the piecewise log in an epoch: an independent shuffle matches with chance k/4!."""
    ks = replay.decoded["toy-piecewise"].consistent[:7]
    assert replay.chance_agreement() == pytest.approx(float(math.prod(Fraction(k, 24) for k in ks)), rel=1e-12)
    assert replay.chance_agreement() < 1e-8


@pytest.mark.parametrize("bias", [False, True])
def test_float64_least_squares_agrees_with_fractions(bias):
    ds = data.toy_data(True, dtype=torch.float64)
    fit = theory.least_squares(ds.X, ds.y, bias=bias, loss="plain")
    w, b, floor = lf.exact_least_squares(X, Y_NOISY, bias)
    assert float(fit.theta[0]) == pytest.approx(float(w), abs=1e-14)
    if bias:
        assert float(fit.theta[1]) == pytest.approx(float(b), abs=1e-14)
    assert fit.loss_floor == pytest.approx(float(floor), rel=1e-12)


def test_decomposition_final_loss_is_floor_plus_gap(four):
    d = four.decomposition
    assert list(d.run) == list(experiments.TOY_RUNS)
    # Exactly, for a quadratic: the float64 loss at the final θ is floor + ½δᵀHδ.
    assert (d.floor + d.gap).to_numpy() == pytest.approx(d.loss64.to_numpy(), rel=1e-12, abs=1e-18)
    # The float32 log differs by float32 rounding only (the label 3.1 and the loss evaluation).
    assert (d.final_loss - d.loss64).abs().max() < 1e-8
    assert (d.final_loss >= d.floor).all()
    assert list(d.exact_floor) == ["0", "1/1120", "3/4000", "0"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=4, max_size=4), st.floats(-2, 2), st.floats(-2, 2), st.booleans())
def test_excess_loss_decomposition_property(y, w, b, bias):
    """Property: for any labels and θ, mean (ŷ − y)² = floor + ½(θ − θ*)ᵀH(θ − θ*) (float64)."""
    x = torch.tensor(X, dtype=torch.float64).reshape(-1, 1)
    yt = torch.tensor(y, dtype=torch.float64)
    fit = theory.least_squares(x, yt, bias=bias, loss="plain")
    theta = torch.tensor([w, b] if bias else [w], dtype=torch.float64)
    direct = float(((x[:, 0] * w + (b if bias else 0) - yt) ** 2).mean())
    assert fit.loss_floor + float(theory.excess_loss(theta, fit)) == pytest.approx(direct, rel=1e-9, abs=1e-12)


def test_four_runs_summary(four):
    s = four.summary()
    assert set(s["runs"]) == set(experiments.TOY_RUNS)
    assert {"w", "w_star", "floor", "gap", "final_loss", "exact_floor"} <= s["runs"]["toy-noisy"].keys()
    json.dumps(s)


# --------------------------------------------------------------------------- 3. the cycle


def test_cycle_constants_exact():
    """r = x·143/140 − y gives x·r = (0, 3, 12, −15)/140: 2Σ|xr| = 3/7 and −Σx³r/Σx² = 3/70."""
    assert cy.cycle_constants() == (Fraction(3, 7), Fraction(3, 70))


def test_article_values_lie_in_the_cycle(cycle):
    s = cycle.summary()
    assert s["article_inside"] == {"toy-noisy": True, "toy-bias": True}
    for name, art in al.ARTICLE_FINAL.items():
        lo, hi = s["w_range"][name]
        assert lo <= art["w"] <= hi
        assert s["loss_range"][name][0] >= cycle.fits[name].loss_floor - 1e-7  # float32 evaluation
    json.dumps(s)


def test_tail_fraction_counts_epoch_ends_beyond_the_article(cycle):
    s = cycle.summary()["article_tail_fraction"]
    for name, art in al.ARTICLE_FINAL.items():
        w = cycle.epochs[cycle.epochs.run == name].w
        assert art["w"] > w.median()  # both article values lie above the median
        assert s[name] == pytest.approx(float((w >= art["w"]).mean()))
        assert 0 < s[name] < 0.5
        # Across the rounding interval of the printed w the share can only shrink outward and grow inward.
        assert cycle.tail_fraction(name, art["w"]) == s[name]
        assert cycle.tail_fraction(name, art["w"] + 5e-5) <= s[name] <= cycle.tail_fraction(name, art["w"] - 5e-5)


def test_article_noisy_loss_follows_from_its_w(cycle):
    """The article's w = 1.0266 and the decomposition give its printed 0.000986."""
    assert cycle.table().loc["loss implied by the article's w", "w·x"] == "0.000986"
    assert f"{cycle.implied['toy-noisy']:.6f}" == f"{al.ARTICLE_FINAL['toy-noisy']['loss']:.6f}"


# --------------------------------------------------------------------------- 4–5. noise floor and capacity


def test_noise_floor_formula_exact():
    """σ²/2·(n − p)/n, against exact arithmetic."""
    assert theory.noise_floor(0.5, 1000, 3) == float(Fraction(1, 8) * Fraction(997, 1000))
    exact = Fraction(1, 20000) * Fraction(997, 1000)  # σ = 0.01, D2L's
    assert theory.noise_floor(0.01, 1000, 3) == pytest.approx(float(exact), rel=1e-15)


def test_noise_floor_sweep_matches_prediction(noise):
    f = noise.frame
    assert ((f.ratio_lo < 1.03) & (f.ratio_hi > 0.97)).all()
    assert noise.pooled_ratio[0] == pytest.approx(1, abs=0.03)
    assert (noise.sgd.sgd_loss >= noise.sgd.floor * (1 - 1e-5)).all()  # SGD never beats the minimum
    assert (noise.sgd.sgd_loss / noise.sgd.floor).max() < 1.05  # and gets close to it
    assert noise.article_floor == pytest.approx(4.8e-5, abs=0.5e-6)  # the article's data: prints 0.000048/49
    json.dumps(noise.summary())


def test_capacity_train_to_zero_test_above_noise(capacity):
    f = capacity.frame
    assert f.train.iloc[-1] < 1e-12  # degree n_train − 1 interpolates
    assert f.test.iloc[-1] > capacity.noise_level
    assert (f.test >= capacity.noise_level * 0.9).all()
    assert f.train.diff().iloc[1:].le(1e-12).all()  # nested models: the training loss never rises
    json.dumps(capacity.summary())


def test_legendre_matches_closed_forms():
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)
    P = cap.legendre(x, 3)
    assert torch.allclose(P[:, 2], (3 * x**2 - 1) / 2)
    assert torch.allclose(P[:, 3], (5 * x**3 - 3 * x) / 2)


# --------------------------------------------------------------------------- 6–7. precision and summary


def test_precision_thresholds(precision):
    s = precision.summary()
    assert f"{s['loss_at_print_zero']:f}" == "0.000000" and s["loss_at_print_zero"] > 0
    assert f"{s['article_loss_at_print_zero']:f}" == "0.000000" and s["article_loss_at_print_zero"] > 0
    # The log's step 29 is the only logged step of its epoch: x = 2 or x = 3 first both print 0.000000, so the
    # article's loss there is one of two values (the clean closed form after epoch 7, times 0.76² or 0.46²).
    after_seven = al.clean_epoch_loss(7, experiments.TOY_RUNS["toy-clean"].effective_lr)
    assert s["article_losses_at_print_zero"] == pytest.approx([after_seven * 0.46**2, after_seven * 0.76**2],
                                                               rel=1e-4)  # float32 run
    assert s["article_loss_at_print_zero"] in s["article_losses_at_print_zero"]
    assert s["float32_eps"] == 2.0**-23 and s["float32_smallest_normal"] == 2.0**-126
    assert s["smallest_nonzero_loss"] == pytest.approx(3.5 * 2.0**-46)
    assert s["first_exact_zero"] is not None and s["first_exact_zero"] > s["first_print_zero"]
    assert precision.steps.loss32[s["first_exact_zero"]] == 0.0
    json.dumps(s)


def test_causes_table():
    t = lf.causes()
    assert t.index.name == "cause" and list(t.columns) == ["symptom", "what helps", "in the article"]
    assert len(t) >= 5
    # Too much capacity and printing give (apparent) zeros, not a non-zero loss: marked as such.
    assert [c for c in t.index if c.startswith("(zero)")] == ["(zero) capacity near p = n", "(zero) printing"]


def test_report_tables_fit_a_page(replay, four, cycle, noise, precision):
    """Every table of the chapter: a named index (no 0, 1, 2, …), at most 6 columns, short cells.

    pandas' HTML repr (what Quarto shows) cuts cells longer than 50 characters with "…".
    """
    tables = [replay.table(), replay.epoch_table(), four.optimum_table(), four.table(), cycle.table(),
              noise.table(), precision.table(), lf.causes()]
    for t in tables:
        assert t.index.name and not isinstance(t.index, pd.RangeIndex), list(t.columns)
        assert len(t.columns) <= 6, list(t.columns)
        cells = [fmt.plain(str(v)) for v in (*t.index, *t.columns, *t.to_numpy().ravel())]  # as read
        assert max(map(len, cells)) <= 50, max(cells, key=len)


def test_epoch_table_orders_differ_but_losses_agree(replay):
    """The article's and our seeded orders differ, yet every epoch-end loss prints the same (eq-lf-epoch-loss)."""
    t = replay.epoch_table()
    assert list(t.index) == list(range(1, 8))
    assert (t["article's x"] != t["seed 20's x"]).any()
    assert (t["article"] == t["seed 20"]).all() and (t["article"] == t["closed form"]).all()


# --------------------------------------------------------------------------- contracts


def test_same_seed_same_summary(noise, capacity):
    assert cap.noise_floor_sweep(noise.config).summary() == noise.summary()
    assert cap.capacity_sweep(capacity.config).summary() == capacity.summary()


def test_figures(four, cycle, noise, capacity, precision):
    for fig in (plots.four_runs(four), plots.article_cycle(cycle), plots.noise_floor(noise), plots.capacity(capacity),
                plots.precision(precision)):
        assert isinstance(fig, Figure)


def test_engine_is_used_with_many_runs():
    """Sanity: the toy helper trains K runs at once with per-run orders."""
    orders = torch.stack([data.batch_orders(4, 3, data.generator(s, "order")) for s in range(5)], 1)
    traj, losses = al.train_toy(experiments.TOY_RUNS["toy-noisy"], orders)
    assert traj.epoch_params.shape == (4, 1, 5) and losses.shape == (13, 5)
    assert not bool(traj.diverged.any())
    assert isinstance(engine.LINEAR, engine.Model)


def test_divergence_is_an_error_not_nans():
    toy = replace(experiments.TOY_RUNS["toy-noisy"], lr=10.0)  # η = 1: the x = 3 step multiplies e by −17
    with pytest.raises(experiments.Diverged):
        al.train_toy(toy, data.batch_orders(4, 100, data.generator(0, "order")))


def test_summaries_have_their_documented_keys(replay, four, cycle, noise, capacity, precision):
    keys = [
        (replay, {"steps", "matches", "orders", "consistent_orders", "shared_epochs"}),
        (four, {"runs", "long_epochs"}),
        (cycle, {"w_range", "loss_range", "article_inside", "article_implied", "article_tail_fraction"}),
        (noise, {"article_floor", "ratio", "ratio_ci", "pooled_ratio", "intervals_missing_one", "largest_miss",
                "sgd_max_relative_excess", "sgd_mean_relative_excess", "ks_d", "ks_p", "pooled_ks",
                "chance_of_misses"}),
        (capacity, {"noise_level", "best_degree", "best_test", "train_at_max_degree", "test_at_max_degree"}),
        (precision, {"first_print_zero", "loss_at_print_zero", "first_exact_zero", "article_loss_at_print_zero",
                    "article_losses_at_print_zero",
                    "print_zero", "float32_eps", "float32_smallest_normal", "smallest_nonzero_loss"}),
    ]
    for result, expected in keys:
        s = result.summary()
        assert expected | {"experiment", "seed"} <= s.keys(), s["experiment"]
        json.dumps(s)


def test_the_first_logged_factor_names_x_2_and_the_divisor_10(replay):
    first = float(replay.steps.factor_logged.iloc[0])
    assert al.divisors_explaining(first, experiments.TOY_RUNS["toy-clean"].lr) == [(2.0, 10)]
    # A factor that several (x, d) explain is reported with all of them: 1 − 2(0.3/d)·x² = 0.94 at x = 1, d = 10,
    # at x = 2, d = 40 and at x = 3, d = 90 (with d = 89 and 91 inside the tolerance).
    assert al.divisors_explaining(0.94, 0.3, tol=1e-9) == [(1.0, 10), (2.0, 40), (3.0, 90)]
