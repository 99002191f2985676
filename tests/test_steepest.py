"""Chapter 3: closed forms against independent computations, the theorems as properties, experiment contracts."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from bounds import _evaluation_bound, gamma, gradient_bound, lstsq_bound, unit_roundoff
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from sgdlab import data, experiments, norms, steepest, taylor
from sgdlab.plots import steepest as figures

FLOATS = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
U64, U32 = unit_roundoff(torch.float64), unit_roundoff(torch.float32)


def _eig_rel(H: torch.Tensor, lam: float, extra: float = 0.0) -> float:
    """Relative error bound of an eigenvalue lam of H from eigvalsh: backward stable, |δλ| ≤ γ_(4p²)·‖H‖₂
    (LAPACK's bound with a modest constant), plus `extra`, a perturbation of H itself in ‖·‖₂."""
    return (gamma(4 * H.shape[0] ** 2, U64) * float(torch.linalg.matrix_norm(H, 2)) + extra) / abs(lam)


def _value_bound(q, theta: torch.Tensor, radius: float) -> float:
    """A bound on the float64 evaluation error of q.value anywhere within `radius` (‖·‖∞) of theta (bounds.py)."""
    X = q.Xa.double()
    r = (X @ theta.double() - q.y.double()).abs() + radius * X.abs().sum(1)
    a = X.abs() @ (theta.double().abs() + radius)
    _, bound = _evaluation_bound(r.unsqueeze(1), a.unsqueeze(1), X.shape[1], U64, q.c)
    return float(bound[0])


def vectors(p: int):
    return st.lists(FLOATS, min_size=p, max_size=p).map(lambda v: torch.tensor(v, dtype=torch.float64))


# --------------------------------------------------------------------------- closed forms


def test_L_of_the_baseline_against_numpy_eigvalsh():
    """L = λmax(XᵀX/n) of the seed-20 data, with the ones column, built by hand in numpy float64."""
    ds = data.d2l_data(data.generator(20))
    X = np.column_stack([ds.X.numpy().astype(np.float64), np.ones(ds.n)])
    eig = np.linalg.eigvalsh(X.T @ X / ds.n)
    q, _ = taylor.baseline_problem(20)
    L, mu = taylor.curvature_bounds(q.hessian)
    # The two Hessians sum 1000 products in their own orders: ‖δH‖₂ ≤ 2γ₁₀₀₀·‖|X|ᵀ|X|/n‖₂; both eigvalsh
    # calls are backward stable (_eig_rel); one more rounding for 2/L
    Xt = torch.from_numpy(X)
    dH = 2 * gamma(ds.n, U64) * float(torch.linalg.matrix_norm(Xt.abs().T @ Xt.abs() / ds.n, 2))
    H = torch.from_numpy(X.T @ X / ds.n)
    for got, lam in ((L, eig.max()), (mu, eig.min())):
        assert got == pytest.approx(lam, rel=2 * _eig_rel(H, lam, dH), abs=0)
    s = steepest.curvature().summary()
    assert s["L"]["baseline"] == pytest.approx(eig.max(), rel=2 * _eig_rel(H, eig.max(), dH), abs=0)
    assert s["two_over_L"]["baseline"] == pytest.approx(2 / eig.max(), rel=2 * _eig_rel(H, eig.max(), dH) + 2 * U64,
                                                        abs=0)


def test_L_of_the_toys_exactly():
    """Toy: H = 2·mean(x²) = 7. With b: H = 2[[mean x², mean x], [mean x, 1]], λmax = (tr + √(tr² − 4 det))/2."""
    x = [Fraction(v) for v in data.TOY_X]
    h11, h12 = 2 * sum(v * v for v in x) / 4, 2 * sum(x) / 4
    assert h11 == 7
    tr, det = h11 + 2, h11 * 2 - h12 * h12
    lam_max = (float(tr) + math.sqrt(float(tr * tr - 4 * det))) / 2
    s = steepest.curvature().summary()
    # 2·mean(x²) = 7 is exact in float64 (integers), and so is a 1 × 1 eigenvalue
    assert s["L"]["toy"] == 7.0
    # eigvalsh of the exact integer H (_eig_rel), against a root and two roundings
    H = torch.tensor([[float(h11), float(h12)], [float(h12), 2.0]], dtype=torch.float64)
    assert s["L"]["toy_bias"] == pytest.approx(lam_max, rel=_eig_rel(H, lam_max) + gamma(3, U64), abs=0)
    assert s["batch_curvature"]["toy"] == 18  # 2x² at x = 3
    assert s["batch_curvature"]["toy_bias"] == 20  # 2(x² + 1) at x = 3


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["baseline", "toy", "toy_bias"]), vectors(3))
def test_gradient_and_hessian_against_autograd(problem, theta):
    """∇f and H of the closed forms equal torch.autograd's on the article's own loss code."""
    if problem == "baseline":
        q, _ = taylor.baseline_problem(20)
    else:
        q, _ = taylor.toy_problem(noisy=True, bias=problem == "toy_bias")
    theta = theta[: q.Xa.shape[1]].clone().requires_grad_(True)

    def loss(t):
        y_hat = q.X @ t[: q.X.shape[1]] + (t[-1] if q.bias else 0)
        squared = (y_hat - q.y) ** 2
        return (squared / 2 if q.loss == "half" else squared).mean()  # D2L's squared_loss, or the toy's

    (grad,) = torch.autograd.grad(loss(theta), theta)
    # Each side rounds the gradient within bounds.gradient_bound (any summation order), scaled by 2c/n, plus its
    # few scalings (γ₃ of |∇f|); the Hessians sum n products x_i x_j: γ_n of |X|ᵀ|X| scaled by 2c/n
    t = theta.detach()
    scale = 2 * q.c / q.n
    tol = 2 * (scale * gradient_bound(q.Xa, q.y, t, torch.float64) + gamma(3, U64) * grad.abs())
    assert ((q.gradient(t) - grad).abs() <= tol).all()
    hessian = torch.autograd.functional.hessian(loss, t)
    assert ((q.hessian - hessian).abs() <= 2 * gamma(q.n + 3, U64) * scale * q.Xa.abs().T @ q.Xa.abs()).all()
    assert ((q.per_sample_gradients(t).mean(0) - grad).abs() <= tol).all()


