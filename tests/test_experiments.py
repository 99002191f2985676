"""Experiment contracts: documented summary keys, the article's published numbers, determinism."""

from fractions import Fraction

import pytest

from sgdlab import experiments as ex
from sgdlab import registry

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
    assert abs(s["implementations"]["scratch"]["final_loss"] - s["implementations"]["concise"]["final_loss"]) < 1e-9


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
    noisy = ex.toy_optimum(ex.TOY_RUNS["toy-noisy"])
    assert noisy[0] == pytest.approx(float(w), abs=1e-15) and noisy[2] == pytest.approx(float(floor), abs=1e-15)
    bias = ex.toy_optimum(ex.TOY_RUNS["toy-bias"])
    assert bias[:2] == pytest.approx((1.03, -0.02), abs=1e-14)
    assert bias[2] == pytest.approx(3 / 4000, abs=1e-15)
    piecewise = ex.toy_optimum(ex.TOY_RUNS["toy-piecewise"])
    assert piecewise[0] == pytest.approx(1.0, abs=1e-12) and piecewise[2] < 1e-15


def test_toy_noisy_stalls_above_its_floor():
    """A short noisy run (3000 epochs) already sits on the cycle around w*: loss ≥ floor, never 0."""
    s = registry.run("toy-noisy", epochs=3000).summary()
    assert s["first_zero_epoch"] is None
    assert s["loss_floor"] <= s["final_loss"] < 2 * s["loss_floor"]
    assert abs(s["w"] - s["ols_w"]) < 0.01


def test_effective_lr_is_the_article_quirk():
    assert ex.TOY_RUNS["toy-clean"].effective_lr == pytest.approx(0.03)


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
