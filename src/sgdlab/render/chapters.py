"""The built-in engine's executed chapters, kept in the results cache: unchanged code is not run again.

The key of a chapter's outputs is the code its kernel runs — the preamble, then every cell and
inline expression in order, with the project's execute options and the kernel's directory — and
what Quarto's guarded freeze looks at (`freeze.inputs`: the package's source digest, the Python,
the libraries' versions, _quarto.yml). Prose is not in the key, so a prose-only edit executes no
chapter; an edit of a cell executes that chapter; an edit under src/sgdlab executes them all.
Quarto's `freeze` re-executes a chapter on any edit of its .qmd, prose included: this is finer.
Entries are named `chapter.<path>` in `sgdlab cache`; SGDLAB_NO_CACHE bypasses them.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from .. import cache
from .execute import PREAMBLE, ChapterRun, Job, _plan


def _name(job: Job) -> str:
    return "chapter." + job.name.replace("/", ".")


def key(job: Job, project_execute: dict, root: Path, inputs: dict) -> dict | None:
    """The cache key of a chapter's outputs; None when the cache is off."""
    plan = _plan(job.doc, project_execute)
    if not cache.enabled() or not plan:  # no code: nothing to execute, nothing to keep
        return None
    code = [PREAMBLE] + [f"{what}: {text}" for _, what, text in plan]
    where = job.cwd.resolve().relative_to(root.resolve()).as_posix() if job.cwd.resolve().is_relative_to(
        root.resolve()) else str(job.cwd)
    return cache.key_for(_name(job), {"code": code, "execute": project_execute, "cwd": where, "inputs": inputs})


def load(job: Job, chapter_key: dict | None) -> ChapterRun | None:
    """The chapter's stored outputs, or None."""
    if chapter_key is None:
        return None
    stored = cache.lookup(_name(job), chapter_key)
    if stored is None:
        return None
    outputs = {int(i): [nbformat.from_dict(o) for o in outs] for i, outs in stored["outputs"].items()}
    return ChapterRun(outputs=outputs, inline={int(i): list(v) for i, v in stored["inline"].items()})


def save(job: Job, chapter_key: dict | None, run: ChapterRun, seconds: float) -> None:
    """Store a chapter's outputs (nbformat outputs as plain JSON data)."""
    if chapter_key is None:
        return
    outputs = {str(i): json.loads(json.dumps(outs)) for i, outs in run.outputs.items()}
    cache.store(_name(job), chapter_key, {"outputs": outputs, "inline": {str(i): v for i, v in run.inline.items()}},
                seconds)
