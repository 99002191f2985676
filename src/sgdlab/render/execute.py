"""Run one chapter's cells and inline expressions in a fresh Jupyter kernel (nbclient)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from .book import RenderError
from .qmd import Doc, inline_exprs

# Hidden set-up, run first in every kernel: the inline backend (so that a returned Figure
# displays, as in Quarto), PNG figures at a fixed dpi and without version metadata
# (two renders give the same bytes), and the helper that prints an inline value.
PREAMBLE = """\
%matplotlib inline
%config InlineBackend.figure_formats = ['png']
%config InlineBackend.print_figure_kwargs = {'bbox_inches': 'tight', 'metadata': {'Software': None}}
import matplotlib as _mpl
_mpl.rcParams.update({'figure.dpi': 150, 'savefig.dpi': 150, 'figure.figsize': (7, 5),
                      'svg.hashsalt': 'sgdlab'})
del _mpl

def _sgdlab_inline(value):
    # Quarto's rule: Markdown as it is, anything else its repr (a str unquoted), as Quarto prints it.
    from sgdlab.notebook import inline_markdown
    print(inline_markdown(value), end='')
"""
DEFAULTS = {"echo": True, "output": True, "include": True, "eval": True}
CELL_TIMEOUT = 1800  # seconds; a cell stuck longer than this is a bug, not a slow experiment


@dataclass
class ChapterRun:
    """Outputs of one chapter: nbformat outputs per cell event, inline values per text event."""

    outputs: dict[int, list] = field(default_factory=dict)
    inline: dict[int, list[str]] = field(default_factory=dict)


def cell_options(cell_options: dict, *defaults: dict) -> dict:
    """A cell's effective options: Quarto's defaults < _quarto.yml < front matter < `#|`."""
    merged = dict(DEFAULTS)
    for d in (*defaults, cell_options):
        merged.update({k: v for k, v in (d or {}).items() if k in DEFAULTS})
    return merged


def _plan(doc: Doc, project_execute: dict) -> list[tuple[int, str, str]]:
    """(event index, what, code) in document order: cells that run, then inline expressions."""
    plan = []
    for i, ev in enumerate(doc.events):
        if ev.kind == "cell" and ev.cell.lang == "python":
            if cell_options(ev.cell.options, project_execute, doc.meta.get("execute"))["eval"]:
                plan.append((i, "cell", ev.cell.code))
        elif ev.kind in ("text", "heading") or ev.title:
            for lang, expr in inline_exprs(ev.title or ev.text):
                if lang == "python":
                    plan.append((i, "inline", expr))
    return plan


def _describe(doc: Doc, name: str, i: int, what: str, code: str) -> str:
    """Where a failure happened, for the error message."""
    ev = doc.events[i]
    if what == "inline":
        return f"{name}:{ev.line}: inline expression `{{python}} {code}`"
    label = ev.cell.label
    return f"{name}: cell '{label}' (line {ev.line})" if label else f"{name}: cell at line {ev.line}"


def run_chapter(doc: Doc, name: str, cwd: Path, project_execute: dict) -> ChapterRun:
    """Execute a chapter like Quarto does: a fresh `python3` kernel, cells in order."""
    run = ChapterRun()
    plan = _plan(doc, project_execute)
    if not plan:
        return run  # pure markdown: Quarto starts no kernel either
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PREAMBLE)]
    for _, what, code in plan:
        src = f"_sgdlab_inline((\n{code}\n))" if what == "inline" else code
        nb.cells.append(nbformat.v4.new_code_cell(src))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    # The kernel's own stderr (transport warnings, debugger notices) is noise for a reader;
    # errors of the code reach us through the messaging protocol instead.
    with client.setup_kernel(stderr=subprocess.DEVNULL):
        client.execute_cell(nb.cells[0], 0, store_history=False)
        for k, (i, what, code) in enumerate(plan, start=1):
            cell = nb.cells[k]
            try:
                client.execute_cell(cell, k, store_history=what == "cell")
            except CellExecutionError as e:
                raise RenderError(f"{_describe(doc, name, i, what, code)} failed: "
                                  f"{e.ename}: {e.evalue}") from None
            except (CellTimeoutError, DeadKernelError) as e:
                raise RenderError(f"{_describe(doc, name, i, what, code)} failed: {e}") from None
            if what == "cell":
                run.outputs[i] = cell.outputs
            else:
                text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream"
                               and o.name == "stdout")
                run.inline.setdefault(i, []).append(text)
    return run
