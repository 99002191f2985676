"""Report figures drawn once (display.py): the cached bundle is what IPython shows for the Figure."""

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from matplotlib.figure import Figure
from matplotlib_inline.backend_inline import set_matplotlib_formats

import sgdlab.plots
from sgdlab import display, interactive
from sgdlab.plots.style import figure

DRAWN = []


@display.report_figure
def line(values: np.ndarray, title: str = "") -> Figure:
    DRAWN.append(title)
    fig, ax = figure()
    ax.plot(values)
    ax.set_title(title)
    return fig


@display.report_figure
def outer(values: np.ndarray) -> Figure:
    inner = line(values, "inner")
    assert isinstance(inner, Figure)  # a figure function called while drawing gives a Figure
    return inner


@pytest.fixture
def shell(monkeypatch, tmp_path):
    monkeypatch.delenv("SGDLAB_NO_CACHE", raising=False)
    monkeypatch.setenv("SGDLAB_CACHE_DIR", str(tmp_path / "cache"))
    shell = InteractiveShell.instance()
    set_matplotlib_formats("png")
    display.activate()
    DRAWN.clear()
    yield shell
    display.activate(False)
    set_matplotlib_formats("png")  # drops any printer a test registered on the shared shell


def test_outside_a_report_kernel_a_figure_function_returns_a_figure():
    assert isinstance(line(np.arange(3.0)), Figure)


def test_the_cached_bundle_is_the_figures_own_and_a_hit_draws_nothing(shell):
    values = np.linspace(0, 1, 50)
    expected = shell.display_formatter.format(line.draw(values, "a"))
    DRAWN.clear()
    first = shell.display_formatter.format(line(values, "a"))
    second = shell.display_formatter.format(line(values, "a"))
    assert first == expected and second == expected
    assert DRAWN == ["a"]  # drawn once: the second display came from the cache


def test_the_key_holds_the_arguments_and_the_display_settings(shell):
    values = np.linspace(0, 1, 50)
    shell.display_formatter.format(line(values, "a"))
    shell.display_formatter.format(line(values + 1e-12, "a"))  # one value differs in its last bits
    shell.display_formatter.format(line(values, "b"))
    set_matplotlib_formats("retina")  # Quarto's HTML: twice the pixels, and width/height metadata
    _, metadata = shell.display_formatter.format(line(values, "a"))
    assert DRAWN == ["a", "a", "b", "a"]
    assert metadata["image/png"]["width"] > 0


def test_a_figure_drawn_inside_another_is_a_figure(shell):
    data, _ = shell.display_formatter.format(outer(np.arange(4.0)))
    assert "image/png" in data and DRAWN == ["inner"]


def test_with_the_cache_off_the_figure_is_returned_as_it_is(shell, monkeypatch):
    monkeypatch.setenv("SGDLAB_NO_CACHE", "1")
    assert isinstance(line(np.arange(3.0)), Figure)


def test_a_printer_that_cannot_be_written_down_is_not_cached(shell):
    shell.display_formatter.formatters["image/png"].for_type(Figure, lambda fig: b"\x89PNG")
    assert display.display_settings(shell) is None
    shell.display_formatter.format(line(np.arange(3.0), "c"))
    shell.display_formatter.format(line(np.arange(3.0), "c"))
    assert DRAWN == ["c", "c"]


def test_every_figure_function_of_the_package_is_drawn_once_in_a_report():
    modules = [importlib.import_module(f"sgdlab.plots.{m.name}") for m in pkgutil.iter_modules(sgdlab.plots.__path__)]
    figures = [f for m in modules if m.__name__ != "sgdlab.plots.style"
               for name, f in vars(m).items() if inspect.isfunction(f) and f.__module__ == m.__name__
               and not name.startswith("_")]
    figures += [interactive.floor_figure, interactive.steps_figure]
    assert len(figures) > 20
    assert all(hasattr(f, "draw") for f in figures), [f.__qualname__ for f in figures if not hasattr(f, "draw")]


def test_the_key_holds_the_language(shell, monkeypatch):
    """The same figure of the same results in another edition is another entry: its words differ."""
    values = np.arange(5.0)
    for lang in ("en", "zh", "en", "zh"):
        monkeypatch.setenv("SGDLAB_LANG", lang)
        shell.display_formatter.format(line(values, "a"))
    assert DRAWN == ["a", "a"]  # once per language, then both read back
