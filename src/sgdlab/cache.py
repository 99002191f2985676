"""Results cache (issue 11): an experiment's result stored on disk, keyed by everything it depends on.

Interface fixed before the implementation so that every experiment module can be decorated now:

    @cached
    def article_cycle(config: CycleConfig = CycleConfig()) -> CycleResult: ...

`cached` must return a function with the same signature and the same (bit-identical) result.
"""

from __future__ import annotations

from collections.abc import Callable


def cached(function: Callable) -> Callable:
    """Placeholder: no caching yet (the implementation replaces this body)."""
    return function
