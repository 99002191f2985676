"""The built-in engine executes only chapters whose code changed (render/chapters.py)."""

import re

import pytest
from test_render import copy_book

from sgdlab.render import builtin, render
from sgdlab.render.execute import _plan


@pytest.fixture
def executed(monkeypatch, tmp_path):
    """The chapters each render executed, render by render; the results cache on, in tmp_path."""
    monkeypatch.delenv("SGDLAB_NO_CACHE", raising=False)
    monkeypatch.setenv("SGDLAB_CACHE_DIR", str(tmp_path / "cache"))
    log: list[list[str]] = []
    real = builtin.run_chapters

    def recording(jobs, *args, **kwargs):
        log.append([job.name for job in jobs if _plan(job.doc, {})])  # those that start a kernel
        return real(jobs, *args, **kwargs)

    monkeypatch.setattr(builtin, "run_chapters", recording)
    return log


def html(root):
    return (root / "_book" / "index.html").read_text(encoding="utf-8")


def test_prose_edits_execute_nothing_and_a_code_edit_only_its_chapter(executed, tmp_path, monkeypatch):
    root = copy_book(tmp_path)
    render(root, engine="builtin", to="html")
    first = html(root)
    assert executed[-1] == ["report/01-alpha.qmd", "report/02-beta.qmd"]  # the chapters with code

    render(root, engine="builtin", to="html")
    assert executed[-1] == [] and html(root) == first  # read back: the same page, no kernel

    # Prose added before the cells moves every cell and paragraph: the outputs read back follow them.
    alpha = root / "report" / "01-alpha.qmd"
    alpha.write_text(alpha.read_text().replace("# Alpha {#sec-alpha}\n",
                                               "# Alpha {#sec-alpha}\n\nA new sentence.\n\n## A new section\n"))
    render(root, engine="builtin", to="html")
    assert executed[-1] == [] and "A new sentence." in html(root)
    from_cache = html(root)
    monkeypatch.setenv("SGDLAB_NO_CACHE", "1")
    render(root, engine="builtin", to="html")
    assert len(executed[-1]) == 2 and html(root) == from_cache  # as if every chapter had run again
    monkeypatch.delenv("SGDLAB_NO_CACHE")

    alpha.write_text(re.sub(r"xs = \[0, 1, 2, 3\]", "xs = [0, 1, 2, 3, 4]", alpha.read_text()))
    render(root, engine="builtin", to="html")
    assert executed[-1] == ["report/01-alpha.qmd"] and "We have 5 points" in html(root)

