"""The results cache: a hit is bit-identical to a fresh run, the key sees code and arguments,
entries are data (never code) and a corrupt or half-written entry is recomputed."""

import dataclasses
import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from identical import assert_identical

from sgdlab import cache, experiments, registry, serial
from sgdlab.experiments import ToyConfig


@pytest.fixture(autouse=True)
def cache_on(monkeypatch, tmp_path):
    monkeypatch.delenv("SGDLAB_NO_CACHE", raising=False)
    monkeypatch.setenv("SGDLAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(root):
    return sorted(p for p in root.glob("*/*") if p.is_dir())


SHORT = ToyConfig(noisy=True, bias=True, epochs=50)


def test_a_hit_is_bit_identical_to_a_fresh_run():
    with cache.disabled():
        fresh = experiments.toy("toy-bias", SHORT)
    miss, hit = experiments.toy("toy-bias", SHORT), experiments.toy("toy-bias", SHORT)
    assert_identical(fresh, miss)
    assert_identical(fresh, hit)
    assert hit is not miss and hit.history is not miss.history  # a caller may modify what it gets
    s = cache.stats()
    assert (s.entries, s.misses, s.hits) == (1, 1, 1)


@pytest.mark.parametrize("name", ["baseline-orders", "floor-replay", "floor-four-runs", "steepest-descent-lemma",
                                  "steepest-norms", "floor-precision"])
def test_registered_results_round_trip_exactly(name):
    """Results with nested dataclasses, tensors, Fractions, tuples, nullable and string columns."""
    e = registry.EXPERIMENTS[name]
    config = dataclasses.replace(e.config, epochs=20) if name == "baseline-orders" else e.config
    config = dataclasses.replace(config, long_epochs=200) if name == "floor-four-runs" else config
    with cache.disabled():
        fresh = e.run(config)
    e.run(config)
    assert_identical(fresh, e.run(config))
    assert cache.stats().hits >= 1


def test_every_argument_is_in_the_key(cache_on):
    experiments.toy("toy-bias", SHORT)
    experiments.toy("toy-bias", dataclasses.replace(SHORT, seed=21))
    experiments.toy("toy-bias", dataclasses.replace(SHORT, lr=0.30000000000000004))
    experiments.toy("toy-noisy", SHORT)  # the same config under another name
    assert cache.stats().misses == 4 and len(entries(cache_on)) == 4


def test_the_key_holds_the_source_digest_and_versions(cache_on, monkeypatch):
    experiments.toy("toy-bias", SHORT)
    key = json.loads(next(cache_on.glob("*/*/key.json")).read_text())
    assert key["source"] == cache.SOURCE_DIGEST and {"python", "torch", "numpy", "pandas"} <= key["versions"].keys()
    assert key["function"] == "sgdlab.experiments.toy"
    monkeypatch.setattr(cache, "SOURCE_DIGEST", "an edited package")
    experiments.toy("toy-bias", SHORT)
    assert cache.stats().misses == 2


def test_any_edit_under_the_package_changes_the_digest(tmp_path):
    import shutil

    copy = tmp_path / "sgdlab"
    shutil.copytree(cache.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = cache.source_digest(copy)
    (copy / "render" / "style.css").write_text((copy / "render" / "style.css").read_text() + "\n")
    assert cache.source_digest(copy) != before


@pytest.mark.parametrize("damage", ["truncate npz", "garbage tree", "missing tree", "wrong key", "foreign class"])
def test_a_corrupt_entry_is_recomputed_and_overwritten(cache_on, damage):
    first = experiments.toy("toy-bias", SHORT)
    (entry,) = entries(cache_on)
    if damage == "truncate npz":
        data = (entry / "arrays.npz").read_bytes()
        (entry / "arrays.npz").write_bytes(data[: len(data) // 2])
    elif damage == "garbage tree":
        (entry / "tree.json").write_text("{not json")
    elif damage == "missing tree":
        (entry / "tree.json").unlink()
    elif damage == "wrong key":
        (entry / "key.json").write_text("{}")
    else:  # a tree that names a class outside the package: refused, never imported
        tree = json.loads((entry / "tree.json").read_text())
        tree["module"], tree["class"] = "os", "system"
        (entry / "tree.json").write_text(json.dumps(tree))
    again = experiments.toy("toy-bias", SHORT)
    assert_identical(first, again)
    assert cache.stats().misses == 2
    assert_identical(first, experiments.toy("toy-bias", SHORT))  # the rewritten entry reads back
    assert cache.stats().hits == 1 and [p.name for p in cache_on.glob("*/.*")] == []


def test_a_half_written_entry_left_by_a_killed_writer_is_ignored(cache_on):
    experiments.toy("toy-bias", SHORT)
    (entry,) = entries(cache_on)
    (entry.parent / ".tmp-killed").mkdir()  # what a writer killed before its rename leaves behind
    (entry.parent / ".tmp-killed" / "tree.json").write_text("{")
    experiments.toy("toy-bias", SHORT)
    assert cache.stats().entries == 1 and cache.stats().hits == 1
    assert cache.clear() == 1 and not (entry.parent / ".tmp-killed").exists()


def test_decoding_refuses_classes_outside_the_package():
    for module, name in [("os", "system"), ("builtins", "eval"), ("sgdlab.x;import os", "A"), ("sgdlab.data", "os")]:
        node = {"t": "dataclass", "module": module, "class": name, "fields": {}}
        with pytest.raises((ValueError, AttributeError, ImportError)):
            serial.decode(node, {})


def test_entries_are_data_not_pickles(cache_on):
    experiments.toy("toy-bias", SHORT)
    (entry,) = entries(cache_on)
    assert sorted(p.name for p in entry.iterdir()) == ["arrays.npz", "key.json", "tree.json"]
    with np.load(entry / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_values_round_trip_with_their_types_and_bits():
    frame = pd.DataFrame({
        "f32": np.array([1.5, -0.0, np.inf], dtype=np.float32), "f64": [np.nan, 1e-310, -2.5],
        "i": np.array([1, 2, 3], dtype=np.int16), "s": ["a", None, "c"], "o": pd.Series(["x", 1, 2.5], dtype=object),
        "c": pd.Categorical(["u", "v", "u"], ordered=True), "n": pd.array([1.0, None, 3.0], dtype="Float64"),
        "t": pd.to_datetime(["2020-01-01", "2021-01-01", None])},
        index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2), ("c", 3)], names=["k", 7]))
    frame.attrs["source"] = "test"
    value = {
        "frame": frame, "series": pd.Series([1, 2], index=pd.Index([0.5, 1.5], name="x"), name=("a", 1)),
        "tensor": torch.tensor([[1.0, float("nan")]], dtype=torch.float64), "ints": torch.arange(3),
        "array": np.arange(6, dtype=np.uint8).reshape(2, 3), "scalar": np.float32(0.1), "i64": np.int64(19),
        "fraction": Fraction(1, 1120), "tuple": (1, (2.0, "three")), "list": [None, True, 2**70],
        3: "an int key", ("t", 1): frozenset({1, 2}), "dtype": torch.float32, "bool": np.bool_(True),
        "config": SHORT, "model": SHORT.model,
    }
    tree, arrays = serial.encode(value)
    json.dumps(tree)  # the tree is plain JSON
    assert_identical(value, serial.decode(json.loads(json.dumps(tree)), arrays))


@pytest.mark.parametrize("bad", [lambda x: x, object(), np.array([object()]), pd.Series([object()])])
def test_what_cannot_be_stored_is_refused_naming_it(bad):
    with pytest.raises(TypeError, match="result"):
        serial.encode({"field": bad})


def test_no_cache_bypasses_it(cache_on, monkeypatch):
    monkeypatch.setenv("SGDLAB_NO_CACHE", "1")
    experiments.toy("toy-bias", SHORT)
    monkeypatch.setenv("SGDLAB_NO_CACHE", "0")
    with cache.disabled():
        experiments.toy("toy-bias", SHORT)
    assert not cache_on.exists() or cache.stats().entries == 0


def test_the_default_location_is_the_project_and_git_ignored(monkeypatch):
    import subprocess

    monkeypatch.delenv("SGDLAB_CACHE_DIR")
    root = cache.PACKAGE_DIR.parents[1]
    assert cache.cache_dir() == root / ".cache" / "sgdlab"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(cache.cache_dir() / "x")], cwd=root)
    assert ignored.returncode == 0


