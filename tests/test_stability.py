"""SGD's step-size edges per sampling, float32 overflow past 2/L, and the gradient step as a prox step."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sgdlab import data, engine, sampling, sgd_floor, stability, steepest, taylor

EPS = 2.0**-52  # float64's unit roundoff, doubled: the spacing of floats in [1, 2)
TINY = Fraction(1, 10**12)


def P(eta):
    return stability.epoch_factor(eta)


# --------------------------------------------------------------------------- the toy's edges, exactly


def test_epoch_polynomial_is_the_product_and_its_first_edge_the_quadratic_root():
    assert stability.epoch_polynomial() == (1, -28, 196, -288)
    # P − 1 = −4η(72η² − 49η + 7): same coefficients, so (49 ± √385)/144 are the roots of P = 1
    assert [c - (k == 0) for k, c in enumerate(stability.epoch_polynomial())] == [0, -4 * 7, 4 * 49, -4 * 72]
    first = stability.reshuffled_intervals()[0]
    assert first[0] == 0 and first[1] == pytest.approx(stability.reshuffled_edge_closed_form(), rel=1e-13)


def test_each_end_is_a_crossing_of_one_in_exact_arithmetic():
    """|P| < 1 just inside every interval and > 1 just outside, evaluated in Fractions 10⁻¹² from the float root."""
    intervals = stability.reshuffled_intervals()
    assert len(intervals) == 2
    for lo, hi in intervals:
        for end, inside in ((lo, TINY), (hi, -TINY)):
            if end == 0:
                continue
            e = Fraction(end)
            assert abs(P(e + inside)) < 1 < abs(P(e - inside))
        assert abs(P(Fraction((lo + hi) / 2))) < 1
    (_, edge), (w_lo, w_hi) = intervals
    assert P(Fraction(w_lo)) == pytest.approx(1, abs=1e-12) and P(Fraction(w_hi)) == pytest.approx(-1, abs=1e-12)
    assert abs(P(Fraction(1, 2))) == 0  # inside the window: the x = 1 step lands on w = 1 exactly
    assert edge < 2 / 7  # the gradient-descent edge 2/L of the mean loss


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=5), st.fractions(0, 2))
def test_the_intervals_are_where_the_epoch_factor_is_below_one(xs, eta):
    """On any data x, |P(η)| < 1 exactly when η lies in one of the intervals (away from their ends)."""
    assume(any(xs))
    intervals = stability.reshuffled_intervals(xs)
    near = any(abs(float(eta) - e) < 1e-9 for iv in intervals for e in iv)
    assume(eta > 0 and not near)
    assert (abs(stability.epoch_factor(eta, xs)) < 1) == any(lo < eta < hi for lo, hi in intervals)


def test_mean_square_edge_is_one_seventh_and_where_the_factor_is_one():
    edge = stability.mean_square_edge()
    assert edge == Fraction(1, 7)
    assert stability.mean_square_factor(edge) == 1
    assert stability.mean_square_factor(edge - TINY) < 1 < stability.mean_square_factor(edge + TINY)


def test_lyapunov_exponent_is_the_mean_log_factor():
    for eta in (0.03, 0.16, 0.25):
        direct = np.mean([math.log(abs(1 - 2 * eta * x * x)) for x in data.TOY_X])
        assert stability.lyapunov_exponent(eta) == pytest.approx(direct, rel=1e-14)
    # the almost-sure edge with replacement is the reshuffled one: E log|a| = log|P|/n changes sign where |P| = 1
    edge = stability.reshuffled_intervals()[0][1]
    assert stability.lyapunov_exponent(edge * (1 - 1e-9)) < 0 < stability.lyapunov_exponent(edge * (1 + 1e-9))


# --------------------------------------------------------------------------- the second-moment operator


@pytest.fixture(scope="module")
def small():
    g = torch.Generator().manual_seed(5)
    Xa = torch.cat([torch.randn(5, 2, generator=g, dtype=torch.float64), torch.ones(5, 1, dtype=torch.float64)], 1)
    return Xa, torch.randn(3, 3, generator=g, dtype=torch.float64)


def test_operator_is_the_expectation_over_all_batches(small):
    """(I − ηA + η²K) vec C = vec E[(I − ηH_B) C (I − ηH_B)] over all n^B ordered batches drawn with replacement."""
    Xa, C = small
    C = C + C.T
    eta, B = 0.3, 2
    H, M4 = sgd_floor.per_example_moments(Xa)
    A, K = sgd_floor.operator_parts(H, M4, B)
    total = torch.zeros(3, 3, dtype=torch.float64)
    for batch in itertools.product(range(5), repeat=B):
        M = torch.eye(3, dtype=torch.float64) - eta * Xa[list(batch)].T @ Xa[list(batch)] / B
        total += M @ C @ M
    T = torch.eye(9, dtype=torch.float64) - eta * A + eta**2 * K
    # 25 products of 3×3 matrices with entries O(1): float64 rounding far below 1e-12
    assert torch.allclose(T @ C.reshape(-1), (total / 5**B).reshape(-1), rtol=1e-12, atol=1e-12)


def test_operator_edge_is_where_the_radius_is_one(small):
    Xa, _ = small
    H, M4 = sgd_floor.per_example_moments(Xa)
    for B in (1, 2, 5):
        edge = stability.operator_edge(H, M4, B)
        # at a simple root the radius is 1 up to the eigensolvers' rounding (~1e-15 for these 6×6 matrices)
        assert stability.operator_radius(H, M4, B, edge) == pytest.approx(1, abs=1e-10)
        assert stability.operator_radius(H, M4, B, 0.99 * edge) < 1 < stability.operator_radius(H, M4, B, 1.01 * edge)
        # mean-square stability needs the mean's, η < 2/L; every batch of B contracting (η < 2/max L_B) suffices
        L = float(torch.linalg.eigvalsh(H).max())
        LB = max(float(torch.linalg.eigvalsh(Xa[list(b)].T @ Xa[list(b)] / B).max())
                 for b in itertools.product(range(5), repeat=B))
        assert 2 / LB <= edge < 2 / L


def test_operator_edge_of_the_toy_is_one_seventh():
    """p = 1: the pencil is 14η = 98η², the same edge as E(1 − 2ηx²)² = 1 (one division: a few ulp)."""
    toy = data.toy_data(noisy=False, dtype=torch.float64)
    H, M4 = sgd_floor.per_example_moments(toy.X, c=1.0)
    assert float(H) == 7 and float(M4) == 98
    assert stability.operator_edge(H, M4, 1) == pytest.approx(1 / 7, rel=4 * EPS)


def test_toy_second_moment_radius_of_w_x_is_the_exact_factor():
    """w·x (p = 1): reshuffled, every order multiplies e by P(η), so the radius is P(η)²; with replacement it is
    E(1 − 2ηx²)². Products of ≤ 4 factors of size ≤ 2 and a mean of 24: float64 rounding far below 1e-12."""
    for eta in (0.03, 0.15, 0.2, 0.21, 0.3):
        assert stability.toy_second_moment_radius(eta, False, "reshuffled") == pytest.approx(
            float(P(Fraction(str(eta)))) ** 2, rel=1e-12)
        assert stability.toy_second_moment_radius(eta, False, "with replacement") == pytest.approx(
            float(stability.mean_square_factor(Fraction(str(eta)))), rel=1e-12)


def test_toy_second_moment_radius_with_a_bias_is_the_operator_of_batches_of_one():
    """w·x + b with replacement: the same map as sgd_floor's operator with B = 1 on the toy's plain loss (c = 1)."""
    x = torch.tensor(data.TOY_X, dtype=torch.float64)
    H, M4 = sgd_floor.per_example_moments(torch.stack([x, torch.ones_like(x)], 1), c=1.0)
    for eta in (0.05, 0.13, 0.2):
        # two eigensolvers on 4×4 matrices with entries O(10): agreement to ~1e-14, asserted to 1e-10
        assert stability.toy_second_moment_radius(eta, True, "with replacement") == pytest.approx(
            stability.operator_radius(H, M4, 1, eta), abs=1e-10)
    assert stability.toy_mean_square_edge(True, "with replacement") == pytest.approx(
        stability.operator_edge(H, M4, 1), abs=1e-9)


def test_toy_mean_square_edges():
    """w·x: the closed forms (49 − √385)/144 reshuffled and 1/7 with replacement (the bisection's tolerance 1e-12, plus
    the radius's rounding near a simple crossing); w·x + b: the radius is 1 there, below 1 just before."""
    assert stability.toy_mean_square_edge(False, "reshuffled") == pytest.approx(
        stability.reshuffled_edge_closed_form(), abs=1e-9)
    assert stability.toy_mean_square_edge(False, "with replacement") == pytest.approx(1 / 7, abs=1e-9)
    for s in ("reshuffled", "with replacement"):
        edge = stability.toy_mean_square_edge(True, s)
        assert stability.toy_second_moment_radius(0.999 * edge, True, s) < 1 < stability.toy_second_moment_radius(
            1.001 * edge, True, s)
        assert 0.1 < edge < stability.toy_mean_square_edge(False, s)  # the bias lowers both edges


# --------------------------------------------------------------------------- the engine on either side


@pytest.fixture(scope="module")
def edges():
    return stability.stability(stability.StabilityConfig(runs=4, epochs=1500))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_edges_table_builds_in_each_language(edges, lang, monkeypatch):
    """Table 3.5 in both editions: its labels' math ($2/L_{\\max}$) survives str.format."""
    monkeypatch.setenv("SGDLAB_LANG", lang)
    table = edges.edges_table()
    assert any("$2/L_{\\max}$" in label for label in table.index)
    assert any(f"{edges.config.seed}" in label for label in table.index)


def test_reshuffled_epochs_multiply_the_error_by_P(edges):
    """Every epoch of every order, read off the float64 engine, has e_end/e_start = P(η).

    Each of the 4 steps rounds x·w and w (|x| ≤ 3): w − 1 carries at most ~8 ulp(3) ≈ 4e-15 of
    absolute error per epoch; read while |e| ≥ 1e-6, a ratio is within 2·4e-15/1e-6 < 1e-8 relative.
    """
    r = edges.reshuffled.set_index("eta")
    for _, row in r.iterrows():
        assert row.factor_min == pytest.approx(row.P, rel=1e-8, abs=1e-12)
        assert row.factor_max == pytest.approx(row.P, rel=1e-8, abs=1e-12)
    assert r.loc[0.206, "diverged_runs"] == edges.config.runs
    assert (r.drop(0.206).diverged_runs == 0).all()
    assert r.loc[0.2, "final_error"] < 1e-12  # 0.936^1500 ≈ 1e-43: float64's rounding near w = 1 remains
    json.dumps(edges.summary(), allow_nan=False)


def test_float32_flag_is_where_the_sum_of_squares_overflows(edges):
    """At η = 0.206 the float32 engine flags where Σ(x e)² of the float64 run passes FLT_MAX, as the engine reads it.

    The engine checks the loss at epoch ends, then replays the first epoch whose end loss is inf step by
    step: the flag is the first step of that epoch with Σr² > FLT_MAX. (An earlier step may overflow
    and the next ones shrink e² again: the x = 3 step multiplies it by 7.3, the x = 1, 2 steps by 0.35, 0.42.)
    float32 rounds each of a step's ≤ 4 operations to 6e-8 relative; over ≤ 6000 steps e² drifts by < 3e-3
    relative from the float64 run, which cannot move a crossing unless it lands within 0.3 % of FLT_MAX.
    """
    c = edges.config
    ds = data.toy_data(noisy=False, dtype=torch.float64)
    orders = sampling.orders_for("reshuffled", c.seed, c.runs, c.epochs, 4)
    traj = engine.train(ds.X, ds.y, torch.full((1, c.runs), 2.0, dtype=torch.float64), 0.206, orders,
                        batch_size=1, model=engine.Model(bias=False), loss="plain", grad_divisor=1, record_steps=True)
    over = float(sum(x * x for x in data.TOY_X)) * (traj.step_params[:, 0] - 1).square() > steepest.FLOAT32_MAX
    epoch = int(over[:: 4].double().argmax(0).max())  # e at epoch ends is P^k for every order: the same epoch
    within = over[4 * (epoch - 1) + 1 : 4 * epoch + 1].double().argmax(0) + 4 * (epoch - 1) + 1
    flagged = stability.stability(c)  # the cached result: its table keeps the last run's flag
    assert int(within.max()) == flagged.reshuffled.set_index("eta").loc[0.206, "diverged_step"]
    ds32 = data.toy_data(noisy=False)
    runs = engine.train(ds32.X, ds32.y, torch.full((1, c.runs), 2.0), 0.206, orders, batch_size=1,
                        model=engine.Model(bias=False), loss="plain", grad_divisor=1)
    assert runs.diverged_step.tolist() == within.tolist()
    assert bool((over.double().argmax(0) < within).all())  # the loss overflowed, transiently, before


def test_with_replacement_expectations_over_every_sequence(edges):
    """The engine's mean over all 4^t draw sequences equals (E a²)^t; its mean log|e_t|/t the Lyapunov exponent.

    Bound per sequence: each step adds ≤ 2 ulp(max |x w|) of absolute error to w, amplified by at most
    max|a|^t afterwards, so |e_t − Π a| ≤ 2t·ulp·max(1, |e|)·max|a|^t (ulp = 3·EPS covers |x| ≤ 3).
    """
    t = edges.config.enumerated_steps
    for row in edges.replacement.itertuples():
        a = [1 - 2 * row.eta * x * x for x in data.TOY_X]
        seqs = list(itertools.product(a, repeat=t))
        exact = np.array([math.prod(s) for s in seqs])
        bound = 2 * t * 3 * EPS * np.maximum(1, np.abs(exact)) * max(1, max(abs(v) for v in a)) ** t
        assert row.engine_ratio == pytest.approx(row.exact_ratio, abs=float(np.mean(2 * np.abs(exact) * bound
                                                                                        + bound**2)))
        assert row.engine_lyapunov == pytest.approx(row.lyapunov, abs=float(np.mean(bound / np.abs(exact))) / t)
        assert row.exact_ratio == pytest.approx(float(np.mean(exact**2)), rel=1e-12)
    r = edges.replacement.set_index("eta")
    assert r.loc[0.13, "factor"] < 1 < r.loc[0.16, "factor"]  # either side of 1/7
    assert r.loc[0.16, "lyapunov"] < 0 < r.loc[0.25, "lyapunov"]  # either side of the reshuffled edge


def test_baseline_edges_sit_between_two_over_Lmax_and_two_over_L(edges):
    """The mean-square edge (with replacement) lies above 2/L_max over every batch drawn with replacement."""
    b = edges.baseline.set_index("batch_size")
    assert (b.two_over_Lmax_replacement < b.edge).all() and (b.edge < b.two_over_L).all()
    # a batch drawn with replacement can be B copies of the largest-norm example: no better than seed 20's order
    assert (b.two_over_Lmax_replacement <= b.two_over_Lmax_reshuffled).all()
    assert b.loc[1, "two_over_Lmax_replacement"] == b.loc[1, "two_over_Lmax_reshuffled"]  # B = 1: the same batches
    assert b.loc[1, "edge"] < b.loc[10, "edge"]  # larger batches average the curvature: a wider stable range


# --------------------------------------------------------------------------- float32 overflow past 2/L


@pytest.fixture(scope="module")
def baseline():
    return taylor.baseline_problem(20)


def test_overflow_growth_is_the_exact_iterate(baseline):
    """½ Σλa²(1 − ηλ)^(2k) equals ½ΔᵀHΔ of Δ ← (I − ηH)Δ iterated in float64, and tends to ½La_L²ρ^(2k)."""
    q, theta0 = baseline
    L, _ = taylor.curvature_bounds(q.hessian)
    eta = 2.1 / L
    o = steepest.overflow(q, theta0, eta)
    lam, U = torch.linalg.eigh(q.hessian)
    a = U.T @ (theta0.double() - q.fit.theta)
    delta = theta0.double() - q.fit.theta
    step = torch.eye(3, dtype=torch.float64) - eta * q.hessian
    for k in range(1, 401):
        delta = step @ delta
        if k % 100 == 0:
            exact = float(0.5 * (lam * a**2 * (1 - eta * lam) ** (2 * k)).sum())
            # k multiplications by a matrix of norm 1.1: relative rounding ≲ k·3·EPS
            assert float(0.5 * delta @ q.hessian @ delta) == pytest.approx(exact, rel=k * 3 * EPS * 10)
            others = float(0.5 * (lam[:-1] * a[:-1] ** 2 * (1 - eta * lam[:-1]) ** (2 * k)).sum())
            # ρ^(2k) in float64 carries ≲ 2k·EPS relative error
            assert o.top_growth * o.rho ** (2 * k) + others == pytest.approx(exact, rel=4 * k * EPS)
            assert others < 1e-12 * exact  # the other components have decayed: the top term is the loss
    assert o.top_growth < o.initial_excess  # only a small part of f0 − f* lies on the top eigenvector
    assert o.bound_step < o.loss_step  # an upper bound passes the limit before the loss does
    assert o.sum_step < o.loss_step  # and the float32 sum Σr² = 2n·f before either


def test_overflow_prediction_is_the_engines_flag():
    """The predicted first step with (n/c)·f(θ_k) > FLT_MAX is the step the float32 engine flags, for every η > 2/L."""
    lemma = steepest.descent_lemma()
    bad = lemma.sweep[lemma.sweep.diverged]
    assert len(bad) >= 4
    assert (bad.overflow_predicted.astype(int) == bad.diverged_step).all()
    assert (bad.overflow_predicted < bad.overflow_loss).all()
    s = lemma.summary()
    assert s["overflow_predicted"] == s["diverged_steps"]


def test_overflow_prediction_for_the_toy_in_its_own_loss():
    """The toy's plain loss (c = 1): Σr² = n·f. Full-batch GD at lr 0.3 (η L = 2.1) flags where predicted."""
    curv = steepest.curvature()
    run = curv.toy_runs.set_index("variant").loc["full batch, lr 0.3"]
    q, w0 = taylor.toy_problem(noisy=False, bias=False)
    assert steepest.overflow(q, w0, 0.3).flag_step == run.diverged_step
    with pytest.raises(ValueError, match="does not diverge"):
        steepest.overflow(q, w0, 0.25)


# --------------------------------------------------------------------------- the gradient step as a prox step


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 4), st.floats(0.05, 3.0))
def test_gradient_step_minimises_the_local_model(seed, p, eta_L):
    """On random quadratics: −η∇f minimises m (completed square), m ≥ f iff η ≤ 1/L, and then f drops ≥ (η/2)‖∇f‖²."""
    g = torch.Generator().manual_seed(seed)
    X, y = torch.randn(6, p, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    q = taylor.Quadratic(X, y, bias=False)
    theta = torch.randn(p, generator=g, dtype=torch.float64)
    lam, U = torch.linalg.eigh(q.hessian)
    assume(float(lam[-1]) > 1e-3 and float(q.gradient(theta).norm()) > 1e-6)
    eta = eta_L / float(lam[-1])
    deltas = torch.cat([torch.randn(50, p, generator=g, dtype=torch.float64), U[:, -1:].T, -eta * U[:, -1:].T])
    r = taylor.prox_check(q, theta, eta, deltas)
    scale = 1 + float(q.value(theta)) + float((deltas**2).sum(1).max()) / eta
    assert r.step_gap <= 1e-12 * scale  # an identity: only rounding of values of size `scale`
    assert r.promised == pytest.approx(eta / 2 * float(q.gradient(theta) @ q.gradient(theta)), rel=1e-9)
    if eta_L <= 1:
        assert r.above >= -1e-12 * scale and r.above_exact >= -1e-12 * float(lam[-1])
        assert r.decrease >= r.promised - 1e-12 * scale
    else:
        assert r.above_exact < 0 and r.above < 0  # along the top eigenvector the model dips below f


def test_replacement_batch_curvature_is_the_worst_multiset():
    """max_i 2c‖x_i‖² against λ_max of every batch of B examples drawn with replacement, enumerated (small data)."""
    gen = torch.Generator().manual_seed(3)
    q = taylor.Quadratic(torch.randn(6, 2, generator=gen, dtype=torch.float64),
                         torch.zeros(6, dtype=torch.float64), True, "half")
    worst = stability.replacement_batch_curvature(q)
    for B in (1, 2, 3):
        batches = torch.tensor(list(itertools.combinations_with_replacement(range(q.n), B)))
        Xb = q.Xa[batches]  # (batches, B, p)
        lam = torch.linalg.eigvalsh(2 * q.c * Xb.transpose(1, 2) @ Xb / B)[:, -1]
        # the eigenvalue solver errs by a few ulps of ‖H_B‖ (backward stable): 8·p·eps relative
        assert float(lam.max()) == pytest.approx(worst, rel=8 * q.Xa.shape[1] * EPS)
    assert worst == pytest.approx(float((q.Xa**2).sum(1).max()), rel=4 * EPS)  # c = ½: max ‖x_i‖²


def test_the_toys_single_step_edge_is_two_over_the_largest_single_example_curvature():
    from fractions import Fraction

    from sgdlab import stability
    # w·x: the curvature of (w x - y)² is 2x², largest at x = 3; with b, λ_max of 2(x, 1)(x, 1)ᵀ is 2(x² + 1)
    assert stability.toy_single_step_edge(False) == Fraction(1, 9)
    assert stability.toy_single_step_edge(True) == Fraction(1, 10)
    assert stability.toy_single_step_edge(False, x=(0.5, 2.0)) == Fraction(1, 4)
