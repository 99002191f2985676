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
from . import editions, freeze, twins
from .book import Book, RenderError, load_book
from .crossref import number_book, parse_chapters, ref_problems
from .execute import ChapterRun, Job, default_jobs, run_chapters
from .markdown import Ctx, chapter_markdown
from .output import write_html, write_pdf
from .quarto import _swap_in
from .site import SiteError, write_override
from .subset import doc_problems
from .words import words


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
            # Quarto names the active profile to its pre-render step (QUARTO_PROFILE)
            env = {**os.environ, **({"QUARTO_PROFILE": book.profile} if book.profile else {})}
            proc = subprocess.run(cmd, cwd=book.root, capture_output=True, text=True, env=env)
        except OSError as e:
            raise RenderError(f"pre-render script {script!r} (_quarto.yml) could not run: {e}") from None
        if proc.returncode != 0:
            raise RenderError(f"pre-render script {script!r} failed (exit {proc.returncode}):\n"
                              + (proc.stderr or proc.stdout).strip())
        for line in proc.stdout.splitlines():
            print(line, file=sys.stderr)


def render_builtin(root: Path, to: str = "all", progress: bool = False, jobs: int | None = None,
                   lang: str = "all") -> list[Path]:
    """Render the book at root to _book/index.html and/or _book/<Book-title>.pdf, `jobs` kernels at once;
    with editions (editions.py), each asked for by lang into its own output-dir, then the site assembled."""
    profiles = editions.selected(root, lang)
    problems = editions.check(root)
    if problems:
        raise RenderError("the editions do not have the same chapters:\n  " + "\n  ".join(problems))
    parsed = [(book, *_checked(book)) for book in (load_book(root, profile) for profile in profiles)]
    run_pre_render(parsed[0][0])
    # as Quarto re-reads the project after its pre-render step, each edition with its addresses (site.py)
    parsed = [(_load_edition(root, book.profile), chapters, numbering) for book, chapters, numbering in parsed]
    _load_edition(root, profiles[0])  # and the site's own addresses left for `quarto publish`
    runs = execute_chapters([(book, ch, doc) for book, chapters, _ in parsed for ch, doc in chapters],
                            jobs or default_jobs(), progress)
    problems = [p for book, chapters, _ in parsed for p in inline_drift(book, chapters, runs)]
    if problems:
        raise RenderError("the editions print different inline values:\n  " + "\n  ".join(problems))
    written = []
    with tempfile.TemporaryDirectory(prefix="sgdlab-render-") as tmp:
        for k, (book, chapters, numbering) in enumerate(parsed):
            build = Path(tmp) / str(k)
            build.mkdir()
            mine = [runs[ch.rel] for ch, _ in chapters]
            files = write_outputs(book, chapters, numbering, mine, to, build)
            preview = write_preview(book, chapters, mine, build) if to in ("html", "all") else None
            written += _publish(files + ([preview] if preview else []), book.output_dir, complete=to == "all",
                                build=build)[:len(files)]
    for line in editions.assemble(root) if any(profiles) else []:
        print(line, file=sys.stderr)
    return written


def _load_edition(root: Path, profile: str | None) -> Book:
    """An edition's book as Quarto reads it after that edition's pre-render step: assets/site.yml
    holds its addresses (site.py). A book without editions keeps what its pre-render step wrote."""
    if profile is not None:
        try:
            write_override(root, profile=profile)
        except SiteError as e:
            raise RenderError(str(e)) from None
    return load_book(root, profile)


def _checked(book: Book) -> tuple[list, object]:
    """A book's parsed chapters and numbering, once everything that needs no code is checked: a subset
    violation or a dangling @ref fails in a second, not after minutes of experiments."""
    chapters = parse_chapters(book)
    problems = [p for ch, doc in chapters for p in doc_problems(doc, ch.rel)]
    if problems:
        raise RenderError("constructs outside the report's Quarto subset (docs/DESIGN.md):\n  "
                          + "\n  ".join(problems))
    numbering = number_book(chapters)
    problems = ref_problems(chapters, numbering, book.bibliography)
    if problems:
        raise RenderError("unresolved references:\n  " + "\n  ".join(problems))
    return chapters, numbering


