"""The real report: every chapter executes in a fresh Jupyter kernel, its numbers are the CLI's,
and a second execution gives the same numbers. (The full HTML/PDF render is `make report`.)"""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sgdlab.fmt import num
from sgdlab.render import qmd
from sgdlab.render.book import load_book
from sgdlab.render.builtin import run_pre_render, write_outputs
from sgdlab.render.crossref import number_book, parse_chapters
from sgdlab.render.execute import run_chapter

ROOT = Path(__file__).resolve().parents[1]
BOOK = load_book(ROOT)
CHAPTERS = {ch.rel: (ch, doc) for ch, doc in parse_chapters(BOOK)}


def _execute(rel):
    _, doc = CHAPTERS[rel]
    return run_chapter(doc, rel, ROOT, BOOK.execute)


@pytest.fixture(scope="module")
def runs():
    """Every chapter executed once (a fresh kernel each), shared by the tests below."""
    return {rel: _execute(rel) for rel in CHAPTERS}


def _numbers(run) -> list[str]:
    """Everything a chapter prints as text: inline values and text/plain outputs, in order."""
    texts = [v for i in sorted(run.inline) for v in run.inline[i]]
    for i in sorted(run.outputs):
        for out in run.outputs[i]:
            data = out.get("data", {})
            texts += [data.get("text/markdown", ""), data.get("text/plain", "")] if data else [out.get("text", "")]
    return texts


@pytest.fixture(scope="module")
def baseline_run(runs):
    return runs["report/01-baseline.qmd"]


@pytest.mark.parametrize("rel", list(CHAPTERS))
def test_chapter_executes(rel, runs):
    run = runs[rel]
    assert run.outputs or run.inline or not any(ev.kind == "cell" for ev in CHAPTERS[rel][1].events)


def test_no_inline_value_prints_a_python_repr(runs):
    """Quarto prints a numpy scalar as `np.int64(19)`: inline values are str or plain numbers."""
    reprs = [f"{rel}: {v}" for rel, run in runs.items() for vs in run.inline.values() for v in vs
             if re.search(r"\b(np|numpy)\.\w+\(|^<.* object at 0x", v)]
    assert reprs == []


def test_no_table_is_html(runs):
    """A text/html output makes Quarto put require.js and jQuery from a CDN into the page."""
    html = [f"{rel}: cell {i}" for rel, run in runs.items() for i, outs in run.outputs.items()
            for out in outs if "text/html" in out.get("data", {})]
    assert html == []


@pytest.fixture(scope="module")
def builtin_book(runs, tmp_path_factory) -> dict[str, Path]:
    """The book's HTML page and PDF, converted once by the built-in engine from the chapters run above."""
    run_pre_render(BOOK)  # as a render does: the fonts under assets/, which a fresh clone lacks
    book = load_book(ROOT)  # and the metadata files the pre-render step wrote
    chapters = parse_chapters(book)
    html, pdf = write_outputs(book, chapters, number_book(chapters), [runs[ch.rel] for ch, _ in chapters], "all",
                              tmp_path_factory.mktemp("book"))
    return {"html": html, "pdf": pdf}


def test_every_table_of_the_builtin_pdf_fits_the_page(builtin_book):
    """No word of the book's PDF within 0.5 in of the paper's edge (tables wrap, code fits), and no two
    words printed over each other (a table longer than the page, such as the notation table, continues
    on the next page instead of piling its last rows up at the bottom of this one)."""
    from test_render import words_off_the_text_area, words_printed_over_each_other

    assert words_off_the_text_area(builtin_book["pdf"]) == []
    assert words_printed_over_each_other(builtin_book["pdf"]) == []


def test_no_line_of_the_builtin_pdf_ends_inside_a_number(builtin_book):
    from test_render import numbers_broken_across_lines

    assert numbers_broken_across_lines(builtin_book["pdf"]) == []


class _Prose(HTMLParser):
    """The text a reader reads on the page, without code, folded cells, scripts, styles and TeX sources."""

    SKIP = frozenset({"code", "pre", "details", "script", "style", "annotation"})

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        self.depth += tag in self.SKIP

    def handle_endtag(self, tag):
        self.depth -= tag in self.SKIP

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


# A number in e-notation (4.8e-05; not inside a word: digests such as 1e2368cc are not numbers),
# and a hyphen-minus sign (-0.0119: TeX may break a line after a hyphen, fmt.num writes U+2212).
E_NOTATION = re.compile(r"(?<![\w.])[-+]?\d+(\.\d+)?[eE][-+]?\d+(?!\w)")
HYPHEN_SIGN = re.compile(r"(?<![\w.)\]])-\.?\d")


def test_the_builtin_html_prints_no_e_notation_and_no_hyphen_signs(builtin_book):
    """Prose and tables show 1.8 × 10⁻⁷ (MathML) and −0.0119, whatever code spans and folded cells show."""
    parser = _Prose()
    parser.feed(builtin_book["html"].read_text(encoding="utf-8"))
    text = " ".join(" ".join(parser.parts).split())
    found = [text[max(0, m.start() - 40):m.end() + 10] for p in (E_NOTATION, HYPHEN_SIGN) for m in p.finditer(text)]
    assert found == []


def test_baseline_chapter_numbers_are_the_clis(baseline_run):
    out = subprocess.run([sys.executable, "-m", "sgdlab.cli", "run", "baseline", "--json"],
                         capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)
    # as a reader sees them: Quarto escapes a str's Markdown characters (0\.000049 shows 0.000049)
    inline = {re.sub(r"\\([^\w\s])", r"\1", v) for values in baseline_run.inline.values() for v in values}
    expected = {f"{s['final_loss']:f}", num(s["w_error"][0], ".4f"), num(s["w_error"][1], ".4f"),
                num(s["b_error"], ".4f"), num(s["loss_floor"], ".4e"), str(s["seed"]), str(s["lr"]), str(s["epochs"])}
    assert expected <= inline


def test_second_execution_gives_identical_numbers_and_a_warm_one_does_not_import_torch(baseline_run, tmp_path,
                                                                                       monkeypatch):
    """Executed again with the cache on (cold: computes and stores), then once more (warm: reads it back).

    A final inline probe tells whether the kernel imported torch: every result of a warm chapter
    comes from the cache, and nothing else in it may need torch (sgdlab/_lazy.py).
    """
    rel = "report/01-baseline.qmd"
    doc = qmd.parse((ROOT / rel).read_text() + "\n\n`{python} str('torch' in __import__('sys').modules)`\n", ROOT / rel)
    monkeypatch.delenv("SGDLAB_NO_CACHE")  # the kernels inherit this environment
    monkeypatch.setenv("SGDLAB_CACHE_DIR", str(tmp_path))
    cold, warm = (run_chapter(doc, rel, ROOT, BOOK.execute) for _ in range(2))
    assert cold.inline.pop(max(cold.inline)) == ["True"]  # the probe can tell: computing imports torch
    assert warm.inline.pop(max(warm.inline)) == ["False"]
    assert _numbers(cold) == _numbers(baseline_run)
    assert _numbers(warm) == _numbers(baseline_run)
