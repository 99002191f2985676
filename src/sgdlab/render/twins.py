"""One source of code: a translated chapter must run exactly its original's code (DESIGN.md rule 7).

A translation `X.zh.qmd` is a parallel file (docs/editions.md says why): its prose, captions and alt
text are its own; everything that computes or is referred to must be the original's:

- the cells, in order: code and every option but fig-cap, fig-alt and tbl-cap;
- the labels (headings' `{#sec-…}`, equations, theorems, cells), in order;
- the display math, in order, and the inline math, as a multiset (a sentence may reorder its symbols),
  but for the words in `\text{…}`, which are prose (a case label, "past") and are translated;
- the inline `{python}` expressions, in order (the two editions then print the same values in the
  same order: the built-in engine compares them after executing both, builtin.inline_drift, with
  `value_drift`: a value in the document's language, such as claims' "in all 33 seeds", is the same
  value when it prints the same numbers);
- the cross-references made (a translation may not drop one), and the front matter's `execute:`.
"""

from __future__ import annotations

import re
from collections import Counter

from ..i18n import CJK
from .qmd import Doc, inline_exprs, prose_parts, refs_in
from .subset import CROSSREF_KINDS, crossref_kind

CAPTIONS = ("fig-cap", "fig-alt", "tbl-cap")
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)((?:[^$\\]|\\.)+?)\$")
# A number as a value prints it: sign (ASCII, U+2212 or superscript), digits (or superscript digits),
# then groups after a point or thousands comma ("1,000", "2.9", "10⁻⁵", fmt.num's "10^{-8}").
TEXT_WORDS = re.compile(r"\\text\{[^{}]*\}")
NUMBER = re.compile(r"[-+\u2212\u207a\u207b]?[0-9\u00b2\u00b3\u00b9\u2070\u2074-\u2079]+(?:[.,][0-9]+)*")


def _texts(doc: Doc) -> list[str]:
    """Every piece of prose: paragraphs' lines, headings, div titles."""
    return [t for ev in doc.events for t in ([ev.text] if ev.kind in ("text", "heading") else []) + [ev.title] if t]


def cells(doc: Doc) -> list[tuple[str, dict]]:
    """(code, options without captions and alt text) of every cell."""
    return [(ev.cell.code, {k: v for k, v in ev.cell.options.items() if k not in CAPTIONS})
            for ev in doc.events if ev.kind == "cell"]


def labels(doc: Doc) -> list[str]:
    """Every label the chapter defines, in order."""
    out = []
    for ev in doc.events:
        if ev.kind == "cell" and ev.cell.label:
            out.append(ev.cell.label)
        elif ev.kind in ("heading", "math", "div_open") and ev.ident:
            out.append(ev.ident)
    return out


def math_key(tex: str) -> str:
    """A formula as the editions must share it: whitespace normalised, the words of `\\text{…}` left out."""
    return TEXT_WORDS.sub(r"\\text{…}", " ".join(tex.split()))


def display_math(doc: Doc) -> list[str]:
    return [math_key(ev.text) for ev in doc.events if ev.kind == "math"]


def inline_math(doc: Doc) -> Counter:
    found = Counter()
    for text in _texts(doc):
        for is_code, part in prose_parts(text):
            if not is_code:
                found.update(math_key(m) for m in INLINE_MATH.findall(part))
    return found


def expressions(doc: Doc) -> list[str]:
    """The inline `{python}` expressions, in order (a paragraph's lines joined: a translation may break
    its lines elsewhere, but a code span never spans two lines)."""
    return [expr for text in _texts(doc) for lang, expr in inline_exprs(text) if lang == "python"]


def crossrefs(doc: Doc) -> set[str]:
    refs = set()
    for text in _texts(doc):
        refs |= {key for _, key in refs_in(text) if crossref_kind(key) in CROSSREF_KINDS}
    for ev in doc.events:
        if ev.kind == "cell":
            refs |= {key for k in CAPTIONS for _, key in refs_in(str(ev.cell.options.get(k, "")))
                     if crossref_kind(key) in CROSSREF_KINDS}
    return refs


def problems(original: Doc, translation: Doc, name: str, source: str) -> list[str]:
    """How a translation's code, labels, math or inline expressions differ from its original's."""
    out = []
    mine, theirs = cells(translation), cells(original)
    for k, (a, b) in enumerate(zip(mine, theirs, strict=False), start=1):
        if a[0] != b[0]:
            out.append(f"{name}: cell {k}'s code differs from {source}'s")
        if a[1] != b[1]:
            out.append(f"{name}: cell {k}'s options {a[1]} are not {source}'s {b[1]}")
    if len(mine) != len(theirs):
        out.append(f"{name}: {len(mine)} cells, {source} has {len(theirs)}")
    checks = [("labels", labels), ("display math", display_math), ("inline math", inline_math),
              ("inline expressions", expressions), ("cross-references", crossrefs)]
    for what, get in checks:
        a, b = get(translation), get(original)
        if a != b:
            out.append(f"{name}: its {what} differ from {source}'s: {_difference(a, b)}")
    if (translation.meta.get("execute") or {}) != (original.meta.get("execute") or {}):
        out.append(f"{name}: front matter `execute:` differs from {source}'s")
    return out


def _difference(mine, theirs) -> str:
    """A short account of what differs: the first position that differs, or what only one side has."""
    if isinstance(mine, list):
        k = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                 min(len(mine), len(theirs)))
        here = mine[k] if k < len(mine) else "missing"
        there = theirs[k] if k < len(theirs) else "none"
        return f"item {k + 1} is {here!r}, not {there!r}"
    mine, theirs = Counter(mine), Counter(theirs)
    return f"only here: {sorted((mine - theirs).elements())}; only there: {sorted((theirs - mine).elements())}"


def printed_numbers(value: str) -> Counter:
    """The numbers a printed value contains, as a multiset (a translation may reorder its words)."""
    return Counter(NUMBER.findall(value))


def same_value(translated: str, original: str) -> bool:
    """Whether a translation prints the original's inline value: the same text, or, where the value speaks
    the document's language (it has Chinese in it), the same numbers."""
    return translated == original or (bool(CJK.search(translated))
                                      and printed_numbers(translated) == printed_numbers(original))


def value_drift(mine: list[str], theirs: list[str]) -> int | None:
    """The index of the first inline value a translation prints differently from its original (len of the
    shorter list when one only stops early), or None when they all agree."""
    k = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if not same_value(a, b)),
             min(len(mine), len(theirs)))
    return None if k == len(mine) == len(theirs) else k
