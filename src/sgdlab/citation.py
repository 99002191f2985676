"""How to cite the book: a reference and a BibTeX entry, from _quarto.yml and the package's version.

The title, authors and addresses are the rendered book's own (`book:` of _quarto.yml, with a
fork's addresses merged over it: render/site.py), so a fork's edition cites the fork.
CITATION.cff at the root says the same for GitHub and reference managers (tests/test_publish.py
keeps the two in agreement).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from IPython.display import Markdown

from .render.book import load_book


@dataclass(frozen=True)
class Citation:
    """What a reference to the book names."""

    title: str
    subtitle: str
    authors: tuple[str, ...]
    version: str
    url: str  # the published book (site-url)
    repository: str  # its source (repo-url)

    @property
    def full_title(self) -> str:
        return f"{self.title}: {self.subtitle}" if self.subtitle else self.title

    def reference(self) -> str:
        """The reference as one Markdown paragraph."""
        parts = [f"{' and '.join(self.authors)}. *{self.full_title}*. Version {self.version}."]
        parts += [f"<{self.url}>."] if self.url else []
        parts += [f"Source code: <{self.repository}>."] if self.repository else []
        return " ".join(parts)

    def bibtex(self) -> str:
        """A BibTeX entry; braces keep the group author and the title's capitals as they are."""
        note = f"Version {self.version}" + (f". Source code: {self.repository}" if self.repository else "")
        fields = {"title": f"{{{self.full_title}}}", "author": " and ".join(f"{{{a}}}" for a in self.authors),
                  "url": self.url, "note": note}
        body = ",\n".join(f"  {k:<6} = {{{v}}}" for k, v in fields.items() if v)
        return f"@misc{{sgdlab,\n{body}\n}}"


def citation(root: Path = Path(".")) -> Citation:
    """The book at root (the working directory in a report kernel), as it is rendered."""
    book = load_book(root)
    author = book.meta.get("author") or []
    return Citation(title=book.title, subtitle=str(book.meta.get("subtitle") or ""),
                    authors=tuple(map(str, [author] if isinstance(author, str) else author)),
                    version=importlib.metadata.version("sgdlab"),
                    url=book.site.site_url if book.site else "", repository=book.site.repo_url if book.site else "")


def how_to_cite(root: Path = Path(".")) -> Markdown:
    """The preface's citation: the reference, then the BibTeX entry."""
    c = citation(root)
    return Markdown(f"{c.reference()}\n\n```bibtex\n{c.bibtex()}\n```\n")