@settings(max_examples=25, deadline=None)
@given(vectors(3), st.sampled_from(["baseline", "toy_bias"]))
def test_newton_reaches_the_optimum_in_one_step(theta, problem):
    """θ − H⁻¹∇f(θ) = θ* for a quadratic, from anywhere."""
    q, _ = taylor.baseline_problem(20) if problem == "baseline" else taylor.toy_problem(noisy=True, bias=True)
    theta = theta[: q.Xa.shape[1]]
    # θ − H⁻¹∇f: the gradient's rounding (gradient_bound·2c/n) and the solve's (κ(H)·γ_(p³) of ‖H⁻¹∇f‖) carried
    # by ‖H⁻¹‖ = 1/μ, the subtraction's u·|θ|; θ* itself within lstsq_bound
    L, mu = taylor.curvature_bounds(q.hessian)
    step = torch.linalg.solve(q.hessian, q.gradient(theta))
    grad_err = float((2 * q.c / q.n * gradient_bound(q.Xa, q.y, theta, torch.float64)).norm())
    tol = (grad_err / mu + L / mu * gamma(27, U64) * float(step.norm()) + U64 * float(theta.abs().max())
           + lstsq_bound(q.Xa, q.y, q.fit.theta))
    assert float((norms.newton_step(q, theta) - q.fit.theta).norm()) <= tol


