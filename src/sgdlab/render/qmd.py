"""Parse a Quarto .qmd chapter into front matter and a flat list of block events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(.*?)\s*$")
DIV_OPEN = re.compile(r"^\s*:{3,}\s*(\{.*\}|[\w-]+)\s*$")
DIV_CLOSE = re.compile(r"^\s*:{3,}\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*(?:\{([^{}]*)\})?\s*$")
# A code span, or an inline raw `x`{=fmt}: the parts of a line that are never prose.
CODE_SPAN = re.compile(r"(`+)(.+?)\1(\{=[\w-]+\})?")
INLINE_EXPR = re.compile(r"^\{(\w+)\}\s+(.*?)\s*$", re.S)
# Pandoc's citation key syntax; `-@key` suppresses the author (Quarto: number only).
REF = re.compile(r"(?<![\w@.\\])(-?)@([A-Za-z0-9_][\w]*(?:[:.#$%&\-+?<>~/][\w]+)*)")


class ParseError(ValueError):
    """A .qmd file that cannot be parsed (unclosed fence, bad YAML)."""


@dataclass
class Cell:
    """An executable ```{lang} cell: code without its `#|` lines, and those options."""

    lang: str
    code: str
    options: dict
    line: int  # line of the opening fence in the .qmd (1-based)
    fence_attrs: str = ""  # anything after {lang ...} (knitr style), outside the subset
    option_lines: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The `#| label:` or ''."""
        return str(self.options.get("label") or "")


@dataclass
class Event:
    """One block-level piece of a chapter, in document order."""

    kind: str  # text | heading | math | div_open | div_close | code | cell
    line: int
    text: str = ""  # text: the line; code: the whole block; math: the TeX; heading: title
    level: int = 0  # heading level
    ident: str = ""
    classes: tuple[str, ...] = ()
    attrs: dict[str, str] = field(default_factory=dict)
    title: str = ""  # div title (from a `## Title` heading inside it)
    raw_attr: str = ""  # the attribute text as written, for error messages
    cell: Cell | None = None


@dataclass
class Doc:
    """A parsed chapter."""

    path: Path
    meta: dict
    events: list[Event]


def parse_attrs(text: str) -> tuple[str, tuple[str, ...], dict[str, str]]:
    """Parse a Pandoc attribute string `#id .class key=val` (braces optional)."""
    text = text.strip().removeprefix("{").removesuffix("}")
    ident, classes, kv = "", [], {}
    for m in re.finditer(r'([\w-]+)="([^"]*)"|([\w-]+)=(\S+)|(\S+)', text):
        if m.group(1) or m.group(3):
            kv[m.group(1) or m.group(3)] = m.group(2) if m.group(1) else m.group(4)
        elif m.group(5).startswith("#"):
            ident = m.group(5)[1:]
        elif m.group(5).startswith("."):
            classes.append(m.group(5)[1:])
        else:
            classes.append(m.group(5))  # `::: callout-note` shorthand, or `{-}`
    return ident, tuple(classes), kv


def split_front_matter(text: str) -> tuple[dict, list[str], int]:
    """Return (front matter, body lines, number of lines before the body)."""
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                try:
                    meta = yaml.safe_load("\n".join(lines[1:i])) or {}
                except yaml.YAMLError as e:
                    raise ParseError(f"front matter is not valid YAML: {e}") from e
                return (meta if isinstance(meta, dict) else {}), lines[i + 1 :], i + 1
    return {}, lines, 0


def _cell(lang_and_attrs: str, body: list[str], line: int) -> Cell:
    """Split a cell body into `#|` options and code."""
    lang, _, rest = lang_and_attrs.partition(" ")
    opt_lines, n = [], 0
    option_lines: dict[str, int] = {}
    while n < len(body) and body[n].lstrip().startswith("#|"):
        opt = body[n].lstrip()[2:]
        opt = opt[1:] if opt.startswith(" ") else opt
        m = re.match(r"([\w-]+)\s*:", opt)  # a `key:` line, not a YAML continuation line
        if m:
            option_lines.setdefault(m.group(1), line + 1 + n)
        opt_lines.append(opt)
        n += 1
    try:
        options = (yaml.safe_load("\n".join(opt_lines)) or {}) if opt_lines else {}
    except yaml.YAMLError as e:
        raise ParseError(f"line {line}: cell options are not valid YAML: {e}") from e
    if not isinstance(options, dict):
        raise ParseError(f"line {line}: cell options must be `#| key: value` lines")
    return Cell(lang.strip(), "\n".join(body[n:]).strip("\n"), options, line, rest.strip(), option_lines)


def _div_title(lines: list[str], i: int) -> tuple[str, int]:
    """If the first non-blank line from i is a heading, return (its text, index after it)."""
    j = i
    while j < len(lines) and not lines[j].strip():
        j += 1
    m = HEADING.match(lines[j]) if j < len(lines) else None
    return (m.group(2), j + 1) if m else ("", i)


def parse(text: str, path: Path) -> Doc:
    """Parse a chapter's text into a Doc."""
    meta, lines, offset = split_front_matter(text)
    events: list[Event] = []
    i = 0
    while i < len(lines):
        line, lineno = lines[i], offset + i + 1
        fence = FENCE.match(line)
        if fence:
            indent, marks, info = fence.groups()
            j = i + 1
            while j < len(lines):
                close = FENCE.match(lines[j])
                if close and close.group(2)[0] == marks[0] and len(close.group(2)) >= len(marks) and not close.group(3):
                    break
                j += 1
            if j == len(lines):
                raise ParseError(f"line {lineno}: code block opened here is never closed")
            body = [b[len(indent):] if b.startswith(indent) else b for b in lines[i + 1 : j]]
            m = re.fullmatch(r"\{([A-Za-z][^}]*)\}", info)
            if m:
                events.append(Event("cell", lineno, cell=_cell(m.group(1), body, lineno)))
            else:
                events.append(Event("code", lineno, text="\n".join(lines[i : j + 1]), raw_attr=info))
            i = j + 1
            continue
        if DIV_CLOSE.match(line):
            events.append(Event("div_close", lineno))
            i += 1
            continue
        m = DIV_OPEN.match(line)
        if m:
            ident, classes, kv = parse_attrs(m.group(1))
            ev = Event("div_open", lineno, ident=ident, classes=classes, attrs=kv, raw_attr=m.group(1))
            if ident.split("-")[0] in ("thm", "lem", "cor", "def") or "proof" in classes or any(
                c.startswith("callout") for c in classes
            ):
                ev.title, i = _div_title(lines, i + 1)
            else:
                i += 1
            events.append(ev)
            continue
        m = HEADING.match(line)
        if m:
            ident, classes, kv = parse_attrs(m.group(3) or "")
            events.append(Event("heading", lineno, text=m.group(2), level=len(m.group(1)),
                                ident=ident, classes=classes, attrs=kv, raw_attr=m.group(3) or ""))
            i += 1
            continue
        if line.lstrip().startswith("$$"):
            # Display math runs to the line holding the closing $$; a `{#eq-x}` may follow it.
            j, acc = i, line.lstrip()[2:]
            while "$$" not in acc and j + 1 < len(lines):
                j += 1
                acc += "\n" + lines[j]
            tex, sep, after = acc.partition("$$")
            # `$$ ... $$ {#eq-x}` is a (labelled) equation; `$$x$$ and more text` is prose.
            if sep and (not after.strip() or re.fullmatch(r"\{[^{}]*\}", after.strip())):
                ident, classes, kv = parse_attrs(after) if after.strip() else ("", (), {})
                events.append(Event("math", lineno, text=tex.strip(), ident=ident, classes=classes,
                                    attrs=kv, raw_attr=after.strip()))
                i = j + 1
                continue
        events.append(Event("text", lineno, text=line))
        i += 1
    if meta.get("title") and not any(e.kind == "heading" and e.level == 1 for e in events):
        # Quarto takes a chapter's title from the front matter when there is no `# Title`.
        events.insert(0, Event("heading", 1, text=str(meta["title"]), level=1))
    return Doc(path, meta, events)


