"""sgdlab: why SGD's training loss stalls, and why minus the gradient is the steepest way down."""

__version__ = "0.1.0"