def test_minibatch_variance_against_every_subset():
    """tr Cov of a mean of B draws without replacement, enumerated over all C(n, B) batches."""
    G = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0], [0.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    mean = G.mean(0)
    for B in range(1, 6):
        batches = [G[list(idx)].mean(0) for idx in itertools.combinations(range(5), B)]
        exact = float(torch.stack([((b - mean) ** 2).sum() for b in batches]).mean())
        # Both are sums of squares of differences of values ≤ 3 and their means: a few dozen roundings of
        # terms ≤ Σ G² (any cancellation in b − mean is absolute, within u·3): γ₃₀·Σ G² absolute
        assert norms.minibatch_variance(G, B) == pytest.approx(exact, rel=0, abs=gamma(30, U64) * float((G**2).sum()))


# --------------------------------------------------------------------------- the theorems, as properties


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4).flatmap(lambda p: st.tuples(vectors(p), vectors(p))))
def test_cauchy_schwarz_steepest_direction(gd):
    """For every unit d, gᵀd ≥ gᵀ(−g/‖g‖) = −‖g‖ (@thm-steepest-descent)."""
    g, d = gd
    assume(float(g.norm()) > 1e-6 and float(d.norm()) > 1e-6)
    d = d / d.norm()
    best = norms.steepest_l2(g)
    # gᵀ(−g/‖g‖) = −‖g‖: the norm (p products, p sums, a root), the division and the dot: γ_(2p+3) relative;
    # gᵀd for a unit d rounds within the same γ of ‖g‖ (|g|ᵀ|d| ≤ ‖g‖·‖d‖)
    p = len(g)
    assert float(g @ best) == pytest.approx(-float(g.norm()), rel=gamma(2 * p + 3, U64), abs=0)
    assert float(g @ d) >= float(g @ best) - 2 * gamma(2 * p + 3, U64) * float(g.norm())


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4).flatmap(lambda p: st.tuples(vectors(p), vectors(p), vectors(p * p))))
def test_l1_and_h_norm_steepest_directions(gdm):
    """ℓ1: no unit d beats −sign(g_i)e_i; H-norm: none beats −H⁻¹g/√(gᵀH⁻¹g) (@cor-steepest-norms)."""
    g, d, m = gdm
    p = len(g)
    assume(float(g.norm()) > 1e-6 and float(d.abs().sum()) > 1e-6)
    H = m.reshape(p, p) @ m.reshape(p, p).T + 0.1 * torch.eye(p, dtype=torch.float64)
    d1 = norms.steepest_l1(g)
    assert float(d1.abs().sum()) == 1
    # gᵀ(−sign(g_i)e_i) is −|g_i| exactly (one non-zero product of ±1); gᵀd/‖d‖₁ rounds within γ_(2p+1)·‖g‖∞
    assert float(g @ d1) == -float(g.abs().max())
    assert float(g @ (d / d.abs().sum())) >= float(g @ d1) - gamma(2 * p + 1, U64) * float(g.abs().max())
    dH = norms.steepest_hnorm(g, H)
    # H-norm: a solve with H (κ(H) ≤ (9p² + 0.1)/0.1) and a few products: dᵀHd and gᵀd within 4κ·γ_(4p²) relative;
    # the comparison's own gᵀd̂ with ‖d̂‖₂ ≤ 1/√λmin adds γ_(4p²)·‖g‖/√λmin
    ev = torch.linalg.eigvalsh(H)
    kappa, slack = float(ev[-1] / ev[0]), gamma(4 * p * p, U64)
    assert float(dH @ H @ dH) == pytest.approx(1.0, rel=4 * kappa * slack, abs=0)
    assert float(g @ dH) == pytest.approx(-math.sqrt(float(g @ torch.linalg.solve(H, g))), rel=4 * kappa * slack,
                                          abs=0)
    tol = (4 * kappa + 2) * slack * float(g.norm()) / math.sqrt(float(ev[0]))
    assert float(g @ (d / torch.sqrt(d @ H @ d))) >= float(g @ dH) - tol


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 8).flatmap(lambda n: st.tuples(vectors(2 * n), vectors(n), vectors(3))),
       st.booleans(), st.sampled_from(["half", "plain"]), st.floats(0.001, 0.999))
