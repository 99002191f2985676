"""Chapter 2 (why the loss does not reach zero): decoded article log, exact floors, cycles, noise floor, capacity."""

import json
import math
from dataclasses import replace
from fractions import Fraction

import pandas as pd
import pytest
import torch
from bounds import gamma, loss_and_bound, lstsq_bound, unit_roundoff
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
U64, U32 = unit_roundoff(torch.float64), unit_roundoff(torch.float32)


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
    # 1 − 2ηx² in float64: η's representation, two products, a subtraction, each within u of values ≤ 1;
    # the decimal literals are rounded too: γ₅ in all
    assert [al.shrink_factor(0.03, v) for v in X] == pytest.approx([1, 0.94, 0.76, 0.46], rel=0, abs=gamma(5, U64))


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
    # sqrt(2.021600 / 3.500000) is 0.76 exactly in decimals (3.5·0.76² = 2.0216); float64 rounds the two
    # printed values, the quotient and the root (half of the quotient's error), and 0.76: within γ₄
    assert first.factor_logged == pytest.approx(0.76, rel=gamma(4, U64), abs=0)
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

    Absolute bounds on e = w − 1 (|e| ≤ 1, every factor |1 − 2ηx²| ≤ 1 for η ≤ 1/9, so no error grows):
    the engine holds w (|w| ≤ 2) and each step rounds it by at most 2u, plus u·|x·w| ≤ 6u in the
    residual carried by 2ηx ≤ 0.6: 6u per step. The closed form multiplies 4 factors per epoch, each
    within γ₃·2ηx² + u ≤ 3u, and rounds each product: 4u per factor. The loss 3.5·e² then moves by
    7·|e|·δ + 3.5·δ², on top of its own float64 evaluation (bounds.py).
    """
    toy = replace(experiments.TOY_RUNS["toy-clean"], lr=eta, grad_divisor=1)
    traj, _ = al.train_toy(toy, torch.tensor(orders), dtype=torch.float64)
    Xa, y = torch.tensor(X, dtype=torch.float64).reshape(-1, 1), torch.tensor(X, dtype=torch.float64)
    _, evaluation = loss_and_bound(Xa, y, traj.epoch_params, torch.float64, half=False)
    for epoch in range(1, len(orders) + 1):
        expected = al.clean_epoch_loss(epoch, eta)
        e = al.clean_epoch_factor(eta) ** epoch  # w0 − 1 = 1
        delta = 6 * U64 * 4 * epoch + 4 * U64 * 4 * epoch + gamma(2, U64) * abs(e)  # engine, factors, the power
        assert abs(float(traj.epoch_params[epoch, 0, 0]) - 1 - e) <= delta  # w − 1 is exact (Sterbenz) for w ∈ [½, 2]
        bound = 7 * abs(e) * delta + 3.5 * delta**2 + float(evaluation[epoch, 0]) + gamma(3, U64) * expected
        assert abs(float(traj.epoch_loss[epoch, 0]) - expected) <= bound


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
        # lstsq's error δ moves the mean of (ŷ − x)² by ≤ 2·rms(ŷ − x)·rms(x·δ) + ...; with its own float64
        # evaluation (bounds.py, y = x as labels): both far below the 1e-14 of a value near 2e-3
        Xa = engine.augment(x.reshape(-1, 1), bias)
        solve = lstsq_bound(Xa, torch.tensor(Y_NOISY, dtype=torch.float64), fit.theta)
        _, evaluation = loss_and_bound(Xa, x, fit.theta.unsqueeze(1), torch.float64, half=False)
        move = 2 * math.sqrt(float(lf.target_loss(name))) * float(Xa.norm(dim=1).max()) * solve
        bound = float(evaluation[0]) + move + float(Xa.norm(dim=1).max() * solve) ** 2
        assert abs(float(((y_hat - x) ** 2).mean()) - float(lf.target_loss(name))) <= bound


def test_chance_agreement_is_the_product_over_epochs(replay):
    """k orders print the piecewise log in an epoch: an independent shuffle matches with chance k/4!."""
    ks = replay.decoded["toy-piecewise"].consistent[:7]
    # 7 quotients and 7 products in float64, each rounded once; the exact product rounded once: γ₁₅
    exact = float(math.prod(Fraction(k, 24) for k in ks))
    assert replay.chance_agreement() == pytest.approx(exact, rel=gamma(15, U64), abs=0)
    assert replay.chance_agreement() < 1e-8


@pytest.mark.parametrize("bias", [False, True])
def test_float64_least_squares_agrees_with_fractions(bias):
    ds = data.toy_data(True, dtype=torch.float64)
    fit = theory.least_squares(ds.X, ds.y, bias=bias, loss="plain")
    w, b, floor = lf.exact_least_squares(X, Y_NOISY, bias)
    # lstsq within its perturbation bound (bounds.py) of the exact θ*; the floor within its float64
    # evaluation at the computed θ plus λmax(XᵀX/n)·‖δθ‖², what evaluating it off θ* adds
    Xa = engine.augment(ds.X, bias)
    theta = torch.tensor([float(w), float(b)][: Xa.shape[1]], dtype=torch.float64)
    solve = lstsq_bound(Xa, ds.y, theta)
    assert float((fit.theta - theta).norm()) <= solve
    _, evaluation = loss_and_bound(Xa, ds.y, fit.theta.unsqueeze(1), torch.float64, half=False)
    curvature = float(torch.linalg.eigvalsh(Xa.T @ Xa / ds.n).max())
    assert abs(fit.loss_floor - float(floor)) <= float(evaluation[0]) + curvature * solve**2


def test_decomposition_final_loss_is_floor_plus_gap(four):
    d = four.decomposition
    assert list(d.run) == list(experiments.TOY_RUNS)
    for row in d.itertuples():
        toy = experiments.TOY_RUNS[row.run]
        theta = torch.tensor([row.w] + ([row.b] if toy.bias else []), dtype=torch.float64)
        jump = (toy.model.jump_at, toy.model.jump_height) if toy.piecewise else None
        # Exactly, for a quadratic: the float64 loss at the final θ is floor + ½δᵀHδ (the piecewise run, where it
        # ends, is w·x on the clean labels). Apart: loss64's float64 evaluation (bounds.py), the floor's rounding,
        # and the gap's: θ* from lstsq within ε = lstsq_bound moves ½δᵀHδ by ≤ ‖Hδ‖ε + ½λmax·ε², and its own
        # few operations round it by γ₈ of ½|δ|ᵀ|H||δ|.
        fitted = data.toy_data(toy.noisy and not toy.piecewise, dtype=torch.float64)  # as four_runs fits
        Xa = engine.augment(fitted.X, toy.bias)
        fit = theory.least_squares(fitted.X, fitted.y, toy.bias, "plain")
        labels = data.toy_data(toy.noisy, dtype=torch.float64).y  # what loss64 is evaluated on
        _, evaluation = loss_and_bound(Xa, labels, theta.unsqueeze(1), torch.float64, half=False, jump=jump)
        eps, H, delta = lstsq_bound(Xa, fitted.y, fit.theta), fit.hessian, theta - fit.theta
        gap = float((H @ delta).norm()) * eps + 0.5 * float(torch.linalg.eigvalsh(H).max()) * eps**2
        gap += gamma(8, U64) * 0.5 * float(delta.abs() @ H.abs() @ delta.abs())
        bound = float(evaluation[0]) + U64 * row.floor + gap
        assert abs(row.floor + row.gap - row.loss64) <= bound, row.run
        # The float32 log is the float32 evaluation at the logged θ on the float32 labels (bounds.py).
        ds32 = data.toy_data(toy.noisy or toy.piecewise)
        exact32, bound32 = loss_and_bound(engine.augment(ds32.X, toy.bias), ds32.y, theta.float().unsqueeze(1),
                                          torch.float32, half=False, jump=jump)
        assert abs(row.final_loss - float(exact32[0])) <= float(bound32[0]), row.run
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
    # As in the decomposition test: the direct loss's float64 evaluation, the floor's, and the gap through
    # lstsq's error ε and its own rounding.
    Xa = engine.augment(x, bias)
    eps, H = lstsq_bound(Xa, yt, fit.theta), fit.hessian
    delta = theta - fit.theta
    _, direct_err = loss_and_bound(Xa, yt, theta.unsqueeze(1), torch.float64, half=False)
    _, floor_err = loss_and_bound(Xa, yt, fit.theta.unsqueeze(1), torch.float64, half=False)
    gap_err = float((H @ delta).norm()) * eps + float(torch.linalg.eigvalsh(H).max()) * eps**2
    gap_err += gamma(8, U64) * 0.5 * float(delta.abs() @ H.abs() @ delta.abs())
    excess = float(theory.excess_loss(theta, fit))
    bound = float(direct_err[0] + floor_err[0]) + gap_err
    assert abs(fit.loss_floor + excess - direct) <= bound


def test_four_runs_summary(four):
    s = four.summary()
    assert set(s["runs"]) == set(experiments.TOY_RUNS)
    assert {"w", "w_star", "floor", "gap", "final_loss", "exact_floor"} <= s["runs"]["toy-noisy"].keys()
    json.dumps(s)


# --------------------------------------------------------------------------- 3. the cycle


def test_cycle_constants_exact():
    """r = x·143/140 − y gives x·r = (0, 3, 12, −15)/140: 2Σ|xr| = 3/7 and −Σx³r/Σx² = 3/70."""
    assert cy.cycle_constants() == (Fraction(3, 7), Fraction(3, 70))


def test_epoch_range_constant_exact():
    """Pushes −2x·r = (0, −6, −24, 30)/140: in every order one epoch spans the largest, 30/140 = 3/14 per unit η,
    half the envelope 2Σ|xr| = 3/7 over all orders (eq-lf-width)."""
    assert cy.epoch_range_constant() == Fraction(3, 14) < cy.cycle_constants()[0]


@pytest.mark.parametrize("eta", [Fraction(1, 1000), Fraction(1, 10**6)])
def test_exact_epoch_range_tends_to_its_leading_order(eta):
    """From w*, |e| stays below Σ|c| = (3/7)η while 2ηx² ≤ 1, so each step's contraction moves e by at most
    2ηx_i²·(3/7)η: 12η² over an epoch (Σx² = 14), 24η² for max − min. Hence |range/η − 3/14| ≤ 24η."""
    from sgdlab import sampling
    exact = sampling.epoch_range_from_optimum(eta)
    assert abs(exact / eta - cy.epoch_range_constant()) <= 24 * eta
    assert exact != cy.epoch_range_constant() * eta  # the higher orders are there, not rounded away


def test_engine_epoch_ranges_match_the_exact_range_from_the_optimum():
    """All 24 orders, one epoch each from w* on the engine (float64): the mean of sampling.epoch_ranges is
    sampling.epoch_range_from_optimum's exact value, to rounding."""
    import itertools

    from sgdlab import sampling
    eta = Fraction(3, 100)
    ds, w_star = sampling.noisy64()
    orders = torch.tensor(list(itertools.permutations(range(ds.n))))[None]  # (1, 24, 4)
    K = orders.shape[1]
    traj = sampling.train_noisy(ds, torch.full((1, K), w_star, dtype=torch.float64), float(eta), orders,
                                record_steps=True)
    ranges = sampling.epoch_ranges(traj.step_params[:, 0], ds.n)  # (1, 24)
    assert ranges.shape == (1, K)
    # w* rounds once (u·|w*|); each of the 4 steps rounds its product, difference, scaling and update (γ₆ of
    # |w| ≤ 1.1), carried by factors |1 − 2ηx²| ≤ 1: each end of the range within (1 + 4·6)·u·1.1·(1 + …)
    u = unit_roundoff(torch.float64)
    bound = 2 * gamma(25, u) * 1.1
    assert abs(float(ranges.mean()) - float(sampling.epoch_range_from_optimum(eta))) <= bound


