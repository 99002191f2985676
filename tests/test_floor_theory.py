"""Chapter 2's closed forms of issue 17: model error plus noise, averaging's bias, Theorem 2.2's bound, reshuffling."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from sgdlab import (
    averaging,
    cycle,
    data,
    engine,
    experiments,
    loss_floor,
    reshuffling,
    sampling,
    sgd_floor,
    stats,
    theory,
)

EPS = 2.0**-52


def exact_floor(X: list[list[Fraction]], y: list[Fraction]) -> Fraction:
    """min_θ (1/2n)‖Xθ − y‖² in rationals: normal equations solved by Gauss–Jordan elimination."""
    p, n = len(X[0]), len(X)
    A = [[sum(X[i][a] * X[i][b] for i in range(n)) for b in range(p)] + [sum(X[i][a] * y[i] for i in range(n))]
         for a in range(p)]
    for col in range(p):
        pivot = next(r for r in range(col, p) if A[r][col] != 0)
        A[col], A[pivot] = A[pivot], A[col]
        A[col] = [v / A[col][col] for v in A[col]]
        for r in range(p):
            if r != col:
                A[r] = [v - A[r][col] * w for v, w in zip(A[r], A[col], strict=True)]
    theta = [A[a][p] for a in range(p)]
    fitted = [sum(x * t for x, t in zip(row, theta, strict=True)) for row in X]
    return sum((u - v) ** 2 for u, v in zip(fitted, y, strict=True)) / (2 * n)


# --------------------------------------------------------------------------- model error plus noise (item 16)


def test_misspecified_floor_exactly_over_every_noise_vector():
    """E over ε ∈ {−σ, σ}ⁿ (mean 0, Cov σ²I, not Gaussian) of the floor is (1/2n)‖(I − P)f‖² + (σ²/2)(n − p)/n.

    Every one of the 2ⁿ noise vectors is solved exactly in Fractions.
    """
    X = [[Fraction(v), Fraction(1)] for v in (0, 1, 3, 4, 7)]  # a slope and an intercept
    f = [Fraction(v) for v in (1, -2, 5, 0, 3)]  # not on a line: the model is misspecified
    sigma, n, p = Fraction(1, 3), 5, 2
    floors = [exact_floor(X, [fi + s * sigma for fi, s in zip(f, signs, strict=True)])
              for signs in itertools.product((-1, 1), repeat=n)]
    expected = sum(floors) / len(floors)
    model_error = exact_floor(X, f)
    assert expected == model_error + sigma**2 / 2 * Fraction(n - p, n)
    got = theory.misspecified_floor(torch.tensor([[float(v) for v in row] for row in X]),
                                    torch.tensor([float(v) for v in f]), float(sigma))
    # float64 least squares on a 5×2 design of condition ≈ 10: a few ulp of the values
    assert got[0] == pytest.approx(float(model_error), rel=1e-12)
    assert got[1] == pytest.approx(float(sigma**2 / 2 * Fraction(n - p, n)), rel=4 * EPS)


def test_misspecified_floor_by_the_projection_matrix():
    """On D2L's design without b: the model error is (1/2n) fᵀ(I − P)f with P = X(XᵀX)⁻¹Xᵀ formed explicitly."""
    ds = data.d2l_data(data.generator(20))
    X = ds.X.double()
    f = X @ torch.tensor(data.TRUE_W, dtype=torch.float64) + data.TRUE_B
    P = X @ torch.linalg.solve(X.T @ X, X.T)
    residual = f - P @ f
    model_error, noise = theory.misspecified_floor(X, f, 0.01)
    assert model_error == pytest.approx(float(residual @ residual) / (2 * ds.n), rel=1e-10)  # cond(XᵀX) ≈ 1
    assert noise == pytest.approx(0.01**2 / 2 * float(torch.trace(torch.eye(ds.n, dtype=torch.float64) - P)) / ds.n,
                                  rel=1e-10)