def test_descent_lemma_on_random_quadratics(xy, bias, loss, fraction):
    """For η ∈ (0, 2/L): f(θ − η∇f) ≤ f(θ) − η(1 − Lη/2)‖∇f‖² ≤ f(θ) (@cor-descent-step)."""
    X, y, theta = xy
    n = len(y)
    q = taylor.Quadratic(X.reshape(n, 2), y, bias, loss)
    theta = theta[: q.Xa.shape[1]]
    L, _ = taylor.curvature_bounds(q.hessian)
    assume(L > 1e-6)
    eta = fraction * 2 / L
    g = q.gradient(theta)
    f0, after = float(q.value(theta)), float(q.value(theta - eta * g))
    bound = taylor.descent_bound(f0, float(g @ g), L, eta)
    # Exact inequalities; in float64: both values' evaluation (bounds.py, within ‖ηg‖∞ of θ), the gradient's
    # rounding through η·2‖g‖‖δg‖, L's (_eig_rel) through η²/2·‖g‖², the bound's few roundings of its terms and
    # the step θ − ηg's (u·|θ − ηg| moving f by |∇f|ᵀ·that)
    step = float((eta * g).abs().max())
    dg = float((2 * q.c / n * gradient_bound(q.Xa, q.y, theta, torch.float64)).norm())
    new = theta - eta * g
    tol = (_value_bound(q, theta, step) * 2 + 2 * eta * float(g.norm()) * dg
           + eta**2 / 2 * float(g @ g) * _eig_rel(q.hessian, L) * L
           + gamma(6, U64) * (abs(f0) + eta * float(g @ g) * (1 + L * eta))
           + float(q.gradient(new).abs() @ (U64 * new.abs())))
    assert after <= bound + tol
    assert bound <= f0 + tol


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4).flatmap(lambda p: vectors(p * p)), st.floats(0.01, 3.0))
def test_gd_contraction_is_the_spectral_radius(m, eta):
    """ρ(η) = max|1 − ηλ| over [μ, L] equals the spectral radius of I − ηH (@thm-linear-rate)."""
    p = math.isqrt(len(m))
    H = m.reshape(p, p) @ m.reshape(p, p).T + 0.1 * torch.eye(p, dtype=torch.float64)
    L, mu = taylor.curvature_bounds(H)
    radius = float(torch.linalg.eigvalsh(torch.eye(p, dtype=torch.float64) - eta * H).abs().max())
    # Both from backward-stable eigvalsh calls: |δλ| ≤ γ_(4p²)·‖·‖₂, on H (times η) and on I − ηH, plus the
    # rounding of 1 − ηλ and of I − ηH: γ₂·(1 + η‖H‖₂)
    norm = float(torch.linalg.matrix_norm(H, 2))
    tol = gamma(4 * p * p, U64) * (eta * norm + 1 + eta * norm) + gamma(2, U64) * (1 + eta * norm)
    assert float(taylor.gd_contraction(eta, mu, L)) == pytest.approx(radius, rel=0, abs=tol)


# --------------------------------------------------------------------------- the numerical checks


def test_directional_derivative_is_minimal_along_minus_the_gradient():
    config = taylor.DirectionalConfig(num_angles=360)
    r = taylor.directional(config)
    g = torch.tensor(r.grad, dtype=torch.float64)
    d = torch.tensor(r.min_direction, dtype=torch.float64)
    # φ = 0 is on the grid (to a rounding of the angle): d = u = −g/‖g‖, and uᵀu rounds within γ₉
    assert float(d @ (-g / g.norm())) == pytest.approx(1.0, abs=gamma(9, U64))
    assert abs(r.plane_min_angle - r.plane_expected_angle) <= math.pi / 360  # half a grid step
    # Central differences are exact on a quadratic: what is left is rounding, the two evaluations' (bounds.py,
    # within h of θ0) and θ0 ± hd's (u·|θ0| moving f by |∇f|) over 2h, and the exact side's dot with g
    q, theta0 = taylor.baseline_problem(config.seed)
    theta0, h = theta0.double(), config.h
    grad_err = float((2 * q.c / q.n * gradient_bound(q.Xa, q.y, theta0, torch.float64)).norm())
    tol = ((2 * _value_bound(q, theta0, h) + 2 * (float(g.abs() @ theta0.abs()) + h * float(g.norm())) * U64)
           / (2 * h) + gamma(3, U64) * float(g.norm()) + grad_err)
    assert r.max_error <= tol
    assert r.min_value == pytest.approx(-r.grad_norm, rel=0, abs=tol)  # the φ = 0 value, within the same


def test_taylor_remainder_has_slope_two():
    config = taylor.RemainderConfig(num_eps=41)
    r = taylor.remainder(config)
    # The remainder is ε²/2·dᵀHd exactly (@eq-steepest-quad-taylor); computed, it carries the two evaluations'
    # rounding (bounds.py, within ε_max = 1 of θ0) and ε·|∇fᵀd|'s: relative to ε²/2·λmin at the smallest fitted ε
    q, theta0 = taylor.baseline_problem(config.seed)
    theta0 = theta0.double()
    _, mu = taylor.curvature_bounds(q.hessian)
    g = q.gradient(theta0)
    grad_err = float((2 * q.c / q.n * gradient_bound(q.Xa, q.y, theta0, torch.float64)).norm())
    eps = r.curves.eps[r.curves.eps >= config.fit_min].unique()
    absolute = 2 * _value_bound(q, theta0, config.eps_max) + eps * (gamma(4, U64) * float(g.norm()) + grad_err)
    rel = absolute / (eps**2 / 2 * mu)
    assert r.max_relative_error <= rel.max()
    # The fitted slope is Σ cᵢ·log remainderᵢ, cᵢ the least-squares weights on log ε: off 2 by ≤ Σ|cᵢ|·relᵢ
    ln = np.log(eps)
    c = (ln - ln.mean()) / ((ln - ln.mean()) ** 2).sum()
    for slope in r.slopes.values():
        assert abs(slope - 2) <= float(np.abs(c) @ np.log1p(rel))


