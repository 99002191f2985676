"""Run each chapter's cells and inline expressions in a fresh Jupyter kernel (nbclient), several at once.

The kernels are processes, so one thread drives them all: nbclient's async API in one event loop
(its sync API runs a loop per call and would need a thread, and a loop, per kernel).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from ..kernelspec import release, secure
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


def default_jobs() -> int:
    """Kernels at once: the CPUs this process may run on (a chapter's kernel keeps one core busy)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Job:
    """One chapter to execute: its parsed document, its name for messages, the kernel's directory, and
    what the kernel's environment adds to ours (Quarto's QUARTO_DOCUMENT_* variables)."""

    doc: Doc
    name: str
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)


async def _execute(job: Job, project_execute: dict, executing: Callable[[NotebookClient | None], None]) -> ChapterRun:
    """Execute a chapter like Quarto does: a fresh `python3` kernel, cells in order.

    executing(client) is called once the kernel runs cells, executing(None) once it is shut down.
    """
    run = ChapterRun()
    plan = _plan(job.doc, project_execute)
    if not plan:
        return run  # pure markdown: Quarto starts no kernel either
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PREAMBLE)]
    for _, what, code in plan:
        src = f"_sgdlab_inline((\n{code}\n))" if what == "inline" else code
        nb.cells.append(nbformat.v4.new_code_cell(src))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(job.cwd)}})
    # Not client.async_setup_kernel: it takes SIGINT over for its own kernel only (and the first of
    # several kernels to finish removes the others' handlers); _execute_all handles Ctrl-C for all.
    client.km = client.create_kernel_manager()
    private = secure(client.km)  # a Unix socket in a directory of our own, not plain TCP (kernelspec.py)
    try:
        await client.async_start_new_kernel(env={**os.environ, **job.env})
        await client.async_start_new_kernel_client()
        executing(client)
        await client.async_execute_cell(nb.cells[0], 0, store_history=False)
        for k, (i, what, code) in enumerate(plan, start=1):
            cell = nb.cells[k]
            try:
                await client.async_execute_cell(cell, k, store_history=what == "cell")
            except CellExecutionError as e:
                raise RenderError(f"{_describe(job.doc, job.name, i, what, code)} failed: "
                                  f"{e.ename}: {e.evalue}") from None
            except (CellTimeoutError, DeadKernelError) as e:
                raise RenderError(f"{_describe(job.doc, job.name, i, what, code)} failed: {e}") from None
            if what == "cell":
                run.outputs[i] = cell.outputs
            else:
                text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream"
                               and o.name == "stdout")
                run.inline.setdefault(i, []).append(text)
    except asyncio.CancelledError:  # stopped while its kernel started: no goodbye to a kernel that never ran
        client.shutdown_kernel = "immediate"
        raise
    finally:
        executing(None)
        if client.km is not None:  # None: a kernel that failed to start was cleaned up already
            await client._async_cleanup_kernel()  # what setup_kernel does on exit: shut down, stop channels
        release(private)
    return run


async def _kill(client: NotebookClient) -> None:
    """Kill a kernel's process group; nbclient sees it die and ends the running cell with DeadKernelError."""
    with contextlib.suppress(RuntimeError, OSError):  # it is gone already
        await client.km.signal_kernel(signal.SIGKILL)


async def _execute_all(jobs: list[Job], project_execute: dict, workers: int, start: list[int],
                       on_start: Callable[[int], None], on_done: Callable[[int], None]) -> list[ChapterRun] | None:
    """Run the jobs, `workers` kernels at once, in the order `start`; None if Ctrl-C stopped them.

    A failure in chapter k stops every chapter after k in document order (a sequential render
    would never have run them) and lets the earlier ones finish, so the error raised is the one a
    sequential render gives: the first failing chapter's.
    """
    slots = asyncio.Semaphore(workers)
    tasks: dict[int, asyncio.Task] = {}
    kernels: dict[int, NotebookClient | None] = {}  # chapter -> its client while cells run, None once closing
    failures: dict[int, BaseException] = {}
    stopped: set[int] = set()
    kills: set[asyncio.Task] = set()  # held until done (the loop keeps only weak references to tasks)

    def stop(k: int) -> None:
        # A task cancelled inside nbclient's execute_cell leaves nbclient's own watcher task behind, so a
        # running kernel is killed instead; one not running cells yet is cancelled; one closing finishes.
        if k in stopped or tasks[k].done():
            return
        stopped.add(k)
        if kernels.get(k) is not None:
            kills.add(task := asyncio.ensure_future(_kill(kernels[k])))
            task.add_done_callback(kills.discard)
        elif k not in kernels:
            tasks[k].cancel()

    async def one(k: int) -> ChapterRun:
        async with slots:
            on_start(k)
            try:
                run = await _execute(jobs[k], project_execute, lambda client: kernels.__setitem__(k, client))
            except Exception as e:
                failures[k] = e
                for later in tasks:
                    if later > k:
                        stop(later)
                raise
            on_done(k)
            return run

    interrupted = False

    def on_sigint() -> None:  # the first Ctrl-C stops every kernel; one pressed again is ignored meanwhile
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            for k in tasks:
                stop(k)

    loop = asyncio.get_running_loop()
    # Only where Ctrl-C raises KeyboardInterrupt today: a SIGINT the process ignores (`sgdlab render &`
    # in a script) stays ignored.
    if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, signal.SIG_DFL, None):
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):  # not the main thread; Windows
            loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        tasks.update((k, asyncio.create_task(one(k))) for k in start)
        runs = await asyncio.gather(*tasks.values(), return_exceptions=True)
    finally:
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
    if interrupted:
        return None
    if failures:
        raise failures[min(failures)]
    by_chapter = dict(zip(tasks, runs, strict=True))
    return [by_chapter[k] for k in range(len(jobs))]


def run_chapters(jobs: list[Job], project_execute: dict, workers: int = 1, start: list[int] | None = None,
                 on_start: Callable[[int], None] = lambda k: None,
                 on_done: Callable[[int], None] = lambda k: None) -> list[ChapterRun]:
    """Execute the chapters, up to `workers` fresh kernels at once; their runs in document order.

    start: the order in which chapters get a kernel (document order by default). on_start(k) and
    on_done(k) are called as chapter k starts and finishes. The outputs do not depend on workers or
    start: every chapter has a kernel of its own. Ctrl-C (in the main thread) kills every kernel,
    then raises KeyboardInterrupt; no kernel process outlives the call, whatever its outcome.
    """
    start = list(range(len(jobs))) if start is None else start
    if sorted(start) != list(range(len(jobs))):
        raise ValueError(f"start must order all {len(jobs)} chapters, got {start}")
    work = _execute_all(jobs, project_execute, max(1, workers), start, on_start, on_done)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        runs = asyncio.run(work)
    else:  # called from async code (a notebook cell): a loop of its own, in a thread of its own
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            runs = pool.submit(asyncio.run, work).result()
    if runs is None:
        raise KeyboardInterrupt
    return runs


def run_chapter(doc: Doc, name: str, cwd: Path, project_execute: dict) -> ChapterRun:
    """Execute one chapter in a fresh kernel."""
    return run_chapters([Job(doc, name, cwd)], project_execute)[0]
