"""Nothing in the repository refers to a path outside it: a clone must be complete on its own.

Every git-tracked text file is read line by line for absolute paths that exist only on the
machine a file was written on, for `../` paths that name no file of the clone, and, in Markdown
and Quarto files, for relative links that leave the clone or name a file it does not have.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN = (".md", ".qmd")

# Paths of one machine: the shared work area, home directories, file: URLs. The character
# classes keep this file's own source from matching; the look-behind skips a URL's path part.
ABSOLUTE = re.compile(r"(?<![\w.~-])(/wor[k]/|/hom[e]/[^/\s]+|/User[s]/[^/\s]+|/roo[t]/|file:/{2})\S*")
UP = re.compile(r"(?<![\w./-])(?:\.\./)+[^\s()\[\]<>'\"`,;]*")  # a path token starting with ../
# An inline link's target, or a reference link's definition (not a footnote's, `[^1]: text`).
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)|^\s{0,3}\[(?!\^)[^\]]+\]:\s*<?([^>\s]+)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # https:, mailto:, data:
CODE_SPAN = re.compile(r"(`+).*?\1")
FENCE = re.compile(r"^\s*(```|~~~)")


def _climbs_out(base: str, target: str) -> bool:
    """Whether target, relative to the repository directory base ("" for the root), leaves the clone."""
    return posixpath.normpath(posixpath.join(base, target)).split("/")[0] == ".."


def _names_a_file(base: str, path: str) -> bool:
    """Whether a ../ path names a file of the clone. It may be relative to the working directory
    (the root, where commands run) or to the file it is written in (base): either will do."""
    return any(not _climbs_out(start, path) and (ROOT / start / path).exists() for start in ("", base))


def _link_problem(rel: str, target: str) -> str | None:
    """Why a Markdown link of file rel is wrong (leaves the clone, or its file is missing), or None."""
    if SCHEME.match(target) or target.startswith(("#", "/", "@")):
        return None  # a URL, an anchor, an absolute path (ABSOLUTE judges it), a citation
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if not path:
        return None
    base = posixpath.dirname(rel)
    if _climbs_out(base, path):
        return f"link outside the repository `{target}`"
    if not (ROOT / base / path).exists():
        return f"link to a file the repository does not have `{target}`"
    return None


def scan_text(rel: str, text: str) -> list[str]:
    """Every reference outside the repository in the text of file rel, as `rel:line: what`."""
    problems = []
    base, fenced = posixpath.dirname(rel), False
    for number, line in enumerate(text.splitlines(), 1):
        found = [f"path outside the repository `{m.group(0)}`" for m in ABSOLUTE.finditer(line)]
        found += [f"relative path outside the repository `{m.group(0)}`" for m in UP.finditer(line)
                  if not _names_a_file(base, m.group(0).rstrip(".:"))]
        if rel.endswith(MARKDOWN):
            if FENCE.match(line):
                fenced = not fenced
            elif not fenced:  # links in code blocks and code spans are not links
                for m in LINK.finditer(CODE_SPAN.sub("", line)):
                    why = _link_problem(rel, m.group(1) or m.group(2))
                    found += [why] if why else []
        problems += [f"{rel}:{number}: {what}" for what in dict.fromkeys(found)]
    return problems


def tracked_files() -> list[str]:
    """The repository's files as git lists them, relative to the root."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (or one deleted but not yet committed)."""
    try:
        data = path.read_bytes()
        return None if b"\0" in data else data.decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def test_no_tracked_file_refers_outside_the_repository():
    files = tracked_files()
    texts = {rel: text for rel in files if (text := _text(ROOT / rel)) is not None}
    assert "README.md" in texts and "tests/test_repository.py" in texts  # the scan reads what it should
    problems = [p for rel, text in texts.items() for p in scan_text(rel, text)]
    assert not problems, "references outside the repository:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------- the scan itself

OUT = ".." + "/"  # assembled, so that this file's source holds no such path
OLD_README = f"""\
(chapter 3.1, linear regression) asked in a CSDN article
([source text]({OUT}shared/seed/000_1605e13e4b6cd801.txt), by qq_37002846, CC BY-SA 4.0):
  builtin`): each chapter runs in a fresh Jupyter kernel, exactly the Quarto subset of
  `{OUT}shared/DESIGN.md` is converted by Pandoc (from the `pypandoc_binary` wheel) into one
"""


def test_the_scan_names_the_old_readmes_outside_links_by_line():
    problems = scan_text("README.md", OLD_README)
    assert [p.split(":")[1] for p in problems] == ["2", "2", "4"]
    assert "link outside the repository" in problems[1] and "shared/DESIGN.md" in problems[2]


@pytest.mark.parametrize(("rel", "line", "found"), [
    ("docs/DESIGN.md", "Checked with a real Quarto 1.7.34 (" + "/wor" + "k/quarto) on a book", ["path outside"]),
    ("src/sgdlab/x.py", 'CACHE = "' + "/hom" + 'e/alice/.cache/sgdlab"', ["path outside"]),
    ("src/sgdlab/x.py", 'ROOT = "' + "/roo" + 't/sgdlab"', ["path outside"]),
    ("tests/x.py", "url = '" + "file:/" + "/tmp/x.html'", ["path outside"]),
    ("docs/DESIGN.md", f"see [the notes]({OUT}{OUT}notes.md)", ["relative path outside", "link outside"]),
    ("docs/DESIGN.md", "see [the notes](no-such-file.md)", ["link to a file the repository does not have"]),
    ("docs/DESIGN.md", "[notes]: no-such-file.md", ["link to a file the repository does not have"]),
    ("Makefile", f"include {OUT}shared/common.mk", ["relative path outside"]),
    ("docs/NOTES.md", f"# Where the code departs from {OUT}shared/DESIGN.md, and why", ["relative path outside"]),
])
def test_the_scan_catches(rel, line, found):
    problems = scan_text(rel, line)
    assert len(problems) == len(found), problems
    for problem, what in zip(problems, found, strict=True):
        assert problem.startswith(f"{rel}:1: {what}"), problem


@pytest.mark.parametrize(("rel", "line"), [
    ("docs/DESIGN.md", f"the [README]({OUT}README.md) and [the design](DESIGN.md#layout)"),
    ("README.md", "[Quarto](https://quarto.org/docs/books/) and [a section](#results-cache)"),
    ("docs/DESIGN.md", "`[x](no-such-file.md)` in a code span is not a link"),
    ("report/01-a.qmd", "[^note]: A footnote, not a link definition."),
    ("src/sgdlab/render/x.py", f'ASSETS = Path(__file__).parent / "{OUT}assets"'),
    ("docs/x.md", f"as {OUT}README.md says."),
    ("README.md", "https://example.org/home/work/x and /usr/bin/env"),
])
def test_the_scan_leaves_alone(rel, line):
    assert scan_text(rel, line) == []


def test_links_inside_fenced_code_are_not_links():
    text = "```python\nfigures[0](result)\n```\n[x](README.md)\n"
    assert scan_text("docs/DESIGN.md", text) == ["docs/DESIGN.md:4: link to a file the repository does not have"
                                                 " `README.md`"]
