"""Chapter 3 beyond the quadratics and plain GD: the piecewise loss, the two samplings, sign descent,
preconditioning and the heavy ball — closed forms exactly, update rules as properties, contracts."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from bounds import gamma, loss_and_bound, unit_roundoff
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from sgdlab import data, expected_descent, norms, piecewise, taylor, updates
from sgdlab.plots import beyond
from sgdlab.taylor import Quadratic

FLOATS = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
U64 = unit_roundoff(torch.float64)


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
    ds = data.toy_data(True, dtype=torch.float64)
    for w in (0.3, 0.99, 1.2, 2.0, 3.3):
        # float64 evaluation with the jump (bounds.py), and the labels 3.1 and height 0.1 rounded (u each), which
        # move the mean of 4 squares by 2·|r|·u·(3.1 + 0.1)/4 at most
        exact = float(piecewise.exact_loss(Fraction(w)))
        _, evaluation = loss_and_bound(ds.X, ds.y, torch.tensor([[w]], dtype=torch.float64), torch.float64,
                                       half=False, jump=(3.0, 0.1))
        r_max = max(abs(w * x + 0.1 * (w * x >= 3) - y) for x, y in zip(data.TOY_X, data.TOY_Y_NOISY, strict=True))
        bound = float(evaluation[0]) + 2 * r_max * U64 * 3.2 / 4
        assert abs(float(piecewise.toy_loss(torch.tensor(w, dtype=torch.float64))) - exact) <= bound


@settings(max_examples=30, deadline=None)
@given(st.floats(0.05, 3.4).filter(lambda w: all(abs(w - b) > 1e-6 for b in (1.0, 1.5, 3.0))))
def test_autograd_slope_is_the_slope_of_the_piece(w):
    """autograd: (2/4)·Σ x_i(ŷ_i − y_i), the jump term held fixed — it never sees the indicator."""
    x, y = np.array(data.TOY_X), np.array(data.TOY_Y_NOISY)
    y_hat = w * x + 0.1 * (w * x >= 3)
    # Two float64 routes to (2/4)·Σ x(ŷ − y): residuals within e = γ₂(|xw| + 0.1) + u|r| each, then four products
    # and sums (γ₄ of Σ|x|(|r| + e)) and the scaling; both sides, so twice
    r = y_hat - y
    e = gamma(2, U64) * (np.abs(x * w) + 0.1) + U64 * np.abs(r)
    tol = 2 * 0.5 * (gamma(6, U64) * float(np.sum(np.abs(x) * (np.abs(r) + e))) + float(np.sum(np.abs(x) * e)))
    assert piecewise.autograd_slope(w) == pytest.approx(float((2 * x * (y_hat - y)).mean()), rel=0, abs=tol)


def test_left_difference_quotients_grow_like_the_jump_over_h():
    r = piecewise.piecewise()
    ds = data.toy_data(True, dtype=torch.float64)
    for _, row in r.jumps.iterrows():
        for h in r.config.h:
            # (f(w) − f(w − h)) = jump + h·f′(w⁻) − h²f″/2, f″ = 2·mean x² = 7; the left slope differs from autograd's
            # (the right piece's) by the fired sample's (2/4)·x·0.1 ≤ 0.15, a bound the w = 1 breakpoint attains; the
            # two float64 values carry their evaluation error (bounds.py), w − h its rounding (u·w times |f′|) and
            # the quotient times h two more roundings of the jump
            thetas = torch.tensor([[row.w, row.w - h]], dtype=torch.float64)
            _, evaluation = loss_and_bound(ds.X, ds.y, thetas, torch.float64, half=False, jump=(3.0, 0.1))
            slope = abs(row.autograd) + 0.15
            slack = (h * slope + 3.5 * h * h + float(evaluation.sum()) + slope * U64 * row.w
                     + gamma(2, U64) * (abs(row.jump) + h * slope))
            assert row[f"quotient_{h:g}"] * h == pytest.approx(row.jump, rel=0, abs=slack)


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
    # Exact for vectors summing to zero: eps does within γ_n·Σ|z|; the means over N = n! orders round within
    # γ_(N+6) of their sums of absolute values, which cancellation makes |Σ dots|/Σ|dots| times larger
    rel = gamma(len(dots) + 6, U64) * (np.mean(np.abs(dots)) / abs(np.mean(dots)) + 1) + gamma(2 * n, U64) * float(
        z.abs().sum() / eps.abs().sum())
    assert np.mean(dots) / np.mean(squares) == pytest.approx(predicted, rel=rel, abs=0)
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
    # θ − η·sign(g) rounds within u·(|θ| + η) and the subtraction of θ again: each step coordinate within
    # 2u·(|θ| + η) of −η·sign(g); the dots round within γ₄ of |g|ᵀ|·|
    per = 2 * U64 * (theta.abs() + eta)
    tol = float(g.abs() @ per) + gamma(4, U64) * eta * float(g.abs().sum())
    assert float(g @ step) == pytest.approx(-eta * float(g.abs().sum()), rel=0, abs=tol)
    assert float(g @ step) <= float(g @ (eta * d)) + tol + gamma(4, U64) * eta * float(g.abs() @ d.abs())
    assert ((norms.steepest_linf(g) * eta - step).abs() <= per).all()


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
    # Adam's step lr·g/√(g²): the square, the root and the division round it within γ₄·lr; both sides then round
    # θ − step: u·(|θ| + lr) each
    tol = gamma(4, U64) * lr + 2 * U64 * (theta.abs() + lr)
    assert ((p.detach() - updates.sign_step(theta, g, lr)).abs() <= tol).all()


@settings(max_examples=40, deadline=None)
@given(vectors(3), vectors(3), vectors(3), st.floats(1e-3, 1.0))
def test_heavy_ball_without_momentum_is_gradient_descent(theta, previous, g, alpha):
    # β = 0 adds 0·(θ − θ_prev) = ±0 to the same θ − αg: exactly equal
    assert torch.equal(updates.heavy_ball_step(theta, previous, g, alpha, 0.0), theta - alpha * g)


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
    # Both are (a − b)/(a + b) of square roots a ≥ b ≥ 0, each within 2u relative: an absolute error ≤ γ₆ however
    # a − b cancels; √β adds the square and its root (γ₂ relative)
    assert math.sqrt(beta) == pytest.approx((math.sqrt(k) - 1) / (math.sqrt(k) + 1), rel=gamma(2, U64),
                                            abs=2 * gamma(6, U64))
    A = updates.heavy_ball_matrix(H, alpha, beta)
    moduli = torch.linalg.eigvals(A).abs()
    # Double roots (Jordan blocks): a perturbation δ of A moves them by up to √(‖A‖·δ); eigvals is backward stable
    # (δ ≤ γ_(4m²)·‖A‖, m = 2p) and forming A rounds it by γ₃·‖A‖
    norm = float(torch.linalg.matrix_norm(A, 2))
    tol = norm * math.sqrt(gamma(4 * A.shape[0] ** 2, U64) + gamma(3, U64))
    assert torch.allclose(moduli, torch.full_like(moduli, math.sqrt(beta)), rtol=0, atol=tol)


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
    # Two roundings of the same 5 steps: each step rounds the iterate within γ_(n+5) of its size on each side
    # (n = 12 products per gradient), and a step multiplies an earlier difference by at most 1 + η·‖D⁻¹H‖₂
    grow = 1 + eta * float(torch.linalg.matrix_norm(q.hessian / (s**2)[:, None], 2))
    rel = 2 * 5 * gamma(12 + 5, U64) * grow**5
    scale = float(pre.abs().max().clamp(min=float(theta0.abs().max())))
    assert torch.allclose(pre, plain, rtol=0, atol=rel * scale)


def test_iterate_refuses_an_unknown_method():
    q, theta0 = taylor.toy_problem(noisy=True, bias=True)
    with pytest.raises(ValueError, match="unknown method"):
        updates.iterate(q, theta0, "adam", 1)


# --------------------------------------------------------------------------- conditioning and rates


def test_toy_condition_numbers_exactly():
    """H = 2[[7/2, 3/2], [3/2, 1]]: κ = (9 + √61)/(9 − √61); Jacobi r = (3/2)/√(7/2); centred diag(5/4, 1)."""
    r = updates.momentum()
    kappa = dict(zip(r.conditioning.features, r.conditioning.kappa, strict=True))
    # κ from eigvalsh (backward stable: λmin carries κ·γ₁₆ relative) against closed forms whose subtraction
    # loses 9/(9 − √61) ≈ 7.6 (κ) and 1/(1 − corr) ≈ 5 (Jacobi) of a few roundings: γ₁₀ of that
    eig = 2 * r.kappa * gamma(16, U64)
    assert r.kappa == pytest.approx((9 + math.sqrt(61)) / (9 - math.sqrt(61)),
                                    rel=eig + 9 / (9 - math.sqrt(61)) * gamma(10, U64), abs=0)
    corr = 1.5 / math.sqrt(3.5)
    jacobi = 2 * r.jacobi_kappa * gamma(16, U64) + gamma(10, U64) / (1 - corr)
    assert r.jacobi_kappa == pytest.approx((1 + corr) / (1 - corr), rel=jacobi, abs=0)
    # feature scaling = Jacobi: two eigvalsh routes on matrices that agree within γ₈
    assert kappa["scaled x/rms(x)"] == pytest.approx(r.jacobi_kappa, rel=2 * jacobi + gamma(8, U64), abs=0)
    # centred: x − x̄ = ±0.5, ±1.5 exactly, H = 2·diag(5/4, 1) exactly, and a diagonal matrix's eigenvalues are
    # its entries: within eigvalsh's γ₁₆ only; standardised: H = 2I within γ₈, κ = 1 within γ₈ + γ₁₆
    assert kappa["centred x − x̄"] == pytest.approx(1.25, rel=2 * 1.25 * gamma(16, U64), abs=0)
    assert kappa["standardised"] == pytest.approx(1.0, rel=2 * gamma(16, U64) + 2 * gamma(8, U64), abs=0)


def test_momentum_rates_against_the_theory():
    r = updates.momentum()
    s = r.summary()
    json.dumps(s, allow_nan=False)
    assert {"experiment", "seed", "kappa", "jacobi_kappa", "alpha", "beta", "predicted", "measured",
            "steps_to_tol", "conditioning", "sign_floor"} <= s.keys()
    # The measured rate is exp of a log-linear slope fitted where the distance falls from 1e-3 to 1e-12: there the
    # slowest mode (κ ≈ 13 times slower than the fastest) dominates, and what the faster modes still add to log
    # distance, at most their initial weight times (ρ₂/ρ₁)^k, tilts the slope by far less than 2e-3
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
        # gᵀ(−sign g) sums the same |g_j| as ‖g‖₁, maybe in another order: γ₂ relative (p ≤ 3)
        assert row.slope == pytest.approx(-row.dual_norm, rel=gamma(2, U64), abs=0)
        assert max(abs(v) for v in row.d) == 1.0