def test_gradient_is_perpendicular_to_the_level_sets():
    r = norms.level_sets(norms.LevelSetConfig(steps=10, grid=21))
    # Rounding only (_tangent_angle): an angle error of about (‖H‖·‖δθ*‖ + ‖δ∇f‖)/‖∇f‖ + κ·γ radians. The points
    # measured have ‖∇f‖ > 1e-6·‖∇f(θ0)‖ (level_sets' `moving`), where the gradient's float64 rounding (≲ 1e-15 of
    # ‖∇f(θ0)‖·|θ|) and lstsq's δθ* (≲ 1e-15, κ ≤ 15) make ≲ 1e-9 radians, 6e-8 degrees: 1e-6 leaves a margin of 15
    assert r.max_angle_error < 1e-6
    assert r.grids.groupby("panel").size().tolist() == [21 * 21, 21 * 21]


def test_toy_step_sizes_and_the_lr_over_10_quirk():
    r = steepest.curvature()
    s = r.summary()
    assert s["step"]["toy"] == pytest.approx(0.03)  # ToyConfig.effective_lr
    exact = math.prod(1 - Fraction(3, 100) * 2 * int(x) ** 2 for x in data.TOY_X)
    # four float64 factors |1 − 2ηx²| ≥ 0.46 (η's representation and three roundings each) and their product
    assert r.epoch_contraction == pytest.approx(float(exact), rel=gamma(20, U64), abs=0)
    # The article's float32 run: e = w − 1 after E epochs carries ≤ 4E steps·4u (as test_precision_thresholds
    # derives), relative to e_E = contraction^E; the E-th root divides that relative error by E
    E = steepest.CurvatureConfig().toy_epochs
    e_end = float(exact) ** E
    assert r.epoch_contraction_measured == pytest.approx(float(exact), rel=4 * E * 4 * U32 / e_end / E, abs=0)
    diverged = s["toy_diverged_step"]
    assert diverged["article: B = 1, ÷ 10"] == -1
    assert diverged["B = 1, no ÷ 10"] > 0
    assert diverged["full batch, lr 0.3"] > 0  # 0.3 > 2/L = 2/7
    assert diverged["full batch, lr 0.25"] == -1
    assert f"{r.predicted_final_loss:f}" == "0.000000"  # the article's epoch 8


def test_sweep_converges_below_two_over_L_and_diverges_above():
    r = steepest.descent_lemma(steepest.DescentLemmaConfig(lr_factors=(0.5, 1.0, 1.9, 2.0, 2.2, 2.5), epochs=400))
    s = r.summary()
    assert s["bound_holds"] and s["steps_within_bound"]
    assert s["converged_factors"] == [0.5, 1.0, 1.9]
    assert s["diverged_factors"] == [2.2, 2.5]
    assert r.best_eta >= 1 / r.L and r.zero_eta >= 2 / r.L  # the lemma is a guarantee, not a prediction
    w = r.sweep.set_index("factor")
    assert abs(w.loc[2.5].diverged_step - w.loc[2.5].overflow_estimate) < 10
    # decrease(η) is the exact one-step drop f(θ0) − f(θ0 − η∇f); the curve evaluates f itself. Both sum n = 1000
    # float64 squares: each is within n·eps ≈ 2.2e-13 of f(θ0) relative, so 1e-12·f(θ0) covers their difference.
    for row in r.one_step.itertuples():
        assert r.decrease(row.eta) == pytest.approx(r.loss0 - row.loss_after, abs=1e-12 * r.loss0)