def test_article_values_lie_in_the_cycle(cycle):
    s = cycle.summary()
    assert s["article_inside"] == {"toy-noisy": True, "toy-bias": True}
    for name, art in al.ARTICLE_FINAL.items():
        lo, hi = s["w_range"][name]
        assert lo <= art["w"] <= hi
        # float32 losses ≥ the floor less their evaluation error: to first order 2γ₂·rms(Σ|xθ|)/rms(r) + γ₆
        # relative (bounds.py, by Cauchy–Schwarz), with Σ|xθ| ≤ 3·1.1 + 0.1 and rms(r) ≥ √floor on these runs
        floor = cycle.fits[name].loss_floor
        rel = 2 * gamma(2, U32) * 3.4 / math.sqrt(floor) + gamma(6, U32)
        assert s["loss_range"][name][0] >= floor * (1 - rel)
    json.dumps(s)


def test_tail_fraction_counts_epoch_ends_beyond_the_article(cycle):
    s = cycle.summary()["article_tail_fraction"]
    for name, art in al.ARTICLE_FINAL.items():
        w = cycle.epochs[cycle.epochs.run == name].w
        assert art["w"] > w.median()  # both article values lie above the median
        assert s[name] == float((w >= art["w"]).mean())  # tail_fraction's own rule, computed the same way
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
    # 0.01's representation (doubled by the square), the square, ·997 and /1000: γ₅ (the ½ is exact)
    assert theory.noise_floor(0.01, 1000, 3) == pytest.approx(float(exact), rel=gamma(5, U64), abs=0)


