"""The kernels a render starts listen on a private Unix socket and print nothing on stderr, started the
way the built-in engine starts them and the way Quarto 1.7's notebook.py does; where zmq has no Unix
sockets they encrypt (Curve), and with neither only ipykernel's plain-TCP warning is dropped."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
from pathlib import Path

import nbformat
import pytest
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from sgdlab import kernelspec
from sgdlab.kernel_launcher import PLAIN_TCP, DropPlainTcpWarning
from sgdlab.render.execute import run_chapter
from sgdlab.render.qmd import parse

# Run in the kernel: how it is reached, and who may enter the folder of its sockets (jupyter_client adds the
# sticky bit to the folder of a connection file, against /tmp cleaners: only the permission bits count).
PROBE = """\
import json, os
from ipykernel.kernelapp import IPKernelApp
_app = IPKernelApp.instance()
_folder = os.path.dirname(_app.ip) if _app.transport == "ipc" else None
print(json.dumps({"transport": _app.transport, "ip": _app.ip, "curve": _app.curve_secretkey is not None,
                  "mode": os.stat(_folder).st_mode & 0o777 if _folder else None}))
"""


def _probe_outputs(outputs: list) -> dict:
    return json.loads("".join(o.get("text", "") for o in outputs if o.get("name") == "stdout"))


def _quarto_way(cells: list[str]) -> list[list[dict]]:
    """Start a kernel and run cells with the calls of Quarto 1.7.34's notebook.py (notebook_init), then shut it down."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    client = NotebookClient(nb, resources={"metadata": {"input": "ch.ipynb"}})
    client.record_timing = False
    client.create_kernel_manager()
    client.start_new_kernel()
    client.start_new_kernel_client()
    try:
        client.wait_for_reply(client.kc.kernel_info())
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    finally:
        client._cleanup_kernel()  # what notebook.py registers with atexit
    return [cell.outputs for cell in nb.cells]


def _no_safe_transport(monkeypatch, has_curve: bool = False) -> None:
    """This process's zmq as on a platform without Unix sockets (and, unless has_curve, without Curve)."""
    real = zmq.has
    monkeypatch.setattr(zmq, "has", lambda feature: feature != "ipc" and (has_curve or feature != "curve")
                        and real(feature))


def test_the_built_in_engine_kernel_is_on_a_private_socket_and_silent(tmp_path, capfd):
    doc = parse(f"# Probe\n\n```{{python}}\n{PROBE}```\n", tmp_path / "probe.qmd")
    run = run_chapter(doc, "probe.qmd", tmp_path, {})
    seen = _probe_outputs(next(iter(run.outputs.values())))
    assert seen["transport"] == "ipc" and seen["mode"] == 0o700
    assert not Path(seen["ip"]).parent.exists()  # sockets and connection file gone with their folder
    assert capfd.readouterr().err == ""


def test_quartos_kernel_uses_the_venv_kernelspec_a_private_socket_and_prints_nothing(capfd):
    found = KernelSpecManager().get_kernel_spec("python3")
    assert found.metadata.get("kernel_provisioner", {}).get("provisioner_name") == kernelspec.PROVISIONER, \
        f"the python3 kernelspec in {found.resource_dir} is not sgdlab's: run `{sys.executable} -m sgdlab.kernelspec`"
    for attempt in range(2):  # once more only after libzmq's own teardown race (below), never after our output
        outputs = _quarto_way([PROBE])
        seen = _probe_outputs(outputs[0])
        assert seen["transport"] == "ipc" and seen["mode"] == 0o700
        assert not Path(seen["ip"]).parent.exists()
        err = capfd.readouterr().err
        if not (attempt == 0 and ZMQ_TEARDOWN_RACE.fullmatch(err)):
            break
    assert err == ""


