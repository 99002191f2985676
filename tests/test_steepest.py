"""Chapter 3: closed forms against independent computations, the theorems as properties, experiment contracts."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from sgdlab import data, experiments, norms, steepest, taylor
from sgdlab.plots import steepest as figures

FLOATS = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


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
    assert L == pytest.approx(eig.max(), rel=1e-12)
    assert mu == pytest.approx(eig.min(), rel=1e-12)
    s = steepest.curvature().summary()
    assert s["L"]["baseline"] == pytest.approx(eig.max(), rel=1e-12)
    assert s["two_over_L"]["baseline"] == pytest.approx(2 / eig.max(), rel=1e-12)


def test_L_of_the_toys_exactly():
    """Toy: H = 2·mean(x²) = 7. With b: H = 2[[mean x², mean x], [mean x, 1]], λmax = (tr + √(tr² − 4 det))/2."""
    x = [Fraction(v) for v in data.TOY_X]
    h11, h12 = 2 * sum(v * v for v in x) / 4, 2 * sum(x) / 4
    assert h11 == 7
    tr, det = h11 + 2, h11 * 2 - h12 * h12
    lam_max = (float(tr) + math.sqrt(float(tr * tr - 4 * det))) / 2
    s = steepest.curvature().summary()
    assert s["L"]["toy"] == pytest.approx(7.0, rel=1e-14)
    assert s["L"]["toy_bias"] == pytest.approx(lam_max, rel=1e-14)
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
    torch.testing.assert_close(q.gradient(theta.detach()), grad, rtol=1e-12, atol=1e-12)
    hessian = torch.autograd.functional.hessian(loss, theta.detach())
    torch.testing.assert_close(q.hessian, hessian, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q.per_sample_gradients(theta.detach()).mean(0), grad, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(vectors(3), st.sampled_from(["baseline", "toy_bias"]))
def test_newton_reaches_the_optimum_in_one_step(theta, problem):
    """θ − H⁻¹∇f(θ) = θ* for a quadratic, from anywhere."""
    q, _ = taylor.baseline_problem(20) if problem == "baseline" else taylor.toy_problem(noisy=True, bias=True)
    theta = theta[: q.Xa.shape[1]]
    torch.testing.assert_close(norms.newton_step(q, theta), q.fit.theta, rtol=0, atol=1e-12)


def test_minibatch_variance_against_every_subset():
    """tr Cov of a mean of B draws without replacement, enumerated over all C(n, B) batches."""
    G = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0], [0.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    mean = G.mean(0)
    for B in range(1, 6):
        batches = [G[list(idx)].mean(0) for idx in itertools.combinations(range(5), B)]
        exact = float(torch.stack([((b - mean) ** 2).sum() for b in batches]).mean())
        assert norms.minibatch_variance(G, B) == pytest.approx(exact, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------- the theorems, as properties


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4).flatmap(lambda p: st.tuples(vectors(p), vectors(p))))
def test_cauchy_schwarz_steepest_direction(gd):
    """For every unit d, gᵀd ≥ gᵀ(−g/‖g‖) = −‖g‖ (@thm-steepest-descent)."""
    g, d = gd
    assume(float(g.norm()) > 1e-6 and float(d.norm()) > 1e-6)
    d = d / d.norm()
    best = norms.steepest_l2(g)
    assert float(g @ best) == pytest.approx(-float(g.norm()), rel=1e-12)
    assert float(g @ d) >= float(g @ best) - 1e-12


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
    assert float(g @ d1) == pytest.approx(-float(g.abs().max()), rel=1e-12)
    assert float(g @ (d / d.abs().sum())) >= float(g @ d1) - 1e-12
    dH = norms.steepest_hnorm(g, H)
    assert float(dH @ H @ dH) == pytest.approx(1.0, rel=1e-9)
    assert float(g @ dH) == pytest.approx(-math.sqrt(float(g @ torch.linalg.solve(H, g))), rel=1e-9)
    assert float(g @ (d / torch.sqrt(d @ H @ d))) >= float(g @ dH) - 1e-9 * float(g.norm())


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
    tol = 1e-10 * (1 + abs(f0))
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
    assert float(taylor.gd_contraction(eta, mu, L)) == pytest.approx(radius, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- the numerical checks


def test_directional_derivative_is_minimal_along_minus_the_gradient():
    r = taylor.directional(taylor.DirectionalConfig(num_angles=360))
    g = torch.tensor(r.grad)
    d = torch.tensor(r.min_direction)
    assert float(d @ (-g / g.norm())) == pytest.approx(1.0, abs=1e-12)  # φ = 0 is on the grid
    assert r.min_value == pytest.approx(-r.grad_norm, rel=1e-8)
    assert abs(r.plane_min_angle - r.plane_expected_angle) <= math.pi / 360  # half a grid step
    assert r.max_error < 1e-7


def test_taylor_remainder_has_slope_two():
    r = taylor.remainder(taylor.RemainderConfig(num_eps=41))
    for slope in r.slopes.values():
        assert abs(slope - 2) <= 0.05
    assert r.max_relative_error < 1e-5  # the remainder is ε²/2·dᵀHd, as @eq-steepest-quad-taylor says


def test_gradient_is_perpendicular_to_the_level_sets():
    r = norms.level_sets(norms.LevelSetConfig(steps=10, grid=21))
    assert r.max_angle_error < 1e-6
    assert r.grids.groupby("panel").size().tolist() == [21 * 21, 21 * 21]


def test_toy_step_sizes_and_the_lr_over_10_quirk():
    r = steepest.curvature()
    s = r.summary()
    assert s["step"]["toy"] == pytest.approx(0.03)  # ToyConfig.effective_lr
    exact = math.prod(1 - Fraction(3, 100) * 2 * int(x) ** 2 for x in data.TOY_X)
    assert r.epoch_contraction == pytest.approx(float(exact), rel=1e-12)
    assert r.epoch_contraction_measured == pytest.approx(float(exact), rel=1e-4)
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
    for run in r.rates.itertuples():
        assert 0.9 * run.predicted <= run.measured <= run.predicted * (1 + 1e-9)
    assert r.rates.set_index("run").loc["η = 1/L"].rho == pytest.approx(1 - 1 / r.kappa, rel=1e-12)
    assert r.rates.set_index("run").loc["η = 2/(μ+L)"].rho == pytest.approx((r.kappa - 1) / (r.kappa + 1), rel=1e-12)


def test_norms_and_newton():
    r = norms.norms(norms.NormsConfig(max_steps=50))
    d = r.directions
    assert np.allclose(d.slope, -d.dual_norm, rtol=1e-12)
    assert max(r.newton_error.values()) < 1e-12
    assert r.gd_steps["baseline, GD, η = 1/L"] > 1


def test_minibatch_gradient_variance_follows_the_1_over_B_law():
    r = norms.sgd_noise(norms.SgdNoiseConfig(batch_sizes=(1, 10, 100), epochs=100))
    v = r.variance
    assert ((v.measured / v.predicted - 1).abs() < 0.2).all()
    assert r.summary()["bound_holds"]
    assert np.allclose(r.one_step.measured, r.one_step.exact, rtol=0.05)
    assert (r.one_step.exact <= r.one_step.bound).all()


def test_exact_expected_loss_after_one_sgd_step_is_the_mean_over_every_single_example():
    # with B = 1 a uniform draw is one of the n examples: E f(θ0 − η∇f_i) is a plain mean over i
    r = norms.sgd_noise(norms.SgdNoiseConfig(batch_sizes=(1,), epochs=1))
    ds, _, theta0 = experiments.article_start(20)
    X = np.c_[ds.X.double().numpy(), np.ones(ds.n)]
    y, t = ds.y.double().numpy().ravel(), theta0.double().numpy().ravel()
    after = t - r.eta * X * (X @ t - y)[:, None]  # θ0 − η∇f_i, f_i = ½(x_iᵀθ − y_i)²
    mean_after = np.mean([0.5 * np.mean((X @ a - y) ** 2) for a in after])
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
