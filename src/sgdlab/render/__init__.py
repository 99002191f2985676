"""`sgdlab render`: Quarto when it is installed, else the built-in nbclient + Pandoc + Typst engine."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .book import RenderError, load_book
from .crossref import Target, check_refs, collect_refs, number_book, parse_chapters
from .subset import check_subset

__all__ = [
    "RenderError",
    "Target",
    "check_refs",
    "check_subset",
    "collect_refs",
    "load_book",
    "number_book",
    "parse_chapters",
    "render",
]

ENGINES = ("auto", "quarto", "builtin")
FORMATS = ("html", "pdf", "all")
LANGS = ("en", "zh", "all")


def quarto_path() -> str | None:
    """Quarto on PATH, or the one `pip install .[quarto]` put beside this Python (venv/bin)."""
    beside = Path(sys.executable).parent / "quarto"
    return shutil.which("quarto") or (str(beside) if beside.is_file() else None)


def render(root: Path, engine: str = "auto", to: str = "all", progress: bool = False,
           jobs: int | None = None, lang: str = "all") -> list[Path]:
    """Render the Quarto book at root into root/_book; return the output files.

    jobs: chapters executed at once by the built-in engine, and with Quarto, at 2 or more, HTML and
    PDF rendered at once (default: the CPUs available). lang: one edition (its profile: en, zh) or
    all of them (editions.py), each into its own output-dir, then copied together into the site.
    """
    root = Path(root).resolve()
    if engine not in ENGINES:
        raise RenderError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if to not in FORMATS:
        raise RenderError(f"unknown output format {to!r}; use one of {', '.join(FORMATS)}")
    has_quarto = quarto_path() is not None
    if engine == "quarto" and not has_quarto:
        raise RenderError("quarto not found on PATH; install it from https://quarto.org"
                          " or use --engine builtin")
    if engine == "quarto" or (engine == "auto" and has_quarto):
        from .execute import default_jobs
        from .quarto import render_quarto

        return render_quarto(root, quarto_path(), to, progress, jobs or default_jobs(), lang)
    from .builtin import render_builtin  # imports nbclient/pandoc glue only when needed

    return render_builtin(root, to, progress, jobs, lang)