def test_misspecified_experiment_floors_are_least_squares_and_near_their_expectation():
    r = loss_floor.misspecified()
    ds = data.d2l_data(data.generator(20))
    X, y = ds.X.double().numpy(), ds.y.double().numpy()
    cols = {"x1": X[:, 0], "x2": X[:, 1], "b": np.ones(ds.n)}
    for name, keep in loss_floor.MISSPECIFIED.items():
        A = np.column_stack([cols[k] for k in keep])
        beta = np.linalg.lstsq(A, y, rcond=None)[0]
        row = r.at(name)
        assert row.floor == pytest.approx(float(np.mean((A @ beta - y) ** 2) / 2), rel=1e-10)
        assert row.expected == row.model_error + row.noise
        # realised − expected = (1/2n)(2fᵀ(I−P)ε + ‖(I−P)ε‖² − σ²(n−p)): sd (1/2n)·√(4σ²‖(I−P)f‖² + 2σ⁴(n−p))
        sd = math.sqrt(4e-4 * 2 * ds.n * row.model_error + 2e-8 * (ds.n - row.p)) / (2 * ds.n)
        assert abs(row.floor - row.expected) < 5 * sd
    # D2L's model contains the mean: its model error is 0 up to rounding, and prints so; the others carry digits
    table = r.table()
    assert r.at("x₁, x₂, b (D2L's)").model_error <= r.at("x₁, x₂, b (D2L's)").model_error_rounding
    assert table.loc["x₁, x₂, b (D2L's)", "model error"] == "0 (rounding)"
    for name in ("no b", "no x₂", "no x₁"):
        assert r.at(name).model_error > 1e6 * r.at(name).model_error_rounding
        assert table.loc[name, "model error"] != "0 (rounding)"
    assert r.at("x₁, x₂, b (D2L's)").model_error < 1e-20  # the true model: no model error
    assert r.at("no b").floor > r.at("no x₂").floor > 1e4 * r.at("x₁, x₂, b (D2L's)").floor
    assert r.table().shape == (4, 5)
    json.dumps(r.summary(), allow_nan=False)


# --------------------------------------------------------------------------- averaging (item 20)


def test_reshuffled_average_bias_and_its_excess():
    b = averaging.averaging_bias(Fraction(3, 100))
    assert b.excess == Fraction(7, 2) * b.offset**2 and b.floor == Fraction(1, 1120)
    assert 0 < b.offset < b.epoch_end_offset  # within-epoch iterates sit nearer w* than the epoch ends
    # to leading order the average sits where the epoch ends do, 3/70·η (cycle_constants)
    small = averaging.averaging_bias(Fraction(1, 10**5))
    assert float(small.offset / (cycle.cycle_constants()[1] * small.eta)) == pytest.approx(1, abs=1e-3)


def test_averaged_rms_with_replacement_against_every_draw_sequence():
    """The recursion's rms of the running average equals the mean over all 4^7 sequences, computed directly."""
    eta, e0, start, steps = 0.03, 0.5, 2, 5
    ab = sampling._toy_steps(Fraction(eta))
    a, c = (np.array([float(v) for v in col]) for col in zip(*ab, strict=True))
    seqs = np.array(list(itertools.product(range(4), repeat=start + steps - 1)))  # draws 1 .. start + steps − 1
    e = np.full(len(seqs), e0)
    trail = []
    for t in range(seqs.shape[1]):
        e = a[seqs[:, t]] * e + c[seqs[:, t]]
        trail.append(e)
    iterates = np.stack(trail[start - 1 :], 1)  # e_start … e_{start+steps−1}
    direct = np.sqrt(((np.cumsum(iterates, 1) / np.arange(1, steps + 1)) ** 2).mean(0))
    # two float64 routes to the same sums of a few thousand O(1) terms: agreement to ~1e-13 relative
    assert averaging.averaged_rms_with_replacement(eta, e0, start, steps) == pytest.approx(direct, rel=1e-11)


