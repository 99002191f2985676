"""Figures and tables in the document's language (i18n.py): which language, every word translated, a CJK font."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import matplotlib.text
import pytest

from sgdlab import experiments, i18n, interactive, tables
from sgdlab.plots import baseline

SRC = Path(i18n.__file__).parent
CJK = re.compile(r"[\u4e00-\u9fff]")
# Names that stay as they are in Chinese: methods, formats, code.
KEPT = {"SGD", "SVRG", "Robbins", "Monro", "Polyak", "Ruppert", "float32", "float64", "eps", "inf", "tr", "Cov",
        "sgd", "nn", "Linear", "optim", "sha256", "torch", "toy", "clean", "noisy", "bias", "piecewise", "loss"}


@pytest.mark.parametrize("env, lang", [
    ({}, "en"), ({"QUARTO_DOCUMENT_FILE": "01-baseline.qmd"}, "en"),
    ({"QUARTO_DOCUMENT_FILE": "01-baseline.zh.qmd"}, "zh"), ({"QUARTO_DOCUMENT_FILE": "index.zh.qmd"}, "zh"),
    ({"QUARTO_DOCUMENT_FILE": "01-baseline.zh.qmd", "SGDLAB_LANG": "en"}, "en"),
    ({"SGDLAB_LANG": "zh"}, "zh"),
])
def test_the_language_is_the_documents(env, lang):
    assert i18n.language(env) == lang


def test_an_unknown_language_is_one_clear_error():
    with pytest.raises(ValueError, match="SGDLAB_LANG='fr': use one of en, zh"):
        i18n.language({"SGDLAB_LANG": "fr"})


def test_every_literal_word_of_the_figures_and_tables_has_a_translation():
    """Each `t("…")` of the package, and each word explore.js looks up, is in words-zh.yml."""
    keys = {node.args[0].value for path in SRC.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "t" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}
    assert len(keys) > 150
    zh = i18n.vocabulary("zh")
    assert sorted(k for k in keys if k not in zh) == []
    assert interactive.script_words() == {}  # English: nothing embedded
    assert len(i18n.words(list(zh), "zh")) == len(zh)


def _texts(fig) -> list[str]:
    return [a.get_text() for a in fig.findobj(matplotlib.text.Text) if a.get_text().strip()]


def test_english_figures_keep_their_words():
    texts = _texts(baseline.baseline_loss.draw(experiments.baseline()))
    assert {"epoch", "training loss (½ squared error)", "closed-form floor", "scratch", "concise"} <= set(texts)


def test_chinese_figures_and_tables_have_chinese_words_in_a_font_that_has_them(monkeypatch):
    """Chapter 1's figures and tables in Chinese: their words CJK (names and symbols kept), and no glyph
    missing from the fonts (matplotlib warns for each one it draws as a box)."""
    monkeypatch.setenv("SGDLAB_LANG", "zh")
    result = experiments.baseline()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures = [baseline.baseline_data.draw(result), baseline.baseline_loss.draw(result)]
        for fig in figures:
            fig.savefig(Path("/dev/null"), format="png")
    texts = [t for fig in figures for t in _texts(fig)]
    assert {"迭代周期", "解析解给出的下限", "从零实现", "简洁实现", "特征 $x_2$"} <= set(texts)
    words = {w for t in texts for w in re.findall(r"[A-Za-z_]\w{2,}", re.sub(r"\$[^$]*\$", "", t))}
    assert words <= KEPT, words - KEPT
    table = tables.baseline_comparison(result)
    assert all(CJK.search(c) for c in [*table.columns, table.index.name, *table.index]), table.columns


@pytest.mark.parametrize("held, english", [(33, "all 33 seeds"), (31, "31 of 33 seeds"), (0, "none of the 33 seeds")])
def test_a_claims_phrases_speak_the_documents_language(monkeypatch, held, english):
    """holds_in, mean_se and median_range in Chinese: Chinese words around the English edition's numbers;
    holds_in starts and ends with a Chinese character, whatever the count (the prose sets it unspaced)."""
    import numpy as np

    from sgdlab.claims import Checked
    from sgdlab.render import twins

    c = Checked("baseline-digits", tuple(range(20, 53)), np.linspace(1e-5, 3e-5, 33), np.arange(33) < held, None)
    monkeypatch.setenv("SGDLAB_LANG", "en")
    en = [c.holds_in(), c.mean_se(".1e"), c.mean_se(".2g", 100, " points"), c.median_range(".1e")]
    assert en[0] == english and "points (mean ± standard error over 33 seeds)" in en[2]
    monkeypatch.setenv("SGDLAB_LANG", "zh")
    zh = [c.holds_in(), c.mean_se(".1e"), c.mean_se(".2g", 100, " points"), c.median_range(".1e")]
    for mine, theirs in zip(zh, en, strict=True):
        words = re.sub(r"\$[^$]*\$", "", mine)
        assert CJK.search(mine) and not re.search(r"[A-Za-z]", words) and twins.same_value(mine, theirs), mine
    assert CJK.match(zh[0][0]) and CJK.match(zh[0][-1]), zh[0]
    percent = c.mean_se(".2g", 100, " %")  # Chinese sets "%" without a space, as D2L zh-v2 writes "95%"
    assert "%（" in percent and " %" not in percent, percent


def test_chapter_1s_tables_of_symbols_and_conventions_are_chinese_with_their_math_unchanged(monkeypatch):
    """tables.notation's meanings (looked up at run time, so not seen by the literal check above) and
    tables.conventions' rows: each translated, with the same $…$ math as the English."""
    from sgdlab import steepest

    zh = i18n.vocabulary("zh")
    for _, meaning in tables.NOTATION:
        assert meaning in zh, meaning
        assert sorted(re.findall(r"\$[^$]*\$", zh[meaning])) == sorted(re.findall(r"\$[^$]*\$", meaning)), meaning
    monkeypatch.setenv("SGDLAB_LANG", "zh")
    notation, conventions = tables.notation(), tables.conventions(steepest.curvature())
    assert all(CJK.search(m) for m in notation.iloc[:, 0]) and CJK.search(notation.index.name)
    assert all(CJK.search(str(c)) for c in [*conventions.index, *conventions.iloc[:, 0], conventions.index.name])
