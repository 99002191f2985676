"""`sgdlab render --engine quarto`: check LaTeX first, render a copy, publish _book/ only on success.

A failed Quarto render rewrites part of `_book/` and leaves `index.tex`/`index.log` at the
project root; so Quarto renders a copy of the project in a temporary folder (the results cache
stays the project's: SGDLAB_CACHE_DIR), and its `_book/` replaces ours only when it succeeds,
with its `_freeze/` (the chapters it need not execute next time: freeze.py).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .assets import cjk_fonts, kpsewhich, tinytex_dir
from .book import RenderError, load_book
from .freeze import FREEZE_DIR
from .site import SITE_FILE, write_override

# What Quarto's LaTeX for this book needs (its template with KOMA's scrreprt and xelatex,
# callouts, fonts), with the Debian package that has it. TinyTeX installs them on demand.
LATEX_FILES = {
    "scrreprt.cls": "texlive-latex-recommended",
    "unicode-math.sty": "texlive-latex-recommended",
    "latinmodern-math.otf": "fonts-lmodern",
    "tcolorbox.sty": "texlive-latex-extra",
    "pgf.sty": "texlive-pictures",
    "fontawesome5.sty": "texlive-fonts-extra",  # callouts' icons; texlive-latex-extra lacks it
}
CJK_FILES = {"xeCJK.sty": "texlive-lang-cjk"}  # only when the CJK font is there to use
# Left out of the copy Quarto renders: big, private, or output.
NOT_COPIED = (".git", ".venv", "_book", "_book-*", ".quarto", ".cache", "__pycache__", ".pytest_cache", ".hypothesis",
              ".ruff_cache", "*.egg-info")


def latex_problem() -> str | None:
    """One line naming what to install when the PDF cannot be made here, else None."""
    how_tinytex = "`quarto install tinytex`"
    if tinytex_dir() is not None:
        return None
    if shutil.which("xelatex") is None:
        return (f"no LaTeX engine (xelatex) for the PDF: run {how_tinytex}, or on Debian/Ubuntu `apt-get install"
                f" texlive-xetex {' '.join(sorted(set(LATEX_FILES.values())))}`; or use --to html")
    needed = {**LATEX_FILES, **(CJK_FILES if cjk_fonts() else {})}
    missing = {f: pkg for f, pkg in needed.items() if not kpsewhich(f)}
    if not missing:
        return None
    return (f"LaTeX lacks {', '.join(missing)} for the PDF: on Debian/Ubuntu `apt-get install"
            f" {' '.join(sorted(set(missing.values())))}`, or run {how_tinytex}; or use --to html")


def _copy_project(root: Path, dest: Path, keep_book: Path | None) -> None:
    """The sources Quarto reads, and for a one-format render the edition's current book (whose other
    format Quarto keeps: it updates the output in place)."""
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    if keep_book is not None and keep_book.is_dir():
        shutil.copytree(keep_book, dest / keep_book.relative_to(root))


def _swap_in(new: Path, old: Path) -> None:
    """Replace the directory old by new (on old's filesystem), keeping old until new is there."""
    staged = old.with_name(f".{old.name}.new")
    retired = old.with_name(f".{old.name}.old")
    for d in (staged, retired):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(new, staged)
    if old.exists():
        os.replace(old, retired)
    os.replace(staged, old)
    shutil.rmtree(retired, ignore_errors=True)


def _start(quarto: str, to: str | None, copy: Path, env: dict, profile: str | None = None) -> subprocess.Popen:
    cmd = [quarto, "render", *([] if to is None else ["--to", to])]
    cmd += [] if profile is None else ["--profile", profile]
    # A process group of its own, so that stopping it stops what it started (Pandoc, LaTeX, its Python).
    return subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=hasattr(os, "killpg"))


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a render and everything in its process group."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()