def read(path: Path) -> Doc:
    """Read and parse a .qmd file; ParseError messages name the file."""
    try:
        return parse(path.read_text(encoding="utf-8"), path)
    except ParseError as e:
        raise ParseError(f"{path}: {e}") from None


def prose_parts(line: str) -> list[tuple[bool, str]]:
    """Split a line into (is_code, text) parts so prose rewrites skip code spans."""
    parts, pos = [], 0
    for m in CODE_SPAN.finditer(line):
        parts.append((False, line[pos : m.start()]))
        parts.append((True, m.group(0)))
        pos = m.end()
    parts.append((False, line[pos:]))
    return parts


def inline_exprs(line: str) -> list[tuple[str, str]]:
    """The inline `{lang} expr` code spans of a line, as (lang, expr)."""
    out = []
    for is_code, part in prose_parts(line):
        m = CODE_SPAN.fullmatch(part) if is_code else None
        if m and not m.group(3):
            e = INLINE_EXPR.match(m.group(2))
            if e:
                out.append((e.group(1), e.group(2)))
    return out


def refs_in(text: str) -> list[tuple[str, str]]:
    """All `@key` references outside code spans, as (prefix '-' or '', key)."""
    keys = []
    for is_code, part in prose_parts(text):
        if not is_code:
            keys += [(m.group(1), m.group(2)) for m in REF.finditer(part)]
    return keys
