"""The built-in engine: check, execute, assemble, convert; publish into _book/ only on success."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from . import chapters as stored
from . import freeze
from .book import Book, RenderError, load_book
from .crossref import number_book, parse_chapters, ref_problems
from .execute import ChapterRun, Job, default_jobs, run_chapters
from .markdown import Ctx, chapter_markdown
from .output import write_html, write_pdf
from .quarto import _swap_in
from .subset import doc_problems


def _publish(files: list[Path], dest: Path, complete: bool = False, build: Path | None = None) -> list[Path]:
    """Move finished outputs into dest, at their paths below build (default: the first one's
    folder), each replacing its old version atomically.

    A complete book (every format) replaces dest as a whole, so that no page of an earlier render
    (say Quarto's report/*.html and site_libs/) is left beside it; a partial one keeps the rest.
    """
    build = build or files[0].parent
    rels = [f.relative_to(build) for f in files]
    if complete:
        staged = build / "_publish"
        for f, rel in zip(files, rels, strict=True):
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, staged / rel)
        _swap_in(staged, dest)
        return [dest / rel for rel in rels]
    out = []
    for f, rel in zip(files, rels, strict=True):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial")
        shutil.copyfile(f, tmp)
        os.replace(tmp, target)
        out.append(target)
    return out


def run_pre_render(book: Book) -> None:
    """The project's `pre-render` scripts, as Quarto runs them: at the root, a .py with this Python."""
    for script in book.pre_render:
        cmd = shlex.split(script)
        if cmd and cmd[0].endswith(".py"):
            cmd = [sys.executable, *cmd]
        try:
            proc = subprocess.run(cmd, cwd=book.root, capture_output=True, text=True)
        except OSError as e:
            raise RenderError(f"pre-render script {script!r} (_quarto.yml) could not run: {e}") from None
        if proc.returncode != 0:
            raise RenderError(f"pre-render script {script!r} failed (exit {proc.returncode}):\n"
                              + (proc.stderr or proc.stdout).strip())
        for line in proc.stdout.splitlines():
            print(line, file=sys.stderr)


def render_builtin(root: Path, to: str = "all", progress: bool = False, jobs: int | None = None) -> list[Path]:
    """Render the book at root to _book/index.html and/or _book/<Book-title>.pdf, `jobs` kernels at once."""
    book: Book = load_book(root)
    chapters = parse_chapters(book)
    # Everything that can be checked without running code is checked first: a subset
    # violation or a dangling @ref fails in a second, not after minutes of experiments.
    problems = [p for ch, doc in chapters for p in doc_problems(doc, ch.rel)]
    if problems:
        raise RenderError("constructs outside the report's Quarto subset (docs/DESIGN.md):\n  "
                          + "\n  ".join(problems))
    numbering = number_book(chapters)
    problems = ref_problems(chapters, numbering, book.bibliography)
    if problems:
        raise RenderError("unresolved references:\n  " + "\n  ".join(problems))

    run_pre_render(book)
    book = load_book(root)  # as Quarto re-reads the project: the pre-render step wrote metadata files
    runs = execute_book(book, chapters, jobs or default_jobs(), progress)

    with tempfile.TemporaryDirectory(prefix="sgdlab-render-") as tmp:
        build = Path(tmp)
        outputs = write_outputs(book, chapters, numbering, runs, to, build)
        preview = write_preview(book, chapters, runs, build) if to in ("html", "all") else None
        published = _publish(outputs + ([preview] if preview else []), book.output_dir, complete=to == "all",
                             build=build)
        return published[:len(outputs)]


def write_preview(book: Book, chapters: list, runs: list[ChapterRun], build: Path) -> Path | None:
    """The link-preview image (`book: image:`) at its path under build, as Quarto's site has it:
    a file of the project, or a figure Quarto writes (site.figure_output); None without one."""
    image = book.site.image if book.site else ""
    if not image or "://" in image:
        return None
    rel = image.lstrip("/")
    out = build / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    if (book.root / rel).is_file():
        shutil.copyfile(book.root / rel, out)
        return out
    png = figure_output(rel, chapters, runs)
    if png is None:
        raise RenderError(f"_quarto.yml: `book: image: {image}` is neither a file of the project nor a figure"
                          " of the book (<chapter>_files/figure-html/<label>-output-<n>.png, as Quarto names it)")
    out.write_bytes(png)
    return out


def execute_book(book: Book, chapters: list, jobs: int, progress: bool = False) -> list[ChapterRun]:
    """Every chapter's outputs: read back when its code is unchanged (chapters.py), else executed,
    up to `jobs` chapters at once (in document order of start).

    The bar counts finished chapters and names those still running.
    """
    work = [Job(doc, ch.rel, book.root if book.execute_dir_project else ch.path.parent) for ch, doc in chapters]
    inputs = freeze.inputs(book.root)
    keys = [stored.key(job, book.execute, book.root, inputs) for job in work]
    runs = [stored.load(job, key, book.execute) for job, key in zip(work, keys, strict=True)]
    todo = [k for k, run in enumerate(runs) if run is None]
    bar = tqdm(total=len(work), initial=len(work) - len(todo), desc="render", unit="chapter",
               disable=None if progress else True, file=sys.stderr)
    running: list[str] = []
    started_at: dict[int, float] = {}
    seconds: dict[int, float] = {}  # what each executed chapter took, for the cache's log

    def started(j: int) -> None:
        started_at[todo[j]] = time.perf_counter()
        running.append(work[todo[j]].name)
        bar.set_postfix_str(", ".join(running))

    def finished(j: int) -> None:
        k = todo[j]
        seconds[k] = time.perf_counter() - started_at[k]
        running.remove(work[k].name)
        bar.set_postfix_str(", ".join(running), refresh=False)
        bar.update()

    with bar:
        fresh = run_chapters([work[k] for k in todo], book.execute, jobs, on_start=started, on_done=finished)
    for k, run in zip(todo, fresh, strict=True):
        runs[k] = run
        stored.save(work[k], keys[k], book.execute, run, seconds[k])
    return runs


# Where Quarto's HTML render writes a cell's n-th output when it is an image (src/core/jupyter/jupyter.ts).
FIGURE_FILE = re.compile(r"(?P<chapter>.+)_files/figure-html/(?P<label>[^/]+)-output-(?P<n>\d+)\.png")


def figure_output(rel: str, chapters: list, runs: list[ChapterRun]) -> bytes | None:
    """The PNG that Quarto's HTML render writes to the project path rel, from the executed chapters."""
    m = FIGURE_FILE.fullmatch(rel)
    if m is None:
        return None
    for (ch, doc), run in zip(chapters, runs, strict=True):
        if Path(ch.rel).with_suffix("").as_posix() != m["chapter"]:
            continue
        cells = [i for i, ev in enumerate(doc.events) if ev.kind == "cell" and ev.cell.label == m["label"]]
        outputs = run.outputs.get(cells[0], []) if cells else []
        n = int(m["n"])
        data = outputs[n - 1].get("data", {}) if 1 <= n <= len(outputs) else {}
        return base64.b64decode(data["image/png"]) if "image/png" in data else None
    return None


def book_markdown(book: Book, chapters: list, numbering, runs: list[ChapterRun], fmt: str, build: Path) -> str:
    """The whole book as the Markdown handed to Pandoc for fmt ("html" or "typst"); figures go under build."""
    code_fold = bool((book.formats.get("html") or {}).get("code-fold"))
    execute = book.execute_for("pdf" if fmt == "typst" else fmt)
    site = book.site if fmt == "html" else None  # repository links: HTML only, as Quarto's
    return "\n\n".join(chapter_markdown(doc, run, Ctx(fmt, ch, numbering, build, code_fold), execute)
                        + (site.actions_markdown(ch.rel) if site else "")
                        for (ch, doc), run in zip(chapters, runs, strict=True))


def write_outputs(book: Book, chapters: list, numbering, runs: list[ChapterRun], to: str,
                  build: Path) -> list[Path]:
    """Assemble the executed chapters per format and convert: build/index.html, build/<slug>.pdf."""
    formats = {"html": ["html"], "pdf": ["typst"], "all": ["html", "typst"]}[to]
    markdowns = {}
    for fmt in formats:  # one after the other: both write the figures under build/
        markdowns[fmt] = book_markdown(book, chapters, numbering, runs, fmt, build)
        (build / f"book-{fmt}.md").write_text(markdowns[fmt], encoding="utf-8")
    # Pandoc and Typst at once: each conversion is a process (or Rust code) of its own.
    with concurrent.futures.ThreadPoolExecutor(len(formats)) as pool:
        futures = [pool.submit(write_html if fmt == "html" else write_pdf, markdowns[fmt], book, build)
                   for fmt in formats]
        return [f.result() for f in futures]