def test_linear_rate_measured_against_predicted():
    r = steepest.rate()
    # ρ² bounds the contraction of the excess; the measured ratio e_{k+1}/e_k is read where its float64 rounding
    # bound (roundoff) is at most ratio_precision of it, so it exceeds ρ² by at most that bound; the slowest mode
    # dominates by then, so the ratio is within 10 % of ρ² (the next eigenvalue's share has decayed)
    precision = steepest.RateConfig().ratio_precision
    for run in r.rates.itertuples():
        assert run.measured_bound <= precision * run.measured
        assert 0.9 * run.predicted <= run.measured <= run.predicted + run.measured_bound
        # the next step's ratio is past the precision: the step read is the last one the bound allows
        assert run.measured_step + 1 < steepest.RateConfig().steps
    # ρ from gd_contraction (1 − ηλ with λ = μ or L, a few roundings) against 1 − 1/κ and (κ−1)/(κ+1): γ₆ relative,
    # with the cancellation 1/ρ of 1 − ηλ
    rates = r.rates.set_index("run")
    for run, expected in (("η = 1/L", 1 - 1 / r.kappa), ("η = 2/(μ+L)", (r.kappa - 1) / (r.kappa + 1))):
        assert rates.loc[run].rho == pytest.approx(expected, rel=gamma(6, U64) / expected, abs=0)


def test_norms_and_newton():
    r = norms.norms(norms.NormsConfig(max_steps=50))
    d = r.directions
    # slope gᵀd and the dual norm, each a handful of float64 operations on the same g (the H-norm's through a
    # solve with κ(H) ≤ 15): within 4κ·γ₃₆ relative of each other
    assert np.allclose(d.slope, -d.dual_norm, rtol=4 * 15 * gamma(36, U64), atol=0)
    # θ0 − H⁻¹∇f(θ0) − θ*: rounding only (test_newton_reaches_the_optimum_in_one_step derives ≲ 1e-14 here)
    assert max(r.newton_error.values()) < 1e-12
    assert r.gd_steps["baseline, GD, η = 1/L"] > 1


def test_minibatch_gradient_variance_follows_the_1_over_B_law():
    config = norms.SgdNoiseConfig(batch_sizes=(1, 10, 100), epochs=100)
    r = norms.sgd_noise(config)
    v = r.variance
    # Monte Carlo: each measured tr Cov is a mean of ‖g_B − g‖² over the epochs' n/B batches; ‖g_B − g‖² has a
    # relative spread of at most about √2·(kurtosis of the per-example gradients ≈ 3) ≈ 2.5, so the mean over
    # N = epochs·n/B ≥ 1000 draws is within 2.5/√N·5 ≤ 0.4 at 5 standard errors; 0.2 is 2.5 of them at
    # B = 100 and 25 at B = 1
    assert ((v.measured / v.predicted - 1).abs() < 0.2).all()
    assert r.summary()["bound_holds"]
    # E f(θ0 − ηg_B) against its mean over the same draws: f₁ varies by η·|∇f|·‖g_B − g‖ ≪ f₁ here, 5 % is a
    # bound of the same kind as above
    assert np.allclose(r.one_step.measured, r.one_step.exact, rtol=0.05, atol=0)
    assert (r.one_step.exact <= r.one_step.bound).all()


def test_exact_expected_loss_after_one_sgd_step_is_the_mean_over_every_single_example():
    # with B = 1 a uniform draw is one of the n examples: E f(θ0 − η∇f_i) is a plain mean over i
    r = norms.sgd_noise(norms.SgdNoiseConfig(batch_sizes=(1,), epochs=1))
    ds, _, theta0 = experiments.article_start(20)
    X = np.c_[ds.X.double().numpy(), np.ones(ds.n)]
    y, t = ds.y.double().numpy().ravel(), theta0.double().numpy().ravel()
    after = t - r.eta * X * (X @ t - y)[:, None]  # θ0 − η∇f_i, f_i = ½(x_iᵀθ − y_i)²
    mean_after = np.mean([0.5 * np.mean((X @ a - y) ** 2) for a in after])
    # Two float64 routes to one mean over 1000 steps of a mean over 1000 losses: each loss within its evaluation
    # bound (γ_(n+2) plus the residuals' 2|r|e, ≤ 1e-12 relative with |y| ≤ 15 and |r| ≥ 0.1 here) and the outer
    # mean's γ_n: 1e-10 leaves a margin of 10 on both
    assert r.one_step.set_index("batch_size").loc[1].exact == pytest.approx(mean_after, rel=1e-10)


