"""The reproducibility appendix: versions, seeds, and a digest of every experiment's summary."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

import pandas as pd

from . import __version__
from ._lazy import torch
from .cache import cached
from .i18n import t
from .registry import EXPERIMENTS, run


@dataclass(frozen=True)
class Machine:
    """What torch's default number of threads depends on: the host's cores and two environment variables."""

    host: str
    cpus: int | None
    usable_cpus: int | None  # those this process may run on
    omp_num_threads: str | None
    mkl_num_threads: str | None

    @classmethod
    def here(cls) -> Machine:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return cls(platform.node(), os.cpu_count(), usable, os.environ.get("OMP_NUM_THREADS"),
                   os.environ.get("MKL_NUM_THREADS"))


@dataclass(frozen=True)
class Threads:
    machine: Machine
    threads: int

    def summary(self) -> dict:
        return {"experiment": "torch-threads", **asdict(self.machine), "threads": self.threads}


@cached
def torch_threads(machine: Machine) -> Threads:
    """torch's intra-op threads on this machine. Cached: asking torch means importing it (1.4 s), and the
    appendix is otherwise read from the cache. (The host is part of the key: torch counts physical cores.)
    """
    return Threads(machine, torch.get_num_threads())


def environment() -> pd.DataFrame:
    """Versions of what computed the report, and the machine it ran on."""
    rows = {"sgdlab": __version__, "Python": sys.version.split()[0], t("platform"): platform.platform(),
            t("machine"): platform.machine(), t("torch threads"): str(torch_threads(Machine.here()).threads)}
    for package in ("torch", "numpy", "pandas", "matplotlib", "nbclient", "ipykernel"):
        try:
            rows[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            rows[package] = t("not installed")
    return pd.DataFrame({t("value"): rows}).rename_axis(t("component"))


def summary_digest(summary: dict) -> str:
    """SHA-256 of the summary as canonical JSON: equal digests ⇒ equal numbers, bit for bit."""
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def digests() -> pd.DataFrame:
    """Run every registered experiment with its defaults: its seed and the digest of its summary."""
    rows = []
    for name, experiment in EXPERIMENTS.items():
        summary = run(name).summary()
        rows.append({t("experiment"): name, t("seed"): experiment.config.seed, t("summary keys"): len(summary),
                     t("sha256 of the summary (first 16)"): summary_digest(summary)[:16]})
    return pd.DataFrame(rows).set_index(t("experiment"))