def _run_all(procs: dict[str, subprocess.Popen], progress: bool) -> dict[str, tuple[int, list[str]]]:
    """Wait for every process, streaming their output (prefixed by format when several run);
    the first failure terminates the others. Returns each one's exit code and last lines."""
    tails = {name: collections.deque(maxlen=40) for name in procs}

    def pump(name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            tails[name].append(line.rstrip("\n"))
            if progress:
                print(f"[{name}] {line}" if len(procs) > 1 else line, end="", file=sys.stderr)
        if proc.wait() != 0:
            for other in procs.values():
                _stop(other)

    threads = [threading.Thread(target=pump, args=item, daemon=True) for item in procs.items()]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:  # after Ctrl-C or a failure: nothing we started outlives us
        for proc in procs.values():
            _stop(proc)
            proc.wait()
        for t in threads:  # each ends at its pipe's end of file; then the pipes can close
            t.join(timeout=5)
        for proc in procs.values():
            proc.stdout.close()
    return {name: (proc.returncode, list(tails[name])) for name, proc in procs.items()}


def render_quarto(root: Path, quarto: str, to: str, progress: bool, jobs: int = 1, lang: str = "all") -> list[Path]:
    """Check, run `quarto render` on a copy with this Python's kernel, publish; return the outputs.

    With `--to all` and jobs ≥ 2, HTML and PDF render at once, each by its own `quarto render --to`
    in its own copy: Quarto executes every chapter once per format anyway, and one render keeps a
    single core busy. The two share the results cache (an entry computed by one is read by the
    other); the pages and the PDF are those of one `quarto render` (compared byte for byte).

    The editions (`--profile`, editions.py) render one after the other, the first first: each starts
    from the frozen chapters the one before left, so a chapter both list (not translated yet) is
    executed once, and their results and figures come from the cache. Then the site is assembled.
    """
    from . import editions

    if to in ("pdf", "all"):
        problem = latex_problem()
        if problem:
            raise RenderError(problem)
    profiles = editions.selected(root, lang)
    problems = editions.check(root)
    if problems:
        raise RenderError("the editions do not have the same chapters:\n  " + "\n  ".join(problems))
    found = []
    for profile in profiles:
        found += _render_edition(root, quarto, to, progress, jobs, profile)
    if profiles[0] is not None and (root / SITE_FILE).is_file():  # the site's own addresses, for `quarto publish`
        write_override(root, profile=profiles[0])
    for line in editions.assemble(root) if any(profiles) else []:
        print(line, file=sys.stderr)
    return found


def _render_edition(root: Path, quarto: str, to: str, progress: bool, jobs: int, profile: str | None) -> list[Path]:
    """One edition (a profile, or the book without one): rendered on copies, published into its output-dir."""
    env = {**os.environ, "QUARTO_PYTHON": sys.executable,
           "SGDLAB_CACHE_DIR": os.environ.get("SGDLAB_CACHE_DIR", str(root / ".cache" / "sgdlab"))}
    formats = ["html", "pdf"] if to == "all" and jobs >= 2 else [None if to == "all" else to]
    book = load_book(root, profile).output_dir
    with tempfile.TemporaryDirectory(prefix="sgdlab-quarto-") as tmp:
        copies = {fmt or to: Path(tmp) / (fmt or to) / root.name for fmt in formats}
        for copy in copies.values():
            _copy_project(root, copy, keep_book=book if to != "all" else None)
        outcome = _run_all({name: _start(quarto, fmt, copies[name], env, profile)
                            for name, fmt in zip(copies, formats, strict=True)}, progress)
        failed = [name for name, (code, _) in outcome.items() if code != 0]
        if failed:  # name the render that failed, not the one it stopped
            name = next((n for n in failed if outcome[n][0] != -signal.SIGTERM), failed[0])
            code, tail = outcome[name]
            which = f" --to {name}" if len(outcome) > 1 else ""
            which += f" --profile {profile}" if profile else ""
            raise RenderError(f"quarto render{which} failed (exit {code}); {root.name}/{book.name} is unchanged:\n"
                              + "\n".join(tail))
        out = book.relative_to(root)
        if not all((copy / out).is_dir() for copy in copies.values()):
            raise RenderError(f"quarto render wrote no {book.name}/ (is `output-dir` set in _quarto.yml?)")
        first, *others = copies.values()
        for other in others:  # the PDF render's file(s) beside the HTML render's pages, and its frozen outputs
            for made in (out, Path(FREEZE_DIR)):
                if (other / made).is_dir():
                    _merge(other / made, first / made)
        _swap_in(first / out, book)
        if (first / FREEZE_DIR).is_dir():
            _swap_in(first / FREEZE_DIR, root / FREEZE_DIR)
        if (first / SITE_FILE).is_file():  # the addresses the pre-render step wrote: `quarto publish` reads them
            (root / SITE_FILE).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first / SITE_FILE, root / SITE_FILE)
    found = [book / "index.html"] if to in ("html", "all") else []
    found += sorted(book.glob("*.pdf")) if to in ("pdf", "all") else []
    return [p for p in found if p.is_file()]


def _merge(src: Path, dest: Path) -> None:
    """Copy the files of src that dest lacks into dest (the two renders' outputs never overlap but
    for identical files: the stamp of freeze.py, the fonts under assets/)."""
    for path in src.rglob("*"):
        target = dest / path.relative_to(src)
        if path.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