# --------------------------------------------------------------------------- contracts


SMALL = {
    "directional": lambda: taylor.directional(taylor.DirectionalConfig(num_angles=36)),
    "remainder": lambda: taylor.remainder(taylor.RemainderConfig(num_eps=21)),
    "level_sets": lambda: norms.level_sets(norms.LevelSetConfig(steps=5, grid=11)),
    "curvature": lambda: steepest.curvature(steepest.CurvatureConfig(baseline_epochs=2, diverge_epochs=300)),
    "descent_lemma": lambda: steepest.descent_lemma(steepest.DescentLemmaConfig(lr_factors=(1.0, 2.5), epochs=200)),
    "rate": lambda: steepest.rate(steepest.RateConfig(steps=20)),
    "norms": lambda: norms.norms(norms.NormsConfig(max_steps=20)),
    "sgd_noise": lambda: norms.sgd_noise(norms.SgdNoiseConfig(batch_sizes=(10, 100), epochs=5)),
}
KEYS = {
    "directional": {"grad", "grad_norm", "min_direction", "min_value", "plane_min_angle", "plane_expected_angle",
                    "max_error"},
    "remainder": {"slope", "slopes", "max_relative_error"},
    "level_sets": {"max_angle_error", "kappa", "final_loss"},
    "curvature": {"L", "mu", "kappa", "two_over_L", "step", "batch_curvature", "toy_diverged_step",
                  "epoch_contraction", "epoch_contraction_measured"},
    "descent_lemma": {"L", "two_over_L", "best_eta", "zero_eta", "bound_holds", "converged_factors",
                      "diverged_factors", "diverged_steps", "steps_within_bound"},
    "rate": {"L", "mu", "kappa", "eigenvalues", "predicted", "measured", "article_rho", "article_steps"},
    "norms": {"slopes", "newton_error", "gd_steps"},
    "sgd_noise": {"eta", "loss0", "max_relative_error", "bound_holds", "kick_at_optimum"},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_summary_keys_json_and_determinism(name):
    first, second = SMALL[name]().summary(), SMALL[name]().summary()
    assert {"experiment", "seed"} | KEYS[name] <= first.keys()
    assert json.dumps(first, allow_nan=False, ensure_ascii=False) == json.dumps(second, allow_nan=False,
                                                                                ensure_ascii=False)


def _pipe_table_width(table: pd.DataFrame) -> int:
    """Characters in one row of the table as a Markdown pipe table: | cell | cell | … |."""
    columns = [[table.index.name, *table.index.map(str)]] + [[c, *table[c]] for c in table.columns]
    return sum(max(len(str(v)) for v in col) for col in columns) + 3 * len(columns) + 1


@pytest.mark.parametrize("name", sorted(SMALL))
def test_figures_and_tables_build(name):
    result = SMALL[name]()
    if name != "curvature":
        assert isinstance(getattr(figures, name)(result), Figure)
    for method in ("table", "constants_table", "toy_table"):
        if hasattr(result, method):
            table = getattr(result, method)()
            assert len(table) > 0
            # a report table: a named, meaningful index (never pandas' 0, 1, 2, …), one header row,
            # at most five value columns, so that it fits the PDF page
            assert table.index.name and not table.index.equals(pd.RangeIndex(len(table)))
            assert table.index.is_unique and table.columns.name is None
            assert len(table.columns) <= 5
            assert _pipe_table_width(table) <= 72  # wider, and Pandoc gives every column the same width
            assert all(isinstance(v, str) for v in table.to_numpy().ravel())  # formatted in the package


def test_gd_step_counts_differ_by_their_start_only():
    """§3.6.1 (norms, from (1.5, 1)) and the momentum table (from (2, 0)) count GD steps at η = 1/L on the toy
    w·x + b from different starts: the engine's GD from the momentum table's start gives its count."""
    from sgdlab import norms, updates

    fast = updates.momentum()
    assert fast.start == (2.0, 0.0)
    same = norms.norms(norms.NormsConfig(toy_start=fast.start))
    assert same.gd_steps["toy w·x + b, GD, η = 1/L"] == fast.summary()["steps_to_tol"]["GD, η = 1/L"]
    assert norms.norms().config.toy_start != fast.start
