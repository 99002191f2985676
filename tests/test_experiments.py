"""Experiment contracts: documented summary keys, the article's published numbers, determinism."""

from fractions import Fraction

import pytest
import torch
from bounds import drift, loss_and_bound, lstsq_bound

from sgdlab import data, engine, registry, theory
from sgdlab import experiments as ex

BASELINE_KEYS = {"final_loss", "w_error", "b_error", "loss_floor", "implementations"}
TOY_KEYS = {"final_loss", "w", "b", "ols_w", "ols_b", "loss_floor", "epochs", "first_zero_epoch"}


@pytest.fixture(scope="module")
def baseline():
    return ex.baseline()


def test_baseline_reproduces_the_article(baseline):
    """Section 五 printed: loss 0.000049, w error [0.0004, -0.0008], b error 0.0008."""
    s = baseline.summary()
    assert BASELINE_KEYS <= s.keys()
    assert f"{s['final_loss']:f}" == "0.000049"
    assert [round(e, 4) for e in s["w_error"]] == [0.0004, -0.0008]
    assert round(s["b_error"], 4) == 0.0008
    assert set(s["implementations"]) == {"scratch", "concise", "closed_form"}
    for impl in s["implementations"].values():
        assert {"final_loss", "w", "b"} <= impl.keys()


def test_baseline_reproduces_the_article_initial_weights():
    """The article's comment: w = tensor([[0.0033],[0.0007]]) after setup_seed(20) and its data."""
    import torch

    from sgdlab import data

    gen = data.generator(20)
    data.d2l_data(gen)
    w = torch.normal(0, 0.01, size=(2, 1), generator=gen)
    assert [round(float(v), 4) for v in w.flatten()] == [0.0033, 0.0007]


def test_baseline_floor_is_below_every_trained_loss(baseline):
    s = baseline.summary()
    assert s["loss_floor"] == s["implementations"]["closed_form"]["final_loss"]
    for name in ("scratch", "concise"):
        assert s["loss_floor"] < s["implementations"][name]["final_loss"]
    # scratch (the compiled loop) and concise (nn.Linear) agree: their parameters within bounds.py's drift model
    # (4 ulps of |θ| ≤ 4.2), and each final loss is the loss at its parameters within float32's evaluation bound.
    Xa, y = engine.augment(torch.from_numpy(baseline.data.X), True), torch.from_numpy(baseline.data.y)
    impl = s["implementations"]
    thetas = {name: torch.tensor([*impl[name]["w"], impl[name]["b"]]) for name in ("scratch", "concise")}
    assert float((thetas["scratch"] - thetas["concise"]).abs().max()) < drift(4.2, torch.float32, 4)
    for name, theta in thetas.items():
        exact, bound = loss_and_bound(Xa, y, theta.reshape(3, 1), torch.float32)
        assert abs(impl[name]["final_loss"] - float(exact[0])) <= float(bound[0]), name


def test_toy_clean_and_piecewise_print_zero_in_epoch_8():
    for name in ("toy-clean", "toy-piecewise"):
        s = registry.run(name).summary()
        assert TOY_KEYS <= s.keys()
        assert s["first_zero_epoch"] == 8, name


def test_toy_closed_forms_are_exact():
    """w·x on (0,1,2,3 → 0,1,2,3.1): w* = 143/140, floor 1/1120; w·x + b: w* = 103/100, b* = −1/50, floor 3/4000."""
    x = [Fraction(v) for v in (0, 1, 2, 3)]
    y = [Fraction(0), Fraction(1), Fraction(2), Fraction(31, 10)]
    w = sum(a * b for a, b in zip(x, y, strict=True)) / sum(a * a for a in x)
    assert w == Fraction(143, 140)
    floor = sum((w * a - b) ** 2 for a, b in zip(x, y, strict=True)) / 4
    assert floor == Fraction(1, 1120)
    # float64 lstsq: within lstsq_bound of the exact solution; the floor, its float64 evaluation there
    # (bounds.py), plus ½·λmax(H)·‖δθ‖² for evaluating it at the computed θ (H = 2XᵀX/n, the plain loss).
    exact = {"toy-noisy": ((w, 0), floor), "toy-bias": ((Fraction(103, 100), Fraction(-1, 50)), Fraction(3, 4000))}
    for name, (theta_star, floor_star) in exact.items():
        got = ex.toy_optimum(ex.TOY_RUNS[name])
        ds = data.toy_data(True, dtype=torch.float64)
        Xa = engine.augment(ds.X, ex.TOY_RUNS[name].bias)
        theta = torch.tensor([float(v) for v in theta_star[: Xa.shape[1]]], dtype=torch.float64)
        solve = lstsq_bound(Xa, ds.y, theta)
        assert max(abs(g - float(t)) for g, t in zip(got[:2], theta_star, strict=True)) <= solve, name
        _, evaluation = loss_and_bound(Xa, ds.y, theta.unsqueeze(1), torch.float64, half=False)
        curvature = float(torch.linalg.eigvalsh(theory.least_squares(ds.X, ds.y, Xa.shape[1] == 2).hessian).max())
        assert abs(got[2] - float(floor_star)) <= float(evaluation[0]) + curvature * solve**2, name
    # The piecewise fit is exact in float64: Σx(y − 0.1·[jumped]) has 3.1 − 0.1 = 3 after rounding, every other
    # term an integer, and at w = 1 the model predicts 3 + 0.1, which rounds to the label 3.1.
    assert ex.toy_optimum(ex.TOY_RUNS["toy-piecewise"]) == (1.0, 0.0, 0.0)


def test_toy_noisy_stalls_above_its_floor():
    """A short noisy run (3000 epochs) already sits on the cycle around w*: loss ≥ floor, never 0."""
    s = registry.run("toy-noisy", epochs=3000).summary()
    assert s["first_zero_epoch"] is None
    assert s["loss_floor"] <= s["final_loss"] < 2 * s["loss_floor"]
    assert abs(s["w"] - s["ols_w"]) < 0.01


def test_effective_lr_is_the_article_quirk():
    toy = ex.TOY_RUNS["toy-clean"]
    assert (toy.lr, toy.grad_divisor, toy.effective_lr) == (0.3, 10, 0.3 / 10)  # one division: exact to compare


def test_same_seed_same_summary():
    a = registry.run("toy-bias", epochs=200, seed=7).summary()
    b = registry.run("toy-bias", epochs=200, seed=7).summary()
    c = registry.run("toy-bias", epochs=200, seed=8).summary()
    assert a == b and a != c


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"lr": 0.0}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"lr": float("inf")}, "--lr"),
        ({"lr": -1.0}, "--lr"),
        ({"batch_size": 0}, "--batch-size"),
        ({"batch_size": 5}, "--batch-size"),
        ({"epochs": 0}, "--epochs"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_configs_are_refused_by_name(overrides, fragment):
    with pytest.raises(ex.ConfigError, match=fragment):
        registry.run("toy-clean", **overrides)


def test_unknown_experiment():
    with pytest.raises(ex.ConfigError, match="unknown experiment"):
        registry.run("nope")


def test_divergence_raises_with_the_step():
    with pytest.raises(ex.Diverged, match=r"diverged at step \d+") as err:
        registry.run("toy-clean", lr=30.0)
    assert err.value.step > 0
