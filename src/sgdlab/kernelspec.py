"""The book's Jupyter kernels on the safest transport there is, under Quarto and the built-in engine.

jupyter_client starts kernels on TCP at 127.0.0.1 in plain text: not reachable from the network,
but any local user can subscribe to a kernel's output socket and read it (ipykernel ≥ 7.4 warns
about it at every start). A Unix socket (`ipc`) in a directory only we can enter (0700) is
reachable by no one else; where there is no `ipc` (Windows), TCP with CurveZMQ keys encrypts.

The built-in engine moves its own kernel managers (`secure`). Quarto's notebook.py builds a default
one that reads no Jupyter config file, so the transport has to come from the kernelspec: `ensure`
makes this Python's `python3` kernelspec name `PrivateProvisioner`, registered as a
jupyter_client provisioner in pyproject.toml, which does the same for every kernel it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import zmq
from jupyter_client.provisioning import LocalProvisioner

PROVISIONER = "sgdlab-private"  # its entry point in pyproject.toml
NAME = "python3"  # the kernel Quarto and the built-in engine ask for
SUN_PATH = 104  # bytes in a Unix socket address: 104 on macOS and the BSDs, 108 on Linux


def safest_transport() -> str:
    """'ipc' (a private Unix socket) where zmq has it, else 'curve' (encrypted TCP), else plain 'tcp'."""
    if os.name == "posix" and zmq.has("ipc"):  # jupyter_client and ipykernel support ipc on POSIX only
        return "ipc"
    return "curve" if zmq.has("curve") else "tcp"


def secure(km) -> Path | None:
    """Put the next kernel of km (a jupyter_client KernelManager) on the safest transport.

    Returns the private directory made for its sockets and connection file (for `release`), or
    None when none was made: km had a safe transport already (a restart), or uses Curve.
    """
    if km.transport == "ipc" or km.transport_encryption != "disabled":
        return None
    way = safest_transport()
    if way == "ipc":
        private = Path(tempfile.mkdtemp(prefix="sgdlab-kernel-"))  # mode 0700
        address = private / "kernel"  # the kernel binds address-1 … address-5
        if len(os.fsencode(address)) + len("-99") < SUN_PATH:
            km.transport, km.ip = "ipc", str(address)
            km.connection_file = str(private / "connection.json")
            return private
        private.rmdir()  # a temporary folder too deep for a socket address: encrypt instead
        way = "curve" if zmq.has("curve") else "tcp"
    if way == "curve":
        km.transport_encryption = "auto"  # keys only for a kernelspec that declares Curve (ipykernel's does)
    return None


def release(private: Path | None) -> None:
    """Remove a directory `secure` made, once its kernel is shut down."""
    if private is not None:
        shutil.rmtree(private, ignore_errors=True)


class PrivateProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, on the transport `secure` picks."""

    _private: Path | None = None

    async def pre_launch(self, **kwargs):
        if self.parent is not None:  # the kernel manager, which writes the connection file next
            self._private = secure(self.parent) or self._private
        return await super().pre_launch(**kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart:
            release(self._private)
            self._private = None


def spec() -> dict:
    """ipykernel's own kernelspec for this Python, started by our launcher through our provisioner."""
    from ipykernel.kernelspec import get_kernel_dict

    kernel = get_kernel_dict()
    kernel["argv"] = [sys.executable, "-m", "sgdlab.kernel_launcher", "-f", "{connection_file}"]
    kernel["metadata"] = {**kernel.get("metadata", {}), "kernel_provisioner": {"provisioner_name": PROVISIONER}}
    return kernel


def ensure(prefix: str = sys.prefix) -> bool:
    """Make prefix's `python3` kernelspec ours, unless it is; False where it cannot be written.

    The venv's kernelspec directory comes first in jupyter_client's search (before the user's) and
    holds ipykernel's own. Only kernel.json is replaced, in one rename: a render reading it meanwhile
    (HTML and PDF render at once) sees the old file or the new one.
    """
    target = Path(prefix) / "share" / "jupyter" / "kernels" / NAME / "kernel.json"
    want = spec()
    try:
        if json.loads(target.read_text(encoding="utf-8")) == want:
            return True
    except (OSError, ValueError):
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=target.parent)
    except OSError:  # a Python whose prefix is not ours to write: its kernels keep ipykernel's spec
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(want, f, indent=1)
        os.chmod(tmp, 0o644)  # readable by all, as pip's files are (mkstemp makes it 0600)
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    return True


if __name__ == "__main__":  # `python -m sgdlab.kernelspec`, run by `make` after installing
    if not ensure():
        sys.exit(f"sgdlab: cannot write the {NAME} kernelspec under {sys.prefix}")
