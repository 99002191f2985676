"""Chapter 2: the two samplings (exact laws), SGD's stationary excess, remedies, bias run, KS, double descent."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from sgdlab import bias_run, capacity, cycle, data, experiments, fmt, remedies, sampling, sgd_floor, stats, theory
from sgdlab.plots import sampling as plots

X, Y = data.TOY_X, data.TOY_Y_NOISY


@pytest.fixture(scope="module")
def samp():
    return sampling.sampling_comparison(sampling.SamplingConfig(runs=8, effective_lrs=(3e-3, 1e-2, 3e-2), epochs=1500))


@pytest.fixture(scope="module")
def fixes():
    return remedies.remedies(remedies.RemediesConfig(runs=8, epochs=300))


@pytest.fixture(scope="module")
def bias():
    return bias_run.bias_hypotheses(bias_run.BiasConfig(runs=16, epochs=400, tail=200, centring_epochs=80))


@pytest.fixture(scope="module")
def dd():
    return capacity.double_descent(capacity.DoubleDescentConfig(runs=20, features=200, ps=(2, 3, 10, 19, 20, 21,
                                                                                          40, 200)))


@pytest.fixture(scope="module")
def small_problem():
    gen = torch.Generator().manual_seed(3)
    Xs = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    return Xs, Xs @ torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.5 + 0.3 * torch.randn(5, generator=gen,
                                                                                                dtype=torch.float64)


# --------------------------------------------------------------------------- exact stationary laws on the toy


def _mean(values):
    return sum(values) / len(values)


def test_with_replacement_law_is_the_closed_form():
    """Var e = η·mean(x²r²)/(mean x² − η·mean x⁴), exactly, and no offset (eq-lf-iid-stationary)."""
    w_star = Fraction(143, 140)
    x, y = [Fraction(str(v)) for v in X], [Fraction(str(v)) for v in Y]
    r = [u * w_star - v for u, v in zip(x, y, strict=True)]
    for eta in (Fraction(3, 100), Fraction(1, 1000)):
        mean, var = sampling.stationary_with_replacement(eta)
        k = _mean([u * u * t * t for u, t in zip(x, r, strict=True)])
        assert mean == 0
        assert var == eta * k / (_mean([u**2 for u in x]) - eta * _mean([u**4 for u in x]))


def test_reshuffled_law_matches_the_leading_order_offset():
    """m/η → −Σx³r/Σx² = 3/70 as η → 0 (eq-lf-offset); the spread is O(η^{3/2})."""
    _, offset = cycle.cycle_constants()
    small = [sampling.stationary_reshuffled(Fraction(1, 10**k)) for k in (4, 5)]
    for k, (m, _) in zip((4, 5), small, strict=True):
        assert float(m * 10**k / offset) == pytest.approx(1, rel=10 ** (2 - k))
    (_, v4), (_, v5) = small
    assert math.log10(float(v4 / v5)) / 2 == pytest.approx(1.5, abs=0.01)  # sd ratio over a decade of η


def test_reshuffled_law_is_a_fixed_point_of_the_epoch_map():
    """Pushing the stationary (mean, second moment) through one random epoch reproduces them exactly."""
    eta = Fraction(3, 100)
    m, v = sampling.stationary_reshuffled(eta)
    steps = sampling._toy_steps(eta)
    second = v + m * m
    new_m, new_second = Fraction(0), Fraction(0)
    for order in itertools.permutations(steps):
        a, c = Fraction(1), Fraction(0)
        for ai, ci in order:
            a, c = ai * a, ai * c + ci
        new_m += (a * m + c) / 24
        new_second += (a * a * second + 2 * a * c * m + c * c) / 24
    assert (new_m, new_second) == (m, second)


def test_second_moment_recursion_converges_to_the_stationary_law():
    eta = 0.03
    second = sampling.second_moment_with_replacement(np.full(2000, eta), 1.0)
    assert second[-1] == pytest.approx(float(sampling.stationary_with_replacement(eta)[1]), rel=1e-12)


def test_replacement_orders_are_draws_with_repeats():
    orders = sampling.orders_for("with replacement", 0, 3, 50, 4)
    assert orders.shape == (50, 3, 4) and orders.min() >= 0 and orders.max() <= 3
    assert any(len(set(o.tolist())) < 4 for o in orders.reshape(-1, 4))  # repeats occur: not permutations
    shuffled = sampling.orders_for("reshuffled", 0, 3, 50, 4)
    assert all(sorted(o.tolist()) == [0, 1, 2, 3] for o in shuffled.reshape(-1, 4))
    with pytest.raises(ValueError):
        sampling.orders_for("stratified", 0, 1, 1, 4)


def test_measured_cycle_matches_the_exact_laws(samp):
    f = samp.frame
    rr, iid = f[f.sampling == "reshuffled"], f[f.sampling == "with replacement"]
    assert (rr.offset / rr.offset_exact).to_numpy() == pytest.approx(1, abs=0.05)
    assert (rr.sd / rr.sd_exact).to_numpy() == pytest.approx(1, abs=0.1)
    assert (iid.sd / iid.sd_exact).to_numpy() == pytest.approx(1, abs=0.1)
    assert (iid.offset.abs() < 5 * iid.offset_se + 1e-12).all()
    assert samp.slopes["sd"]["with replacement"] == pytest.approx(0.5, abs=0.1)
    assert samp.slopes["sd"]["reshuffled"] == pytest.approx(1.5, abs=0.15)
    assert samp.table().shape == (3, 4)


# --------------------------------------------------------------------------- SGD's stationary excess on D2L's data


def test_stationary_covariance_is_the_fixed_point_by_enumeration(small_problem):
    """C = E[(I − ηH_B) C (I − ηH_B)ᵀ] + η² E[ξ_B ξ_Bᵀ], the expectation over all n^B ordered batches."""
    Xs, ys = small_problem
    eta, B = 0.2, 2
    C = sgd_floor.stationary_covariance(Xs, ys, eta, B)
    Xa = torch.cat([Xs, torch.ones(5, 1, dtype=torch.float64)], 1)
    r = Xa @ theory.least_squares(Xs, ys, bias=True).theta - ys
    total = torch.zeros_like(C)
    for batch in itertools.product(range(5), repeat=B):
        idx = list(batch)
        HB = Xa[idx].T @ Xa[idx] / B
        xi = Xa[idx].T @ r[idx] / B
        M = torch.eye(3, dtype=torch.float64) - eta * HB
        total += M @ C @ M.T + eta**2 * torch.outer(xi, xi)
    assert torch.allclose(total / 5**B, C, rtol=1e-10, atol=1e-14)


def test_excess_leading_order_and_d2l_ratio():
    ds, _, _ = experiments.article_start(20)
    X64, y64 = ds.X.double(), ds.y.double()
    exact, leading = sgd_floor.independent_excess(X64, y64, 1e-4, 10)
    assert exact / leading == pytest.approx(1, abs=1e-3)
    floor = theory.least_squares(X64, y64, bias=True).loss_floor
    _, lead = sgd_floor.independent_excess(X64, y64, 0.03, 10)
    assert lead / floor == pytest.approx(1.5 * 0.03 / 10, rel=0.05)  # tr Σ₁ ≈ 3σ², floor ≈ σ²/2


def test_gd_gap_is_the_iterated_step(small_problem):
    Xs, ys = small_problem
    fit = theory.least_squares(Xs, ys, bias=True)
    theta = torch.zeros(3, dtype=torch.float64)
    Xa = torch.cat([Xs, torch.ones(5, 1, dtype=torch.float64)], 1)
    for _ in range(37):
        theta = theta - 0.1 * Xa.T @ (Xa @ theta - ys) / 5
    assert sgd_floor.gd_gap(Xs, ys, torch.zeros(3), 0.1, 37) == pytest.approx(
        float(theory.excess_loss(theta, fit)), rel=1e-10)


def test_sgd_floor_experiment_against_theory():
    r = sgd_floor.sgd_floor(sgd_floor.SgdFloorConfig(lrs=(0.03,), runs=8, epochs=15, burn_in=5))
    iid, rr = r.at("with replacement", 0.03), r.at("reshuffled", 0.03)
    assert iid.all_steps == pytest.approx(iid.exact, rel=0.15)
    per_run = iid.all_steps_se * 8**0.5  # the spread of the 8 runs' means
    assert 0 < per_run < iid.all_steps
    assert rr.epoch_end < iid.exact
    assert r.baseline_gd_gap > 100 * r.baseline_noise
    s = r.summary()
    assert {"floor", "baseline_gd_gap", "baseline_noise", "relative_excess"} <= s.keys()
    json.dumps(s)


# --------------------------------------------------------------------------- remedies


def test_svrg_fixes_w_star_and_converges():
    ds, w_star = sampling.noisy64()
    orders = sampling.orders_for("reshuffled", 0, 2, 60, 4)
    ends = remedies.svrg(ds.X[:, 0], ds.y, torch.full((2,), w_star, dtype=torch.float64), 0.03, orders)
    assert torch.allclose(ends, torch.full_like(ends, w_star), atol=1e-15)
    ends = remedies.svrg(ds.X[:, 0], ds.y, torch.full((2,), 2.0, dtype=torch.float64), 0.03, orders)
    assert (ends[-1] - w_star).abs().max() < 1e-12


def test_remedies_reach_w_star(fixes):
    assert fixes.final(remedies.SVRG) < 1e-12 and fixes.final(remedies.FULL) < 1e-12
    assert fixes.final(remedies.DECAYING) < fixes.final(remedies.CONSTANT) / 10
    assert fixes.final(remedies.AVERAGED) < fixes.final(remedies.INDEPENDENT) / 3
    assert fixes.epochs_to(remedies.SVRG, 1e-12) < fixes.epochs_to(remedies.FULL, 1e-12)
    assert set(fixes.summary()["final_distance"]) == set(remedies.METHODS)


# --------------------------------------------------------------------------- bias run and centring


def test_bias_hessian_and_condition_numbers_exact():
    assert bias_run.hessian(False) == [[7, 3], [3, 2]]
    assert bias_run.hessian(True) == [[Fraction(5, 2), 0], [0, 2]]
    assert bias_run.condition_number(False) == pytest.approx((9 + math.sqrt(61)) / (9 - math.sqrt(61)), rel=1e-14)
    assert bias_run.condition_number(True) == 1.25
    H = torch.tensor([[7.0, 3.0], [3.0, 2.0]], dtype=torch.float64)
    ev = torch.linalg.eigvalsh(H)
    assert float(ev[1] / ev[0]) == pytest.approx(bias_run.condition_number(False), rel=1e-12)


def test_bias_roots_reproduce_the_article_loss():
    ds = data.toy_data(True, dtype=torch.float64)
    fit = theory.least_squares(ds.X, ds.y, bias=True, loss="plain")
    art = bias_run.ARTICLE_FINAL["toy-bias"]
    for b in cycle.bias_roots(fit, art["w"], art["loss"]):
        loss = float((((art["w"] * ds.X[:, 0] + b) - ds.y) ** 2).mean())
        assert loss == pytest.approx(art["loss"], rel=1e-9)


def test_bias_hypotheses(bias):
    assert bias.frozen_b < bias.trained_b
    assert bias.tail_fraction("B: b never updated") > 0.05 > bias.tail_fraction("A: b trained from 0")
    printed = bias_run.ARTICLE_FINAL["toy-bias"]["w"]
    a = "A: b trained from 0"
    assert bias.tail_fraction(a, printed) == bias.tail_fraction(a)
    assert bias.tail_fraction(a, printed + 5e-5) <= bias.tail_fraction(a) <= bias.tail_fraction(a, printed - 5e-5)
    s = bias.summary()
    assert s["epochs_to_twice_uncentred_plateau"]["x − x̄"] < s["epochs_to_twice_uncentred_plateau"]["x"]
    assert bias.plateau("x − x̄") < bias.plateau("x")
    assert {"frozen_b", "trained_b", "kappa", "w_range", "article_tail_fraction", "plateau"} <= s.keys()
    json.dumps(s)


def test_hypothesis_A_is_the_cycles_bias_run(bias):
    """One experiment, one set of numbers: (A) trains the cycle's bias run on the same order streams."""
    c = bias.config
    cyc = cycle.article_cycle(cycle.CycleConfig(runs=c.runs, epochs=c.epochs, tail=c.tail))
    ends = cyc.epochs[cyc.epochs.run == "toy-bias"].w.to_numpy()
    a = bias.epochs[bias.epochs.hypothesis == "A: b trained from 0"].w.to_numpy()
    assert np.array_equal(np.sort(a), np.sort(ends))
    assert bias.tail_fraction("A: b trained from 0") == cyc.tail_fraction("toy-bias")


