"""sgdlab.notebook (tables as Markdown, Quarto's inline rule) and the fonts both engines take."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from IPython.display import Markdown

from sgdlab import notebook
from sgdlab.fmt import num
from sgdlab.render import assets

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value, shown", [
    ("hello", "hello"),  # a str as it is
    (3, "3"),
    (1 / 3, "0.3333333333333333"),
    (np.int64(19), "np.int64(19)"),  # numpy scalars as their repr, as Quarto shows them
    (np.float64(0.5), "np.float64(0.5)"),
    (int(np.int64(19)), "19"),
    (Markdown("**bold** `code`"), "**bold** `code`"),  # Markdown as Markdown
    ("a_b*c, d.", r"a\_b\*c\, d\."),  # a str's Markdown characters escaped (Quarto's asEscapedMarkdown)
    ("`x`", r"\`x\`"),
    ([1, 2], "[1, 2]"),
])
def test_inline_value_rule(value, shown):
    assert notebook.inline_markdown(value) == shown


def _rule(table: str) -> str:
    return table.splitlines()[1]


def test_narrow_table_keeps_natural_widths_and_aligns_numbers():
    df = pd.DataFrame({"n": [1, 20], "name": ["a", "b|c"]}, index=pd.Index(["x", "y"], name="row"))
    table = notebook.markdown_table(df)
    assert table.splitlines()[0] == "| row | n | name |"
    assert table.splitlines()[3] == r"| y | 20 | b\|c |"  # a bar in a cell does not split it
    assert re.fullmatch(r"\|:-+\|-+:\|:-+\|", _rule(table))  # numbers right-aligned, text left
    assert max(len(line) for line in table.splitlines()) <= notebook.PANDOC_COLUMNS  # auto widths


def test_wide_table_gets_relative_widths_and_short_columns_keep_room():
    long = "a long sentence that has to wrap inside its cell on any page " * 2
    df = pd.DataFrame({"text": [long, "short"], "value": ["0.000049", "-0.0008"], "code": ['`f"{x:f}"`', "-"]})
    table = notebook.markdown_table(df)
    rule = _rule(table)
    assert len(rule) > notebook.PANDOC_COLUMNS  # Pandoc then reads relative widths: cells wrap
    widths = [len(d) for d in rule.strip("|").split("|")]
    share = [w / sum(widths) for w in widths]
    # each short column's share of the page holds its longest word; the long text takes the rest
    chars = notebook.TEXT_WIDTH
    assert share[2] * chars >= len("0.000049") and share[3] * chars >= len('`f"{x:f}"`')
    assert share[1] == max(share)
    assert '| `f"{x:f}"` |' in table  # code stays a code span


def test_a_cross_reference_in_a_cell_counts_as_the_words_it_shows():
    """`@sec-steepest-quadratics` shows as "Section 3.4": its label's length must not claim the page."""
    long = "a long sentence that has to wrap inside its cell on any page " * 2
    df = pd.DataFrame({"text": [long, "short"], "supports": ["@sec-steepest-quadratics", "@sec-lf-floor"]})
    header, body = notebook._cells(df)
    shown = [[notebook._shown(c) for c in row] for row in [header, *body]]
    widths = notebook._widths(shown[0], shown[1:], [header, *body])  # index, text, supports; × Pandoc's stretch
    scale = widths[0] // 3  # the index column (0, 1) gets the least width, 3
    assert widths[2] == notebook.CROSSREF_WIDTH * scale  # not len("@sec-steepest-quadratics") * scale


def test_a_chinese_sentence_breaks_and_leaves_a_short_column_its_word():
    """A Chinese sentence has no spaces but breaks between any two characters: counted as one word it took
    the page, and the claims table's seeds column (20–276) was set one character wide."""
    sentence = "在可探索图的网格中原文设置的运行用常数步长训练结束时高于下限" * 3
    df = pd.DataFrame({"结论": [sentence, "短"], "种子": ["20–276", "20–4115"],
                       "成立的种子数": ["257 个中的 257 个", "—"]})
    widths = [len(d) for d in _rule(notebook.markdown_table(df)).strip("|").split("|")]
    share = [w / sum(widths) for w in widths]
    assert share[2] * notebook.TEXT_WIDTH >= len("20–4115") and share[3] * notebook.TEXT_WIDTH >= len("个中的 ")
    assert share[1] == max(share)