def test_asymptotic_rms_is_the_recursions_limit_and_polyak_juditsky_as_eta_vanishes():
    eta, T = 0.03, 400_000
    exact = averaging.averaged_rms_with_replacement(eta, 0.0, 10_000, T)[-1]
    fixed, _ = averaging.asymptotic_rms(eta, T)
    # Var(mean) = σ²_LR/T − O(1/((1 − E a)T²)): relative correction ≲ 1/((1 − E a)·T), 1 − E a = 7η
    assert exact == pytest.approx(fixed, rel=10 / (7 * eta * T))
    tiny = averaging.asymptotic_rms(1e-6, 1)
    assert tiny[0] == pytest.approx(tiny[1], rel=1e-4)  # the two agree to O(η) as η → 0


@pytest.fixture(scope="module")
def averaged():
    return averaging.averaging(averaging.AveragingConfig(runs=16, epochs=400))


def test_averaging_on_the_engine(averaged):
    """Reshuffled: the average lands on the exact biased limit; with replacement its rms is the exact one."""
    r = averaged
    assert r.reshuffled_offset == pytest.approx(float(r.bias.offset), abs=5 * r.reshuffled_offset_se)
    assert abs(r.reshuffled_offset) > 50 * r.reshuffled_offset_se  # and it is not w*
    # K independent runs, each average ~ N(0, v) (a mean of ~1600 iterates): K·rms²/v ~ χ²_K
    K = r.config.runs
    ratio = K * (r.replacement_rms[-1] / r.replacement_exact[-1]) ** 2
    assert 1e-3 < float(stats.chi2_cdf(torch.tensor(ratio), K)) < 1 - 1e-3
    assert r.slope(r.replacement_exact) == pytest.approx(-0.5, abs=0.05)  # t^(−1/2), up to the 1/T² term
    json.dumps(r.summary(), allow_nan=False)


# --------------------------------------------------------------------------- Theorem 2.2's bound (item 3)


@pytest.fixture(scope="module")
def d2l():
    ds, _, _ = experiments.article_start(20)
    return ds.X.double(), ds.y.double()


def test_fixed_step_bound_is_above_the_exact_excess(d2l):
    X, y = d2l
    for eta in (0.003, 0.03, 0.1):
        r = sgd_floor.fixed_step_bound(X, y, eta, 10)
        assert r.exact < r.at_least <= r.bound  # an upper bound; ≥ ηL·M0/(2c) whatever the constants


def test_fixed_step_constants_hold_and_are_tight(d2l):
    """Var g(δ) ≤ M + M_V‖∇f‖² for every δ, with equality at δ* = (M_V H² − Q)⁻¹b: Var from per-example gradients."""
    X, y = d2l
    eta, B = 0.03, 10
    r = sgd_floor.fixed_step_bound(X, y, eta, B)
    M_V = 1 / (eta * r.L) - 1
    Xa = engine.augment(X, True)
    fit = theory.least_squares(X, y, bias=True)
    H = Xa.T @ Xa / len(Xa)

    def var_and_grad(delta):
        g = (Xa @ (fit.theta + delta) - y)[:, None] * Xa  # each example's gradient, (n, p)
        mean = g.mean(0)
        return float(((g - mean) ** 2).sum(1).mean()) / B, float(mean @ mean)  # batches of B drawn independently

    gen = torch.Generator().manual_seed(3)
    scales = 10.0 ** torch.arange(-4, 1, dtype=torch.float64).repeat(4)[:, None]  # δ from 1e-4 to 1
    for delta in torch.randn(20, 3, generator=gen, dtype=torch.float64) * scales:
        var, grad_sq = var_and_grad(delta)
        assert var <= r.M + M_V * grad_sq + 1e-12 * r.M
    sq = (Xa * Xa).sum(1)
    r_star = Xa @ fit.theta - y
    Q = ((sq[:, None, None] * Xa[:, :, None] * Xa[:, None, :]).mean(0) - H @ H) / B
    b = (sq * r_star) @ Xa / len(Xa) / B
    var, grad_sq = var_and_grad(torch.linalg.solve(M_V * H @ H - Q, b))
    assert var == pytest.approx(r.M + M_V * grad_sq, rel=1e-9)


# --------------------------------------------------------------------------- reshuffling's floor (item 19)