# --------------------------------------------------------------------------- statistics, double descent


def test_binomial_tail_and_chi2_cdf():
    assert stats.binomial_tail(2, 7, Fraction(1, 20)) == 1 - Fraction(19, 20) ** 7 - 7 * Fraction(1, 20) * Fraction(
        19, 20) ** 6
    x = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    assert torch.allclose(stats.chi2_cdf(x, 2), 1 - torch.exp(-x / 2), rtol=1e-12)


def test_ks_test_accepts_the_law_and_rejects_a_scaled_one():
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(2000, generator=gen, dtype=torch.float64)
    d, p = stats.ks_test(u, lambda v: v)
    assert p > 0.01 and d < 0.05
    assert stats.ks_test(u * 0.9, lambda v: v.clamp(0, 1))[1] < 1e-6
    assert stats.kolmogorov_sf(1.358) == pytest.approx(0.05, abs=0.001)  # the textbook 5 % point


def test_noise_floor_ks_and_chance():
    r = capacity.noise_floor_sweep(capacity.NoiseFloorConfig(sigmas=(0.01, 0.1), runs=100, n=200, sgd_runs=1,
                                                             sgd_epochs=5))
    assert (r.ks().ks_p > 0.001).all()
    assert r.chance_of_misses == float(stats.binomial_tail(r.intervals_missing_one, 2, Fraction(1, 20)))


