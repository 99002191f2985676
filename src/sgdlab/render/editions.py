"""The book's editions: one Quarto profile each, the same pages in each, and one site holding them all.

- An edition is a profile listed in `sgdlab-editions` of _quarto.yml (`{profile, name, lang}`); the
  first is the default (`profile: default`). Its chapters are listed in `_quarto-<profile>.yml`.
- A translated chapter is the twin `X.<profile>.qmd` of the first edition's `X.qmd`, with the same
  cells, labels and inline code (tests/test_editions.py), and `output-file: X.html` in its front
  matter: every edition has the same page paths. A chapter not translated yet is listed as the
  first edition's file, and opens with the profile's note `sgdlab-untranslated` (`title`, `text`).
- The site is the first edition's output-dir (_book/), with each other edition's output-dir copied
  into a folder named after its profile (_book/zh/ from _book-zh/): Quarto empties an output-dir
  before every full render (command/render/project.ts, before pre-render), so no edition can render
  into another's folder and survive its next render; `assemble` makes the copy after each one.
- So a page's twin is at the same path in the other edition's folder: from _book/report/x.html the
  Chinese page is zh/report/x.html relative to the site's root, and back. Quarto's switch is
  assets/editions.lua; the built-in engine's one page per edition links chapter to chapter.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import twins
from .book import Book, RenderError, load_book, read_config
from .qmd import read, split_front_matter


@dataclass(frozen=True)
class Edition:
    """One entry of `sgdlab-editions`."""

    profile: str
    name: str  # the switch's link text, in the edition's own language
    lang: str  # the hreflang/lang of links to it (BCP 47)
    index: int  # 0: the site's root

    @property
    def folder(self) -> str:
        """Where the edition sits in the site, relative to its root: '' or 'zh/'."""
        return f"{self.profile}/" if self.index else ""


def editions(root: Path) -> list[Edition]:
    """The book's editions, in the order of the switch; [] for a book with one edition."""
    cfg, _ = read_config(root)
    listed = cfg.get("sgdlab-editions") or []
    out = [Edition(str(e["profile"]), str(e.get("name") or e["profile"]), str(e.get("lang") or e["profile"]), i)
           for i, e in enumerate(listed) if isinstance(e, dict) and e.get("profile")]
    return out if len(out) > 1 else []


def edition_of(book: Book) -> Edition | None:
    """The edition a loaded book is (by its profile), or None."""
    return next((e for e in editions(book.root) if e.profile == book.profile), None)


def selected(root: Path, lang: str) -> list[str | None]:
    """The profiles `--lang` asks for: one edition, or all ('all'); [None] for a book without editions."""
    known = editions(root)
    if not known:
        if lang not in ("all", "en"):
            raise RenderError(f"this book has one edition (no `sgdlab-editions` in _quarto.yml); --lang {lang}"
                              " needs its profile")
        return [None]
    if lang == "all":
        return [e.profile for e in known]
    if lang not in {e.profile for e in known}:
        raise RenderError(f"unknown edition {lang!r}; use one of {', '.join(e.profile for e in known)} or all")
    return [lang]


def is_translation(rel: str, profile: str) -> bool:
    """Whether a chapter file is an edition's own translation (`X.<profile>.qmd`)."""
    return rel.endswith(f".{profile}.qmd")


def original(rel: str, profile: str) -> str:
    """The first edition's file a chapter translates (itself when it is not a translation)."""
    return rel[: -len(f".{profile}.qmd")] + ".qmd" if is_translation(rel, profile) else rel


def translation(rel: str, profile: str) -> str:
    """The name of a chapter's translation in an edition: report/01-x.qmd -> report/01-x.zh.qmd."""
    return rel[: -len(".qmd")] + f".{profile}.qmd"


def page(rel: str, profile: str | None = None) -> str:
    """A chapter's page inside its edition (Quarto's multi-page book): the original's .html."""
    return original(rel, profile).removesuffix(".qmd") + ".html" if profile else rel.removesuffix(".qmd") + ".html"


def href(page_path: str, here: Edition, there: Edition, anchor: str = "") -> str:
    """The link from a page of one edition to the same page of another, relative to the page."""
    depth = len(PurePosixPath(page_path).parts) - 1 + (1 if here.index else 0)
    return "../" * depth + there.folder + page_path + (f"#{anchor}" if anchor else "")


