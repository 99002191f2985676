"""Progress of long training runs (issue 11): the engine reports, the command line shows a bar.

`engine.train` calls `advance(epochs_done, epochs_total)` after each chunk of epochs. A caller
that wants a bar wraps the work in `reporting(...)`: on a terminal, a tqdm bar with a rate and an
estimate appears once the work has taken `delay` seconds; elsewhere (a pipe, a file, a Jupyter
kernel) nothing is shown. Without a reporter, `advance` does nothing. The reporter is held in a
context variable: another thread, or a task, does not see this one's bar.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tqdm import tqdm


@dataclass
class _Reporter:
    desc: str
    file: object
    shown_after: float  # time.monotonic() from which a bar may appear
    options: dict
    bar: tqdm | None = None
    calls: int = 0  # train() calls seen: an experiment may train several times
    total: int = -1
    done: int = 0

    def advance(self, done: int, total: int) -> None:
        if total != self.total or done < self.done:  # a new train() call
            self.calls += 1
            self.total = total
            if self.bar is not None:
                self.bar.set_postfix_str(f"training {self.calls}", refresh=False)
                self.bar.reset(total=total)
        self.done = done
        if self.bar is None and time.monotonic() >= self.shown_after:  # quick work never flashes a bar
            columns, lines = _size(self.file)
            self.bar = tqdm(total=total, initial=done, desc=self.desc, unit="epoch", file=self.file, leave=False,
                            ncols=columns, nrows=lines, postfix=f"training {self.calls}", **self.options)
        elif self.bar is not None:
            self.bar.update(done - self.bar.n)


def _size(file) -> tuple[int, int]:
    """The terminal's columns and lines; 80 × 24 where it reports none. A fresh pseudo-terminal says 0 × 0, and
    tqdm then draws nothing: no room across, and no line for a bar at position 0 below a height of 0."""
    try:
        size = os.get_terminal_size(file.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 80, 24
    return size.columns or 80, size.lines or 24


_REPORTER: contextvars.ContextVar[_Reporter | None] = contextvars.ContextVar("sgdlab_progress", default=None)


def advance(done: int, total: int) -> None:
    """Report that `done` of `total` epochs of the current train() call are finished."""
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter.advance(done, total)


@contextlib.contextmanager
def reporting(desc: str, file=None, delay: float = 2.0, show: bool | None = None, **bar_options) -> Iterator[None]:
    """Show the epochs of the training done inside the block as a bar on `file` (stderr) if it is a terminal.

    show=None: only when file is a TTY. The bar appears once the block has run `delay` seconds, so
    quick work stays silent. bar_options go to tqdm (mininterval, ...).
    """
    file = sys.stderr if file is None else file
    show = file.isatty() if show is None else show
    if not show:
        yield
        return
    reporter = _Reporter(desc, file, time.monotonic() + delay, bar_options)
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)
        if reporter.bar is not None:
            reporter.bar.close()
