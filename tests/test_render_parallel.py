"""The built-in engine executes chapters at once: same Markdown as one at a time, the same first error,
and no kernel process left behind, whether a chapter fails or Ctrl-C stops the render."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sgdlab.render import RenderError, load_book, number_book, parse_chapters
from sgdlab.render.builtin import book_markdown
from sgdlab.render.execute import Job, default_jobs, run_chapters

FIXTURE = Path(__file__).parent / "fixtures" / "book"
PROJECT = Path(__file__).resolve().parents[1]


def copy_book(tmp_path: Path) -> Path:
    root = tmp_path / "book"
    shutil.copytree(FIXTURE, root)
    return root


def append_cell(root: Path, rel: str, code: str) -> None:
    with (root / rel).open("a", encoding="utf-8") as f:
        f.write(f"\n```{{python}}\n{code}\n```\n")


def kernels_in(root: Path) -> list[int]:
    """Live processes whose working directory is root: the book's kernels (execute-dir: project)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == root \
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _jobs(root: Path):
    book = load_book(root)
    chapters = parse_chapters(book)
    return book, chapters, [Job(doc, ch.rel, book.root) for ch, doc in chapters]


def test_default_jobs_is_the_cpus_available():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_jobs() == max(1, expected)


def test_markdown_is_the_same_whatever_the_kernels_at_once_and_their_order(tmp_path):
    root = copy_book(tmp_path)
    book, chapters, work = _jobs(root)
    numbering = number_book(chapters)
    one_by_one = run_chapters(work, book.execute, workers=1)
    backwards = run_chapters(work, book.execute, workers=len(work), start=list(range(len(work)))[::-1])
    for fmt in ("html", "typst"):
        a, b = tmp_path / f"a-{fmt}", tmp_path / f"b-{fmt}"
        markdown = book_markdown(book, chapters, numbering, one_by_one, fmt, a)
        assert "![" in markdown and "alpha" in markdown  # a figure and an inline value: the cells ran
        assert book_markdown(book, chapters, numbering, backwards, fmt, b) == markdown
        figures = sorted(p.relative_to(a) for p in a.rglob("*.png"))
        assert figures and figures == sorted(p.relative_to(b) for p in b.rglob("*.png"))
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in figures)


def test_first_failing_chapter_in_document_order_wins_and_later_kernels_are_stopped(tmp_path):
    root = copy_book(tmp_path)
    # alpha fails last, beta first; the appendix would write a file after a long sleep.
    append_cell(root, "report/01-alpha.qmd", 'import time\ntime.sleep(1.5)\nraise ValueError("alpha fails")')
    append_cell(root, "report/02-beta.qmd", 'raise ValueError("beta fails")')
    append_cell(root, "report/90-extra.qmd", 'import time, pathlib\ntime.sleep(60)\npathlib.Path("ran").touch()')
    book, _, work = _jobs(root)
    with pytest.raises(RenderError) as err:
        run_chapters(work, book.execute, workers=3)
    assert "report/01-alpha.qmd" in str(err.value) and "ValueError: alpha fails" in str(err.value)
    assert not (root / "ran").exists()  # the appendix's kernel was stopped, not waited for
    assert kernels_in(root) == []


def test_ctrl_c_ends_with_130_one_line_and_no_kernel(tmp_path):
    root = copy_book(tmp_path)
    for rel in ("report/01-alpha.qmd", "report/02-beta.qmd"):
        append_cell(root, rel, f'import time, pathlib\npathlib.Path("{Path(rel).stem}.started").touch()\n'
                               'time.sleep(60)')
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab.cli", "render", "--engine", "builtin", "--jobs", "2"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # a bound on a hang, not a timing claim
        while not ((root / "01-alpha.started").exists() and (root / "02-beta.started").exists()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert len(set(kernels_in(root)) - {proc.pid}) == 2
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "sgdlab: interrupted\n" and out == ""
    assert kernels_in(root) == []


def test_jobs_below_one_is_refused_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sgdlab.cli", "render", "--engine", "builtin", "--jobs", "0"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == "sgdlab: error: --jobs must be ≥ 1, got 0\n"
