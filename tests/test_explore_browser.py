"""The explorable figures in a real browser: headless Chromium moves a slider (a key press) and a
switch, and the drawing follows; nothing is fetched; the figure fits a 420-px phone screen."""

from __future__ import annotations

import json

import pytest
from browser import Browser, find_chromium  # tests/ is on sys.path (pytest prepend mode)
from test_explore import SMALL_FLOOR, SMALL_STEPS

from sgdlab import explore, interactive

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (.ci/run installs Debian's chromium)")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A page with both figures, as a Quarto chapter would carry them (each with its script and CSS)."""
    figs = [interactive.floor_figure(explore.floor_grid(SMALL_FLOOR)),
            interactive.steps_figure(explore.steps_grid(SMALL_STEPS))]
    path = tmp_path_factory.mktemp("page") / "page.html"
    path.write_text('<!doctype html><html><head><meta charset="utf-8">'
                    '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
                    + "".join(f.html() for f in figs) + "</body></html>", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser():
    b = Browser(CHROMIUM)
    yield b
    b.close()


def _drawing(b: Browser, fig: str) -> str:
    return b.js(f"document.querySelector('{fig} .sx-panels').innerHTML + "
                f"document.querySelector('{fig} .sx-readout').textContent")


def test_a_key_press_on_the_slider_redraws(browser, page):
    browser.open(page.as_uri())
    fig = "#lf-explore"
    assert browser.js(f"document.querySelector('{fig}').dataset.ready") == "1"
    before, label = _drawing(browser, fig), browser.js(f"document.querySelector('{fig} output').textContent")
    assert "<path" in before and label == "0.03"  # drawn, at the article's step size
    browser.js(f"document.querySelector('{fig} input[type=range]').focus()")
    browser.key("ArrowRight", "ArrowRight", 39)
    after = _drawing(browser, fig)
    assert after != before
    assert browser.js(f"document.querySelector('{fig} output').textContent") != label


def test_a_diverged_frame_says_so_and_a_switch_redraws(browser, page):
    browser.open(page.as_uri())
    fig = "#steepest-explore"
    before = _drawing(browser, fig)
    browser.js(f"(() => {{ const r = document.querySelector('{fig} input[type=range]'); r.value = r.max;"
               "r.dispatchEvent(new Event('input')); })()")
    assert "diverged" in browser.js(f"document.querySelector('{fig} .sx-readout').textContent")
    moved = _drawing(browser, fig)
    browser.js(f"(() => {{ const s = document.querySelector('{fig} select[data-control=norm]'); s.value = '3';"
               "s.dispatchEvent(new Event('change')); })()")
    assert len({before, moved, _drawing(browser, fig)}) == 3


def test_nothing_is_fetched_and_it_fits_a_phone(browser, page):
    browser.open(page.as_uri(), width=420, height=800)
    assert [u for u in browser.requested() if not u.startswith(("file:", "about:", "data:"))] == []
    widths = browser.js("JSON.stringify([document.documentElement.scrollWidth, ...Array.from("
                        "document.querySelectorAll('.sgdlab-explore'), e => e.getBoundingClientRect().right)])")
    assert max(json.loads(widths)) <= 420