def test_noise_floor_sweep_matches_prediction(noise):
    f = noise.frame
    # E[floor] = σ²/2·(n − p)/n exactly (Gaussian noise): each measured ratio within 5 of its standard errors
    # of 1 (its 95 % CI is ±1.96 SE); a seeded draw fails with chance 6e-7 per ratio
    se = (f.ratio_hi - f.ratio_lo) / (2 * 1.96)
    assert ((f.ratio - 1).abs() <= 5 * se).all()
    mean, lo, hi = noise.pooled_ratio
    assert abs(mean - 1) <= 5 * (hi - lo) / (2 * 1.96)
    # SGD never beats the minimum: its float32 loss is at least the floor less the evaluation error, to first
    # order 2γ₃·rms(Σ|xθ|)/rms(r) + γ_(n+2) relative (bounds.py, Cauchy–Schwarz); rms(Σ|xθ|) ≤ |b| + (|w₁| +
    # |w₂|) times the rms of |x|, below 1.25 for 200 normal draws (5 standard deviations of √(χ²₂₀₀/200))
    rel = (2 * gamma(3, U32) * (4.2 + (2 + 3.4) * 1.25) / (2 * noise.sgd.floor) ** 0.5
           + gamma(noise.config.n + 2, U32))
    assert (noise.sgd.sgd_loss >= noise.sgd.floor * (1 - rel)).all()
    # and gets close to it: SGD's stationary excess is about (η/4B)·tr Σ₁ ≈ 1.5·η/B = 0.5 % of the floor
    # (sgd_floor.py, lr 0.03, B = 10); 5 % allows 10 times that for the unfinished descent of 50 epochs
    assert (noise.sgd.sgd_loss / noise.sgd.floor).max() < 1.05
    # the 95 % band of a single data set holds its floor with probability 0.95 exactly (χ² quantiles): of the
    # R·S independent floors, the number inside is Binomial(R·S, 0.95); 5 of its standard deviations below
    # the mean is 26 or more misses of 200 here, which a seeded draw meets with chance 9e-6 (stats.binomial_tail)
    band = f.set_index("sigma")
    inside = ((noise.runs.floor >= band.band_lo[noise.runs.sigma].to_numpy())
              & (noise.runs.floor <= band.band_hi[noise.runs.sigma].to_numpy())).sum()
    total = len(noise.runs)
    assert inside >= 0.95 * total - 5 * (0.95 * 0.05 * total) ** 0.5
    assert band.band_lo.iloc[0] < band.predicted.iloc[0] < band.band_hi.iloc[0]
    assert f"{noise.article_floor:f}" == "0.000048"  # the article's data: it prints loss 0.000048/49
    json.dumps(noise.summary())


