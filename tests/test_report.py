"""The real report: every chapter executes in a fresh Jupyter kernel, its numbers are the CLI's,
and a second execution gives the same numbers. (The full HTML/PDF render is `make report`.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sgdlab.render.book import load_book
from sgdlab.render.crossref import parse_chapters
from sgdlab.render.execute import run_chapter

ROOT = Path(__file__).resolve().parents[1]
BOOK = load_book(ROOT)
CHAPTERS = {ch.rel: (ch, doc) for ch, doc in parse_chapters(BOOK)}


def _execute(rel):
    _, doc = CHAPTERS[rel]
    return run_chapter(doc, rel, ROOT, BOOK.execute)


def _numbers(run) -> list[str]:
    """Everything a chapter prints as text: inline values and text/plain outputs, in order."""
    texts = [v for i in sorted(run.inline) for v in run.inline[i]]
    for i in sorted(run.outputs):
        for out in run.outputs[i]:
            data = out.get("data", {})
            texts += [data.get("text/markdown", ""), data.get("text/plain", "")] if data else [out.get("text", "")]
    return texts


@pytest.fixture(scope="module")
def baseline_run():
    return _execute("report/01-baseline.qmd")


@pytest.mark.parametrize("rel", [rel for rel in CHAPTERS if rel != "report/01-baseline.qmd"])
def test_chapter_executes(rel):
    run = _execute(rel)
    assert run.outputs or run.inline or not any(ev.kind == "cell" for ev in CHAPTERS[rel][1].events)


def test_baseline_chapter_numbers_are_the_clis(baseline_run):
    out = subprocess.run([sys.executable, "-m", "sgdlab.cli", "run", "baseline", "--json"],
                         capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)
    inline = {v for values in baseline_run.inline.values() for v in values}
    expected = {f"{s['final_loss']:f}", f"{s['w_error'][0]:.4f}", f"{s['w_error'][1]:.4f}",
                f"{s['b_error']:.4f}", f"{s['loss_floor']:.4e}", str(s["seed"]), str(s["lr"]), str(s["epochs"])}
    assert expected <= inline


def test_second_execution_gives_identical_numbers(baseline_run):
    again = _execute("report/01-baseline.qmd")
    assert _numbers(again) == _numbers(baseline_run)