def test_min_norm_is_the_pseudo_inverse_solution():
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(3, 4, 9, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    assert torch.allclose(capacity._min_norm(A, y), (torch.linalg.pinv(A) @ y.unsqueeze(-1)).squeeze(-1))


def test_double_descent_peaks_at_the_threshold(dd):
    f = dd.frame.set_index("p")
    assert f.train.loc[21:].max() < 1e-20  # interpolation from p = n on
    assert f.test.idxmax() == dd.config.n_train
    assert f.test.loc[200] < f.test.loc[40] < f.test.loc[21]  # the second descent
    json.dumps(dd.summary())


def test_unit_weak_features_act_as_a_large_ridge_penalty(dd):
    """Below p = n least squares ignores column scales: both cases agree. Past it the weak Gram matrix ≈ tr Λ_w·I."""
    bad = capacity.double_descent(capacity.DoubleDescentConfig(**{**dd.config.__dict__, "unit_weak": True}))
    assert (dd.weak_trace, bad.weak_trace) == (1.0, dd.config.features - dd.config.strong)
    good_f, bad_f = dd.frame.set_index("p"), bad.frame.set_index("p")
    under = good_f.index[good_f.index < dd.config.n_train]
    # the same fitted values up to float64 rounding of a 20 × p solve (condition number ≲ 1e3 here)
    assert np.allclose(good_f.test.loc[under], bad_f.test.loc[under], rtol=1e-9)
    # with all features the strong coefficients shrink by about n/(n + tr Λ_w): the test loss nears predicting 0
    most = dd.config.features
    assert good_f.test.loc[most] < bad_f.test.loc[most] < bad.null_test_loss


def test_new_figures(samp, fixes, bias, dd):
    for fig in (plots.samplings(samp), plots.remedies(fixes), plots.bias_run(bias), plots.double_descent(dd),
                plots.double_descent(dd, dd)):
        assert isinstance(fig, Figure)


def test_new_tables_fit_a_page(samp, bias):
    """The same rule as the chapter's other tables: a named index, at most 6 columns, cells of at most 50 characters."""
    floor = sgd_floor.sgd_floor(sgd_floor.SgdFloorConfig(lrs=(0.01, 0.03), runs=2, epochs=4, burn_in=2))
    for t in (samp.table(), bias.table(), floor.table()):
        assert t.index.name and len(t.columns) <= 6, list(t.columns)
        cells = [fmt.plain(str(v)) for v in (*t.index, *t.columns, *t.to_numpy().ravel())]  # as read
        assert max(map(len, cells)) <= 50, max(cells, key=len)


def test_t_two_sided_matches_tabulated_quantiles():
    # Student's t, 15 degrees of freedom: t = 2.1314 and 2.9467 are the two-sided 5 % and 1 % points.
    assert stats.t_two_sided(2.131449546, 15) == pytest.approx(0.05, abs=1e-8)
    assert stats.t_two_sided(-2.946712883, 15) == pytest.approx(0.01, abs=1e-8)
    assert stats.t_two_sided(0.0, 15) == pytest.approx(1.0)


def test_offset_p_tests_the_measured_offset_against_the_exact_one():
    frame = pd.DataFrame([{"sampling": "with replacement", "effective_lr": 0.03, "offset": -2.131449546e-4,
                           "offset_se": 1e-4, "sd": 1.0, "offset_exact": 0.0, "sd_exact": 1.0, "width": 1.0}])
    result = sampling.SamplingResult(sampling.SamplingConfig(runs=16), frame, {}, sampling.offset_p_values(frame, 16))
    assert result.offset_p("with replacement", 0.03) == pytest.approx(0.05, abs=1e-7)