# libzmq can abort a context's teardown when poll reports POLLHUP where it asserts POLLIN, a race of its
# own that a loaded machine makes likelier (zeromq/libzmq#1307, #3715); it is not a message of ours
ZMQ_TEARDOWN_RACE = re.compile(r"Assertion failed: pfd\.revents & POLLIN \(src/signaler\.cpp:\d+\)\n")


def test_without_unix_sockets_the_kernel_encrypts_over_tcp(monkeypatch, capfd):
    _no_safe_transport(monkeypatch, has_curve=True)
    outputs = _quarto_way([PROBE])
    seen = _probe_outputs(outputs[0])
    assert seen["transport"] == "tcp" and seen["ip"] == "127.0.0.1" and seen["curve"]
    assert capfd.readouterr().err == ""


def _kernelspec_on_a_platform_without_safe_transport(folder: Path, module: str) -> Path:
    """A python3 kernelspec whose kernel sees zmq without ipc and Curve, then runs `module` as __main__."""
    start = ("import runpy, zmq; _has = zmq.has; zmq.has = lambda f: f not in ('ipc', 'curve') and _has(f); "
             f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    spec = {**kernelspec.spec(), "argv": [sys.executable, "-c", start, "-f", "{connection_file}"]}
    (folder / "kernels" / "python3").mkdir(parents=True)
    (folder / "kernels" / "python3" / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


@pytest.mark.parametrize("module, warned", [("ipykernel_launcher", True), ("sgdlab.kernel_launcher", False)])
def test_with_plain_tcp_only_the_launcher_drops_that_warning(module, warned, tmp_path, monkeypatch, capfd):
    """ipykernel's own launcher warns on such a platform (so stderr is read); ours leaves stderr empty."""
    _no_safe_transport(monkeypatch)
    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec_on_a_platform_without_safe_transport(tmp_path, module)))
    outputs = _quarto_way([PROBE])
    seen = _probe_outputs(outputs[0])
    assert seen["transport"] == "tcp" and seen["ip"] == "127.0.0.1" and not seen["curve"]
    assert (PLAIN_TCP in capfd.readouterr().err) is warned


def test_the_filter_drops_that_warning_and_nothing_else():
    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("IPKernelApp", level, __file__, 1, msg, None, None)

    keep = DropPlainTcpWarning()
    assert not keep.filter(record(logging.WARNING, PLAIN_TCP + " All communication … is sent in plain text"))
    assert keep.filter(record(logging.WARNING, "Parent appears to have exited, shutting down."))
    assert keep.filter(record(logging.ERROR, PLAIN_TCP))  # another level: not ipykernel's notice


def test_ensure_writes_the_kernelspec_once_readable_by_all(tmp_path):
    target = tmp_path / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    assert kernelspec.ensure(str(tmp_path))
    assert json.loads(target.read_text(encoding="utf-8")) == kernelspec.spec()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    before = target.stat().st_ino
    assert kernelspec.ensure(str(tmp_path)) and target.stat().st_ino == before  # current: not rewritten
    target.write_text('{"argv": ["python", "-m", "ipykernel_launcher"]}', encoding="utf-8")  # ipykernel's, again
    assert kernelspec.ensure(str(tmp_path)) and json.loads(target.read_text(encoding="utf-8")) == kernelspec.spec()
    assert sorted(p.name for p in target.parent.iterdir()) == ["kernel.json"]  # no temporary file left


def test_ensure_reports_a_prefix_it_cannot_write(tmp_path):
    (tmp_path / "share").write_text("a file where a folder should be")
    assert kernelspec.ensure(str(tmp_path)) is False


def test_a_temporary_folder_too_deep_for_a_socket_address_encrypts_instead(tmp_path, monkeypatch):
    from jupyter_client import KernelManager

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr("tempfile.tempdir", str(deep))
    km = KernelManager(kernel_name="python3")
    assert kernelspec.secure(km) is None
    assert km.transport == "tcp" and km.transport_encryption == "auto"
    assert os.listdir(deep) == []  # the private folder it tried was removed
