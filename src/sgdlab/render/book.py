"""Read a Quarto book project's `_quarto.yml`: title, chapter list, bibliography, defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .site import Site, SiteError


class RenderError(RuntimeError):
    """A render that cannot finish; the message says which file and what to fix."""


@dataclass(frozen=True)
class Chapter:
    """One entry of `book: chapters:` or `book: appendices:`."""

    path: Path  # absolute
    rel: str  # as listed in _quarto.yml, for messages
    appendix: bool


@dataclass
class Book:
    """The parts of `_quarto.yml` the built-in engine uses."""

    root: Path
    title: str
    chapters: list[Chapter]
    meta: dict = field(default_factory=dict)  # subtitle, author, date for the title block
    bibliography: tuple[Path, ...] = ()  # `bibliography:` one file or a YAML list of files, as Quarto takes it
    execute: dict = field(default_factory=dict)  # project-wide cell defaults (echo, output, ...)
    execute_dir_project: bool = False  # `project: execute-dir: project`
    output_dir: Path | None = None  # `project: output-dir`, _book by default
    formats: dict = field(default_factory=dict)  # `format: html: {...}, pdf: {...}`
    pre_render: list[str] = field(default_factory=list)  # `project: pre-render` scripts
    downloads: list[str] = field(default_factory=list)  # `book: downloads`, e.g. [pdf]
    site: Site | None = None  # addresses, repository links, preview and footer (site.py)

    def execute_for(self, fmt: str) -> dict:
        """Cell defaults for one format: `execute:` then the format's own (`format: pdf: echo:`)."""
        opts = self.formats.get(fmt) or {}
        return {**self.execute, **(opts.get("execute") or {}),
                **{k: v for k, v in opts.items() if k in ("echo", "output", "include")}}

    def css(self) -> list[Path]:
        """The HTML format's `css:` files, absolute."""
        css = (self.formats.get("html") or {}).get("css") or []
        return [self.root / c for c in ([css] if isinstance(css, str) else css)]

    @property
    def slug(self) -> str:
        """Quarto's PDF file stem for a book: the title with runs of other characters as '-'."""
        return re.sub(r"[^A-Za-z0-9_]+", "-", self.title).strip("-") or "book"


def _entries(items: list, root: Path, appendix: bool) -> list[Chapter]:
    """Flatten a chapter list, including `- part: ... chapters: [...]` groups."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out += _entries(item.get("chapters", []), root, appendix)
        else:
            out.append(Chapter(root / str(item), str(item), appendix))
    return out


def load_book(root: Path) -> Book:
    """Load `root/_quarto.yml` (a `project: type: book`)."""
    cfg_path = root / "_quarto.yml"
    if not cfg_path.is_file():
        raise RenderError(f"{cfg_path} not found: the report needs a Quarto book project file")
    base = _read_yaml(cfg_path)
    # Quarto merges the project's `metadata-files` over _quarto.yml, skipping one that is missing.
    extra = [root / str(f) for f in _as_list(base.get("metadata-files"))]
    cfg = _merge(base, *(_read_yaml(f) for f in extra if f.is_file()))
    project, book = cfg.get("project") or {}, cfg.get("book") or {}
    if project.get("type") != "book" or not book.get("chapters"):
        raise RenderError(f"{cfg_path}: expected `project: type: book` with `book: chapters:`")
    chapters = _entries(book["chapters"], root, False) + _entries(book.get("appendices"), root, True)
    bib = cfg.get("bibliography") or []
    bibs = tuple(root / str(b) for b in (bib if isinstance(bib, list) else [bib]))
    meta = {k: book[k] for k in ("subtitle", "author", "date") if book.get(k)}
    title = str(book.get("title") or "Report")
    try:
        site = Site.from_book(book, title)
    except SiteError as e:
        raise RenderError(str(e)) from None
    return Book(
        root=root,
        title=title,
        chapters=chapters,
        meta=meta,
        bibliography=bibs,
        execute=dict(cfg.get("execute") or {}),
        execute_dir_project=project.get("execute-dir") == "project",
        output_dir=root / str(project.get("output-dir") or "_book"),
        formats={k: (v if isinstance(v, dict) else {}) for k, v in (cfg.get("format") or {}).items()},
        pre_render=_as_list(project.get("pre-render")),
        downloads=_as_list(book.get("downloads")),
        site=site,
    )


def _read_yaml(path: Path) -> dict:
    """A YAML mapping from a file; a file that is not one is a RenderError naming it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise RenderError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RenderError(f"{path} must hold a YAML mapping")
    return data


def _merge(base: dict, *overrides: dict) -> dict:
    """Project-level `metadata-files` over _quarto.yml, as Quarto merges them: mappings key by key,
    any other value replaced."""
    out = dict(base)
    for over in overrides:
        for key, value in over.items():
            both = isinstance(out.get(key), dict) and isinstance(value, dict)
            out[key] = _merge(out[key], value) if both else value
    return out


def _as_list(value) -> list[str]:
    """A YAML scalar or list as a list of strings."""
    return [str(v) for v in ([value] if isinstance(value, str) else value or [])]
