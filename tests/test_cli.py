"""The command-line contract of DESIGN.md, run as a user runs it (a subprocess)."""

import json
import subprocess
import sys

import pytest


def sgdlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgdlab.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_list_names_every_experiment():
    out = sgdlab("list")
    assert out.returncode == 0
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names[:5] == ["baseline", "toy-clean", "toy-noisy", "toy-bias", "toy-piecewise"]
    from sgdlab.registry import EXPERIMENTS

    assert names == list(EXPERIMENTS)


def test_run_json_is_one_object_and_deterministic():
    a = sgdlab("run", "toy-noisy", "--epochs", "300", "--json")
    b = sgdlab("run", "toy-noisy", "--epochs", "300", "--json")
    assert a.returncode == 0 and a.stdout == b.stdout
    summary = json.loads(a.stdout)
    assert {"final_loss", "w", "b", "ols_w", "ols_b", "loss_floor", "epochs", "first_zero_epoch"} <= summary.keys()
    assert summary["epochs"] == 300


def test_out_writes_history_summary_and_figure(tmp_path):
    out = sgdlab("run", "toy-clean", "--out", str(tmp_path / "o"), "--json")
    assert out.returncode == 0
    assert (tmp_path / "o" / "history.csv").read_text().startswith("step,epoch,loss,w,b")
    assert json.loads((tmp_path / "o" / "summary.json").read_text()) == json.loads(out.stdout)
    assert (tmp_path / "o" / "toy-clean.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "toy-clean", "--lr", "0"], "--lr"),
        (["run", "toy-clean", "--lr", "nan"], "--lr"),
        (["run", "toy-clean", "--lr", "abc"], "--lr"),
        (["run", "toy-clean", "--batch-size", "0"], "--batch-size"),
        (["run", "toy-clean", "--batch-size", "99"], "--batch-size"),
        (["run", "toy-clean", "--epochs", "0"], "--epochs"),
        (["run", "toy-clean", "--epochs", "1.5"], "--epochs"),
        (["run", "toy-clean", "--out", "/proc/forbidden/x"], "--out"),
        (["frobnicate"], "invalid choice"),
        (["render", "--engine", "latex"], "--engine"),
        (["run", "steepest-rate", "--lr", "0.1"], "--lr does not apply to steepest-rate"),
        (["run", "steepest-sgd-noise", "--epochs", "0"], "--epochs"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, fragment):
    out = sgdlab(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in out.stderr


def test_unwritable_out_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    out = sgdlab("run", "toy-clean", "--out", str(locked))
    locked.chmod(0o700)
    if out.returncode == 0:  # root ignores permission bits
        pytest.skip("running as root: permission bits are not enforced")
    assert out.returncode == 2 and "--out" in out.stderr


def test_divergence_exits_3_naming_the_step():
    out = sgdlab("run", "toy-clean", "--lr", "30", "--json")
    assert out.returncode == 3
    assert out.stdout == ""
    assert "diverged at step" in out.stderr and "Traceback" not in out.stderr


def test_bench_json_has_the_documented_keys():
    out = sgdlab("bench", "--json", "--sequential-epochs", "20")  # short whole processes: keys, not speed
    assert out.returncode == 0
    report = json.loads(out.stdout)
    keys = {"reference_us_per_step", "engine_k1_us_per_step", "engine_k1000_us_per_run_step",
            "speedup_k1", "speedup_k1000", "floor_ns_per_run_step"}
    assert keys <= report.keys()
    assert all(report[k] > 0 for k in keys)  # measured, not asserted against a target
    sequential = report["sequential"]
    assert sequential["epochs"] == 20
    for name in ("article_verbatim", "article_scratch", "sgdlab_run"):
        assert {"us_per_epoch", "us_per_epoch_worst", "cpu_us_per_epoch"} <= sequential[name].keys()
    assert sequential["speedup_vs_verbatim"] > 0 and sequential["speedup_vs_scratch"] > 0


def test_unavailable_device_is_bad_input():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    for args in (["run", "toy-clean", "--device", "cuda"], ["bench", "--device", "cuda"]):
        out = sgdlab(*args)
        assert out.returncode == 2 and "no CUDA device" in out.stderr