def test_capacity_train_to_zero_test_above_noise(capacity):
    f = capacity.frame
    # Degree n_train − 1 interpolates: the loss left is the solve's rounding, ‖r‖ ≲ γ·‖A‖‖coef‖, a "zero" 10⁹
    # times below the noise level σ²/2 = 5e-3 unless ‖A‖‖coef‖ exceeds 10⁹
    assert f.train.iloc[-1] < 1e-12
    # every data set's interpolating loss lies below its own rounding bound; below p = n there is no bound
    assert f.train_within_rounding.iloc[-1] == capacity.config.runs and f.train.iloc[-1] <= f.train_rounding.iloc[-1]
    assert f.train_rounding.iloc[:-1].isna().all() and (f.train_within_rounding.iloc[:-1] == 0).all()
    assert f.test.iloc[-1] > capacity.noise_level
    # Any model's test loss on 200 fresh points is at least (σ²/2)·χ²₂₀₀/200, whose median over 100 data sets
    # has a standard deviation near 1.25·0.1/√100: 0.9 is 8 of them below 1
    assert (f.test >= capacity.noise_level * 0.9).all()
    # Nested models: the training loss never rises (in exact arithmetic, and so the median over data sets);
    # each float64 loss ≤ ½ carries ≲ γ₂₀·(½) ≈ 1e-15 of rounding: 1e-12 leaves a wide margin for the solves
    assert f.train.diff().iloc[1:].le(1e-12).all()
    json.dumps(capacity.summary())


