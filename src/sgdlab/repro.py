"""The reproducibility appendix: versions, seeds, and a digest of every experiment's summary."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata

import pandas as pd
import torch

from . import __version__
from .registry import EXPERIMENTS, run


def environment() -> pd.DataFrame:
    """Versions of what computed the report, and the machine it ran on."""
    rows = {"sgdlab": __version__, "Python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "torch threads": str(torch.get_num_threads())}
    for package in ("torch", "numpy", "pandas", "matplotlib", "nbclient", "ipykernel"):
        try:
            rows[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            rows[package] = "not installed"
    return pd.DataFrame({"value": rows}).rename_axis("component")


def summary_digest(summary: dict) -> str:
    """SHA-256 of the summary as canonical JSON: equal digests ⇒ equal numbers, bit for bit."""
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def digests() -> pd.DataFrame:
    """Run every registered experiment with its defaults: its seed and the digest of its summary."""
    rows = []
    for name, experiment in EXPERIMENTS.items():
        summary = run(name).summary()
        rows.append({"experiment": name, "seed": experiment.config.seed, "summary keys": len(summary),
                     "sha256 of the summary (first 16)": summary_digest(summary)[:16]})
    return pd.DataFrame(rows).set_index("experiment")
