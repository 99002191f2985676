"""`sgdlab render --engine quarto`: check LaTeX first, render a copy, publish _book/ only on success.

A failed Quarto render rewrites part of `_book/` and leaves `index.tex`/`index.log` at the
project root; so Quarto renders a copy of the project in a temporary folder (the results cache
stays the project's: SGDLAB_CACHE_DIR), and its `_book/` replaces ours only when it succeeds,
with its `_freeze/` (the chapters it need not execute next time: freeze.py).
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .assets import cjk_fonts, kpsewhich, tinytex_dir
from .book import RenderError, load_book
from .freeze import FREEZE_DIR

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
NOT_COPIED = (".git", ".venv", "_book", ".quarto", ".cache", "__pycache__", ".pytest_cache", ".hypothesis",
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


def _copy_project(root: Path, dest: Path) -> None:
    """The sources Quarto reads (and the current _book/, which Quarto updates in place)."""
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    book = load_book(root).output_dir
    if book.is_dir():
        shutil.copytree(book, dest / book.relative_to(root))


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


def render_quarto(root: Path, quarto: str, to: str, progress: bool) -> list[Path]:
    """Check, run `quarto render` on a copy with this Python's kernel, publish; return the outputs."""
    if to in ("pdf", "all"):
        problem = latex_problem()
        if problem:
            raise RenderError(problem)
    cmd = [quarto, "render"] + ([] if to == "all" else ["--to", to])
    env = {**os.environ, "QUARTO_PYTHON": sys.executable,
           "SGDLAB_CACHE_DIR": os.environ.get("SGDLAB_CACHE_DIR", str(root / ".cache" / "sgdlab"))}
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with tempfile.TemporaryDirectory(prefix="sgdlab-quarto-") as tmp:
        copy = Path(tmp) / root.name
        _copy_project(root, copy)
        with subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") as proc:
            for line in proc.stdout:
                tail.append(line.rstrip("\n"))
                if progress:
                    print(line, end="", file=sys.stderr)
        if proc.returncode != 0:
            raise RenderError(f"quarto render failed (exit {proc.returncode}); {root.name}/_book is unchanged:\n"
                              + "\n".join(tail))
        book = load_book(root).output_dir
        built = copy / book.relative_to(root)
        if not built.is_dir():
            raise RenderError(f"quarto render wrote no {book.name}/ (is `output-dir` set in _quarto.yml?)")
        _swap_in(built, book)
        if (copy / FREEZE_DIR).is_dir():
            _swap_in(copy / FREEZE_DIR, root / FREEZE_DIR)
    found = [book / "index.html"] if to in ("html", "all") else []
    found += sorted(book.glob("*.pdf")) if to in ("pdf", "all") else []
    return [p for p in found if p.is_file()]
