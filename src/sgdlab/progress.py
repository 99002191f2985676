"""Progress of long training runs (issue 11): the engine reports, the command line shows a bar.

Interface fixed before the implementation: `engine.train` calls `advance(epochs_done, epochs_total)`
after each chunk of epochs; a caller that wants a bar wraps the work in `reporting(...)`.
Without a reporter, `advance` does nothing.
"""

from __future__ import annotations


def advance(done: int, total: int) -> None:
    """Placeholder: report that `done` of `total` epochs of the current train() call are finished."""
