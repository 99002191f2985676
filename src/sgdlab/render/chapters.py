"""The built-in engine's executed chapters, kept in the results cache: unchanged code is not run again.

The key of a chapter's outputs is the code its kernel runs — the preamble, then every cell and
inline expression in order, with the project's execute options and the kernel's directory — and
what Quarto's guarded freeze looks at (`freeze.inputs`: the package's source digest, the Python,
the libraries' versions, _quarto.yml). Prose is not in the key, so a prose-only edit executes no
chapter; an edit of a cell executes that chapter; an edit under src/sgdlab executes them all.
Quarto's `freeze` re-executes a chapter on any edit of its .qmd, prose included: this is finer.
An entry holds the outputs in the order the kernel ran the code, and a read places them at the
cells and paragraphs of the chapter as it is now. Entries are named `chapter.<path>` in
`sgdlab cache`; SGDLAB_NO_CACHE bypasses them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat

from .. import cache, i18n
from .execute import PREAMBLE, ChapterRun, Job, _plan


def _name(job: Job) -> str:
    return "chapter." + job.name.replace("/", ".")


def key(job: Job, project_execute: dict, root: Path, inputs: dict) -> dict | None:
    """The cache key of a chapter's outputs; None when the cache is off."""
    plan = _plan(job.doc, project_execute)
    if not cache.enabled() or not plan:  # no code: nothing to execute, nothing to keep
        return None
    code = [PREAMBLE] + [f"{what}: {text}" for _, what, text in plan]
    cwd, base = job.cwd.resolve(), root.resolve()
    where = cwd.relative_to(base).as_posix() if cwd.is_relative_to(base) else str(cwd)
    # the language its figures and tables are drawn in (i18n.py), from the kernel's environment
    language = i18n.language({**os.environ, **job.env})
    return cache.key_for(_name(job), {"code": code, "execute": project_execute, "cwd": where, "inputs": inputs,
                                      "language": language})


def load(job: Job, chapter_key: dict | None, project_execute: dict) -> ChapterRun | None:
    """The chapter's stored outputs, placed at today's cells and text (a prose edit moves them), or None."""
    if chapter_key is None:
        return None
    stored = cache.lookup(_name(job), chapter_key)
    if stored is None:
        return None
    run = ChapterRun()
    for (i, what, _), item in zip(_plan(job.doc, project_execute), stored, strict=True):
        if what == "cell":
            run.outputs[i] = [nbformat.from_dict(o) for o in item]
        else:
            run.inline.setdefault(i, []).append(item)
    return run


def save(job: Job, chapter_key: dict | None, project_execute: dict, run: ChapterRun, seconds: float) -> None:
    """Store a chapter's outputs in the order the kernel ran its code (nbformat outputs as JSON data)."""
    if chapter_key is None:
        return
    items, seen = [], {}
    for i, what, _ in _plan(job.doc, project_execute):
        if what == "cell":
            items.append(json.loads(json.dumps(run.outputs.get(i, []))))
        else:  # the inline values of one paragraph, in order
            seen[i] = seen.get(i, -1) + 1
            items.append(run.inline[i][seen[i]])
    cache.store(_name(job), chapter_key, items, seconds)
