"""The command-line contract of docs/DESIGN.md, run as a user runs it (a subprocess)."""

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


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "baseline", "--seed", "99999999999999999999999"], "--seed must be between 0 and"),
        (["run", "baseline", "--seed", "-1"], "--seed"),
        (["run", "baseline", "--epochs", "2000000000"], "would not fit"),
        (["run", "toy-noisy", "--epochs", "2000000000"], "--epochs must be between 1 and"),
        (["run", "baseline-orders", "--epochs", "99999999999999999999"], "would not fit"),
        (["run", "floor-cycle", "--epochs", "10"], "--epochs must be between 300 and"),
        (["run", "floor-precision", "--epochs", "7"], "--epochs must be between 8 and"),
        (["run", "toy-clean", "--lr", "1e400"], "--lr"),
        (["run", "baseline", "--batch-size", "99999999999999999999"], "--batch-size"),
        (["run", "toy-clean", "--out", "/dev/null"], "not a directory"),
        (["cache", "frobnicate"], "invalid choice"),
    ],
)
def test_out_of_range_values_exit_2_with_one_line(args, fragment):
    test_bad_input_exits_2_with_one_line(args, fragment)


def test_every_experiment_with_epochs_has_limits():
    from sgdlab import experiments
    from sgdlab.registry import EXPERIMENTS

    for name, e in EXPERIMENTS.items():
        if hasattr(e.config, "epochs"):
            assert e.memory is not None, name
            assert e.min_epochs(e.config) <= e.config.epochs, name  # the defaults run
            assert e.config.epochs * e.memory(e.config) < experiments.MEMORY_BUDGET / 4, name


def test_a_run_is_silent_on_stderr_when_it_is_not_a_terminal():
    out = sgdlab("run", "toy-noisy", "--epochs", "3000", "--no-cache")
    assert out.returncode == 0 and out.stderr == ""


def test_cache_command_shows_counts_and_clears(tmp_path):
    import os

    env = {**os.environ, "SGDLAB_CACHE_DIR": str(tmp_path / "c")}
    env.pop("SGDLAB_NO_CACHE")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "sgdlab.cli", *args], capture_output=True, text=True, env=env)

    first, second = run("run", "toy-clean", "--json"), run("run", "toy-clean", "--json")
    assert first.stdout == second.stdout and first.returncode == 0
    run("run", "toy-clean", "--json", "--no-cache")
    stats = json.loads(run("cache", "--json").stdout)
    assert (stats["entries"], stats["misses"], stats["hits"]) == (1, 1, 1)
    assert stats["path"] == str(tmp_path / "c") and stats["bytes"] > 0
    shown = run("cache").stdout
    assert str(tmp_path / "c") in shown and "entries: 1" in shown
    assert "1 experiments computed and 0 figures drawn" in shown
    assert run("cache", "--clear").stdout.startswith("cleared 1 entries")
    assert json.loads(run("cache", "--json").stdout)["entries"] == 0
    run("run", "toy-clean")
    assert run("cache", "--prune").stdout.startswith("pruned 0 entries")  # made by today's code: kept
    assert run("cache", "clear").returncode == 0 and json.loads(run("cache", "--json").stdout)["entries"] == 0


def test_render_no_cache_reaches_the_kernels(monkeypatch, tmp_path):
    """--no-cache sets SGDLAB_NO_CACHE=1 in the environment that Quarto and the kernels inherit."""
    import os

    from sgdlab import cli

    seen = {}
    monkeypatch.setattr("sgdlab.render.render", lambda *a, **k: seen.setdefault("env", os.environ.get(
        "SGDLAB_NO_CACHE")) and [])
    monkeypatch.delenv("SGDLAB_NO_CACHE")
    assert cli.main(["render", "--no-cache", "--engine", "builtin"]) == 0
    assert seen["env"] == "1"


def test_out_is_written_whole_or_not_at_all(tmp_path):
    out = tmp_path / "new" / "o"
    bad = sgdlab("run", "toy-clean", "--lr", "30", "--out", str(out))  # diverges: nothing written
    assert bad.returncode == 3 and not (tmp_path / "new").exists()
    assert sgdlab("run", "toy-clean", "--out", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "summary.json", "toy-clean.png"]
    (out / "mine.txt").write_text("kept")
    assert sgdlab("run", "toy-clean", "--out", str(out)).returncode == 0  # an existing --out: files replaced
    assert (out / "mine.txt").read_text() == "kept"
    assert [p.name for p in out.parent.iterdir()] == ["o"]  # no temporary directory left


def _cpu_seconds(pid: int) -> float:
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_ctrl_c_exits_130_with_one_line_and_no_half_written_out(tmp_path):
    """SIGINT while a long run trains (once its imports are far behind it): exit 130, one line, no --out."""
    import signal
    import time

    out = tmp_path / "o"
    # The baseline's torch.optim reference keeps it busy for minutes at 15000 epochs.
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab.cli", "run", "baseline", "--epochs", "15000",
                             "--no-cache", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and _cpu_seconds(proc.pid) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stderr == "sgdlab: interrupted\n" and stdout == ""
    assert list(tmp_path.iterdir()) == []  # no --out, and no temporary directory beside it
