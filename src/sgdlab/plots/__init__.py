"""One function per figure: a result in, a matplotlib Figure out (the registry maps experiments to theirs)."""

from .style import figure, save

__all__ = ["figure", "save"]
