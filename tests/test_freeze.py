"""Quarto's freeze, guarded (render/freeze.py): frozen outputs go whenever what they depend on changed."""

import json

import pytest

from sgdlab import cache
from sgdlab.render import freeze


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("SGDLAB_NO_CACHE", raising=False)
    (tmp_path / "_quarto.yml").write_text("project:\n  type: book\nmetadata-files: [meta.yml]\n")
    (tmp_path / "meta.yml").write_text("mainfont: A\n")
    return tmp_path


def frozen_chapter(root):
    """What Quarto leaves after executing a chapter with `freeze: auto`."""
    results = root / "_freeze" / "report" / "01-x" / "execute-results"
    results.mkdir(parents=True)
    (results / "html.json").write_text('{"hash": "h", "result": {}}')
    return results


def test_the_first_render_stamps_and_a_second_keeps_what_was_frozen(project):
    assert freeze.guard(project) is None
    stamp = json.loads((project / "_freeze" / freeze.STAMP).read_text())
    assert stamp["package"] == cache.SOURCE_DIGEST and stamp["executable"]
    results = frozen_chapter(project)
    assert freeze.guard(project) is None
    assert (results / "html.json").is_file()


def test_frozen_outputs_without_a_stamp_are_discarded(project):
    results = frozen_chapter(project)
    assert "every chapter executes again" in freeze.guard(project)
    assert not results.exists() and (project / "_freeze" / freeze.STAMP).is_file()


@pytest.mark.parametrize("change, why", [
    (lambda root, mp: mp.setattr(cache, "SOURCE_DIGEST", "0" * 64), "src/sgdlab changed"),
    (lambda root, mp: (root / "_quarto.yml").write_text("project:\n  type: book\nexecute:\n  freeze: auto\n"),
     "_quarto.yml"),
    (lambda root, mp: (root / "meta.yml").write_text("mainfont: B\n"), "_quarto.yml, a profile or a metadata file"),
    (lambda root, mp: mp.setattr(cache.metadata, "version", lambda name: "9.9"), "library versions changed"),
    (lambda root, mp: mp.setenv("SGDLAB_NO_CACHE", "1"), "SGDLAB_NO_CACHE is set"),
])
def test_any_change_it_cannot_see_discards_every_frozen_output(project, monkeypatch, change, why):
    freeze.guard(project)
    results = frozen_chapter(project)
    change(project, monkeypatch)
    note = freeze.guard(project)
    assert why in note and not results.exists()
