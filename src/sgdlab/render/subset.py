"""The Quarto subset of docs/DESIGN.md: anything else in a chapter is reported, with its line."""

from __future__ import annotations

import re
from pathlib import Path

from .qmd import CODE_SPAN, Doc, ParseError, inline_exprs, prose_parts, read, refs_in

# output-file: a translation's page name, the original's (render/editions.py)
FRONT_MATTER = {"title", "subtitle", "author", "date", "abstract", "execute", "output-file"}
EXECUTE_KEYS = {"echo", "output", "include", "eval"}
CELL_OPTIONS = {"label", "fig-cap", "fig-alt", "tbl-cap", "echo", "output", "include", "eval"}
CROSSREF_KINDS = ("fig", "tbl", "eq", "sec", "thm", "lem", "cor", "def")
# Every prefix Quarto treats as a cross-reference; those not in CROSSREF_KINDS are outside.
QUARTO_PREFIXES = (
    *CROSSREF_KINDS, "lst", "prp", "cnj", "exm", "exr", "sol", "rem", "alg", "nte", "tip", "wrn", "imp",
    "cau", "apx",
)
CALLOUTS = ("callout-note", "callout-tip", "callout-warning", "callout-important")
THEOREMS = ("thm", "lem", "cor", "def")
SHORTCODE = re.compile(r"\{\{<.*?>\}\}")
LABELLED_MARKDOWN = re.compile(r"\{[^{}]*#(fig|tbl)-[^{}]*\}")
# TeX that the texmath of Pandoc 3.6 (Quarto 1.7's; seen with 3.6.1) cannot read: Quarto's HTML then
# shows the equation as raw TeX, with only a warning. Newer Pandoc, the built-in engine's, reads it.
UNREADABLE_TEX = re.compile(r"\\Big[lr](?![A-Za-z])")


def crossref_kind(key: str) -> str | None:
    """The Quarto cross-reference prefix of a key (`fig` for `fig-x`), or None for a citation."""
    prefix, dash, _ = key.partition("-")
    return prefix.lower() if dash and prefix.lower() in QUARTO_PREFIXES else None


def _check_option(key: str, value: object) -> str | None:
    """Why a cell option's value is outside the subset, or None."""
    if key not in CELL_OPTIONS:
        return f"cell option `#| {key}:`"
    if key in ("echo", "include", "eval") and not isinstance(value, bool):
        return f"`#| {key}: {value}` (only true/false)"
    if key == "output" and value not in (True, False, "asis"):
        return f"`#| output: {value}` (only true/false/asis)"
    if key in ("fig-cap", "fig-alt", "tbl-cap") and not isinstance(value, str):
        return f"`#| {key}:` with a list (sub-captions)"
    if key in ("fig-cap", "fig-alt", "tbl-cap") and "{python}" in value:
        return f"inline `{{python}}` in `#| {key}:` (Quarto does not evaluate it there)"
    if key == "label" and crossref_kind(str(value)) not in (None, "fig", "tbl"):
        return f"cell label `{value}` (cells may only carry fig- or tbl- labels)"
    return None


def _div_problem(ev) -> str | None:
    """Why a fenced div is outside the subset, or None."""
    kind = ev.ident.split("-")[0]
    if ev.attrs:
        return f"div attributes `{ev.raw_attr}`"
    if ev.ident and kind in THEOREMS and not ev.classes:
        return None
    if ev.ident == "refs" and not ev.classes:
        return None  # the bibliography's place, in references.qmd (what Quarto's book template uses)
    if not ev.ident and len(ev.classes) == 1 and ev.classes[0] in ("proof", *CALLOUTS):
        return None
    return f"div `::: {ev.raw_attr}`"


def _tex_problems(tex: str) -> list[str]:
    found = sorted(set(UNREADABLE_TEX.findall(tex)))
    return [f"{', '.join(f'`{c}`' for c in found)} in math, which Quarto 1.7's Pandoc shows as raw TeX in HTML"
            " (use \\left( … \\right) or \\bigl)"] if found else []


def _text_problems(line: str) -> list[str]:
    """Constructs outside the subset inside one line of prose."""
    out = []
    if SHORTCODE.search(line):
        out.append(f"shortcode `{SHORTCODE.search(line).group(0)}`")
    for lang, expr in inline_exprs(line):
        if lang != "python":
            out.append(f"inline `{{{lang}}} {expr}` expression (only {{python}})")
    for is_code, part in prose_parts(line):
        m = CODE_SPAN.fullmatch(part) if is_code else None
        if m and m.group(3):
            out.append(f"raw inline `{m.group(3)}`")
        if not is_code and re.search(r"\{python\}", part):
            out.append("`{python}` outside a code span (an inline expression whose backticks"
                       " do not pair up renders as literal text)")
        if not is_code and LABELLED_MARKDOWN.search(part):
            out.append(f"labelled markdown figure/table `{LABELLED_MARKDOWN.search(part).group(0)}`"
                       " (make it a cell with #| label)")
    out += _tex_problems(line)
    for _, key in refs_in(line):
        kind = crossref_kind(key)
        if kind and kind not in CROSSREF_KINDS:
            out.append(f"cross-reference prefix `@{key}` (only {', '.join(CROSSREF_KINDS)})")
    return out


def doc_problems(doc: Doc, name: str) -> list[str]:
    """Every construct of a parsed chapter outside the subset, as `name:line: ...`."""
    out = [f"{name}:1: front matter key `{k}`" for k in doc.meta if k not in FRONT_MATTER]
    for k in (doc.meta.get("execute") or {}):
        if k not in EXECUTE_KEYS:
            out.append(f"{name}:1: front matter `execute: {k}`")
    for ev in doc.events:
        where = f"{name}:{ev.line}:"
        if ev.kind == "cell":
            c = ev.cell
            if c.lang != "python":
                out.append(f"{where} `{{{c.lang}}}` cell (only {{python}} cells)")
            if c.fence_attrs:
                out.append(f"{where} cell header attributes `{c.fence_attrs}` (use #| options)")
            for key, value in c.options.items():
                why = _check_option(key, value)
                if why:
                    out.append(f"{name}:{c.option_lines.get(key, c.line)}: {why}")
        elif ev.kind == "code" and ev.raw_attr.startswith("{="):
            out.append(f"{where} raw block `{ev.raw_attr}`")
        elif ev.kind == "div_open":
            why = _div_problem(ev)
            if why:
                out.append(f"{where} {why}")
        elif ev.kind == "math" and ev.raw_attr and not (
            ev.ident.startswith("eq-") and not ev.classes and not ev.attrs
        ):
            out.append(f"{where} equation attributes `{ev.raw_attr}` (only {{#eq-name}})")
        if ev.kind == "math":
            out += [f"{where} {p}" for p in _tex_problems(ev.text)]
        elif ev.kind == "heading":
            bad = [c for c in ev.classes if c not in ("unnumbered", "-")]
            kind = crossref_kind(ev.ident) if ev.ident else None
            if bad or ev.attrs or kind not in (None, "sec"):
                out.append(f"{where} heading attributes `{{{ev.raw_attr}}}`")
            out += [f"{where} {p}" for p in _text_problems(ev.text)]
        elif ev.kind == "text":
            out += [f"{where} {p}" for p in _text_problems(ev.text)]
        if ev.title:
            out += [f"{where} {p}" for p in _text_problems(ev.title)]
    return out


def check_subset(path: Path, name: str | None = None) -> list[str]:
    """Problems (construct and line) of a chapter file outside the report's Quarto subset."""
    name = name or str(path)
    try:
        return doc_problems(read(path), name)
    except ParseError as e:
        return [str(e)]
