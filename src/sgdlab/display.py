"""Report figures drawn once: a figure's display output cached beside the results it shows.

Quarto executes every chapter once per format, and drawing a chapter's figures costs more than
computing its (cached) results. So in a report kernel (after `notebook.setup()`) a figure function
decorated with `@report_figure` returns a `ReportFigure`, whose display bundle — exactly what
IPython shows for the drawn Figure — is stored in the results cache (`cache.py`). Its key: the
function, its arguments (the results, as data), the package's source digest and versions (as for
every entry), and the kernel's display settings: which printer each mime type uses for a Figure
(Quarto's `fig-format`: retina PNG for HTML, PDF for LaTeX; the built-in engine's PNG) and every
matplotlib rcParam (`fig-dpi`, `fig-width`, ...), and the language of its words (i18n.py). A hit
returns the stored bundle without drawing anything; a miss draws the Figure, lets IPython format it,
stores and returns that.

Outside a report kernel (the CLI, tests, a reader's own notebook), and when called while another
figure is being drawn (an explorable figure's static PNG), the functions return Figures.
When the settings cannot be written down (a printer that is a closure), or the cache is off, the
figure is drawn as usual.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
from collections.abc import Callable

from . import cache, i18n, serial

PREFIX = "display."  # cache entries of figures are named display.<module>.<function>
_active = False  # set by notebook.setup(): this process is a report kernel
_drawing = contextvars.ContextVar("sgdlab_drawing", default=False)  # inside a figure's drawing


def activate(on: bool = True) -> None:
    """Make `@report_figure` functions return cached display objects (notebook.setup calls it)."""
    global _active
    _active = on


def report_figure(function: Callable) -> Callable:
    """A figure function (result -> Figure or display object) that, in a report kernel, is drawn once."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if _active and not _drawing.get() and cache.enabled():
            return ReportFigure(function, args, kwargs)
        return function(*args, **kwargs)

    wrapper.draw = function
    return wrapper


def _describe(printer) -> dict | None:
    """A Figure printer as data: a module-level function, or a functools.partial of one; else None."""
    if isinstance(printer, functools.partial):
        inner = _describe(printer.func)
        if inner is None:
            return None
        return {**inner, "args": repr(printer.args), "keywords": repr(sorted(printer.keywords.items()))}
    closure = getattr(printer, "__closure__", None)
    qualname = getattr(printer, "__qualname__", "")
    if closure or "<" in qualname:  # a lambda or a nested function: its captured values are invisible
        return None
    return {"function": f"{getattr(printer, '__module__', '?')}.{qualname}"}


def display_settings(shell) -> dict | None:
    """What decides how a Figure displays in this kernel, as data; None if it cannot be written down."""
    import matplotlib
    from matplotlib.figure import Figure

    printers = {}
    for mime, formatter in shell.display_formatter.formatters.items():
        try:
            printer = formatter.lookup_by_type(Figure)
        except KeyError:
            continue
        described = _describe(printer)
        if described is None:
            return None
        printers[mime] = described
    rc = "\n".join(f"{k}={v!r}" for k, v in sorted(dict.items(matplotlib.rcParams)) if k != "backend")
    return {"printers": printers, "rc": hashlib.sha256(rc.encode()).hexdigest(),
            "matplotlib": matplotlib.__version__}


def _digest(arguments: dict) -> str | None:
    """SHA-256 of the arguments as data (a result's tree and its arrays' digests), None if they are not
    data: the key stays small however large the results a figure shows."""
    try:
        return hashlib.sha256(json.dumps(serial.fingerprint(arguments), sort_keys=True).encode()).hexdigest()
    except TypeError:
        return None


class ReportFigure:
    """A figure not drawn yet: IPython asks for its bundle, which comes from the cache or a drawing."""

    def __init__(self, function: Callable, args: tuple, kwargs: dict) -> None:
        self.function, self.args, self.kwargs = function, args, kwargs

    def draw(self):
        """The Figure (or display object) itself; figure functions it calls return theirs too."""
        token = _drawing.set(True)
        try:
            return self.function(*self.args, **self.kwargs)
        finally:
            _drawing.reset(token)

    def _bundle(self, shell) -> tuple[dict, dict]:
        data, metadata = shell.display_formatter.format(self.draw())
        return data, metadata

    def _repr_mimebundle_(self, include=None, exclude=None):
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:  # displayed outside IPython: nothing to cache against
            return {"text/plain": repr(self.draw())}
        i18n.use_fonts()  # the language's fonts are part of the settings the key describes
        settings = display_settings(shell)
        name = f"{PREFIX}{self.function.__module__}.{self.function.__qualname__}"
        arguments = None if settings is None else _digest({"args": list(self.args), "kwargs": self.kwargs})
        key = None if arguments is None else cache.key_for(
            name, {"arguments": arguments, "display": settings, "language": i18n.language()})
        if key is None:
            return self._bundle(shell)
        data, metadata = cache.fetch(name, key, lambda: list(self._bundle(shell)))
        return data, metadata