SLOW = """
import sys, time
from sgdlab.cache import cached

@cached
def slow(x: int) -> int:
    with open(sys.argv[1], "a") as log:
        log.write("computed\\n")
    time.sleep(1.0)
    return 2 * x

print(slow(21))
"""


def test_two_processes_that_need_one_entry_compute_it_once(tmp_path):
    script, log = tmp_path / "slow.py", tmp_path / "computed.log"
    script.write_text(SLOW)
    procs = [subprocess.Popen([sys.executable, str(script), str(log)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    assert [p.communicate()[0] for p in procs] == ["42\n", "42\n"]
    assert log.read_text() == "computed\n"  # the second waited for the first's entry, then read it


def test_prune_deletes_only_what_todays_code_cannot_hit(cache_on, monkeypatch):
    experiments.toy("toy-clean", SHORT)
    monkeypatch.setattr(cache, "SOURCE_DIGEST", "0" * 64)  # src/sgdlab edited since
    experiments.toy("toy-noisy", SHORT)
    (cache_on / "sgdlab.x.broken" / ("f" * 64)).mkdir(parents=True)  # no key.json: unreadable
    assert len(entries(cache_on)) == 3
    assert cache.clear(stale_only=True) == 2
    [kept] = entries(cache_on)
    assert json.loads((kept / "key.json").read_text())["source"] == "0" * 64
    assert (cache_on / "events.log").is_file()  # the hit/miss counts survive a prune
