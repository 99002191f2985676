"""Two editions, one set of cells: translations run their originals' code, print the same values, read as
Chinese, link to their English twins, and the built-in engine writes Quarto's Chinese words."""

from __future__ import annotations

import posixpath
import re
import shutil
from pathlib import Path

import pytest
import yaml

from sgdlab.render import assets, editions, qmd, render, twins
from sgdlab.render.book import load_book
from sgdlab.render.builtin import book_markdown, kernel_env
from sgdlab.render.crossref import number_book, parse_chapters
from sgdlab.render.execute import ChapterRun, Job, run_chapters
from sgdlab.render.output import write_html
from sgdlab.render.subset import CROSSREF_KINDS

PROJECT = Path(__file__).resolve().parents[1]
UP_INDEX = posixpath.join("..", "index.html")  # the English page of a Chinese one: zh/ is one folder down
FIXTURES = Path(__file__).parent / "fixtures"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
# What is not prose: math, code, the bibliography's entries, scripts and styles, the switch, figures' SVG.
NOT_PROSE = re.compile(r"<(math|code|pre|script|style|svg|nav)\b.*?</\1>|<div id=\"refs\".*?</div>\s*</div>"
                       r"|<div class=\"sgdlab-editions\">.*?</div>", re.S)


def translated_pairs() -> list[tuple[str, str]]:
    """(translation, original) of every translated chapter of the project's non-default editions."""
    known = editions.editions(PROJECT)
    return [(ch.rel, editions.original(ch.rel, e.profile)) for e in known[1:]
            for ch in load_book(PROJECT, e.profile).chapters if editions.is_translation(ch.rel, e.profile)]


def test_the_project_has_both_editions_with_the_same_chapters_and_code():
    assert [e.profile for e in editions.editions(PROJECT)] == ["en", "zh"]
    assert len(translated_pairs()) >= 4  # the preface, chapter 1, both appendices (and references)
    assert editions.check(PROJECT) == []


@pytest.mark.parametrize("old, new, complaint", [
    ("n = len(xs)", "n = len(xs) + 1", "cell 1's code differs"),
    ('#| label: fig-line\n', '#| label: fig-line\n#| echo: true\n', "cell 2's options"),
    ("{#eq-quad}", "{#eq-square}", "labels differ"),
    ("`{python} 2 * n`", "`{python} 3 * n`", "inline expressions differ"),
    ("L(w) = \\frac{1}{2} (w - 1)^2", "L(w) = (w - 1)^2", "display math differ"),
    ("在 $w$ 附近", "在 $v$ 附近", "inline math differ"),
    ("@cor-rate 和", "和", "cross-references differ"),
])
def test_a_translation_that_drifts_from_its_original_is_named(old, new, complaint):
    """Each kind of drift the editions must not have fails the check with the file and what differs."""
    original = qmd.read(FIXTURES / "book" / "report" / "01-alpha.qmd")
    text = (FIXTURES / "book-zh" / "report" / "01-alpha.zh.qmd").read_text(encoding="utf-8")
    assert twins.problems(original, qmd.parse(text, Path("x")), "zh", "en") == []
    assert old in text
    found = twins.problems(original, qmd.parse(text.replace(old, new, 1), Path("x")), "zh", "en")
    assert len(found) == 1 and complaint in found[0], found


def test_the_words_in_text_are_translated_but_the_formula_around_them_is_not():
    """\\text{…} holds prose (a case label, "past"): the translation may change its words, not the math."""
    english = "$$\n\\mathbb{E}[f \\mid \\text{past}] = 0\n$$ {#eq-x}\n\nand $g \\mid \\text{past}$.\n"
    original = qmd.parse(english, Path("a"))
    same = "$$\n\\mathbb{E}[f \\mid \\text{过去}] = 0\n$$ {#eq-x}\n\n而 $g \\mid \\text{过去}$。\n"
    assert twins.problems(original, qmd.parse(same, Path("b")), "zh", "en") == []
    for drift, complaint in ((same.replace("= 0", "= 1"), "display math"), (same.replace("$g", "$h"), "inline math")):
        found = twins.problems(original, qmd.parse(drift, Path("b")), "zh", "en")
        assert len(found) == 1 and complaint in found[0], found


