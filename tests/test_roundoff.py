"""The rounding bounds of sgdlab.roundoff cover what they bound, in float64 and in float32.

Each bound is checked where chapter 3 uses it (float64) and again with float32's roundoff on a
float32 computation of the same quantity, whose errors are about 2²⁹ times larger: a bound that
covered float64 by accident (too loose to mean anything) would still pass the first check, but a
bound that does not scale with u, or misses a term, fails the second.
"""

from __future__ import annotations

import pytest
import torch

from sgdlab import data, norms, roundoff, stability, taylor

U64 = roundoff.unit_roundoff(torch.float64)
U32 = roundoff.unit_roundoff(torch.float32)


@pytest.fixture(scope="module")
def baseline():
    return taylor.baseline_problem(20)


def _as(q: taylor.Quadratic, dtype: torch.dtype) -> taylor.Quadratic:
    """The same quadratic with its data held in dtype (the data themselves rounded once to it)."""
    return taylor.Quadratic(q.X.to(dtype), q.y.to(dtype), q.bias, q.loss)


def _exact(q: taylor.Quadratic) -> taylor.Quadratic:
    """q32's data, exactly, in float64: float64 evaluations of it err by float64's bounds only."""
    return taylor.Quadratic(q.X.double(), q.y.double(), q.bias, q.loss)


def test_unit_roundoff_and_gamma():
    assert U64 == 2.0**-53 and U32 == 2.0**-24
    assert roundoff.gamma(3, U64) == pytest.approx(3 * U64, rel=4 * U64)


def test_loss_error_covers_float32_evaluations(baseline):
    q, theta0 = baseline
    q32 = _as(q, torch.float32)
    q64 = _exact(q32)
    thetas = theta0 + torch.randn(20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t32 = thetas.float()
    exact = q64.value(t32.double())  # within loss_error(u64) of the exact value
    off = (q32.value(t32).double() - exact).abs()
    assert (off <= roundoff.loss_error(q64, t32.double(), U32) + roundoff.loss_error(q64, t32.double(), U64)).all()


def test_central_difference_error_covers_float64_and_float32(baseline):
    q, theta0 = baseline
    d = torch.randn(50, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    for dtype, u, h in ((torch.float64, U64, 1e-6), (torch.float32, U32, 1e-2)):
        qd = _as(q, dtype)
        qe, t, dd = _exact(qd), theta0.to(dtype), d.to(dtype)
        numeric = taylor.central_difference(qd, t, dd, h).double()
        exact = qe.gradient(t.double()) @ dd.double().T  # ∇fᵀd of the rounded data, to float64 rounding
        bound = roundoff.central_difference_error(qe, t.double(), dd.double(), h, u)
        bound += roundoff.slope_error(qe, t.double(), dd.double(), U64)  # the float64 reference's own
        assert ((numeric - exact).abs() <= bound).all()


def test_remainder_error_covers_the_chapters_check_and_float32(baseline):
    r = taylor.remainder()
    assert r.max_relative_error <= r.relative_error_bound
    q, theta0 = baseline
    q32 = _as(q, torch.float32)
    qe = _exact(q32)
    t = theta0.float()
    d = (-qe.gradient(t.double()) / qe.gradient(t.double()).norm())
    eps = torch.logspace(-1, 0, 5, dtype=torch.float64)
    rem = taylor.taylor_remainder(q32, t, d.float(), eps.float()).double()
    exact = eps**2 / 2 * (d.float().double() @ qe.hessian @ d.float().double())
    bound = roundoff.remainder_error(qe, t.double(), d.float().double(), eps.float().double(), U32)
    assert ((rem / exact - 1).abs() <= bound + roundoff.remainder_error(qe, t.double(), d.float().double(),
                                                                       eps.float().double(), U64)).all()


def test_the_chapters_rounding_level_values_lie_below_their_bounds():
    direc = taylor.directional()
    assert direc.max_error <= direc.error_bound
    levels = norms.level_sets()
    assert levels.max_angle_error <= levels.angle_error_bound
    other = norms.norms()
    for problem, err in other.newton_error.items():
        assert err <= other.newton_bound[problem]
    # the bounds mean something: Newton's distance bound is far below the start's distance (1 for these losses)
    assert max(other.newton_bound.values()) < 1e-9
    assert levels.angle_error_bound < 1e-3  # degrees: "a right angle" is a claim the bound can support


def test_newton_error_covers_float32(baseline):
    q, theta0 = baseline
    q32 = _as(q, torch.float32)
    qe = _exact(q32)
    t = theta0.float()
    H32 = 2 * q32.c * q32.Xa.T @ q32.Xa / q32.n  # as newton_error models it: H computed in the same precision
    step = (t - torch.linalg.solve(H32, q32.gradient(t))).double()
    # against qe's θ* through its float64 θ̂* (solution_error(u64) away): the bound holds in float32's u
    off = float((step - qe.fit.theta).norm())
    assert off <= roundoff.newton_error(qe, theta0.float().double(), U32) + roundoff.solution_error(qe, U64)


def test_clean_toy_floor_covers_the_engines_runs_in_float64_and_float32():
    edges = stability.stability()
    for row in edges.reshuffled.itertuples():
        if abs(row.P) < 1:
            assert row.final_error <= row.final_bound
    # float32: reshuffled runs at η = 0.2 from w = 2, long past A(η)^E·|e₀| < float32's rounding
    from sgdlab import engine, sampling

    eta, epochs, runs = 0.2, 1500, 16
    ds = data.toy_data(noisy=False, dtype=torch.float32)
    orders = sampling.orders_for("reshuffled", 7, runs, epochs, len(data.TOY_X))
    traj = engine.train(ds.X, ds.y, torch.full((1, runs), 2.0), torch.full((runs,), eta), orders,
                        batch_size=1, model=engine.Model(bias=False), loss="plain", grad_divisor=1)
    e = (traj.epoch_params[-1, 0].double() - 1).abs()
    A = abs(float(stability.epoch_factor(eta)))
    assert A**epochs < 1e-30
    assert (e <= A**epochs + roundoff.clean_toy_floor(eta, data.TOY_X, U32)).all()


def test_gd_drift_covers_a_float32_run_against_float64(baseline):
    q, theta0 = baseline
    L, _ = taylor.curvature_bounds(q.hessian)
    eta = 1 / L
    q32 = _as(q, torch.float32)
    qe = _exact(q32)
    run32 = taylor.full_batch_gd(q32, theta0.float(), [eta], 30).epoch_params[:, :, 0].double()
    run64 = taylor.full_batch_gd(qe, theta0.float().double(), [float(torch.tensor(eta, dtype=torch.float32))], 30,
                                 dtype=torch.float64).epoch_params[:, :, 0]
    drift = roundoff.gd_drift(qe, run32, eta, U32) + roundoff.gd_drift(qe, run64, eta, U64)
    assert ((run32 - run64).norm(dim=1) <= drift).all()

