"""Chapter 3 beyond the quadratics and plain GD: the piecewise loss, the two samplings, sign descent,
preconditioning and the heavy ball — closed forms exactly, update rules as properties, contracts."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from sgdlab import data, expected_descent, norms, piecewise, taylor, updates
from sgdlab.plots import beyond
from sgdlab.taylor import Quadratic

FLOATS = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


def vectors(p: int, elements=FLOATS):
    return st.lists(elements, min_size=p, max_size=p).map(lambda v: torch.tensor(v, dtype=torch.float64))


# --------------------------------------------------------------------------- the piecewise toy


def test_piecewise_jumps_exactly():
    """By hand: left pieces fire [w·x > 3], values fire [w·x ≥ 3]; labels 0, 1, 2, 3.1, mean of 4 squares."""
    expected = {  # w: (limit from the left, value)
        1.0: (Fraction(1, 400), Fraction(0)),  # x = 3: ŷ = 3 vs 3.1 on the left, 3.1 at w = 1
        1.5: (Fraction(0 + 25 + 100 + 225, 400), Fraction(0 + 25 + 121 + 225, 400)),  # residuals ×10: 0, 5, 10|11, 15
        3.0: (Fraction(0 + 400 + 1681 + 3600, 400), Fraction(0 + 441 + 1681 + 3600, 400)),
    }
    r = piecewise.piecewise()
    assert piecewise.breakpoints() == [1.0, 1.5, 3.0]
    for w, (left, value) in expected.items():
        exact = Fraction(w)
        assert piecewise.exact_loss(exact, strict=True) == left
        assert piecewise.exact_loss(exact) == value
        assert r.row(w).left_limit == float(left) and r.row(w).value == float(value)
    assert r.row(1.0).left_limit == 0.0025 and r.minimiser == 1.0 and r.minimum == 0.0


def test_piecewise_float_loss_matches_the_exact_one_off_the_breakpoints():
    for w in (0.3, 0.99, 1.2, 2.0, 3.3):
        assert float(piecewise.toy_loss(torch.tensor(w, dtype=torch.float64))) == pytest.approx(
            float(piecewise.exact_loss(Fraction(w))), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.05, 3.4).filter(lambda w: all(abs(w - b) > 1e-6 for b in (1.0, 1.5, 3.0))))
def test_autograd_slope_is_the_slope_of_the_piece(w):
    """autograd: (2/4)·Σ x_i(ŷ_i − y_i), the jump term held fixed — it never sees the indicator."""
    x, y = np.array(data.TOY_X), np.array(data.TOY_Y_NOISY)
    y_hat = w * x + 0.1 * (w * x >= 3)
    assert piecewise.autograd_slope(w) == pytest.approx(float((2 * x * (y_hat - y)).mean()), abs=1e-9)


def test_left_difference_quotients_grow_like_the_jump_over_h():
    r = piecewise.piecewise()
    for _, row in r.jumps.iterrows():
        for h in r.config.h:
            assert row[f"quotient_{h:g}"] * h == pytest.approx(row.jump, abs=30 * h)  # jump + h·(left slope)


def test_piecewise_contract():
    s = piecewise.piecewise().summary()
    assert {"experiment", "seed", "breakpoints", "left_limit", "value", "jump", "autograd", "minimiser"} <= s.keys()
    json.dumps(s, allow_nan=False)
    assert isinstance(beyond.piecewise(piecewise.piecewise()), Figure)


# --------------------------------------------------------------------------- reshuffled vs with replacement


def test_orders_for_each_sampling():
    gen = data.generator(1, "test")
    shuffled = expected_descent.orders_for("reshuffled", 7, 3, 5, gen)
    assert shuffled.shape == (3, 5, 7)
    assert (shuffled.sort(-1).values == torch.arange(7)).all()  # a permutation per epoch and run
    drawn = expected_descent.orders_for("with replacement", 7, 30, 5, data.generator(1, "test"))
    assert drawn.shape == (30, 5, 7) and drawn.min() >= 0 and drawn.max() < 7
    assert (drawn.sort(-1).values != torch.arange(7)).any()  # repeats: not permutations
    assert torch.equal(drawn, expected_descent.orders_for("with replacement", 7, 30, 5, data.generator(1, "test")))
    with pytest.raises(ValueError, match="unknown sampling"):
        expected_descent.orders_for("stratified", 7, 1, 1, gen)


@pytest.mark.parametrize("n, B", [(4, 1), (6, 2), (6, 3)])
def test_lag_one_correlation_by_enumerating_every_permutation(n, B):
    """At a fixed θ, E ε₁ᵀε₂ / E‖ε₁‖² over all n! orders is exactly −B/(n − B) (@eq-steepest-lag)."""
    gen = torch.Generator().manual_seed(n * 10 + B)
    z = torch.randn(n, 3, generator=gen, dtype=torch.float64)  # per-example gradients at a fixed θ
    eps = z - z.mean(0)
    dots, squares = [], []
    for order in itertools.permutations(range(n)):
        first, second = eps[list(order[:B])].mean(0), eps[list(order[B : 2 * B])].mean(0)
        dots.append(float(first @ second))
        squares.append(float(first @ first))
    predicted = expected_descent.lag_one_correlation_predicted(n, B, "reshuffled")
    assert np.mean(dots) / np.mean(squares) == pytest.approx(predicted, rel=1e-12)
    assert expected_descent.lag_one_correlation_predicted(n, B, "with replacement") == 0.0


SMALL_SAMPLING = expected_descent.SamplingConfig(runs=40, baseline_epochs=2, toy_runs=150, toy_epochs=20)


@pytest.fixture(scope="module")
def small_sampling():
    return expected_descent.sampling(SMALL_SAMPLING)


def test_sampling_contract_and_the_lemma_by_sampling(small_sampling):
    s = small_sampling.summary()
    assert {"experiment", "seed", "within", "across", "predicted", "toy_fails"} <= s.keys()
    json.dumps(s, allow_nan=False)
    fails = s["toy_fails"]
    assert fails["with replacement"] == [0.0, 0.0, 0.0, 0.0]  # the lemma's premise holds at every step
    assert fails["reshuffled"][0] == 0.0  # an epoch's first step is a fresh uniform draw
    assert max(fails["reshuffled"][1:]) > 0.05  # later steps: the premise fails, and so does the bound
    toy = small_sampling.correlation.set_index(["problem", "sampling"])
    assert toy.loc[("toy w·x", "reshuffled")].within < -0.2  # −1/3 at a fixed θ
    assert abs(toy.loc[("toy w·x", "with replacement")].within) < 0.05
    assert small_sampling.table().shape == (4, 4)


def test_noise_of_a_full_batch_is_zero():
    """_noise against a case with a known answer: batches of all n examples have g_B = ∇f exactly."""
    q, theta0 = taylor.toy_problem(noisy=True, bias=True)
    orders = expected_descent.orders_for("reshuffled", q.n, 3, 2, data.generator(3, "t"))
    params = expected_descent._runs(q, theta0, 0.01, q.n, q.n, orders)
    assert expected_descent._noise(q, params, orders, q.n).abs().max() < 1e-12


# --------------------------------------------------------------------------- update rules


@settings(max_examples=50, deadline=None)
@given(vectors(4), vectors(4), vectors(4, st.floats(-1, 1)), st.floats(1e-3, 2.0))
def test_sign_step_is_the_linf_steepest_step(theta, g, d, eta):
    """θ − η·sign(g) moves every coordinate by η and no d with ‖d‖∞ ≤ η decreases gᵀd more (@cor-steepest-norms b)."""
    step = updates.sign_step(theta, g, eta) - theta
    assert float(g @ step) == pytest.approx(-eta * float(g.abs().sum()), rel=1e-12, abs=1e-12)
    assert float(g @ step) <= float(g @ (eta * d)) + 1e-12
    assert torch.allclose(norms.steepest_linf(g) * eta, step)


@settings(max_examples=30, deadline=None)
@given(vectors(3), vectors(3, st.floats(0.01, 3)), st.lists(st.booleans(), min_size=3, max_size=3),
       st.floats(1e-3, 1.0))
def test_adam_without_averaging_is_sign_descent(theta, magnitude, negative, lr):
    """torch.optim.Adam with β₁ = β₂ = ε = 0: m̂/√v̂ = g/|g|, one step is exactly the sign step."""
    g = magnitude * torch.tensor([-1.0 if s else 1.0 for s in negative], dtype=torch.float64)
    p = theta.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr, betas=(0.0, 0.0), eps=0.0)
    p.grad = g.clone()
    opt.step()
    assert torch.allclose(p.detach(), updates.sign_step(theta, g, lr), rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(vectors(3), vectors(3), vectors(3), st.floats(1e-3, 1.0))
def test_heavy_ball_without_momentum_is_gradient_descent(theta, previous, g, alpha):
    assert torch.allclose(updates.heavy_ball_step(theta, previous, g, alpha, 0.0), theta - alpha * g)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 1.0), st.floats(1.0, 400.0), st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_heavy_ball_spectral_radius_is_root_beta(mu, ratio, inner):
    """With Polyak's α, β every eigenvalue of the (2p, 2p) iteration has modulus √β = (√κ − 1)/(√κ + 1)."""
    L = mu * ratio
    lam = torch.tensor([mu, L] + [mu + t * (L - mu) for t in inner], dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(len(lam), len(lam), generator=torch.Generator().manual_seed(len(lam)),
                                       dtype=torch.float64))
    H = Q @ torch.diag(lam) @ Q.T
    alpha, beta = updates.heavy_ball_parameters(mu, L)
    k = L / mu
    assert math.sqrt(beta) == pytest.approx((math.sqrt(k) - 1) / (math.sqrt(k) + 1), rel=1e-12)
    moduli = torch.linalg.eigvals(updates.heavy_ball_matrix(H, alpha, beta)).abs()
    assert torch.allclose(moduli, torch.full_like(moduli, math.sqrt(beta)), atol=2e-6)  # double roots: √eps


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.floats(0.2, 5.0), min_size=2, max_size=2), st.floats(0.01, 0.3))
def test_preconditioned_gd_is_gd_on_scaled_features(seed, scales, eta):
    """θ − ηD⁻¹∇f, D = diag(s²), gives GD's iterates on features x_j/s_j, mapped back (@eq-steepest-preconditioned)."""
    gen = torch.Generator().manual_seed(seed)
    X, y = torch.randn(12, 2, generator=gen, dtype=torch.float64), torch.randn(12, generator=gen, dtype=torch.float64)
    s = torch.tensor(scales, dtype=torch.float64)
    q, scaled = Quadratic(X, y, False, "half"), Quadratic(X / s, y, False, "half")
    theta0 = torch.randn(2, generator=gen, dtype=torch.float64)
    pre = updates.iterate(q, theta0, "preconditioned", 5, eta=eta, diag=s**2)
    plain = updates.iterate(scaled, theta0 * s, "gd", 5, eta=eta) / s
    assert torch.allclose(pre, plain, rtol=1e-10, atol=1e-10)