def inline_drift(book: Book, chapters: list, runs: dict[str, ChapterRun]) -> list[str]:
    """A translation whose inline values differ from its original's (both executed), one line each."""
    edition = editions.edition_of(book)
    out = []
    for ch, _ in chapters:
        source = editions.original(ch.rel, edition.profile) if edition else ch.rel
        if source != ch.rel and source in runs:
            mine, theirs = _values(runs[ch.rel]), _values(runs[source])
            k = twins.value_drift(mine, theirs)
            if k is not None:
                out.append(f"{ch.rel}: inline value {k + 1} is {mine[k] if k < len(mine) else 'missing'!r},"
                           f" {source} prints {theirs[k] if k < len(theirs) else 'nothing'!r}")
    return out


def _values(run: ChapterRun) -> list[str]:
    return [v for i in sorted(run.inline) for v in run.inline[i]]


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
    """Every chapter's outputs, in the book's order (execute_chapters)."""
    runs = execute_chapters([(book, ch, doc) for ch, doc in chapters], jobs, progress)
    return [runs[ch.rel] for ch, _ in chapters]


def kernel_env(book: Book, ch) -> dict[str, str]:
    """What Quarto tells a chapter's kernel about its document (the language of its figures: i18n.py)."""
    return {"QUARTO_DOCUMENT_PATH": str(ch.path.parent), "QUARTO_DOCUMENT_FILE": ch.path.name}


def execute_chapters(items: list[tuple[Book, object, object]], jobs: int,
                     progress: bool = False) -> dict[str, ChapterRun]:
    """Every chapter's outputs by file: read back when its code is unchanged (chapters.py), else executed,
    up to `jobs` chapters at once (in the order given). A file listed by two editions (a chapter not
    translated yet) executes once.

    The bar counts finished chapters and names those still running.
    """
    unique: dict[str, tuple[Book, object, object]] = {}
    for book, ch, doc in items:
        unique.setdefault(ch.rel, (book, ch, doc))
    books = [book for book, _, _ in unique.values()]
    work = [Job(doc, ch.rel, book.root if book.execute_dir_project else ch.path.parent, kernel_env(book, ch))
            for book, ch, doc in unique.values()]
    inputs = freeze.inputs(books[0].root) if books else {}
    keys = [stored.key(job, book.execute, book.root, inputs) for job, book in zip(work, books, strict=True)]
    runs = [stored.load(job, key, book.execute) for job, key, book in zip(work, keys, books, strict=True)]
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
        fresh = run_chapters([work[k] for k in todo], books[0].execute if books else {}, jobs,
                             on_start=started, on_done=finished)
    for k, run in zip(todo, fresh, strict=True):
        runs[k] = run
        stored.save(work[k], keys[k], books[k].execute, run, seconds[k])
    return {job.name: run for job, run in zip(work, runs, strict=True)}


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
    """The whole book as the Markdown handed to Pandoc for fmt ("html" or "typst"); figures go under build.

    In Quarto's words for the book's language; with editions, each chapter's title carries its twins'
    links, and a chapter not translated yet says so (editions.py).
    """
    code_fold = bool((book.formats.get("html") or {}).get("code-fold"))
    execute = book.execute_for("pdf" if fmt == "typst" else fmt)
    names = words(book.lang, book.language)
    switch = editions.others(book)
    note = editions.untranslated_note(book)
    english_only = set(editions.untranslated(book))
    site = book.site if fmt == "html" else None  # repository links: HTML only, as Quarto's
    return "\n\n".join(
        chapter_markdown(doc, run, Ctx(fmt, ch, numbering, build, code_fold, names, switch,
                                       note if ch.rel in english_only else None), execute)
        + (site.actions_markdown(ch.rel, names) if site else "")
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
        futures = [pool.submit(write_html, markdowns[fmt], book, build, editions.switch_html(book)) if fmt == "html"
                   else pool.submit(write_pdf, markdowns[fmt], book, build) for fmt in formats]
        return [f.result() for f in futures]
