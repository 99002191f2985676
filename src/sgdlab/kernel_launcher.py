"""The kernel command of sgdlab's `python3` kernelspec: ipykernel, as `python -m ipykernel_launcher` starts it.

Only where zmq offers nothing safer than plain TCP (no `ipc`, no Curve: `kernelspec.safest_transport`)
it drops ipykernel's warning about plain TCP, that one message and nothing else: the render has no
better transport to choose, and the kernel listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

PLAIN_TCP = "Kernel is running over TCP without encryption."  # how ipykernel's warning begins


class DropPlainTcpWarning(logging.Filter):
    """Drops ipykernel's plain-TCP warning; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and record.getMessage().startswith(PLAIN_TCP))


def main() -> None:
    """Start the kernel (argv: ipykernel's, e.g. `-f connection.json`)."""
    from ipykernel.kernelapp import IPKernelApp

    from sgdlab.kernelspec import safest_transport

    if safest_transport() == "tcp":
        IPKernelApp.instance().log.addFilter(DropPlainTcpWarning())
    IPKernelApp.launch_instance()


if __name__ == "__main__":
    # As ipykernel_launcher: the working directory leaves sys.path while the kernel loads (IPython puts it back).
    if sys.path[0] == "" or Path(sys.path[0]) == Path.cwd():
        del sys.path[0]
    main()