def test_iterate_refuses_an_unknown_method():
    q, theta0 = taylor.toy_problem(noisy=True, bias=True)
    with pytest.raises(ValueError, match="unknown method"):
        updates.iterate(q, theta0, "adam", 1)


# --------------------------------------------------------------------------- conditioning and rates


def test_toy_condition_numbers_exactly():
    """H = 2[[7/2, 3/2], [3/2, 1]]: κ = (9 + √61)/(9 − √61); Jacobi r = (3/2)/√(7/2); centred diag(5/4, 1)."""
    r = updates.momentum()
    kappa = dict(zip(r.conditioning.features, r.conditioning.kappa, strict=True))
    assert r.kappa == pytest.approx((9 + math.sqrt(61)) / (9 - math.sqrt(61)), rel=1e-12)
    corr = 1.5 / math.sqrt(3.5)
    assert r.jacobi_kappa == pytest.approx((1 + corr) / (1 - corr), rel=1e-12)
    assert kappa["scaled x/rms(x)"] == pytest.approx(r.jacobi_kappa, rel=1e-12)  # feature scaling = Jacobi
    assert kappa["centred x − x̄"] == pytest.approx(1.25, rel=1e-12)
    assert kappa["standardised"] == pytest.approx(1.0, rel=1e-12)