def test_legendre_matches_closed_forms():
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)
    P = cap.legendre(x, 3)
    # |x| ≤ 1, so every term is at most 5 and both sides take a handful of roundings: within 16u·5 of each other
    tol = gamma(16, U64) * 5
    assert torch.allclose(P[:, 2], (3 * x**2 - 1) / 2, rtol=0, atol=tol)
    assert torch.allclose(P[:, 3], (5 * x**3 - 3 * x) / 2, rtol=0, atol=tol)


# --------------------------------------------------------------------------- 6–7. precision and summary


def test_precision_thresholds(precision):
    s = precision.summary()
    assert f"{s['loss_at_print_zero']:f}" == "0.000000" and s["loss_at_print_zero"] > 0
    assert f"{s['article_loss_at_print_zero']:f}" == "0.000000" and s["article_loss_at_print_zero"] > 0
    # The log's step 29 is the only logged step of its epoch: x = 2 or x = 3 first both print 0.000000, so the
    # article's loss there is one of two values (the clean closed form after epoch 7, times 0.76² or 0.46²).
    after_seven = al.clean_epoch_loss(7, experiments.TOY_RUNS["toy-clean"].effective_lr)
    # A float32 run of 29 steps: each rounds w (≤ 2) by 2u and the residual (≤ 6u) carried by 2ηx ≤ 0.18, at most
    # 4u per step with no damping assumed; e = w − 1 = √(loss/3.5) then carries ≤ 29·4u and the loss 2·29·4u/e,
    # plus its own evaluation (x·w rounded by 3u, a residual 3e: 2u/e). Still far apart: 0.76²/0.46² = 2.7.
    for got, closed in zip(s["article_losses_at_print_zero"], [after_seven * 0.46**2, after_seven * 0.76**2],
                           strict=True):
        e = math.sqrt(closed / 3.5)
        assert got == pytest.approx(closed, rel=2 * 29 * 4 * U32 / e + 2 * U32 / e + gamma(8, U64), abs=0)
    assert s["article_loss_at_print_zero"] in s["article_losses_at_print_zero"]
    assert s["float32_eps"] == 2.0**-23 and s["float32_smallest_normal"] == 2.0**-126
    assert s["smallest_nonzero_loss"] == 3.5 * 2.0**-46  # 3.5·eps² (eps = 2⁻²³): exact in float64
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
        (capacity, {"noise_level", "best_degree", "best_test", "train_at_max_degree", "test_at_max_degree",
                    "train_rounding_at_max_degree", "train_within_rounding_at_max_degree"}),
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


def test_interpolation_rounding_is_the_lstsq_bound_and_squares_kappa_when_wide():
    """Square A: (n·p·u·κ·‖y‖)²/(2n), as loss_floor.model_error_rounding; a wide A pays κ² (the AAᵀ solve)."""
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(2, 5, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    bound = cap.interpolation_rounding(A, y)
    for r in range(2):
        assert float(bound[r]) == pytest.approx(lf.model_error_rounding(A[r], y[r]), rel=1e-12)
    wide = torch.randn(1, 3, 6, generator=gen, dtype=torch.float64)
    kappa = float(torch.linalg.cond(wide[0]))
    u = torch.finfo(torch.float64).eps
    assert float(cap.interpolation_rounding(wide, y[:1, :3])[0]) == pytest.approx(
        (3 * 6 * u * kappa**2 * float(y[0, :3].norm())) ** 2 / 6, rel=1e-12)
