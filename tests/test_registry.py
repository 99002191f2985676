"""Every registered experiment: its summary names it, is JSON, and a seed fixes it."""

import dataclasses
import json

import pytest

from sgdlab import registry
from sgdlab.repro import summary_digest

# Covered by test_experiments.py and by executing the report's chapters (test_report.py).
SLOW = {"baseline", "toy-noisy", "toy-bias", "floor-four-runs"}


@pytest.mark.parametrize("name", [n for n in registry.EXPERIMENTS if n not in SLOW])
def test_summary_is_named_json_and_deterministic(name):
    first = registry.run(name).summary()
    assert first["experiment"] == name
    json.dumps(first, allow_nan=False)  # strict JSON: no NaN or inf, nothing unserialisable
    assert summary_digest(registry.run(name).summary()) == summary_digest(first)


def test_every_experiment_has_a_seed_and_description():
    for experiment in registry.EXPERIMENTS.values():
        assert isinstance(experiment.config.seed, int)
        assert experiment.description


def test_an_override_outside_the_config_is_refused():
    with pytest.raises(registry.ConfigError, match="--batch-size does not apply to floor-precision"):
        registry.run("floor-precision", batch_size=3)


def test_every_experiment_whose_epochs_can_be_set_bounds_its_memory():
    """`--epochs` is refused up front where the history would not fit: no experiment may lack the bound."""
    unbounded = [name for name, e in registry.EXPERIMENTS.items()
                 if "epochs" in {f.name for f in dataclasses.fields(e.config)} and e.memory is None]
    assert unbounded == []