def test_momentum_rates_against_the_theory():
    r = updates.momentum()
    s = r.summary()
    json.dumps(s, allow_nan=False)
    assert {"experiment", "seed", "kappa", "jacobi_kappa", "alpha", "beta", "predicted", "measured",
            "steps_to_tol", "conditioning", "sign_floor"} <= s.keys()
    for method in ("GD, η = 1/L", "GD, η = 2/(μ+L)", "diagonal preconditioning"):
        assert r.rate(method) == pytest.approx(r.rate(method, "predicted"), abs=2e-3)
    hb, hb_theory = r.rate("heavy ball"), r.rate("heavy ball", "predicted")
    assert hb_theory < hb < hb_theory + 0.03  # the k·ρ^k of the double roots
    steps = s["steps_to_tol"]
    assert steps["heavy ball"] < steps["diagonal preconditioning"] < steps["GD, η = 2/(μ+L)"] < steps["GD, η = 1/L"]
    assert 0.01 < r.sign_floor < 1  # a fixed-step sign descent stalls
    assert isinstance(beyond.momentum(r), Figure)
    assert r.table().shape == (5, 3) and r.conditioning_table().shape == (4, 3)


def test_norms_has_the_linf_direction_with_slope_minus_the_l1_norm():
    r = norms.norms()
    d = r.directions.set_index(["problem", "norm"])
    for problem in ("baseline", "toy w·x + b"):
        row = d.loc[(problem, "ℓ∞")]
        assert row.slope == pytest.approx(-row.dual_norm, rel=1e-12)
        assert max(abs(v) for v in row.d) == 1.0