def _exact_reshuffled(x: list[Fraction], r: list[Fraction], eta: Fraction, B: int) -> tuple[Fraction, Fraction]:
    """Epoch-end and all-steps excess of reshuffled SGD on ½·mean(x w − y)², every order enumerated (Fractions)."""
    n, m = len(x), len(x) // B
    H = sum(v * v for v in x) / n
    ends, within = [], [Fraction(0)] * m
    for order in itertools.permutations(range(n)):
        gain, c, trail = Fraction(1), Fraction(0), []
        for j in range(m):
            batch = order[j * B : (j + 1) * B]
            hb, gb = sum(x[i] * x[i] for i in batch) / B, sum(x[i] * r[i] for i in batch) / B
            gain, c = (1 - eta * hb) * gain, (1 - eta * hb) * c - eta * gb
            trail.append((gain, c))
        ends.append(trail[-1])
        within = [w + t[1] ** 2 for w, t in zip(within, trail, strict=True)]
    A = ends[0][0]
    assert all(a == A for a, _ in ends)  # equal curvatures: the epoch's gain is the same in every order
    count = len(ends)
    Ec, Ec2 = sum(c for _, c in ends) / count, sum(c * c for _, c in ends) / count
    assert Ec == 0
    second = Ec2 / (1 - A * A)
    gains = [t[0] for t in trail]  # the same for every order
    all_steps = sum(g * g * second + w / count for g, w in zip(gains, within, strict=True)) / m
    return H * second / 2, H * all_steps / 2


@pytest.mark.parametrize("B", [1, 2])
def test_reshuffled_excess_is_exact_when_every_batch_has_the_same_curvature(B):
    """x = ±1: every batch Hessian is H, so the closed form is exact; against all 6! orders in Fractions."""
    x = [Fraction(v) for v in (1, -1, 1, 1, -1, -1)]
    y = [Fraction(v, 10) for v in (3, -1, 4, -1, -5, 9)]
    w = sum(a * b for a, b in zip(x, y, strict=True)) / sum(a * a for a in x)
    r = [a * w - b for a, b in zip(x, y, strict=True)]
    eta = Fraction(1, 5)
    end, all_steps = _exact_reshuffled(x, r, eta, B)
    got = reshuffling.reshuffled_excess(torch.tensor([[float(v)] for v in x], dtype=torch.float64),
                                        torch.tensor([float(v) for v in r], dtype=torch.float64), B, float(eta))
    assert got.bias == pytest.approx(0, abs=1e-30)  # Σ x²·x r = Σ x r = 0: no offset
    assert got.epoch_end == pytest.approx(float(end), rel=1e-12) and got.all_steps == pytest.approx(float(all_steps),
                                                                                                    rel=1e-12)


def test_epoch_end_offset_of_the_toy_is_the_cycles():
    toy = data.toy_data(True, dtype=torch.float64)
    w_star = float(loss_floor.exact_least_squares(data.TOY_X, data.TOY_Y_NOISY, bias=False)[0])
    o = reshuffling.epoch_end_offset(toy.X, toy.X[:, 0] * w_star - toy.y, 1, 1.0, c=1.0)
    assert float(o[0]) == pytest.approx(float(cycle.cycle_constants()[1]), rel=1e-12)


def test_leading_orders_are_the_small_step_limit(d2l):
    X, y = d2l
    fit = theory.least_squares(X, y, bias=True)
    Xa = engine.augment(X, True)
    r = Xa @ fit.theta - y
    a, b, d = reshuffling.leading_orders(Xa, r, 10)
    eta = 1e-5
    e = reshuffling.reshuffled_excess(Xa, r, 10, eta)
    mL = 100 * float(torch.linalg.eigvalsh(fit.hessian).max())
    # the next terms are smaller by O(η·m·L): 1e-3 here
    assert e.epoch_end == pytest.approx(a * eta**3 + d * eta**2, rel=5 * eta * mL)
    assert e.all_steps == pytest.approx(b * eta**2, rel=5 * eta * mL)
    assert d < 1e-6 * a  # the offset's η² outweighs the variance's η³ only below η = d/a < 10⁻⁶ on D2L's data