def zh_fixture(tmp_path: Path) -> Path:
    """The fixture book with a Chinese edition: its chapter lists moved into _quarto-en.yml (Quarto joins
    a profile's lists to _quarto.yml's), the editions declared, the translations of book-zh/ added."""
    root = tmp_path / "book"
    shutil.copytree(FIXTURES / "book", root)
    shutil.copytree(FIXTURES / "book-zh", root, dirs_exist_ok=True)
    cfg = yaml.safe_load((root / "_quarto.yml").read_text(encoding="utf-8"))
    lists = {k: cfg["book"].pop(k) for k in ("chapters", "appendices")}
    cfg["profile"] = {"default": "en"}
    cfg["sgdlab-editions"] = [{"profile": "en", "name": "English", "lang": "en"},
                              {"profile": "zh", "name": "中文", "lang": "zh-Hans"}]
    (root / "_quarto.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    (root / "_quarto-en.yml").write_text(yaml.safe_dump({"book": lists}), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def fixture_zh(tmp_path_factory) -> Path:
    """The fixture book's two editions rendered by the built-in engine (HTML and PDF)."""
    root = zh_fixture(tmp_path_factory.mktemp("editions"))
    render(root, engine="builtin", to="all", lang="all")
    return root


def test_builtin_writes_quartos_chinese_words(fixture_zh):
    """The words a real Quarto 1.7.34 writes with `lang: zh` (checked by rendering, README)."""
    html = (fixture_zh / "_book-zh" / "index.html").read_text(encoding="utf-8")
    nbsp = "\u00a0"
    for text in ['<html xmlns="http://www.w3.org/1999/xhtml" lang="zh-Hans"', 'id="toc-title">目录',
                 f"图{nbsp}1.1: 一条经过这些点的直线", f">图{nbsp}1.1</a>", f">表{nbsp}2.1</a>", f">式{nbsp}1.1</a>",
                 f">定理{nbsp}1.1</a>", f">引理{nbsp}2.1</a>", f">推论{nbsp}2.1</a>", f">定义{nbsp}2.1</a>",
                 f">式{nbsp}A.1</a>", ">章节 2</a>", ">小节 2.1</a>", ">小节 A.1</a>", ">附录 A</a>",
                 f"表{nbsp}2.1: Sizes of things.", "<strong>定理 1.1 (泰勒)</strong>", "<em>证</em>.",
                 "附录 A</span> — 附加材料", "下载 PDF", "提示", "标注里的内联值",
                 f">1{nbsp} 甲</a>", ">附录 A — 附加材料</a>"]:  # the preface refers to chapters by their titles
        assert text in html, text
    assert re.search(r"<summary>\s*代码\s*</summary>", html)
    assert not re.search(r">(Figure|Table|Equation|Theorem|Section|Appendix|Proof|Note|Code)\b", html)


def test_each_edition_links_each_chapter_to_its_twin_and_the_site_holds_both(fixture_zh):
    """_book/ is the English book with the Chinese one in zh/ (copied from _book-zh/); every chapter of
    each links to the same chapter of the other, and each page's PDF link is its own edition's PDF."""
    en = (fixture_zh / "_book" / "index.html").read_text(encoding="utf-8")
    zh = (fixture_zh / "_book" / "zh" / "index.html").read_text(encoding="utf-8")
    assert zh == (fixture_zh / "_book-zh" / "index.html").read_text(encoding="utf-8")
    for anchor in ("sec-alpha", "sec-beta", "sec-extra"):
        assert f'href="zh/index.html#{anchor}" hreflang="zh-Hans"' in en
        assert f'href="{UP_INDEX}#{anchor}" hreflang="en"' in zh
    assert 'href="Fixture-Book.pdf"' in en and 'href="Fixture-Book-zh.pdf"' in zh
    assert (fixture_zh / "_book" / "Fixture-Book.pdf").is_file()
    assert (fixture_zh / "_book" / "zh" / "Fixture-Book-zh.pdf").is_file()
    # the chapter not translated yet says so, in the Chinese edition only
    assert zh.count("本章暂为英文") == 1 and "本章暂为英文" not in en
    assert zh.index("本章暂为英文") > zh.index('id="sec-beta"')


def test_an_english_render_keeps_the_chinese_book(fixture_zh, tmp_path):
    """A render of one edition replaces its own book, and the site gets the other one back."""
    root = tmp_path / "again"
    shutil.copytree(fixture_zh, root)
    render(root, engine="builtin", to="html", lang="en")
    assert (root / "_book" / "zh" / "index.html").read_bytes() == (fixture_zh / "_book-zh" / "index.html").read_bytes()


def test_a_translation_its_profile_does_not_list_is_named(tmp_path):
    root = zh_fixture(tmp_path)
    text = (root / "report" / "02-beta.qmd").read_text(encoding="utf-8")
    (root / "report" / "02-beta.zh.qmd").write_text("---\noutput-file: 02-beta.html\n---\n\n" + text, encoding="utf-8")
    assert editions.check(root) == ["report/02-beta.zh.qmd exists but _quarto-zh.yml lists report/02-beta.qmd:"
                                    " list the translation instead"]


def chinese_share(html: str) -> float:
    """CJK characters among the letters of a page's prose (math, code, references and scripts left out)."""
    prose = re.sub(r"<[^>]+>", " ", NOT_PROSE.sub(" ", html))
    cjk, latin = len(CJK.findall(prose)), len(LATIN.findall(prose))
    return cjk / max(1, cjk + latin)


def _execute(rels: list[str], book) -> dict[str, ChapterRun]:
    docs = {ch.rel: (ch, doc) for ch, doc in parse_chapters(book)}
    jobs = [Job(docs[rel][1], rel, PROJECT, kernel_env(book, docs[rel][0])) for rel in rels]
    return dict(zip(rels, run_chapters(jobs, book.execute, workers=2), strict=True))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The project's translated chapters that have inline values, and their originals, executed with the
    results cache on in a fresh folder (the second edition reads what the first computed)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SGDLAB_NO_CACHE", raising=False)
        mp.setenv("SGDLAB_CACHE_DIR", str(cache))
        pairs = [(zh, en) for zh, en in translated_pairs()
                 if twins.expressions(qmd.read(PROJECT / en))]
        en = _execute([en for _, en in pairs], load_book(PROJECT, "en"))
        zh = _execute([zh for zh, _ in pairs], load_book(PROJECT, "zh"))
    return pairs, en, zh


def test_both_editions_print_the_same_inline_values(executed):
    pairs, en, zh = executed
    assert len(pairs) >= 2  # chapter 1 and appendix B
    for zh_rel, en_rel in pairs:
        values = [v for i in sorted(zh[zh_rel].inline) for v in zh[zh_rel].inline[i]]
        originals = [v for i in sorted(en[en_rel].inline) for v in en[en_rel].inline[i]]
        assert twins.value_drift(values, originals) is None, (zh_rel, values, originals)
        assert len(values) >= len(twins.expressions(qmd.read(PROJECT / en_rel))), zh_rel  # each printed
    # chapter 1's claim speaks Chinese in the Chinese edition (the same numbers, not the same words)
    holds = [v for v in (v for i in sorted(zh["report/01-baseline.zh.qmd"].inline)
                         for v in zh["report/01-baseline.zh.qmd"].inline[i]) if "种子" in v]
    assert holds and all(not LATIN.search(v) for v in holds), holds


MEAN_SE = "0.0049 ± ${7.3 \\times 10^{-8}}$"


@pytest.mark.parametrize("translated, original, same", [
    ("全部 33 个种子", "all 33 seeds", True),
    ("在 33 个种子中的 31 个上成立", "31 of 33 seeds", True),  # the words reorder the numbers
    ("在 33 个种子中的 30 个上成立", "31 of 33 seeds", False),
    ("全部 32 个种子", "all 33 seeds", False),
    ("all 32 seeds", "all 33 seeds", False),
    ("33 seeds in all", "all 33 seeds", False),  # no Chinese in it: the English text exactly
    (f"{MEAN_SE} 个百分点（33 个种子的均值 ± 标准误）", f"{MEAN_SE} points (mean ± standard error over 33 seeds)",
     True),
    (f"{MEAN_SE.replace('-8', '-7')} 个百分点（33 个种子的均值 ± 标准误）",
     f"{MEAN_SE} points (mean ± standard error over 33 seeds)", False),
    ("约 −3.4", "about 3.4", False), ("约 3.4", "about 3.4", True),  # the sign, the digit groups, superscripts
    ("共 1,000 个", "1000 in all", False), ("2.9 × 10⁻⁵ 左右", "about 2.9 × 10⁻⁶", False),
])
def test_a_value_in_the_documents_language_is_the_same_when_it_prints_the_same_numbers(translated, original, same):
    assert twins.same_value(translated, original) is same


def test_inline_values_drift_at_the_first_difference_or_where_one_edition_stops():
    assert twins.value_drift(["1", "全部 3 个种子"], ["1", "all 3 seeds"]) is None
    assert twins.value_drift(["1", "2", "3"], ["1", "5", "3"]) == 1
    assert twins.value_drift(["1"], ["1", "2"]) == 1
    assert twins.value_drift(["1", "2"], ["1"]) == 1


def test_each_chinese_page_is_chinese_and_links_to_its_english_twin(executed, tmp_path):
    """The built-in engine's Chinese page, chapter by chapter: most letters of each translated chapter's
    prose are CJK, and each chapter opens with a link to the same chapter in English."""
    _, _, runs = executed
    assets.prepare(PROJECT)  # the page embeds the math font, copied from its wheel as every render does first
    book = load_book(PROJECT, "zh")
    chapters = parse_chapters(book)
    numbering = number_book(chapters)
    # chapters not executed here (the appendix's digests run every experiment) show their prose only
    markdown = book_markdown(book, chapters, numbering, [runs.get(ch.rel, ChapterRun()) for ch, _ in chapters],
                             "html", tmp_path)
    html = write_html(markdown, book, tmp_path, editions.switch_html(book)).read_text(encoding="utf-8")
    parts = re.split(r"(?=<div class=\"sgdlab-editions\">)", html)[1:]
    assert len(parts) == len(chapters)
    english_only = set(editions.untranslated(book))
    for (ch, doc), part in zip(chapters, parts, strict=True):
        first = next(ev for ev in doc.events if ev.kind == "heading" and ev.level == 1)
        assert f'href="{UP_INDEX}{"#" + first.ident if first.ident else ""}" hreflang="en"' in part, ch.rel
        if ch.rel in english_only:
            assert "本章暂为英文" in part, ch.rel
        else:
            assert chinese_share(part) > 0.6, (ch.rel, chinese_share(part))
            # the source's space before `@fig-x` after a Han character is not on the page (cjk-refs.lua)
            assert not HAN_SPACE_REF.search(part), (ch.rel, HAN_SPACE_REF.search(part).group(0))
    assert HAN_REF.search(html)


# Latin words a Chinese table keeps: names of methods and people, formats, the code's names and math functions
TABLE_NAMES = {"SGD", "SVRG", "Polyak", "Ruppert", "Juditsky", "KS", "float", "eps", "lr", "tr", "Cov", "max", "min",
               "rms"}
TABLE_WORD = re.compile(r"[A-Za-z]{2,}")  # a single letter is a symbol (w, b, x, B, L_B); D2L, float32 have none


def table_words(markdown: str) -> set[str]:
    """The Latin words of a table cell outside math ($…$) and code (`…`)."""
    return set(TABLE_WORD.findall(re.sub(r"\$[^$]*\$|`[^`]*`", " ", markdown)))


def test_table_words_are_those_outside_math_and_code():
    cells = "| 损失 | ${1.2 \\times 10^{-7}}$ 或 `f\"{loss:e}\"` | w·x + b | L_B（最大） | float32 |"
    assert table_words(cells) == {"float"}
    assert table_words("| loss at epoch ends | 0.1 to 0.2 |") == {"loss", "at", "epoch", "ends", "to"}


@pytest.mark.parametrize("chapter", ["02-loss-floor", "03-steepest-descent"])
def test_chapter_2_and_3s_tables_have_no_english_word_in_the_chinese_edition(executed, chapter):
    """Every tbl- cell of the Chinese chapter, as executed: its Markdown table has Chinese words and no Latin
    word outside math, code and the names kept (TABLE_NAMES); the English edition's same table has no Chinese."""
    _, en, zh = executed
    for runs, rel in ((zh, f"report/{chapter}.zh.qmd"), (en, f"report/{chapter}.qmd")):
        doc = qmd.read(PROJECT / rel)
        tables = {i: ev.cell.options["label"] for i, ev in enumerate(doc.events)
                  if ev.kind == "cell" and str(ev.cell.options.get("label", "")).startswith("tbl-")}
        assert len(tables) >= 10, (rel, tables)
        for i, label in tables.items():
            [markdown] = [o["data"]["text/markdown"] for o in runs[rel].outputs[i]
                          if "text/markdown" in o.get("data", {})]
            if rel.endswith(".zh.qmd"):
                words = table_words(markdown)
                assert CJK.search(markdown) and words <= TABLE_NAMES, (label, words - TABLE_NAMES)
            else:
                assert not CJK.search(markdown), label

PUNCT = "\u3000-\u303f\uff00-\uffef\u201c\u201d\u2014"  # full-width punctuation, Chinese quotes and dash
HAN = "\u3400-\u4dbf\u4e00-\u9fff"
BAD_SPACE = re.compile(rf"[{PUNCT}] | [{PUNCT}]|[{HAN}] [{HAN}]")
# A cross-reference on the built-in page after a Han character or full-width punctuation: with the space
# the source needs before `@fig-x` (HAN_SPACE_REF, which cjk-refs.lua removes) and without it (HAN_REF).
HAN_SPACE_REF = re.compile(rf"[{HAN}\uff00-\uffef]\s+<a href=\"#(?:{'|'.join(CROSSREF_KINDS)})-[^\"]*\">")
HAN_REF = re.compile(r"[\u4e00-\u9fff]<a href=\"#(fig|tbl|eq|thm|sec)-")
LIST_ITEM = re.compile(r"^\s*(\d+\.|[-*])\s")


def spacing_problems(path: Path) -> list[str]:
    """A space next to full-width punctuation or between two Chinese characters, in a paragraph as Pandoc
    reads it (a line break is a space: Quarto 1.7 drops `east_asian_line_breaks`); code and math left out."""
    out, para = [], []

    def flush() -> None:
        text = " ".join(t.strip() for _, t in para)
        text = re.sub(r"\$[^$]*\$", "x", re.sub(r"`[^`]*`", "x", text)).replace("*", "")
        out.extend(f"{path.name}:{para[0][0]}: {text[max(0, m.start() - 10):m.end() + 10]!r}"
                   for m in BAD_SPACE.finditer(text))
        para.clear()

    for ev in qmd.read(path).events:
        if ev.kind != "text" or not ev.text.strip() or LIST_ITEM.match(ev.text):
            if para:
                flush()
        if ev.kind == "text" and ev.text.strip():
            para.append((ev.line, ev.text))
    if para:
        flush()
    return out


@pytest.mark.parametrize("rel", [zh for zh, _ in translated_pairs()])
def test_chinese_text_is_spaced_as_d2l_writes_it(rel):
    assert spacing_problems(PROJECT / rel) == []