def test_a_formula_is_a_number_as_wide_as_it_reads_and_signs_are_minus_signs():
    """A cell of fmt.num is right-aligned and sized by what it shows (6.475295 × 10⁻⁸), not by its TeX."""
    long = "a long sentence that has to wrap inside its cell on any page " * 2
    df = pd.DataFrame({"text": [long, "short"], "loss": [num(6.475295e-8, ".6e"), num(8.9e-4, ".1e")],
                       "w": ["-0.0008", "(0.349, -0.580)"], "code": ["`f(-1)`", "-"]})
    table = notebook.markdown_table(df)
    widths = [len(d) for d in _rule(table).strip("|").split("|")]
    assert _rule(table).split("|")[3].endswith(":")  # right-aligned (after the index and the text)
    share = widths[2] / sum(widths)
    assert share * notebook.TEXT_WIDTH >= len("6.475295 × 10⁻⁸")  # its column holds the number
    assert share < 2 * len("6.475295 × 10⁻⁸") / notebook.TEXT_WIDTH  # ... not the 27 characters of its TeX
    assert r"| ${6.475295 \times 10^{-8}}$ |" in table  # the formula itself is left as it is
    assert "| −0.0008 |" in table and "(0.349, −0.580)" in table  # TeX never breaks after a minus sign
    assert "| `f(-1)` |" in table and table.endswith("| - |")  # code, and the "no value" dash, stay


def test_a_chinese_word_counts_twice_its_characters():
    """基准实验 is set as wide as eight Latin letters and never breaks: its column holds it whole."""
    long = "a long sentence that has to wrap inside its cell on any page " * 2
    df = pd.DataFrame({"loss": [long, "short"]}, index=pd.Index(["基准实验", "玩具模型"], name="问题"))
    widths = [len(d) for d in _rule(notebook.markdown_table(df)).strip("|").split("|")]
    assert widths[0] / sum(widths) * notebook.TEXT_WIDTH >= 2 * len("基准实验")


def test_setup_shows_dataframes_as_markdown_only():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        notebook.setup()
        data, _ = shell.display_formatter.format(pd.DataFrame({"a": [1]}))
    finally:
        InteractiveShell.clear_instance()
    assert "text/html" not in data
    assert data["text/markdown"].startswith("|  | a |")


def test_prepare_writes_fonts_from_the_packages(tmp_path):
    notes = assets.prepare(tmp_path)
    if assets.math_font() is not None:
        assert (tmp_path / assets.FONTS_DIR / assets.MATH_FONT).stat().st_size > 100_000
    text = (tmp_path / assets.PDF_FONTS).read_text(encoding="utf-8")
    if assets.cjk_fonts() is not None and not notes:
        assert "CJKmainfont: NotoSerifSC-Regular.otf" in text and "Path=" in text


def test_cjk_fallback_renders_without_the_font_and_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "cjk_fonts", lambda: None)
    notes = assets.prepare(tmp_path)
    cjk = [n for n in notes if "CJK" in n]
    assert len(cjk) == 1 and "\n" not in cjk[0] and "pylopdf-fonts-zh-cn" in cjk[0]
    text = (tmp_path / assets.PDF_FONTS).read_text(encoding="utf-8")
    assert "CJKmainfont" not in text  # xelatex then renders, without the Chinese characters


def test_prerender_script_runs_where_sgdlab_is_missing(tmp_path):
    """Quarto may run _prerender.py with another Python: it says so and lets the render go on."""
    out = subprocess.run([sys.executable, "-S", "-I", str(ROOT / "_prerender.py")], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.count("\n") == 1 and "QUARTO_PYTHON" in out.stdout