def test_baseline_reshuffled_is_the_closed_form_at_the_baselines_step():
    """Chapter 1's reshuffled floor: reshuffled_excess at the baseline's η and B over the floor, of order η²·b
    (the leading order, next terms smaller by O(η·m·L), m = n/B steps per epoch), and below independent draws'."""
    base = experiments.RunConfig()
    got = sgd_floor.baseline_reshuffled(base)
    ds, _, _ = experiments.article_start(base.seed)
    X, y = ds.X.double(), ds.y.double()
    fit = theory.least_squares(X, y, bias=True)
    Xa = torch.cat([X, torch.ones(ds.n, 1, dtype=torch.float64)], 1)
    direct = reshuffling.reshuffled_excess(Xa, Xa @ fit.theta - y, base.batch_size, base.lr)
    assert got.eta == base.lr
    assert got.all_steps == direct.all_steps / fit.loss_floor and got.epoch_end == direct.epoch_end / fit.loss_floor
    a, b, d = reshuffling.relative_orders(ds.X, ds.y, base.batch_size)
    mL = ds.n / base.batch_size * float(torch.linalg.eigvalsh(fit.hessian).max())
    assert got.all_steps == pytest.approx(b * base.lr**2, rel=5 * base.lr * mL)
    assert got.epoch_end == pytest.approx(a * base.lr**3 + d * base.lr**2, rel=5 * base.lr * mL)
    assert got.all_steps < 0.1 * sgd_floor.baseline_split(base)[1]  # O(η²) against independent draws' O(η)


def test_reshuffled_theory_against_the_engine(d2l):
    """The closed form against sgd_floor's measured reshuffled excess, within 5 standard errors and the approximation.

    Dropping the batch-to-batch spread of xxᵀ moves independent draws' exact excess by 0.5 % at η = 0.03
    (the operator with K against H⊗H); 3 % is allowed for it here.
    """
    X, y = d2l
    res = sgd_floor.sgd_floor(sgd_floor.SgdFloorConfig(lrs=(0.03,), runs=8, epochs=15, burn_in=5))
    row = reshuffling.compare(res, X, y).iloc[0]
    se = float(res.at("reshuffled", 0.03).all_steps_se)
    assert row.all_steps == pytest.approx(row.all_steps_theory, abs=5 * se + 0.03 * row.all_steps_theory)
    iid = res.at("with replacement", 0.03)
    assert row.all_steps_theory < iid.exact  # reshuffling's floor is the lower one


def test_compare_gives_the_engines_distance_in_standard_errors(d2l):
    X, y = d2l
    res = sgd_floor.sgd_floor(sgd_floor.SgdFloorConfig(lrs=(0.03,), runs=8, epochs=15, burn_in=5))
    row, rr = reshuffling.compare(res, X, y).iloc[0], res.at("reshuffled", 0.03)
    for column in ("epoch_end", "all_steps"):
        assert row[f"{column}_z"] == pytest.approx((row[column] - row[f"{column}_theory"]) / rr[f"{column}_se"],
                                                   rel=4 * EPS)


def test_stationary_excess_reshuffled_against_the_engine():
    """mean x²·(m² + v) against 4096 float64 runs started in the cycle's neighbourhood (w* + m), epoch ends after a
    burn-in of 20 epochs (the start forgotten by P(0.03)^20 < 1e-9): within 5 standard errors over the runs."""
    eta, K, E, burn = Fraction(3, 100), 4096, 60, 20
    exact = float(sampling.stationary_excess_reshuffled(eta))
    m, _ = sampling.stationary_reshuffled(eta)
    assert exact == pytest.approx(3.5 * float(m * m + sampling.stationary_reshuffled(eta)[1]), rel=4 * EPS)
    ds, w_star = sampling.noisy64()
    start = torch.full((1, K), w_star + float(m), dtype=torch.float64)
    traj = sampling.train_noisy(ds, start, float(eta), sampling.orders_for("reshuffled", 7, K, E, ds.n))
    excess = 3.5 * (traj.epoch_params[burn + 1 :, 0] - w_star).square()  # (E − burn, K)
    per_run = excess.mean(0)
    se = float(per_run.std() / K**0.5)
    assert float(per_run.mean()) == pytest.approx(exact, abs=5 * se)
