"""Quarto's book numbering (chapter.counter per kind) and reference text, for the whole book."""

from __future__ import annotations

import re
import string
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .book import Book, Chapter, RenderError, load_book
from .qmd import Doc, ParseError, read, refs_in
from .subset import CROSSREF_KINDS, THEOREMS, crossref_kind
from .words import KIND_KEYS, words


@dataclass(frozen=True)
class Target:
    """Something a `@label` can point at."""

    label: str
    kind: str  # fig, tbl, eq, thm, lem, cor, def, sec
    number: str | None  # "1.2", "A.1", "3"; None when in an unnumbered chapter
    file: str
    title: str = ""  # headings: their text
    chapter: str = ""  # sec: "chapter" / "appendix" for a level-1 heading, "" for a section

    def text(self, names: dict[str, str] | None = None, space: str = " ") -> str:
        """The reference text Quarto prints: 'Figure 1.2', 'Chapter 3', 'Appendix A' (names: words.words(lang);
        with `lang: zh` '图 1.2', '章节 3', '附录 A'); space: what separates name and number."""
        if self.kind == "sec" and self.number is None:
            return self.title
        name = (names or words())[KIND_KEYS[self.chapter or self.kind]]
        return f"{name}{space}{self.number if self.number is not None else '?'}"


@dataclass
class Numbering:
    """Numbers of every numbered element, by (chapter file, event index), and labels."""

    labels: dict[str, Target] = field(default_factory=dict)
    numbers: dict[tuple[str, int], str] = field(default_factory=dict)
    chapter_numbers: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _label_of(ev) -> tuple[str, str] | None:
    """(kind, label) of a numbered element event, if it is one."""
    if ev.kind == "cell":
        kind = crossref_kind(ev.cell.label)
        return (kind, ev.cell.label) if kind in ("fig", "tbl") else None
    if ev.kind == "math" and ev.ident.startswith("eq-"):
        return ("eq", ev.ident)
    if ev.kind == "div_open" and ev.ident.split("-")[0] in THEOREMS:
        return (ev.ident.split("-")[0], ev.ident)
    return None


def _is_unnumbered(doc: Doc, ch: Chapter) -> bool:
    """Quarto: the home page and `{.unnumbered}` / `{-}` chapters have no number."""
    first = next((e for e in doc.events if e.kind == "heading" and e.level == 1), None)
    return ch.rel == "index.qmd" or first is None or bool({"unnumbered", "-"} & set(first.classes))


def number_book(chapters: list[tuple[Chapter, Doc]]) -> Numbering:
    """Number chapters (1, 2, ...; appendices A, B, ...) and everything labelled inside them."""
    out = Numbering()
    n_chap = n_app = 0
    for ch, doc in chapters:
        chap: str | None = None
        if not _is_unnumbered(doc, ch):
            if ch.appendix:
                chap, n_app = string.ascii_uppercase[n_app % 26], n_app + 1
            else:
                n_chap += 1
                chap = str(n_chap)
        out.chapter_numbers[ch.rel] = chap
        counters: dict[str, int] = defaultdict(int)
        sections = [0] * 7
        seen_title = False
        for i, ev in enumerate(doc.events):
            if ev.kind == "heading":
                if ev.level == 1 and not seen_title:
                    seen_title, number = True, chap
                    role = "appendix" if ch.appendix else "chapter"
                elif chap is None or {"unnumbered", "-"} & set(ev.classes):
                    number, role = None, ""
                else:
                    level = max(ev.level, 2)
                    sections[level] += 1
                    sections[level + 1 :] = [0] * (6 - level)
                    number = ".".join([chap] + [str(s) for s in sections[2 : level + 1]])
                    role = ""
                if number is not None:
                    out.numbers[(ch.rel, i)] = number
                if ev.ident:
                    _add(out, Target(ev.ident, "sec", number, ch.rel, ev.text, role), ev.line)
                continue
            found = _label_of(ev)
            if found:
                kind, label = found
                counters[kind] += 1
                number = f"{chap}.{counters[kind]}" if chap else str(counters[kind])
                out.numbers[(ch.rel, i)] = number
                _add(out, Target(label, kind, number if chap else None, ch.rel), ev.line)
                if chap is None:
                    out.problems.append(f"{ch.rel}:{ev.line}: `{label}` is in an unnumbered chapter,"
                                        " where Quarto cannot number it")
    return out


def _add(out: Numbering, target: Target, line: int) -> None:
    """Register a label, reporting duplicates (labels must be unique across the book)."""
    if target.label in out.labels:
        first = out.labels[target.label]
        out.problems.append(f"{target.file}:{line}: label `{target.label}` already used in {first.file}")
    else:
        out.labels[target.label] = target


def collect_refs(doc: Doc | Path) -> list[tuple[str, int]]:
    """Every `@key` of a chapter (prose, headings, div titles, captions) with its line."""
    doc = read(doc) if isinstance(doc, Path) else doc
    found = []
    for ev in doc.events:
        texts = [ev.text] if ev.kind in ("text", "heading") else []
        texts += [ev.title] if ev.title else []
        if ev.kind == "cell":
            texts += [str(ev.cell.options.get(k, "")) for k in ("fig-cap", "tbl-cap")]
        for t in texts:
            found += [(key, ev.line) for _, key in refs_in(t)]
    return found


def bib_keys(paths: tuple[Path, ...]) -> set[str] | None:
    """Entry keys of the BibTeX files (None when there is no bibliography file)."""
    files = [p for p in paths if p.is_file()]
    if not files:
        return None
    return {key for p in files for key in re.findall(r"@\w+\s*\{\s*([^,\s]+)\s*,", p.read_text(encoding="utf-8"))}


def ref_problems(chapters: list[tuple[Chapter, Doc]], numbering: Numbering, bib: tuple[Path, ...]) -> list[str]:
    """Unresolved cross-references and citations (stricter than Quarto, which only warns)."""
    keys = bib_keys(bib)
    out = list(numbering.problems)
    for ch, doc in chapters:
        for key, line in collect_refs(doc):
            kind = crossref_kind(key)
            if kind in CROSSREF_KINDS and key not in numbering.labels:
                out.append(f"{ch.rel}:{line}: unresolved cross-reference @{key}")
            elif kind is None and keys is not None and key not in keys:
                out.append(f"{ch.rel}:{line}: citation @{key} is not in {', '.join(b.name for b in bib)}")
            elif kind is None and keys is None:
                out.append(f"{ch.rel}:{line}: citation @{key} but the book has no bibliography")
    return out


def parse_chapters(book: Book, skip_missing: bool = False) -> list[tuple[Chapter, Doc]]:
    """Parse every listed chapter; a missing one is an error naming it (or skipped)."""
    out = []
    for ch in book.chapters:
        if not ch.path.is_file():
            if skip_missing:
                continue
            raise RenderError(f"chapter {ch.rel} is listed in _quarto.yml but does not exist")
        try:
            out.append((ch, read(ch.path)))
        except ParseError as e:
            raise RenderError(str(e)) from None
    return out


def check_refs(root: Path) -> list[str]:
    """Problems with the `@refs` of the book at root (chapters not written yet are skipped)."""
    book = load_book(root)
    chapters = parse_chapters(book, skip_missing=True)
    return ref_problems(chapters, number_book(chapters), book.bibliography)
