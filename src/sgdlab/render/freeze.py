"""Quarto's `freeze: auto`, made safe for this book: kept only while nothing it cannot see changed.

Quarto re-executes a frozen chapter only when that chapter's own .qmd changes (an MD5 of the file),
so on its own `freeze` would show stale numbers after an edit under src/sgdlab, a library upgrade or
a change of the figure settings in _quarto.yml. Before every full render Quarto runs
`_prerender.py`, which calls `guard`: it compares what the chapters' outputs depend on besides their
own source — a digest of every file of the sgdlab package (the results cache's), the versions of
Python and of the libraries that compute and draw, the Python that runs, and _quarto.yml with its
profiles and metadata files (but the site's addresses) — with what the last render stored in
`_freeze/`, and deletes `_freeze/` when anything differs or when SGDLAB_NO_CACHE is set. A
prose-only edit of one chapter then re-executes that chapter only (once per format); everything
else is thawed.

Quarto ignores `freeze` when it renders a single file or folder: those renders always execute.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from .site import SITE_FILE

FREEZE_DIR = "_freeze"
STAMP = "sgdlab-guard.json"  # beside Quarto's per-document folders; Quarto leaves unknown files alone
LIBRARIES = ("torch", "numpy", "pandas", "matplotlib", "matplotlib-inline", "ipython", "ipykernel")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def inputs(root: Path) -> dict:
    """Everything a chapter's executed output depends on besides its own .qmd, as data."""
    from ..cache import SOURCE_DIGEST, library_versions  # the digest is taken at import, of this package

    config = root / "_quarto.yml"
    meta_files = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("metadata-files") or [] \
        if config.is_file() else []
    # every profile's file, whichever edition renders: the editions share _freeze/ and must agree on it
    profiles = sorted(p.name for p in root.glob("_quarto-*.yml"))
    # not assets/site.yml: its addresses reach no cell's output, and each edition's render writes its own
    meta_files = [str(f) for f in meta_files if Path(str(f)) != SITE_FILE]
    return {"package": SOURCE_DIGEST, "python": sys.version, "executable": sys.executable,
            "libraries": library_versions(LIBRARIES),
            "config": {name: _file_digest(root / name) for name in ["_quarto.yml", *profiles, *meta_files]}}


def _changed(old: dict, new: dict) -> str:
    """What differs, in a few words."""
    words = {"package": "src/sgdlab changed", "python": "another Python", "executable": "another Python",
             "libraries": "library versions changed", "config": "_quarto.yml, a profile or a metadata file changed"}
    found = sorted({words.get(k, k) for k in new if old.get(k) != new[k]})
    return ", ".join(found) or "the stored inputs differ"


def guard(root: Path) -> str | None:
    """Delete root/_freeze/ unless it was made with today's inputs; say why when frozen results go."""
    freeze = root / FREEZE_DIR
    stamp = freeze / STAMP
    new = inputs(root)
    try:
        old = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    no_cache = os.environ.get("SGDLAB_NO_CACHE", "") not in ("", "0")
    if old == new and not no_cache:
        return None
    had_results = freeze.is_dir() and any(p.name != STAMP for p in freeze.iterdir())
    shutil.rmtree(freeze, ignore_errors=True)
    freeze.mkdir(exist_ok=True)
    stamp.write_text(json.dumps(new, indent=1, sort_keys=True), encoding="utf-8")
    if not had_results:
        return None
    why = "SGDLAB_NO_CACHE is set" if no_cache else _changed(old or {}, new)
    return f"frozen chapter outputs discarded ({why}): every chapter executes again"
