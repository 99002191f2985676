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
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from tqdm import tqdm


@dataclass
class _Reporter:
    bar: tqdm
    calls: int = 0  # train() calls seen: an experiment may train several times


_REPORTER: contextvars.ContextVar[_Reporter | None] = contextvars.ContextVar("sgdlab_progress", default=None)


def advance(done: int, total: int) -> None:
    """Report that `done` of `total` epochs of the current train() call are finished."""
    reporter = _REPORTER.get()
    if reporter is None:
        return
    bar = reporter.bar
    if reporter.calls == 0 or total != bar.total or done < bar.n:  # a new train() call
        reporter.calls += 1
        bar.reset(total=total)
        bar.set_postfix_str(f"training {reporter.calls}", refresh=False)
    bar.update(done - bar.n)


@contextlib.contextmanager
def reporting(desc: str, file=None, delay: float = 2.0, show: bool | None = None) -> Iterator[None]:
    """Show the epochs of the training done inside the block as a bar on `file` (stderr) if it is a terminal.

    show=None: only when file is a TTY. The bar appears after `delay` seconds, so quick work stays silent.
    """
    file = sys.stderr if file is None else file
    show = file.isatty() if show is None else show
    if not show:
        yield
        return
    bar = tqdm(total=0, desc=desc, unit="epoch", file=file, delay=delay, leave=False, dynamic_ncols=True)
    token = _REPORTER.set(_Reporter(bar))
    try:
        yield
    finally:
        _REPORTER.reset(token)
        bar.close()
