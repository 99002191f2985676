"""The built-in report engine: the fixture book renders, numbers like Quarto, and fails loudly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
import typst

from sgdlab import render as render_pkg
from sgdlab.fmt import num
from sgdlab.render import RenderError, check_refs, check_subset, load_book, render
from sgdlab.render.crossref import number_book, parse_chapters
from sgdlab.render.output import HERE, pandoc
from sgdlab.render.qmd import parse

FIXTURE = Path(__file__).parent / "fixtures" / "book"
# A tag that fetches what its attribute names, or CSS that does: any of them to http(s) or //host.
FETCH = re.compile(r"<(script|link|img|iframe|source|video|audio|embed|object|track)\b[^>]*?\b(src|href|data|srcset)"
                   r"\s*=\s*[\"']?\s*(https?:)?//|@import\s+(url\()?\s*[\"']?(https?:)?//|url\(\s*[\"']?(https?:)?//",
                   re.I)


def external_requests(html: str) -> list[str]:
    """What in a page would reach the network when it is viewed."""
    return [m.group(0) for m in FETCH.finditer(html)]


def pdf_text(pdf: Path) -> str:
    """The PDF's text (pdftotext, from poppler-utils)."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def _pdf_words(pdf: Path) -> list[tuple[float, float, list[tuple[float, float, float, float, str]]]]:
    """Per page of the PDF: its width, its height and its words (x0, y0, x1, y1, text; y downwards)."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    pages = []
    for page in re.findall(r"<page (.*?)</page>", out, re.S):
        width, height = (float(re.search(rf'{k}="([\d.]+)"', page).group(1)) for k in ("width", "height"))
        words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', page)
        pages.append((width, height, [(*map(float, w[:4]), w[4]) for w in words]))
    return pages


def words_off_the_text_area(pdf: Path, margin: float = 36.0) -> list[str]:
    """Words of the PDF closer than margin (points; 36 = 0.5 in) to a paper edge, with their page: a
    table or code wider than the text, or a table longer than the page running off its bottom."""
    bad = []
    for n, (width, height, words) in enumerate(_pdf_words(pdf), start=1):
        for x0, y0, x1, y1, word in words:
            if x0 < margin or x1 > width - margin or y0 < margin or y1 > height - margin:
                bad.append(f"page {n}: {word!r} at x {x0:.0f}–{x1:.0f} of {width:.0f},"
                           f" y {y0:.0f}–{y1:.0f} of {height:.0f}")
    return bad


def words_printed_over_each_other(pdf: Path, share: float = 0.5) -> list[str]:
    """Pairs of words of one page whose boxes overlap by more than share of each box: the rows of a table
    that did not fit the page are set on top of each other at its bottom. (Of the larger box: an accent
    over its letter, a formula's glyph inside the box of the words around it are not words set twice.)"""
    def spelled(word: str) -> bool:  # not an accent set over a letter (w̃: "w" and "̃)")
        return any(c.isalnum() for c in word if not unicodedata.combining(c))

    bad = []
    for n, (_, _, words) in enumerate(_pdf_words(pdf), start=1):
        words = sorted((w for w in words if spelled(w[4])), key=lambda w: w[1])
        for i, (x0, y0, x1, y1, word) in enumerate(words):
            for u0, v0, u1, v1, other in words[i + 1:]:
                if v0 >= y1:  # sorted by top edge: no later word reaches up into this one
                    break
                overlap = max(0.0, min(x1, u1) - max(x0, u0)) * max(0.0, min(y1, v1) - max(y0, v0))
                if overlap > share * max((x1 - x0) * (y1 - y0), (u1 - u0) * (v1 - v0)):
                    bad.append(f"page {n}: {word!r} over {other!r} at x {max(x0, u0):.0f}, y {max(y0, v0):.0f}")
    return bad
PROJECT = Path(__file__).resolve().parents[1]


# Where a line of `pdftotext -raw` (the PDF's own order, line-end hyphens kept) ends inside a number,
# the next line holding the rest: after the × of 1.8 × 10⁻⁷ (Typst breaks inline math after an
# operator), inside e-notation 6.475e- / 08, or after a lone leading hyphen - / 0.0008 (TeX breaks
# after a hyphen). Not after a point: neither engine breaks 1.8 there, and "needs 163." may end a
# line before a heading "3.6.3".
NUMBER_BREAK = re.compile(r"(\d ?×|\d[eE][-+−]?|(?:^|[\s(\[])-)\n[-+−]?\d", re.M)


def numbers_broken_across_lines(pdf: Path) -> list[str]:
    """Each place where a line of the PDF's text ends inside a number, with some context."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [text[max(0, m.start() - 30):m.end() + 10] for m in NUMBER_BREAK.finditer(text)]


def copy_book(tmp_path: Path, src: Path = FIXTURE) -> Path:
    """A writable copy of a book (renders must never touch tests/fixtures)."""
    root = tmp_path / "book"
    shutil.copytree(src, root)
    return root


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The fixture book rendered once to HTML and PDF with the built-in engine."""
    root = copy_book(tmp_path_factory.mktemp("rendered"))
    return root, render(root, engine="builtin", to="all")


def test_outputs_are_written_to_book_dir(rendered):
    root, paths = rendered
    assert paths == [root / "_book" / "index.html", root / "_book" / "Fixture-Book.pdf"]
    assert paths[1].read_bytes().startswith(b"%PDF")
    assert paths[1].stat().st_size > 10_000


def test_html_has_quarto_numbering_math_and_embedded_figures(rendered):
    html = (rendered[0] / "_book" / "index.html").read_text(encoding="utf-8")
    for text in [
        # as Quarto 1.7.34 writes them: a no-break space after a float's or theorem's name, a space after a
        # section's; the unnumbered preface refers to chapters by their titles
        "Figure\u00a01.1: A straight line",  # the caption, numbered
        ">Figure\u00a01.1</a>", ">Table\u00a02.1</a>", ">Equation\u00a01.1</a>", ">Theorem\u00a01.1</a>",
        ">Lemma\u00a02.1</a>", ">Corollary\u00a02.1</a>", ">Definition\u00a02.1</a>", ">Equation\u00a0A.1</a>",
        ">Chapter 2</a>", ">Section 2.1</a>", ">Appendix A</a>", ">Section A.1</a>",
        ">1\u00a0 Alpha</a>", ">Appendix A — Extra material</a>",
        "Table\u00a02.1: Sizes of things.",
        "<strong>Theorem 1.1 (Taylor)</strong>", "<strong>Lemma 2.1 (Descent lemma)</strong>",
        "<em>Proof</em>.", "□", "(1.1)</span>", "(A.1)</span>",
        "Appendix A</span> — Extra material",
        "We have 4 points with mean 1.500 and the name alpha.",  # inline {python}, str()
        "Twice the count is 8.", "the value 8 is computed here",  # inline inside callouts
        "callout-note", "Inline values in a callout", ">Tip<", "Careful",
        "Zhang et al. 2023", "Dive into Deep Learning",  # citeproc
        "hello from a cell", "print</span>",  # an echo: true cell and its output
        '<math display="block"', 'id="fig-line"', 'id="tbl-sizes"', 'id="eq-quad"',
        'alt="A line rising from the bottom left to the top right."',
        "data:image/png;base64,",
        "A footnote of chapter 1.", "A footnote of chapter 2, with the same label.",
    ]:
        assert text in html, text
    assert ">0.125<" in html  # the DataFrame became a real table
    assert "ax.plot" not in html and "xs = [0" not in html  # echo: false, include: false
    assert external_requests(html) == []
    assert "@fig-" not in html and "?@" not in html
    assert re.search(r"<td[^>]*><a href=\"#sec-beta-more\">Section 2\.1</a></td>", html)  # in a cell's table


def test_inline_values_follow_quartos_rule(rendered):
    """A str as it is, Markdown as Markdown, anything else its repr (numpy scalars included)."""
    html = (rendered[0] / "_book" / "index.html").read_text(encoding="utf-8")
    assert ("np.int64(19), a str a_b*c, d, a float 0.25, and Markdown <strong>bold</strong> text."
            in html)


def test_code_fold_in_html_no_code_in_pdf_and_a_pdf_link(rendered):
    """`code-fold: true` (html) folds echoed code in <details>; `echo: false` (pdf) hides it."""
    html = (rendered[0] / "_book" / "index.html").read_text(encoding="utf-8")
    folds = [m.end() for m in re.finditer(r'<details class="code-fold">\s*<summary>\s*Code\s*</summary>', html)]
    setup = html.index("notebook.setup()")
    assert len(folds) == 2 and folds[1] < setup < html.index("</details>", folds[1])
    assert '<a href="Fixture-Book.pdf" title="Download PDF">' in html  # book: downloads: [pdf]
    text = pdf_text(rendered[0] / "_book" / "Fixture-Book.pdf")
    assert "notebook.setup()" not in text and "hello from a cell" in text


def test_a_wide_table_wraps_inside_the_pdf_page(rendered):
    """A DataFrame as notebook.setup() shows it: a pipe table whose cells wrap to the text width."""
    pdf = rendered[0] / "_book" / "Fixture-Book.pdf"
    assert "closed form" in pdf_text(pdf) and "should take" in pdf_text(pdf)
    assert words_off_the_text_area(pdf) == []
    html = (rendered[0] / "_book" / "index.html").read_text(encoding="utf-8")
    assert '<code>f&quot;{loss:f}&quot;</code>' in html  # code in a cell is code, not curly quotes


@pytest.mark.parametrize("filtered", [True, False])
def test_a_number_is_one_box_in_the_typst_pdf(tmp_path, filtered):
    """Typst breaks inline math after ×: render/math.lua sets each of fmt.num's formulas as one box.

    Without the filter (the control) the same narrow page breaks numbers, so the check can fail.
    """
    # A7 with 5 mm margins: a number takes half a line, so many lines end next to one.
    text = "---\npapersize: a7\nmargin: {x: 5mm, y: 5mm}\n---\n\n" + " ".join(
        f"w{'x' * (i % 7)} {num(6.475295e-8 * (i + 1), '.6e')}," for i in range(80))
    args = ["-f", "markdown", "-t", "typst", "--standalone"]
    typ = pandoc([*args, f"--lua-filter={HERE / 'math.lua'}"] if filtered else args, text, tmp_path)
    (tmp_path / "page.typ").write_text(typ, encoding="utf-8")
    typst.compile(str(tmp_path / "page.typ"), output=str(tmp_path / "page.pdf"))
    broken = numbers_broken_across_lines(tmp_path / "page.pdf")
    assert (broken == []) if filtered else broken


def test_the_chinese_dash_is_one_line_two_characters_wide(tmp_path):
    """破折号 "——" is set in the CJK font's full-width forms, two characters wide with no gap
    (header.typ); the Latin font's dashes (and the CJK font's proportional ones) are narrower."""
    from sgdlab.render.output import _cjk_font_paths

    (tmp_path / "page.typ").write_text((HERE / "header.typ").read_text(encoding="utf-8")
                                       + "\n甲——乙\n\n甲丙丁乙\n", encoding="utf-8")
    typst.compile(str(tmp_path / "page.typ"), output=str(tmp_path / "page.pdf"), font_paths=_cjk_font_paths())
    (_, _, words), = _pdf_words(tmp_path / "page.pdf")
    width = {w[4]: w[2] - w[0] for w in words}
    # the same four advances, each one em: equal to the rounding of pdftotext's coordinates
    assert abs(width["甲——乙"] - width["甲丙丁乙"]) < 0.05, width


def test_numbering_matches_quarto():
    book = load_book(FIXTURE)
    labels = number_book(parse_chapters(book)).labels
    expected = {
        "fig-line": "Figure 1.1", "tbl-sizes": "Table 2.1", "eq-quad": "Equation 1.1",
        "eq-step": "Equation 2.1", "eq-extra": "Equation A.1", "thm-taylor": "Theorem 1.1",
        "lem-descent": "Lemma 2.1", "cor-rate": "Corollary 2.1", "def-smooth": "Definition 2.1",
        "sec-alpha": "Chapter 1", "sec-alpha-loss": "Section 1.1", "sec-beta": "Chapter 2",
        "sec-beta-more": "Section 2.1", "sec-extra": "Appendix A", "sec-extra-details": "Section A.1",
    }
    assert {k: labels[k].text() for k in expected} == expected
    assert check_refs(FIXTURE) == []


def test_second_render_is_identical(rendered, tmp_path):
    root = copy_book(tmp_path)
    [html] = render(root, engine="builtin", to="html")
    assert html.read_bytes() == (rendered[0] / "_book" / "index.html").read_bytes()


@pytest.mark.parametrize("snippet, construct", [
    ("::: {.panel-tabset}\nA\n:::", "panel-tabset"),
    ("::: {.callout-caution}\nA\n:::", "callout-caution"),
    ("```{r}\n1 + 1\n```", "{r}"),
    ("```{python}\n#| warning: false\n1\n```", "warning"),
    ("```{python}\n#| fig-subcap: [a, b]\n1\n```", "fig-subcap"),
    ("```{python}\n#| echo: fenced\n1\n```", "echo: fenced"),
    ("```{python}\n#| fig-cap: \"`{python} n` points\"\n1\n```", "inline `{python}` in `#| fig-cap:`"),
    ("Some {{< pagebreak >}} here", "{{< pagebreak >}}"),
    ("Inline `{r} 1 + 1` here", "{r} 1 + 1"),
    ("```{=html}\n<b>x</b>\n```", "{=html}"),
    ("Raw `<b>`{=html} inline", "{=html}"),
    ("See @lst-code", "@lst-code"),
    ("![A](a.png){#fig-a}", "#fig-a"),
    ("## Heading {.appendix}", ".appendix"),
    ("$$ x $$ {#fig-x}", "#fig-x"),
    ("$$\n\\max \\Bigl( x \\Bigr)\n$$", "`\\Bigl`, `\\Bigr` in math"),
    ("Inline $\\Bigl( x \\Bigr)$ math", "`\\Bigl`, `\\Bigr` in math"),
    ("The seed `f(`{python} seed`)` is", "`{python}` outside a code span"),
])
def test_subset_violations_are_named_with_their_line(tmp_path, snippet, construct):
    qmd = tmp_path / "ch.qmd"
    qmd.write_text(f"# Chapter\n\nText.\n\n{snippet}\n", encoding="utf-8")
    problems = check_subset(qmd)
    assert len(problems) == 1, problems
    assert construct in problems[0] and re.search(r":[56]:", problems[0]), problems[0]


def test_fixture_uses_only_the_subset():
    for qmd in sorted(FIXTURE.rglob("*.qmd")):
        assert check_subset(qmd) == [], qmd


def test_render_refuses_a_chapter_outside_the_subset(tmp_path):
    root = copy_book(tmp_path)
    with (root / "report" / "02-beta.qmd").open("a", encoding="utf-8") as f:
        f.write("\n::: {.panel-tabset}\n## A\nx\n:::\n")
    with pytest.raises(RenderError, match=r"report/02-beta.qmd:\d+: div `::: \{.panel-tabset\}`"):
        render(root, engine="builtin")
    assert not (root / "_book").exists()


def test_unresolved_reference_fails_naming_ref_and_file(tmp_path):
    root = copy_book(tmp_path)
    with (root / "index.qmd").open("a", encoding="utf-8") as f:
        f.write("\nAs @fig-missing shows, and [@nobody2020] says.\n")
    problems = check_refs(root)
    assert any("index.qmd:6: unresolved cross-reference @fig-missing" in p for p in problems)
    assert any("@nobody2020" in p for p in problems)
    with pytest.raises(RenderError, match="@fig-missing"):
        render(root, engine="builtin")


def test_failing_cell_names_file_and_label_and_keeps_previous_output(rendered, tmp_path):
    root = copy_book(tmp_path, rendered[0])  # includes the good _book/
    before = {p.name: p.read_bytes() for p in (root / "_book").iterdir()}
    with (root / "report" / "02-beta.qmd").open("a", encoding="utf-8") as f:
        f.write('\n```{python}\n#| label: tbl-boom\n#| tbl-cap: "x"\n'
                'raise ValueError("bad value")\n```\n')
    with pytest.raises(RenderError) as err:
        render(root, engine="builtin")
    msg = str(err.value)
    assert "report/02-beta.qmd" in msg and "tbl-boom" in msg and "ValueError: bad value" in msg
    assert {p.name: p.read_bytes() for p in (root / "_book").iterdir()} == before


def test_failing_inline_expression_names_line(tmp_path):
    root = copy_book(tmp_path)
    with (root / "index.qmd").open("a", encoding="utf-8") as f:
        f.write("\nThe ratio is `{python} 1 / 0`.\n")
    with pytest.raises(RenderError, match=r"index.qmd:6: inline expression .*ZeroDivisionError"):
        render(root, engine="builtin", to="html")


def test_missing_chapter_is_named(tmp_path):
    root = copy_book(tmp_path)
    (root / "report" / "02-beta.qmd").unlink()
    with pytest.raises(RenderError, match=r"report/02-beta.qmd is listed in _quarto.yml but does not"):
        render(root, engine="builtin")


def test_quarto_engine_without_quarto_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(render_pkg.shutil, "which", lambda name: None)
    with pytest.raises(RenderError) as err:
        render(copy_book(tmp_path), engine="quarto")
    assert str(err.value) == ("quarto not found on PATH; install it from https://quarto.org"
                              " or use --engine builtin")


def test_parser_reads_options_math_labels_and_div_titles():
    doc = parse('---\ntitle: "T"\n---\n\n```{python}\n#| label: fig-a\n#| fig-cap: "Cap"\nx = 1\n```\n'
                "\n$$\na = b\n$$ {#eq-a}\n\n::: {#thm-a}\n## Name\nBody.\n:::\n", Path("x.qmd"))
    kinds = [e.kind for e in doc.events if e.kind != "text"]
    assert kinds == ["heading", "cell", "math", "div_open", "div_close"]  # title -> heading
    cell = next(e.cell for e in doc.events if e.kind == "cell")
    assert (cell.label, cell.options["fig-cap"], cell.code, cell.line) == ("fig-a", "Cap", "x = 1", 5)
    math = next(e for e in doc.events if e.kind == "math")
    assert (math.text, math.ident, math.line) == ("a = b", "eq-a", 11)
    assert next(e for e in doc.events if e.kind == "div_open").title == "Name"


# The real report: every listed chapter stays inside the subset and its refs resolve.
# Chapters not written yet are skipped; nothing is executed here.
REAL = load_book(PROJECT) if (PROJECT / "_quarto.yml").is_file() else None


@pytest.mark.parametrize("rel", [c.rel for c in REAL.chapters] if REAL else [])
def test_report_chapter_uses_only_the_subset(rel):
    path = PROJECT / rel
    if not path.is_file():
        pytest.skip(f"{rel} not written yet")
    assert check_subset(path, rel) == []


@pytest.mark.skipif(REAL is None, reason="no _quarto.yml")
def test_report_refs_resolve():
    problems = check_refs(PROJECT)
    if any(not c.path.is_file() for c in REAL.chapters):
        # a ref may point into a chapter that is not written yet
        problems = [p for p in problems if "unresolved cross-reference" not in p]
    assert problems == []


FAKE_QUARTO = """#!/bin/sh
# Stands in for Quarto: records how and where it was called, writes what `quarto render` would,
# and, like a LaTeX run that fails, leaves index.tex and index.log in the project it renders.
printf '%s\\n' "$*" > "$FAKE_LOG/quarto-args.txt"
printf '%s\\n' "$*" >> "$FAKE_LOG/quarto-calls.txt"
printf '%s\\n' "$QUARTO_PYTHON" > "$FAKE_LOG/quarto-python.txt"
printf '%s\\n' "$PWD" > "$FAKE_LOG/quarto-cwd.txt"
mkdir -p _book _freeze/ch/execute-results
case "$*" in *"--to pdf"*) ;; *) echo '<html>new</html>' > _book/index.html
    echo '{}' > _freeze/ch/execute-results/html.json;; esac
case "$*" in *"--to html"*) ;; *) echo '%PDF-1.7' > _book/Book.pdf
    echo '{}' > _freeze/ch/execute-results/tex.json;; esac
echo tex > index.tex && echo log > index.log
[ -z "$FAIL" ] || { echo "ERROR: a chapter failed" >&2; exit 1; }
[ -z "$SLEEP" ] || { echo "executing a chapter"; sleep "$SLEEP"; }
"""
# Stands in for TeX: finds every file except those named in $TEX_MISSING.
FAKE_KPSEWHICH = """#!/bin/sh
case " $TEX_MISSING " in *" $1 "*) exit 1;; esac
echo "/texmf/$1"
"""


@pytest.fixture
def fake_quarto(monkeypatch, tmp_path):
    """quarto, xelatex and kpsewhich stand-ins first on PATH; no TinyTeX in HOME."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name, text in [("quarto", FAKE_QUARTO), ("kpsewhich", FAKE_KPSEWHICH), ("xelatex", "#!/bin/sh\n")]:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.delenv("TEX_MISSING", raising=False)
    return log


def test_quarto_engine_runs_quarto_render_on_a_copy_with_this_python(fake_quarto, tmp_path):
    root = copy_book(tmp_path)
    paths = render(root, engine="auto", to="pdf")
    assert (fake_quarto / "quarto-args.txt").read_text().split() == ["render", "--to", "pdf"]
    assert (fake_quarto / "quarto-python.txt").read_text().strip() == sys.executable
    assert Path((fake_quarto / "quarto-cwd.txt").read_text().strip()) != root  # a copy
    assert paths == [root / "_book" / "Book.pdf"]
    assert (root / "_book" / "Book.pdf").read_text() == "%PDF-1.7\n"
    assert not (root / "index.tex").exists() and not (root / "index.log").exists()
    # and Quarto's frozen outputs come back for the next render (render/freeze.py guards them)
    assert (root / "_freeze" / "ch" / "execute-results" / "tex.json").is_file()
    assert sorted(p.name for p in root.iterdir()) == sorted([*(p.name for p in FIXTURE.iterdir()), "_book", "_freeze"])


def test_quarto_failure_is_reported_and_leaves_the_previous_book(fake_quarto, monkeypatch, tmp_path):
    root = copy_book(tmp_path)
    (root / "_book").mkdir()
    (root / "_book" / "index.html").write_text("<html>old</html>")
    monkeypatch.setenv("FAIL", "1")
    # with two CPUs, the format that failed first is named
    with pytest.raises(RenderError, match=r"quarto render( --to (html|pdf))? failed \(exit 1\); "
                                          r"book/_book is unchanged:\n.*a chapter failed"):
        render(root, engine="quarto")
    assert [p.name for p in (root / "_book").iterdir()] == ["index.html"]
    assert (root / "_book" / "index.html").read_text() == "<html>old</html>"
    assert not (root / "_freeze").exists()  # outputs of a failed render are not kept
    assert not (root / "index.tex").exists() and not (root / "index.log").exists()


@pytest.mark.parametrize("jobs, calls", [(1, [["render"]]),
                                         (2, [["render", "--to", "html"], ["render", "--to", "pdf"]])])
def test_quarto_renders_html_and_pdf_at_once_given_two_cpus(fake_quarto, tmp_path, jobs, calls):
    root = copy_book(tmp_path)
    (root / "_book").mkdir()
    (root / "_book" / "stale.html").write_text("from a book that no longer exists")
    paths = render(root, engine="quarto", to="all", jobs=jobs)
    assert sorted(line.split() for line in (fake_quarto / "quarto-calls.txt").read_text().splitlines()) == calls
    assert paths == [root / "_book" / "index.html", root / "_book" / "Book.pdf"]
    assert sorted(p.name for p in (root / "_book").iterdir()) == ["Book.pdf", "index.html"]  # nothing stale
    assert sorted(p.name for p in (root / "_freeze" / "ch" / "execute-results").iterdir()) == ["html.json", "tex.json"]


def test_ctrl_c_during_two_quarto_renders_exits_130_in_one_line(fake_quarto, monkeypatch, tmp_path):
    root = copy_book(tmp_path)
    monkeypatch.setenv("SLEEP", "30")
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab.cli", "render", "--engine", "quarto", "--jobs", "2"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while (fake_quarto / "quarto-calls.txt").read_text().count("render") < 2 if (
            fake_quarto / "quarto-calls.txt").exists() else True:
        assert time.monotonic() < deadline, "the two quarto processes did not start"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err == "sgdlab: interrupted\n"
    assert not (root / "_book").exists()


def test_a_list_of_bibliographies_is_read_checked_and_passed_to_citeproc(tmp_path):
    """`bibliography:` as a YAML list (Quarto's syntax for several files): every file's keys resolve."""
    from sgdlab.render.output import _common, pandoc

    root = copy_book(tmp_path)
    (root / "report" / "more.bib").write_text(
        "@book{other2024,\n  title = {A Second Source},\n  author = {Other, Ann},\n  year = {2024}\n}\n",
        encoding="utf-8")
    cfg = root / "_quarto.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(
        "bibliography: report/references.bib",
        "bibliography:\n  - report/references.bib\n  - report/more.bib"), encoding="utf-8")
    with (root / "index.qmd").open("a", encoding="utf-8") as f:
        f.write("\nBoth sources [@d2l2023; @other2024].\n")
    book = load_book(root)
    assert book.bibliography == (root / "report" / "references.bib", root / "report" / "more.bib")
    assert check_refs(root) == []
    html = pandoc([*_common(book, tmp_path, "html"), "-t", "html5"], "See [@other2024] and [@d2l2023].\n", tmp_path)
    assert "Other 2024" in html and "Zhang et al. 2023" in html and "A Second Source" in html
    (root / "report" / "more.bib").write_text("", encoding="utf-8")
    assert any("@other2024 is not in references.bib, more.bib" in p for p in check_refs(root))


def test_the_books_own_lua_filters_run_and_a_missing_one_is_named(tmp_path):
    """`filters:` run in the built-in engine as in Quarto, but those it implements in Python
    (editions.lua); the project's cjk-refs.lua drops the space before a cross-reference in Chinese."""
    from sgdlab.render.output import _common

    root = copy_book(tmp_path)
    shutil.copy(Path(__file__).parents[1] / "assets" / "cjk-refs.lua", root / "cjk-refs.lua")
    cfg = root / "_quarto.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\nfilters:\n  - assets/editions.lua\n  - cjk-refs.lua\n",
                   encoding="utf-8")
    book = load_book(root)
    assert book.pandoc_filters() == [root / "cjk-refs.lua"]
    ref = "见 [图 1.1](#fig-a) 与 [表 2](#tbl-b)，见 [此处](https://example.org)。\n"
    for lang, text in (("zh", "见<a href=\"#fig-a\">图 1.1</a> 与<a href=\"#tbl-b\">"),
                       ("en", "见 <a href=\"#fig-a\">图 1.1</a> 与 <a href=\"#tbl-b\">")):
        book.lang = lang
        html = pandoc([*_common(book, tmp_path, "html"), "-t", "html5", "--wrap=none"], ref, tmp_path)
        assert text in html and "见 <a href=\"https://example.org\">" in html, lang
    (root / "cjk-refs.lua").unlink()
    with pytest.raises(RenderError, match=r"filter .*cjk-refs\.lua \(from _quarto\.yml\) does not exist"):
        _common(book, tmp_path, "html")


def test_explorable_figures_in_both_formats(rendered):
    """An explorable figure (text/markdown: raw HTML + a PNG hidden from HTML) is numbered and captioned
    like an image; the HTML keeps its script and CSS once and drops the PNG; the PDF shows the PNG."""
    html = (rendered[0] / "_book" / "index.html").read_text(encoding="utf-8")
    assert html.count('id="sgdlab-explore-js"') == 1 and html.count('id="sgdlab-explore-css"') == 1
    assert html.count('class="sgdlab-explore"') == 2
    for text in ['id="fig-explore-floor"', "Figure\u00a02.1: A small floor grid.",
                 "Figure\u00a02.2: A small steps grid.", 'href="#fig-explore-steps">Figure\u00a02.2</a>']:
        assert text in html, text
    assert "content-hidden" not in html and html.count("data:image/png") == 1  # only chapter 1's figure
    pdf = (rendered[0] / "_book" / "Fixture-Book.pdf").read_bytes()
    assert len(re.findall(rb"/Subtype\s*/Image", pdf)) >= 6  # three PNGs, each with its alpha mask


def test_quarto_preflight_names_what_latex_lacks_before_running_anything(fake_quarto, monkeypatch, tmp_path):
    monkeypatch.setenv("TEX_MISSING", "fontawesome5.sty")
    with pytest.raises(RenderError) as err:
        render(copy_book(tmp_path), engine="quarto", to="all")
    msg = str(err.value)
    assert "\n" not in msg and "fontawesome5.sty" in msg and "apt-get install texlive-fonts-extra" in msg
    assert "quarto install tinytex" in msg
    assert not (fake_quarto / "quarto-args.txt").exists()  # no cell ran
    render(copy_book(tmp_path / "html"), engine="quarto", to="html")  # HTML needs no LaTeX
    assert (fake_quarto / "quarto-args.txt").exists()


def test_quarto_preflight_without_a_latex_engine(fake_quarto, monkeypatch, tmp_path):
    from sgdlab.render import quarto

    which = shutil.which
    monkeypatch.setattr(quarto.shutil, "which", lambda name: None if name == "xelatex" else which(name))
    with pytest.raises(RenderError, match=r"^no LaTeX engine \(xelatex\) for the PDF: run `quarto install tinytex`"):
        render(copy_book(tmp_path), engine="quarto", to="pdf")
    (tmp_path / "home" / ".TinyTeX").mkdir(parents=True)  # TinyTeX installs what it lacks itself
    assert render(copy_book(tmp_path / "tinytex"), engine="quarto", to="pdf")


def test_pre_render_script_runs_first_and_its_failure_stops_the_render(tmp_path):
    """The built-in engine runs `project: pre-render` like Quarto, before any cell."""
    root = copy_book(tmp_path)
    cfg = (root / "_quarto.yml").read_text(encoding="utf-8")
    (root / "_quarto.yml").write_text(cfg.replace("  execute-dir: project\n",
                                                  "  execute-dir: project\n  pre-render: prep.py\n"))
    (root / "prep.py").write_text("import sys\nopen('ran', 'w').close()\nsys.exit('no font here')\n")
    with pytest.raises(RenderError, match=r"pre-render script 'prep.py' failed \(exit 1\):\nno font here"):
        render(root, engine="builtin", to="html")
    assert (root / "ran").exists() and not (root / "_book").exists()


def test_a_complete_builtin_render_replaces_the_whole_book_dir(tmp_path):
    """Every format rendered: no page of an earlier render (Quarto's report/, site_libs/) is left beside
    the new book; one format only: the other format's file stays."""
    from sgdlab.render.builtin import _publish

    dest = tmp_path / "_book"
    (dest / "report").mkdir(parents=True)
    (dest / "report" / "02-old.html").write_text("stale")
    (dest / "Book.pdf").write_text("old pdf")
    build = tmp_path / "build"
    build.mkdir()
    (build / "index.html").write_text("new html")
    assert _publish([build / "index.html"], dest) == [dest / "index.html"]
    assert (dest / "Book.pdf").read_text() == "old pdf" and (dest / "report" / "02-old.html").exists()
    (build / "Book.pdf").write_text("new pdf")
    _publish([build / "index.html", build / "Book.pdf"], dest, complete=True)
    assert sorted(p.name for p in dest.iterdir()) == ["Book.pdf", "index.html"]
    assert (dest / "Book.pdf").read_text() == "new pdf"


def test_a_table_whose_first_column_is_one_character_wide_is_a_table():
    """markdown_table's rule for a one-character header (`|--:|`, a Chinese 步) is a table to the
    built-in engine, as it is to Pandoc."""
    import nbformat
    import pandas as pd

    from sgdlab.notebook import markdown_table
    from sgdlab.render.markdown import _chunks

    md = markdown_table(pd.DataFrame({"步": [1, 2], "x": [0.5, 0.25]}).set_index("步"))
    assert md.splitlines()[1].startswith("|-")
    out = nbformat.from_dict({"output_type": "display_data", "data": {"text/markdown": md}, "metadata": {}})
    (chunk,) = _chunks([out], False, "html")
    assert chunk[0] == "table", md
    assert "<table>" in pandoc(["-f", "markdown", "-t", "html"], md, Path.cwd())


def test_a_table_longer_than_a_page_breaks_across_pages(tmp_path):
    """Typst sets a figure as one block: a captioned table of 80 rows ran off the page bottom, its last rows
    printed over each other. With header.typ it continues on the next pages, inside the text area."""
    rows = "\n".join(f"| row {i} | the symbol's meaning {i} |" for i in range(80))
    md = f"Before.\n\n| Symbol | Meaning |\n|:--|:--|\n{rows}\n\n: A long table. {{#tbl-long}}\n\nAfter.\n"
    pandoc(["-f", "markdown", "-t", "typst", "--standalone", f"--include-in-header={HERE / 'header.typ'}",
            "-V", "papersize=a4", "-o", "long.typ"], md, tmp_path)
    pdf = tmp_path / "long.pdf"
    typst.compile(str(tmp_path / "long.typ"), output=str(pdf))
    text = pdf_text(pdf)
    assert "row 79" in text and text.count("\f") >= 2  # a second page
    assert words_off_the_text_area(pdf) == [] and words_printed_over_each_other(pdf) == []
