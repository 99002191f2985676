"""Read a Quarto book project's `_quarto.yml` and its active profile: title, chapters, bibliography, defaults."""

from __future__ import annotations

import json
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


# Filters that use Quarto's Lua API (`quarto.doc`, `quarto.project`), each with its Python twin.
QUARTO_FILTERS = {"assets/editions.lua": "sgdlab/render/editions.py"}


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
    profile: str | None = None  # the active profile (the edition), None for a book without profiles
    lang: str = "en"  # `lang:`, Quarto's words (Figure / 图) and the page's language
    language: dict = field(default_factory=dict)  # `language:`, words overriding Quarto's translation
    output_file: str | None = None  # `book: output-file`, the PDF's name without .pdf
    config: dict = field(default_factory=dict)  # the merged configuration, for the keys read elsewhere
    site: Site | None = None  # addresses, repository links, preview and footer (site.py)
    filters: list[str] = field(default_factory=list)  # `filters:` the engine runs itself (pandoc_filters)

    def pandoc_filters(self) -> list[Path]:
        """The book's Lua filters that Pandoc runs as they are, absolute: every one of `filters:` but
        those that call Quarto's own Lua API, which this engine implements in Python (QUARTO_FILTERS)."""
        return [self.root / f for f in self.filters if f not in QUARTO_FILTERS]

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
        """Quarto's PDF file stem for a book (bookOutputStem): `book: output-file`, else the title with
        the characters TeX cannot take in a file name as '-' (texSafeFilename)."""
        return re.sub(r"[ <>()|\\:&;#?*'/]", "-", self.output_file or self.title)


def _entries(items: list, root: Path, appendix: bool) -> list[Chapter]:
    """Flatten a chapter list, including `- part: ... chapters: [...]` groups."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out += _entries(item.get("chapters", []), root, appendix)
        else:
            out.append(Chapter(root / str(item), str(item), appendix))
    return out


def merge_config(base: dict, over: dict) -> dict:
    """Quarto's merge of a metadata file or a profile into _quarto.yml (lodash mergeWith +
    mergeArrayCustomizer): maps merged key by key, lists joined (base first) without repeats, any
    other value replaced."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, list) or isinstance(value, list):
            if old is None or value is None:
                out[key] = value if old is None else old
                continue
            joined, seen = [], set()
            for item in (old if isinstance(old, list) else [old]) + (value if isinstance(value, list) else [value]):
                tag = json.dumps(item, sort_keys=True, default=str)
                if tag not in seen:
                    seen.add(tag)
                    joined.append(item)
            out[key] = joined
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge_config(old, value)
        else:
            out[key] = value
    return out


def profiles(cfg: dict) -> list[str]:
    """`profile: default:` of a _quarto.yml, as a list (Quarto's comma-separated string, or a list)."""
    default = (cfg.get("profile") or {}).get("default") or []
    return [p.strip() for p in (default.split(",") if isinstance(default, str) else map(str, default)) if p.strip()]


def read_config(root: Path, profile: str | None = None) -> tuple[dict, str | None]:
    """_quarto.yml with the active profile's `_quarto-<profile>.yml` merged in, as Quarto merges it, and
    that profile: the one asked for, else `profile: default:` (None when the book has neither)."""
    cfg_path = root / "_quarto.yml"
    if not cfg_path.is_file():
        raise RenderError(f"{cfg_path} not found: the report needs a Quarto book project file")
    cfg = _read_yaml(cfg_path)
    # Quarto merges the project's `metadata-files` over _quarto.yml, skipping one that is missing,
    # and then the profiles over both (project-context.ts).
    for extra in (root / str(f) for f in _as_list(cfg.get("metadata-files"))):
        cfg = merge_config(cfg, _read_yaml(extra)) if extra.is_file() else cfg
    active = [profile] if profile else profiles(cfg)
    cfg.pop("profile", None)
    for name in reversed(active):  # Quarto merges the profiles last to first: the first one wins
        path = root / f"_quarto-{name}.yml"
        if path.is_file():
            cfg = merge_config(cfg, _read_yaml(path))
        elif profile:
            raise RenderError(f"no profile {name!r}: {path.name} does not exist")
    return cfg, (active[0] if active else None)


def load_book(root: Path, profile: str | None = None) -> Book:
    """Load `root/_quarto.yml` (a `project: type: book`) with a profile (default: `profile: default`)."""
    cfg, active = read_config(root, profile)
    where = root / "_quarto.yml" if active is None else f"{root / '_quarto.yml'} with _quarto-{active}.yml"
    project, book = cfg.get("project") or {}, cfg.get("book") or {}
    if project.get("type") != "book" or not book.get("chapters"):
        raise RenderError(f"{where}: expected `project: type: book` with `book: chapters:`")
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
        profile=active,
        lang=str(cfg.get("lang") or "en"),
        language=dict(cfg.get("language") or {}),
        output_file=str(book["output-file"]) if book.get("output-file") else None,
        config=cfg,
        site=site,
        filters=_as_list(cfg.get("filters")),
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


def _as_list(value) -> list[str]:
    """A YAML scalar or list as a list of strings."""
    return [str(v) for v in ([value] if isinstance(value, str) else value or [])]