def untranslated_note(book: Book) -> tuple[str, str] | None:
    """(title, Markdown text) of the note opening a chapter not translated yet, or None."""
    note = book.config.get("sgdlab-untranslated")
    if not isinstance(note, dict) or not note.get("text"):
        return None
    return str(note.get("title") or ""), " ".join(str(note["text"]).split())


def untranslated(book: Book) -> list[str]:
    """The chapters of a non-default edition still listed as the first edition's files."""
    edition = edition_of(book)
    if edition is None or edition.index == 0:
        return []
    return [ch.rel for ch in book.chapters if not is_translation(ch.rel, edition.profile)]


def check(root: Path) -> list[str]:
    """Why the editions would not have the same pages and code: chapter lists that do not pair one for
    one, a translation on disk that its profile does not list, a translation without its `output-file`,
    a translation whose cells, labels, math or inline code are not its original's (twins.py)."""
    known = editions(root)
    if not known:
        return []
    first = load_book(root, known[0].profile)
    problems = []
    for edition in known[1:]:
        book = load_book(root, edition.profile)
        listed = f"_quarto-{edition.profile}.yml"
        if [(c.appendix, original(c.rel, edition.profile)) for c in book.chapters] != \
                [(c.appendix, c.rel) for c in first.chapters]:
            problems.append(f"{listed}: its chapters and appendices must be those of _quarto-{known[0].profile}.yml,"
                            f" in the same order, each the same file or its translation X.{edition.profile}.qmd")
            continue
        for ch in book.chapters:
            twin = translation(ch.rel, edition.profile)
            if not is_translation(ch.rel, edition.profile):
                if (root / twin).is_file():
                    problems.append(f"{twin} exists but {listed} lists {ch.rel}: list the translation instead")
                continue
            if not ch.path.is_file():
                continue  # Quarto and load_book name a missing chapter themselves
            meta, _, _ = split_front_matter(ch.path.read_text(encoding="utf-8"))
            source = original(ch.rel, edition.profile)
            want = PurePosixPath(page(ch.rel, edition.profile)).name
            if meta.get("output-file") != want:
                problems.append(f"{ch.rel}: its front matter needs `output-file: {want}` (the page of"
                                f" {source}, so that both editions have the same paths)")
            if (root / source).is_file():
                problems += twins.problems(read(root / source), read(ch.path), ch.rel, source)
    return problems


def site_dir(root: Path) -> Path | None:
    """The first edition's output-dir, which holds the site (None for a book without editions)."""
    known = editions(root)
    return load_book(root, known[0].profile).output_dir if known else None


def assemble(root: Path) -> list[str]:
    """Copy each other edition's output-dir into the site (_book-zh/ -> _book/zh/), replacing the old
    copy; return a line per edition that has no output yet."""
    known = editions(root)
    if not known:
        return []
    site = site_dir(root)
    notes = []
    for edition in known[1:]:
        out = load_book(root, edition.profile).output_dir
        dest = site / edition.profile
        if not out.is_dir():
            notes.append(f"note: no {edition.name} edition in {out.name}/ yet (`quarto render --profile"
                         f" {edition.profile}`): {site.name}/{edition.profile}/ is not there")
            continue
        staged = site / f".{edition.profile}.new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(out, staged)
        shutil.rmtree(dest, ignore_errors=True)
        staged.rename(dest)
    return notes



def others(book: Book, page_path: str = "index.html") -> list[tuple[str, str, str]]:
    """(name, lang, href) of the same page in each other edition, from a loaded edition's page."""
    known = editions(book.root)
    here = next((e for e in known if e.profile == book.profile), None)
    if here is None:
        return []
    return [(e.name, e.lang, href(page_path, here, e)) for e in known if e is not here]


def switch_html(book: Book, page_path: str = "index.html") -> str:
    """The language switch at the top of a page, as assets/editions.lua writes it for Quarto."""
    known = editions(book.root)
    if book.profile not in {e.profile for e in known}:
        return ""
    links = iter(others(book, page_path))
    parts = []
    for e in known:
        if e.profile == book.profile:
            parts.append(f'<span lang="{e.lang}" aria-current="page">{e.name}</span>')
        else:
            name, lang, link = next(links)
            parts.append(f'<a href="{link}" hreflang="{lang}" lang="{lang}">{name}</a>')
    label = " / ".join(e.name for e in known)
    return f'<nav class="sgdlab-editions" aria-label="{label}">{" · ".join(parts)}</nav>\n'
