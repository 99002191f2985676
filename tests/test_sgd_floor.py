"""Chapter 2: the two samplings (exact laws), SGD's stationary excess, remedies, bias run, KS, double descent."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from bounds import gamma, gradient_step_bound, loss_and_bound, unit_roundoff
from matplotlib.figure import Figure

from sgdlab import bias_run, capacity, cycle, data, experiments, fmt, remedies, sampling, sgd_floor, stats, theory
from sgdlab.plots import sampling as plots

X, Y = data.TOY_X, data.TOY_Y_NOISY
U64 = unit_roundoff(torch.float64)


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
    # Exact arithmetic: only the next order differs, m/η = offset·(1 + c·η + O(η²)); the tolerance 100·η
    # allows a constant c up to 100 (in the limit c ≈ 4.5)
    for k, (m, _) in zip((4, 5), small, strict=True):
        assert float(m * 10**k / offset) == pytest.approx(1, rel=10 ** (2 - k))
    (_, v4), (_, v5) = small
    # sd ∝ η^{3/2}(1 + c′η): over the decade the slope moves by log10((1 + c′·10⁻⁴)/(1 + c′·10⁻⁵))/2 ≈ 2e-5·c′;
    # 0.01 allows c′ up to 500
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
    # float64: the residuals r = x·w* − y lose |x·w*|/|r| of relative accuracy (twice: w*'s rounding and the
    # product), so E c² carries 2·(2·max |x·w*|/|r| + 2)·u; the recursion contracts by E a² per step, so its own
    # γ₆ per step adds γ₆/(1 − E a²); after 2000 steps (E a²)^2000 of the start is left
    x, y = np.array(X), np.array(Y)
    r = x * 143 / 140 - y
    Ea2 = float(np.mean((1 - 2 * eta * x**2) ** 2))
    lost = 2 * (2 * np.max(np.abs(x * 143 / 140)[r != 0] / np.abs(r[r != 0])) + 2) * U64
    rel = lost + gamma(6, U64) / (1 - Ea2) + Ea2**2000
    assert second[-1] == pytest.approx(float(sampling.stationary_with_replacement(eta)[1]), rel=rel, abs=0)


def test_replacement_orders_are_draws_with_repeats():
    orders = sampling.orders_for("with replacement", 0, 3, 50, 4)
    assert orders.shape == (50, 3, 4) and orders.min() >= 0 and orders.max() <= 3
    assert any(len(set(o.tolist())) < 4 for o in orders.reshape(-1, 4))  # repeats occur: not permutations
    shuffled = sampling.orders_for("reshuffled", 0, 3, 50, 4)
    assert all(sorted(o.tolist()) == [0, 1, 2, 3] for o in shuffled.reshape(-1, 4))
    with pytest.raises(ValueError):
        sampling.orders_for("stratified", 0, 1, 1, 4)


def _sd_relative_se(frame: pd.DataFrame, config: sampling.SamplingConfig) -> np.ndarray:
    """Relative standard error of each row's sd: 1/√(2N) for N effectively independent epoch ends.

    Epoch ends of one run form an AR(1) chain whose correlation is the epoch map's mean factor ρ:
    Π(1 − 2ηx²) reshuffled, (1 − 2η·mean x²)⁴ with replacement; for a variance, N runs·epochs
    ends count as N·(1 − ρ²)/(1 + ρ²).
    """
    x = np.array(X)
    eta = frame.effective_lr.to_numpy()[:, None]
    rho = np.where(frame.sampling.to_numpy() == "reshuffled", np.prod(1 - 2 * eta * x**2, axis=1),
                   (1 - 2 * eta[:, 0] * np.mean(x**2)) ** len(x))
    n = config.runs * (config.epochs - config.burn_in) * (1 - rho**2) / (1 + rho**2)
    return 1 / np.sqrt(2 * n)


def test_measured_cycle_matches_the_exact_laws(samp):
    f = samp.frame
    # Monte Carlo: each measured offset within 5 of its standard errors (from the runs' means: a t₇ tail of
    # 0.2 %) of the exact law's, each sd within 5 of its standard errors (_sd_relative_se)
    assert ((f.offset - f.offset_exact).abs() <= 5 * f.offset_se).all()
    rel = _sd_relative_se(f, samp.config)
    assert ((f.sd / f.sd_exact - 1).abs() <= 5 * rel).all()
    # The fitted log-log slope of the sd against the exact laws' own slope over the same η: a least-squares
    # slope is Σ cᵢ·log sdᵢ, so its standard error is √Σ cᵢ²·relᵢ² (relative errors are errors of the log).
    for name, g in f.groupby("sampling"):
        ln = np.log(g.effective_lr.to_numpy())
        c = (ln - ln.mean()) / ((ln - ln.mean()) ** 2).sum()
        se = math.sqrt(float((c**2 * rel[g.index.to_numpy()] ** 2).sum()))
        exact_slope = float(np.polyfit(ln, np.log(g.sd_exact.to_numpy()), 1)[0])
        assert abs(samp.slopes["sd"][name] - exact_slope) <= 5 * se, name
    # and each slope is nearer its leading exponent (η^½ with replacement, η^{3/2} reshuffled) than any other
    assert abs(samp.slopes["sd"]["with replacement"] - 0.5) < 0.5 < abs(samp.slopes["sd"]["reshuffled"] - 0.5)
    assert abs(samp.slopes["sd"]["reshuffled"] - 1.5) < 0.5
    assert samp.table().shape == (3, 4)
    # the table labels each η as the config writes it: read back, the labels are the runs' step sizes
    assert [float(v) for v in samp.table().index] == list(samp.config.effective_lrs)
    default = sampling.SamplingConfig().effective_lrs
    assert [float(f"{v:g}") for v in default] == list(default) and len(set(default)) == len(default)


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
    # C solves (I − T)C = η²E[ξξᵀ], T = E[M ⊗ M] (9 × 9): a backward-stable solve is within κ(I − T)·γ₈₁ of
    # it (relative to ‖C‖); the enumeration sums 25 terms of a few products each: γ₄₀ of Σ|terms| ≤ 25·max
    T = sum(torch.kron(M, M) for M in (torch.eye(3, dtype=torch.float64) - eta * Xa[list(b)].T @ Xa[list(b)] / B
                                       for b in itertools.product(range(5), repeat=B))) / 5**B
    kappa = float(torch.linalg.cond(torch.eye(9, dtype=torch.float64) - T))
    tol = (kappa * gamma(81, U64) + gamma(40, U64)) * float(C.abs().max() + (total / 5**B).abs().max())
    assert torch.allclose(total / 5**B, C, rtol=0, atol=tol)


def test_excess_leading_order_and_d2l_ratio():
    ds, _, _ = experiments.article_start(20)
    X64, y64 = ds.X.double(), ds.y.double()
    exact, leading = sgd_floor.independent_excess(X64, y64, 1e-4, 10)
    # leading order: exact = leading·(1 + c·η + …); abs 1e-3 at η = 1e-4 allows c up to 10
    assert exact / leading == pytest.approx(1, abs=1e-3)
    fit = theory.least_squares(X64, y64, bias=True)
    _, lead = sgd_floor.independent_excess(X64, y64, 0.03, 10)
    # tr Σ₁ ≈ 3σ², floor ≈ σ²/2: lead/floor = (η/2B)·R with R = Σ r²‖x‖²/Σ r², the r²-weighted mean of ‖x‖²
    # (x with its ones column), whose expectation is 3; the ratio estimator's standard error comes from the data
    Xa = torch.cat([X64, torch.ones(ds.n, 1, dtype=torch.float64)], 1)
    w, z = (Xa @ fit.theta - y64) ** 2, (Xa**2).sum(1)
    R = float((w * z).sum() / w.sum())
    se = float(((w * (z - R)) ** 2).sum().sqrt() / w.sum())
    assert lead / fit.loss_floor == pytest.approx(1.5 * 0.03 / 10, rel=5 * se / 3, abs=0)


def test_gd_gap_is_the_iterated_step(small_problem):
    Xs, ys = small_problem
    fit = theory.least_squares(Xs, ys, bias=True)
    theta = torch.zeros(3, dtype=torch.float64)
    Xa = torch.cat([Xs, torch.ones(5, 1, dtype=torch.float64)], 1)
    # Two float64 routes to δ₃₇ from the same θ*: 37 steps, each within gradient_step_bound and carried by
    # I − ηH (‖·‖₂ ≤ 1 here), and gd_gap's matrix power, within 37·γ₃·‖|I − ηH|‖₂^37·‖δ₀‖; the gap then moves by
    # ‖Hδ‖·ε + ½λmax·ε², plus its own rounding, γ₈ of ½|δ|ᵀ|H||δ|, on each side
    M = torch.eye(3, dtype=torch.float64) - 0.1 * fit.hessian
    assert float(torch.linalg.matrix_norm(M, 2)) <= 1
    eps = 0.0
    for _ in range(37):
        eps += float(gradient_step_bound(Xa, ys, theta, 0.1, 5, torch.float64).norm())
        theta = theta - 0.1 * Xa.T @ (Xa @ theta - ys) / 5
    delta0 = float(fit.theta.norm())
    eps += 37 * gamma(3, U64) * float(torch.linalg.matrix_norm(M.abs(), 2)) ** 37 * delta0
    delta, H = theta - fit.theta, fit.hessian
    bound = (float((H @ delta).norm()) * eps + 0.5 * float(torch.linalg.eigvalsh(H).max()) * eps**2
             + 2 * gamma(8, U64) * 0.5 * float(delta.abs() @ H.abs() @ delta.abs()))
    assert abs(sgd_floor.gd_gap(Xs, ys, torch.zeros(3), 0.1, 37) - float(theory.excess_loss(theta, fit))) <= bound


def test_sgd_floor_experiment_against_theory():
    r = sgd_floor.sgd_floor(sgd_floor.SgdFloorConfig(lrs=(0.03,), runs=8, epochs=15, burn_in=5))
    iid, rr = r.at("with replacement", 0.03), r.at("reshuffled", 0.03)
    # Monte Carlo: within 5 standard errors of the 8 runs' means (a t₇ tail of 0.2 %)
    assert abs(iid.all_steps - iid.exact) <= 5 * iid.all_steps_se
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
    x = ds.X[:, 0]
    # From w* exactly: w − w̃ = 0 and the full gradient at w* is rounding, below half an ulp of w* once times η,
    # so no step moves w: SVRG stays at w* bit for bit
    full = float((2 * x * (x * w_star - ds.y)).mean())
    assert abs(0.03 * full) < math.ulp(w_star) / 2
    ends = remedies.svrg(x, ds.y, torch.full((2,), w_star, dtype=torch.float64), 0.03, orders)
    assert torch.equal(ends, torch.full_like(ends, w_star))
    # From 2: with d = w − w̃, a step is d ← (1 − 2ηx²)d − η·∇ℓ(w̃), ∇ℓ(w̃) = 2·mean(x²)·e, so an epoch multiplies
    # e = w − w* by 1 − 2η·mean(x²)·Σ_j Π_{l>j}(1 − 2ηx_l²) in exact arithmetic (at most ρ over the 24 orders);
    # the iterate stalls where η·|∇| < ½ ulp, |e| ≲ ulp/(2η·2 mean x²), plus one ulp of rounding per step
    f = [1 - 0.06 * v * v for v in data.TOY_X]
    rho = max(abs(1 - 0.06 * 3.5 * sum(math.prod(f[o[m]] for m in range(j + 1, 4)) for j in range(4)))
              for o in itertools.permutations(range(4)))
    stall = math.ulp(w_star) / (2 * 0.03 * 2 * float((x * x).mean())) + 60 * 4 * math.ulp(2.0)
    ends = remedies.svrg(x, ds.y, torch.full((2,), 2.0, dtype=torch.float64), 0.03, orders)
    assert (ends[-1] - w_star).abs().max() <= rho**60 * (2 - w_star) + stall


def test_remedies_reach_w_star(fixes):
    # "reached": both converge linearly and 300 epochs leave far less than 1e-12 of the start, so what is left
    # is float64 rounding near w* (≈ 1e-15); 1e-12 separates that from every other remedy's distance
    assert fixes.final(remedies.SVRG) < 1e-12 and fixes.final(remedies.FULL) < 1e-12
    assert fixes.final(remedies.DECAYING) < fixes.final(remedies.CONSTANT) / 10
    assert fixes.final(remedies.AVERAGED) < fixes.final(remedies.INDEPENDENT) / 3
    assert fixes.epochs_to(remedies.SVRG, 1e-12) < fixes.epochs_to(remedies.FULL, 1e-12)
    assert set(fixes.summary()["final_distance"]) == set(remedies.METHODS)


# --------------------------------------------------------------------------- bias run and centring


def test_bias_hessian_and_condition_numbers_exact():
    assert bias_run.hessian(False) == [[7, 3], [3, 2]]
    assert bias_run.hessian(True) == [[Fraction(5, 2), 0], [0, 2]]
    # Both sides subtract √61 ≈ 7.81 from 9 (t − √(t² − 4d) in the package): 9/(9 − √61) ≈ 7.6 times the root's
    # relative error, a handful of roundings each: γ₁₀ of it
    lost = 9 / (9 - math.sqrt(61))
    assert bias_run.condition_number(False) == pytest.approx((9 + math.sqrt(61)) / (9 - math.sqrt(61)),
                                                             rel=lost * gamma(10, U64), abs=0)
    assert bias_run.condition_number(True) == 1.25
    H = torch.tensor([[7.0, 3.0], [3.0, 2.0]], dtype=torch.float64)
    ev = torch.linalg.eigvalsh(H)
    # eigvalsh is backward stable: |δλ| ≤ γ_(4p²)·‖H‖₂ (LAPACK's bound, modest constant), so λmin carries κ
    # times that relative: the ratio within 2·κ·γ₁₆, plus the package's own (above)
    kappa = bias_run.condition_number(False)
    assert float(ev[1] / ev[0]) == pytest.approx(kappa, rel=2 * kappa * gamma(16, U64) + lost * gamma(10, U64), abs=0)


def test_bias_roots_reproduce_the_article_loss():
    ds = data.toy_data(True, dtype=torch.float64)
    fit = theory.least_squares(ds.X, ds.y, bias=True, loss="plain")
    art = bias_run.ARTICLE_FINAL["toy-bias"]
    # The quadratic's right side is loss − floor: the roots carry the cancellation loss/(loss − floor) ≈ 9 on
    # top of their ~20 roundings; the loss is then evaluated in float64 (bounds.py)
    lost = art["loss"] / (art["loss"] - fit.loss_floor)
    for b in cycle.bias_roots(fit, art["w"], art["loss"]):
        loss = float((((art["w"] * ds.X[:, 0] + b) - ds.y) ** 2).mean())
        _, evaluation = loss_and_bound(torch.cat([ds.X, torch.ones(4, 1, dtype=torch.float64)], 1), ds.y,
                                       torch.tensor([[art["w"]], [b]], dtype=torch.float64), torch.float64, half=False)
        assert abs(loss - art["loss"]) <= lost * gamma(20, U64) * art["loss"] + float(evaluation[0])


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
    assert bias.seeds_reaching("A: b trained from 0") == cyc.seeds_reaching("toy-bias")


def test_the_books_bias_tables_are_one_experiment():
    """Tables tbl-lf-cycle and tbl-lf-bias read (A) from one simulation only if their default configs agree."""
    c, b = cycle.CycleConfig(), bias_run.BiasConfig()
    assert (c.seed, c.runs, c.epochs, c.tail) == (b.seed, b.runs, b.epochs, b.tail)


def test_seeds_reaching_counts_each_seed_once(bias):
    a = "A: b trained from 0"
    ends = bias.epochs[bias.epochs.hypothesis == a]
    assert set(ends.order_seed) == set(bias.config.seed + np.arange(bias.config.runs))
    assert (ends.groupby("order_seed").size() == bias.config.tail).all()  # every seed's whole tail
    per_seed = ends.groupby("order_seed").w.max()
    for w in (per_seed.min(), per_seed.median(), per_seed.max()):  # reached by the seeds whose top is ≥ w
        assert bias.seeds_reaching(a, w) == int((per_seed >= w).sum())
    assert bias.seeds_reaching(a, per_seed.max() + 1e-3) == 0
    assert bias.seeds_reaching(a, per_seed.min()) == bias.config.runs


# --------------------------------------------------------------------------- statistics, double descent


def test_binomial_tail_and_chi2_cdf():
    assert stats.binomial_tail(2, 7, Fraction(1, 20)) == 1 - Fraction(19, 20) ** 7 - 7 * Fraction(1, 20) * Fraction(
        19, 20) ** 6
    x = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    # torch's gammainc is accurate to a few ulps of its value; 1 − exp(−x/2) loses 1/(1 − e^(−x/2)) ≤ 4.6 of
    # exp's relative accuracy to the subtraction (x ≥ 0.5): γ₁₀ relative covers both
    assert torch.allclose(stats.chi2_cdf(x, 2), 1 - torch.exp(-x / 2), rtol=gamma(10, U64), atol=0)


@pytest.mark.parametrize("q", [0.025, 0.5, 0.975])
def test_chi2_quantile_inverts_the_cdf(q):
    # dof 2: F(x) = 1 − e^(−x/2), so x = −2 ln(1 − q). An error δ in F moves the root by δ/F′(x),
    # F′(x) = e^(−x/2)/2 = (1 − q)/2; chi2_cdf is within γ₁₀ of F (the test above), the bisection ends
    # between adjacent floats, and the closed form itself is within a few ulps: together the bound below.
    exact = -2 * math.log1p(-q)
    bound = gamma(10, U64) * q / ((1 - q) / 2) + 4 * math.ulp(exact)
    assert abs(stats.chi2_quantile(q, 2) - exact) <= bound
    # any dof: the root is bracketed by its neighbours, and the normal approximation's 1.96 √(2k) is
    # between the two ends of the 95 % range (χ² is skewed to the right: the upper end is farther out)
    k = 997
    x = stats.chi2_quantile(q, k)
    assert float(stats.chi2_cdf(math.nextafter(x, 0), k)) < q <= float(stats.chi2_cdf(x, k))
    lo, hi = stats.chi2_quantile(0.025, k), stats.chi2_quantile(0.975, k)
    assert k - lo < 1.96 * math.sqrt(2 * k) < hi - k


def test_chi2_quantile_needs_a_probability():
    with pytest.raises(ValueError):
        stats.chi2_quantile(1.0, 3)


def test_ks_test_accepts_the_law_and_rejects_a_scaled_one():
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(2000, generator=gen, dtype=torch.float64)
    d, p = stats.ks_test(u, lambda v: v)
    # A test at the 1 % level, and D < 0.05: √2000·0.05 = 2.24, a Kolmogorov tail of 2e-4 (seeded draws)
    assert p > 0.01 and d < 0.05
    # u·0.9 is 0.1 off at the top: D ≈ 0.1, √2000·D ≈ 4.5, a tail near 1e-17
    assert stats.ks_test(u * 0.9, lambda v: v.clamp(0, 1))[1] < 1e-6
    # The textbook 5 % point 1.358 is rounded to 3 decimals: within 5e-4·|Q′(1.358)| of 0.05
    slope = abs(stats.kolmogorov_sf(1.3585) - stats.kolmogorov_sf(1.3575)) / 1e-3
    assert stats.kolmogorov_sf(1.358) == pytest.approx(0.05, abs=5e-4 * slope * (1 + 1e-3))


def test_noise_floor_ks_and_chance():
    r = capacity.noise_floor_sweep(capacity.NoiseFloorConfig(sigmas=(0.01, 0.1), runs=100, n=200, sgd_runs=1,
                                                             sgd_epochs=5))
    assert (r.ks().ks_p > 0.001).all()
    assert r.chance_of_misses == float(stats.binomial_tail(r.intervals_missing_one, 2, Fraction(1, 20)))


def test_min_norm_is_the_pseudo_inverse_solution():
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(3, 4, 9, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    # Both backward stable; the minimum-norm solution of a full-row-rank A has condition κ(A) (pinv's, κ²
    # through its small singular values): within 2·κ²·γ₃₆ of |x|
    x = (torch.linalg.pinv(A) @ y.unsqueeze(-1)).squeeze(-1)
    kappa = float(torch.linalg.cond(A).max())
    tol = 2 * kappa**2 * gamma(36, U64) * float(x.abs().max())
    assert torch.allclose(capacity._min_norm(A, y), x, rtol=0, atol=tol)


def test_double_descent_peaks_at_the_threshold(dd):
    f = dd.frame.set_index("p")
    # interpolation from p = n on: the minimum-norm fit leaves only the solve's rounding, ‖r‖ ≲ γ·‖A‖‖coef‖
    assert f.train.loc[21:].max() < 1e-20
    assert (f.train_within_rounding.loc[20:] == dd.config.runs).all() and f.train_rounding.loc[:19].isna().all()
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


def _t_density(t: float, dof: int) -> float:
    return math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
                    - (dof + 1) / 2 * math.log1p(t * t / dof))


# Simpson's rule on 200 001 points over [|t|, 200]: error ≤ 2·(200/180)·h⁴·max|f⁗| with max|f⁗| ≤ 3·f(0)·(1 + 3/ν)
# < 2 (the normal's is 3φ(0)); the tail past 200 is below 1e-30 for ν = 15.
SIMPSON = 2 * 200 / 180 * (200 / 200_000) ** 4 * 2


def test_t_two_sided_matches_tabulated_quantiles():
    # Student's t, 15 degrees of freedom: t = 2.1314 and 2.9467 are the two-sided 5 % and 1 % points, quoted to
    # 9 decimals: they move the probability by ≤ 2·f(t)·5e-10, plus Simpson's error
    for t, p in ((2.131449546, 0.05), (-2.946712883, 0.01)):
        assert stats.t_two_sided(t, 15) == pytest.approx(p, abs=2 * _t_density(t, 15) * 5e-10 + SIMPSON)
    assert stats.t_two_sided(0.0, 15) == pytest.approx(1.0, abs=SIMPSON)


def test_offset_p_tests_the_measured_offset_against_the_exact_one():
    frame = pd.DataFrame([{"sampling": "with replacement", "effective_lr": 0.03, "offset": -2.131449546e-4,
                           "offset_se": 1e-4, "sd": 1.0, "offset_exact": 0.0, "sd_exact": 1.0, "width": 1.0}])
    result = sampling.SamplingResult(sampling.SamplingConfig(runs=16), frame, {}, sampling.offset_p_values(frame, 16))
    # t = 2.131449546 after one division (a relative u), as in the test above
    t = 2.131449546
    assert result.offset_p("with replacement", 0.03) == pytest.approx(
        0.05, abs=2 * _t_density(t, 15) * (5e-10 + t * U64) + SIMPSON)
