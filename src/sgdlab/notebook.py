"""What a chapter's kernel needs to show tables as Quarto renders them well, in both engines.

`setup()` is called by each chapter's hidden set-up cell. It makes a DataFrame display as a
Markdown pipe table (`text/markdown`) and never as `text/html`: a `text/html` output makes
Quarto 1.7 put require.js and jQuery from a CDN into the page, and Quarto turns an HTML table
into a LaTeX table whose columns never wrap. A pipe table whose lines are longer than Pandoc's
`columns` (72) gets relative column widths instead, so its cells wrap to the text width.
It also turns on `display.report_figure`: each figure is drawn once per result and display
settings, then comes from the results cache in both of Quarto's executions.

`inline_markdown(value)` is Quarto's rule for an inline `{python}` value; the built-in engine
applies it in the kernel, so a numpy scalar shows as `np.int64(19)` there too.
"""

from __future__ import annotations

import re

import pandas as pd

from . import display, fmt, i18n

# A cell that reads as a number (right-aligned), plain or a formula of fmt.num; "—", "-" and "" are
# the tables' "no value".
NUMBER = re.compile(r"[-+−]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?%?|nan|inf|—|-|" + fmt.MATH.pattern)
PANDOC_COLUMNS = 72  # Pandoc's default --columns; Quarto does not change it
AUTO_WIDTH = 48  # a table at most this wide (characters, with its bars) fits any page as it is
TEXT_WIDTH = 64  # characters of table text across a page (A4/letter, 11 pt, cell padding)
CROSSREF = re.compile(r"-?@(fig|tbl|eq|sec|thm|lem|cor|def)-[\w-]+")
CROSSREF_WIDTH = len("Section 2.4.7")  # what a cross-reference in a cell shows, at most


def _cells(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and body rows as text: the index (its name heads it) first, then the columns."""
    def text(v: object) -> str:
        s = fmt.minus_signs(" ".join(str(v).split()))  # TeX may break a line after a hyphen
        return s.replace("|", r"\|")

    names = [n for n in df.index.names if n is not None]
    index_head = " / ".join(map(str, names))
    header = [index_head] + [text(" ".join(map(str, c)) if isinstance(c, tuple) else c) for c in df.columns]
    body = []
    for idx, row in zip(df.index, df.itertuples(index=False), strict=True):
        idx = " / ".join(map(str, idx)) if isinstance(idx, tuple) else idx
        body.append([text(idx)] + [text(v) for v in row])
    return [text(h) for h in header], body


def _shown(cell: str) -> str:
    """The cell as wide as it reads: a formula of fmt.num as one word of its printed length, a cross-reference
    as the longest it shows ("Section 2.4.7"), a Chinese character as two (it is set twice as wide as a
    Latin letter, and a Chinese phrase is one unbreakable word to the width count)."""
    shown = CROSSREF.sub("x" * CROSSREF_WIDTH, fmt.MATH.sub(lambda m: "0" * len(fmt.plain(m[0])), cell))
    return i18n.CJK.sub("xx", shown)


CJK_RUN = re.compile(rf"(?:{i18n.CJK.pattern})+")
CJK_WORD = 4  # characters of a Chinese phrase kept on one line (迭代周期); a longer one breaks anywhere


def _longest_word(cell: str) -> int:
    """The widest part of the cell that cannot break, as _shown counts it: a Chinese phrase breaks between
    any two characters (Typst and browsers do), so it counts as at most CJK_WORD characters; counted whole,
    the claims table's Chinese sentences took the page and left its seeds column one character wide."""
    cell = CJK_RUN.sub(lambda m: " " + "一" * min(len(m[0]), CJK_WORD) + " ", cell)
    return max((len(w) for w in _shown(cell).split()), default=1)


def _widths(header: list[str], body: list[list[str]], raw: list[list[str]]) -> list[int]:
    """Dashes per column: each column's share of the page, never below its longest word (of raw, the
    cells as written; header and body are them as wide as they read)."""
    cols = list(zip(header, *body, strict=True))
    natural = [max(len(c) for c in col) for col in cols]
    longest_word = [max((_longest_word(c) for c in col), default=1) for col in zip(*raw, strict=True)]
    # Water-filling: long columns share what the short ones leave of the text width.
    def fill(cap: int) -> list[int]:
        return [max(3, w, min(n, cap)) for n, w in zip(natural, longest_word, strict=True)]

    cap = max(natural)
    while cap > 1 and sum(fill(cap)) > TEXT_WIDTH:
        cap -= 1
    widths = fill(cap)
    # Pandoc reads relative widths only when a line is longer than its columns: stretch the rule.
    scale = PANDOC_COLUMNS // sum(widths) + 1
    return [w * scale for w in widths]


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Pandoc pipe table; a wide one gets relative widths so its cells wrap."""
    header, body = _cells(df)
    numeric = [all(NUMBER.fullmatch(r[j]) for r in body) and bool(body) for j in range(len(header))]
    shown = [[_shown(c) for c in r] for r in [header, *body]]
    natural = max(len("| " + " | ".join(r) + " |") for r in shown)
    if natural <= AUTO_WIDTH:
        widths = [max(3, *(len(r[j]) for r in shown)) for j in range(len(header))]
    else:
        widths = _widths(shown[0], shown[1:], [header, *body])
    # numbers right-aligned, text left (explicitly: Typst would centre it inside a figure); the
    # colons count in Pandoc's widths, so they stand in for dashes
    rule = "|" + "|".join(("-" if num else ":") + "-" * (w - 2) + (":" if num else "-")
                          for w, num in zip(widths, numeric, strict=True)) + "|"
    lines = ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def quarto_escape(plain: str) -> str:
    """Quarto's asEscapedMarkdown: a quoted repr (a str) loses its quotes, Markdown is escaped."""
    if len(plain) >= 2 and plain[0] == plain[-1] and plain[0] in "'\"":
        s = plain[1:-1].replace("\\", "\\\\")
        # JavaScript's class [+-.] is the range + , - . : commas are escaped too.
        return re.sub(r"([\\`*_{}\[\]()>#+,\-.!])", r"\\\1", s)
    return plain


def inline_markdown(value: object) -> str:
    """What Quarto prints for an inline `{python}` value: its IPython display bundle's
    text/markdown as it is, else its text/plain repr (a str: unquoted and escaped)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        data, _ = shell.display_formatter.format(value)
    else:  # outside a kernel: the same rule with Python's own repr
        md = getattr(value, "_repr_markdown_", None)
        data = {"text/plain": repr(value)} | ({"text/markdown": md()} if callable(md) else {})
    if data.get("text/markdown") is not None:
        return str(data["text/markdown"])
    return quarto_escape(str(data.get("text/plain", "")))


def setup() -> None:
    """In this IPython kernel: DataFrames as Markdown pipe tables only (no text/html); figures from the cache."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    display.activate()  # figures drawn once per result and display settings (display.py)
    i18n.use_fonts()  # a Chinese chapter's figures need a CJK font, set before any figure's cache key
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(pd.DataFrame, lambda df: None)
    formatters["text/markdown"].for_type(pd.DataFrame, markdown_table)
