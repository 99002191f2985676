"""The book's place on the web: its addresses, repository links, link-preview tags and footer.

`_quarto.yml` names the canonical site and repository once (`book: site-url`, `repo-url`). A render
for another repository (a fork's publish workflow) sets SGDLAB_SITE_URL and SGDLAB_REPO_URL;
`_prerender.py` writes them to assets/site.yml, a `metadata-files` entry that Quarto merges over
`_quarto.yml` after the pre-render step (and `book.load_book` does the same). The built-in engine
shows the same links, tags and footer as Quarto's pages (`Site`, read from `book:`).

An edition in a folder of the site (the Chinese one, `zh/`: editions.py) has its pages at
`<site-url>/zh/`, so its render's site.yml names that address, the environment's site or
_quarto.yml's with the folder added. It cannot be a profile's `site-url`: Quarto merges a profile
over the metadata files, and a fork's address would lose. Quarto gives the pre-render step the
active profile in QUARTO_PROFILE.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from .words import words

SITE_FILE = Path("assets/site.yml")
ENV = {"SGDLAB_SITE_URL": "site-url", "SGDLAB_REPO_URL": "repo-url"}
URL = re.compile(r"https?://[^\s/]+(/\S*)?")
# Quarto's words for the actions (render/words.py, `repo-action-links-<action>`), link targets as in
# website-navigation.ts.
ACTIONS = ("edit", "source", "issue")


class SiteError(ValueError):
    """A setting a user gave that cannot make a link; the message names it."""


def override_yaml(environ: Mapping[str, str], folder: str = "", site_url: str = "") -> str:
    """assets/site.yml: `book: site-url/repo-url` from the environment, or nothing to override; for an
    edition in a folder of the site, its site-url below the site (the environment's, else site_url)."""
    head = "# Written by _prerender.py (sgdlab.render.site) from SGDLAB_SITE_URL / SGDLAB_REPO_URL; do not edit.\n"
    book = {}
    for var, key in ENV.items():
        value = environ.get(var, "").strip()
        if not value:
            continue
        if not URL.fullmatch(value):
            raise SiteError(f"{var} must be an http(s) URL, got {value!r}")
        book[key] = value.rstrip("/")  # Quarto joins site-url and "/path" as they are
    site = book.get("site-url") or site_url.rstrip("/")
    if folder.strip("/") and site:
        book["site-url"] = f"{site}/{folder.strip('/')}"
    return head + (yaml.safe_dump({"book": book}, sort_keys=True) if book else "{}\n")


def write_override(root: Path, environ: Mapping[str, str] = os.environ, profile: str | None = None) -> None:
    """Write root/assets/site.yml for an edition (default: QUARTO_PROFILE's first), only when its text
    changes (Quarto then has nothing new to re-read)."""
    from .book import _read_yaml  # book.py reads its Site from here
    from .editions import editions

    text = override_yaml(environ)  # the environment's addresses checked before the project is read
    profile = profile or (environ.get("QUARTO_PROFILE") or "").split(",")[0].strip()
    folder = next((e.folder for e in editions(root) if e.profile == profile), "") \
        if profile and (root / "_quarto.yml").is_file() else ""
    if folder:
        # _quarto.yml's own address: the merged config holds the last override, a zh render's
        # …/zh, and would grow by a /zh at each zh render
        base = (_read_yaml(root / "_quarto.yml").get("book") or {}).get("site-url") or ""
        text = override_yaml(environ, folder, str(base))
    out = root / SITE_FILE
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


def _text(value, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise SiteError(f"_quarto.yml: `book: {key}:` must be text for the built-in engine, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Site:
    """The `book:` options the built-in engine reads (README: the Quarto subset)."""

    title: str
    description: str = ""
    site_url: str = ""
    repo_url: str = ""
    repo_branch: str = "main"
    repo_subdir: str = ""
    issue_url: str = ""
    actions: tuple[str, ...] = ()
    image: str = ""
    open_graph: bool = False
    twitter_card: bool = False
    footer: tuple[tuple[str, str], ...] = ()  # (region, Markdown): left, center, right

    @classmethod
    def from_book(cls, book: Mapping, title: str) -> Site:
        """Read `book:` of _quarto.yml (already merged with its metadata files)."""
        actions = book.get("repo-actions") or ()
        actions = (actions,) if isinstance(actions, str) else tuple(actions)
        unknown = [a for a in actions if a not in (*ACTIONS, "none")]
        if unknown:
            raise SiteError(f"_quarto.yml: unknown `repo-actions` {unknown} (Quarto knows edit, source, issue)")
        footer = book.get("page-footer") or {}
        footer = {"center": footer} if isinstance(footer, str) else footer
        if not isinstance(footer, Mapping) or set(footer) - {"left", "center", "right"}:
            raise SiteError("_quarto.yml: `book: page-footer:` must be text or left/center/right text")
        return cls(
            title=title,
            description=_text(book.get("description"), "description"),
            site_url=_text(book.get("site-url"), "site-url").rstrip("/"),
            repo_url=_text(book.get("repo-url"), "repo-url"),
            repo_branch=_text(book.get("repo-branch"), "repo-branch") or "main",
            repo_subdir=_text(book.get("repo-subdir"), "repo-subdir"),
            issue_url=_text(book.get("issue-url"), "issue-url"),
            actions=tuple(a for a in actions if a != "none"),
            image=_text(book.get("image"), "image"),
            open_graph=bool(book.get("open-graph")),
            twitter_card=bool(book.get("twitter-card")),
            footer=tuple((r, _text(footer[r], f"page-footer: {r}")) for r in ("left", "center", "right")
                         if footer.get(r)),
        )

    def action_links(self, source: str, names: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """(text, URL) of the repository actions for one source file, as Quarto writes them, in the
        words of names (render/words.py; default English)."""
        said = names or words()
        if not self.repo_url:
            return [(said["repo-action-links-issue"], self.issue_url)] \
                if "issue" in self.actions and self.issue_url else []
        base = self.repo_url.rstrip("/") + "/"
        path = (self.repo_subdir.strip("/") + "/" if self.repo_subdir.strip("/") else "") + source
        urls = {"edit": f"{base}edit/{self.repo_branch}/{path}",
                "source": f"{base}blob/{self.repo_branch}/{path}",
                "issue": self.issue_url or f"{base}issues/new"}
        return [(said[f"repo-action-links-{a}"], urls[a]) for a in self.actions]

    def image_url(self) -> str:
        """The preview image's address: an absolute URL as it is, else site-url + its project path."""
        if URL.fullmatch(self.image):
            return self.image
        if not self.image or not self.site_url:
            return ""  # Quarto too writes no image tag without site-url
        return f"{self.site_url}/{self.image.lstrip('/')}"

    def meta_tags(self) -> str:
        """Open Graph and Twitter Card tags, the ones Quarto writes for a page with this metadata."""
        tags: list[tuple[str, str]] = []
        image = self.image_url()
        for on, prefix in ((self.open_graph, "og"), (self.twitter_card, "twitter")):
            if not on:
                continue
            tags += [(f"{prefix}:title", self.title), (f"{prefix}:description", self.description)]
            tags += [(f"{prefix}:image", image)] if image else []  # Quarto's book writes no image alt
            tags += [("og:site_name", self.title)] if prefix == "og" else []
            tags += [("twitter:card", "summary_large_image" if image else "summary")] if prefix == "twitter" else []
        attr = {True: "property", False: "name"}
        return "".join(f'<meta {attr[k.startswith("og:")]}="{k}" content="{html.escape(v)}">\n'
                       for k, v in tags if v)

    def actions_markdown(self, source: str, names: Mapping[str, str] | None = None) -> str:
        """A chapter's repository links on the built-in page, in Quarto's markup (div.toc-actions)."""
        links = self.action_links(source, names)
        items = "\n".join(f"- [{text}]({url}){{.toc-action}}" for text, url in links)
        return f"\n::: {{.toc-actions}}\n{items}\n:::\n" if links else ""

    def footer_markdown(self) -> str:
        """Quarto's page footer (`page-footer:` left, center, right) as Markdown divs, or ''."""
        regions = "\n".join(f"::: {{.nav-footer-{region}}}\n{text}\n:::" for region, text in self.footer)
        return f"::: {{.nav-footer}}\n{regions}\n:::\n" if regions else ""
