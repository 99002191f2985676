"""`make test-isa`: the engine, experiment and cache tests under every instruction-set dispatch this CPU offers.

One pytest run per setting: torch's ATen kernels (ATEN_CPU_CAPABILITY), MKL's BLAS
(MKL_ENABLE_INSTRUCTIONS) and the compiled loop's copies (SGDLAB_KERNEL_ISA). A setting this CPU
lacks is skipped with its reason; a table of the results follows; the exit status is 1 if any failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_engine.py", "tests/test_experiments.py", "tests/test_cache.py"]
SETTINGS = [("ATEN_CPU_CAPABILITY", v) for v in ("default", "avx2", "avx512")] + [
    ("MKL_ENABLE_INSTRUCTIONS", v) for v in ("AVX2", "AVX512")] + [
    ("SGDLAB_KERNEL_ISA", v) for v in ("avx512f", "avx2", "default")]

# What a process under the setting runs: torch's capability, what the CPU has, MKL, the compiled copy, and the
# bits of an sgemm (MKL gives no other sign of which kernels it picked).
PROBE = """
import hashlib, json, torch
from sgdlab import kernels
try:
    isa = kernels.isa()
except kernels.KernelChoiceError as err:
    isa = "refused: " + str(err)
g = torch.Generator().manual_seed(0)
a, b = torch.randn(257, 1031, generator=g), torch.randn(1031, 263, generator=g)
print(json.dumps({"aten": torch.backends.cpu.get_cpu_capability(), "avx2": torch.cpu._is_avx2_supported(),
                  "avx512": torch.cpu._is_avx512_supported(), "mkl": torch.backends.mkl.is_available(),
                  "isa": isa, "sgemm": hashlib.sha256((a @ b).numpy().tobytes()).hexdigest()}))
"""


def _env(setting: tuple[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in dict(SETTINGS)}  # one setting at a time
    return env | dict([setting]) if setting else env


def probe(setting: tuple[str, str] | None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env=_env(setting), cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def skip_reason(setting: tuple[str, str], seen: dict, plain: dict) -> str | None:
    """Why this CPU cannot run the setting, None if it runs (seen: the probe under it; plain: without)."""
    name, value = setting
    if name == "ATEN_CPU_CAPABILITY" and seen["aten"] != value.upper():
        return f"torch runs {seen['aten']}: this CPU lacks {value}"
    if name == "MKL_ENABLE_INSTRUCTIONS":
        if not seen["mkl"]:
            return "this torch has no MKL"
        if not plain[value.lower()]:
            return f"this CPU lacks {value}"
    if name == "SGDLAB_KERNEL_ISA" and seen["isa"] != value:
        return seen["isa"]
    return None


def dispatch(setting: tuple[str, str], seen: dict, plain: dict) -> str:
    """What the setting made the process run, as far as it can be seen."""
    name = setting[0]
    if name == "ATEN_CPU_CAPABILITY":
        return f"torch capability {seen['aten']}"
    if name == "MKL_ENABLE_INSTRUCTIONS":
        return "sgemm bits " + ("as without it" if seen["sgemm"] == plain["sgemm"] else "differ from without it")
    return f"compiled copy {seen['isa']}"


def main() -> int:
    plain = probe(None)
    print(f"without settings: torch capability {plain['aten']}, compiled copy {plain['isa']}, MKL {plain['mkl']}")
    rows, failed, start = [], False, time.monotonic()
    for setting in SETTINGS:
        label = "=".join(setting)
        seen = probe(setting)
        if reason := skip_reason(setting, seen, plain):
            print(f"{label}: skipped: {reason}", flush=True)
            rows.append((label, "", "skipped", ""))
            continue
        print(f"{label}: {dispatch(setting, seen, plain)}", flush=True)
        began = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *TESTS],
                             env=_env(setting), cwd=ROOT, capture_output=True, text=True)
        summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()[-200:]
        if run.returncode != 0:
            failed = True
            print(run.stdout[-4000:], run.stderr[-2000:], sep="\n")
        rows.append((label, dispatch(setting, seen, plain), "passed" if run.returncode == 0 else "FAILED",
                     f"{time.monotonic() - began:.0f} s"))
        print(f"  {summary}", flush=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'setting':<{width}}  {'dispatch':<34}  {'result':<7}  time")
    for label, what, result, seconds in rows:
        print(f"{label:<{width}}  {what:<34}  {result:<7}  {seconds}")
    print(f"matrix: {time.monotonic() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
