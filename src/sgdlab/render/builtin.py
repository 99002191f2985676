"""The built-in engine: check, execute, assemble, convert; publish into _book/ only on success."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from .book import Book, RenderError, load_book
from .crossref import number_book, parse_chapters, ref_problems
from .execute import ChapterRun, run_chapter
from .markdown import Ctx, chapter_markdown
from .output import write_html, write_pdf
from .subset import doc_problems


def _publish(files: list[Path], dest: Path) -> list[Path]:
    """Move finished outputs into dest, each replacing its old version atomically."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        tmp = dest / f".{f.name}.partial"
        shutil.copyfile(f, tmp)
        os.replace(tmp, dest / f.name)
        out.append(dest / f.name)
    return out


def render_builtin(root: Path, to: str = "all", progress: bool = False) -> list[Path]:
    """Render the book at root to _book/index.html and/or _book/<Book-title>.pdf."""
    book: Book = load_book(root)
    chapters = parse_chapters(book)
    # Everything that can be checked without running code is checked first: a subset
    # violation or a dangling @ref fails in a second, not after minutes of experiments.
    problems = [p for ch, doc in chapters for p in doc_problems(doc, ch.rel)]
    if problems:
        raise RenderError("constructs outside the report's Quarto subset (DESIGN.md):\n  "
                          + "\n  ".join(problems))
    numbering = number_book(chapters)
    problems = ref_problems(chapters, numbering, book.bibliography)
    if problems:
        raise RenderError("unresolved references:\n  " + "\n  ".join(problems))

    runs: list[ChapterRun] = []
    bar = tqdm(chapters, desc="render", unit="chapter", disable=None if progress else True, file=sys.stderr)
    for ch, doc in bar:
        bar.set_postfix_str(ch.rel)
        cwd = root if book.execute_dir_project else ch.path.parent
        runs.append(run_chapter(doc, ch.rel, cwd, book.execute))

    with tempfile.TemporaryDirectory(prefix="sgdlab-render-") as tmp:
        build = Path(tmp)
        files = []
        formats = {"html": ["html"], "pdf": ["typst"], "all": ["html", "typst"]}[to]
        for fmt in formats:
            parts = [chapter_markdown(doc, run, Ctx(fmt, ch, numbering, build), book.execute)
                     for (ch, doc), run in zip(chapters, runs, strict=True)]
            markdown = "\n\n".join(parts)
            (build / f"book-{fmt}.md").write_text(markdown, encoding="utf-8")
            files.append((write_html if fmt == "html" else write_pdf)(markdown, book, build))
        return _publish(files, book.output_dir)
