"""Results cache (issue 11): an experiment's result stored on disk, keyed by everything it depends on.

    @cached
    def article_cycle(config: CycleConfig = CycleConfig()) -> CycleResult: ...

The key holds the function's qualified name, all its arguments (the config dataclass, as canonical
JSON), a digest of every file of the sgdlab package (any edit under src/sgdlab misses) and the
versions of Python, torch, numpy and pandas. An entry is data, never a pickle: a JSON tree
(`serial.py`) and an .npz of its arrays read with allow_pickle=False, so a cache directory copied
from elsewhere cannot run code when it is read. Entries are written into a temporary directory
and renamed into place; one that cannot be read back is ignored and overwritten.

The cache lives in .cache/sgdlab/ at the project root (git-ignored), or in $SGDLAB_CACHE_DIR.
SGDLAB_NO_CACHE=1, or `with disabled():`, bypasses it. Every hit and miss is appended to
events.log there, which `sgdlab cache` counts.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from . import serial

PACKAGE_DIR = Path(__file__).resolve().parent
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("sgdlab_cache_enabled", default=True)


def source_digest(package: Path = PACKAGE_DIR) -> str:
    """SHA-256 over the path and bytes of every file of the package (bytecode excluded)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def library_versions(names) -> dict[str, str]:
    """The installed version of each distribution named, "absent" for one that is not installed."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def _versions() -> dict[str, str]:
    return {"python": sys.version, "machine": f"{sys.platform}-{platform.machine()}",
            **library_versions(("torch", "numpy", "pandas"))}


# Taken once, at import: the code this process runs is the code imported now, even if the files change later.
SOURCE_DIGEST = source_digest()
VERSIONS = _versions()


def cache_dir() -> Path:
    """$SGDLAB_CACHE_DIR, else .cache/sgdlab at the project root (the directory with pyproject.toml)."""
    if os.environ.get("SGDLAB_CACHE_DIR"):
        return Path(os.environ["SGDLAB_CACHE_DIR"]).resolve()
    for parent in PACKAGE_DIR.parents:
        if (parent / "pyproject.toml").is_file():
            return parent / ".cache" / "sgdlab"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sgdlab"  # an installed wheel


def enabled() -> bool:
    """Whether `cached` functions read and write the cache here and now."""
    return _ENABLED.get() and os.environ.get("SGDLAB_NO_CACHE", "") in ("", "0")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the block with the cache bypassed (in this thread or task only)."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


# --------------------------------------------------------------------------- entries


def key_for(name: str, arguments: dict) -> dict | None:
    """Everything an entry depends on (its name, arguments, the source digest, versions) as JSON-ready
    data; None if an argument cannot be written down (then there is nothing to cache against)."""
    try:
        tree, array_digests = serial.fingerprint(arguments)
    except TypeError:
        return None
    return {"function": name, "arguments": tree, "arrays": array_digests, "source": SOURCE_DIGEST,
            "versions": VERSIONS}


def _entry_dir(name: str, key: dict) -> Path:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return cache_dir() / name / hashlib.sha256(text.encode()).hexdigest()


def _load(entry: Path, key: dict):
    """The stored result, or raise (any error: the entry is missing, half-written or corrupt)."""
    if json.loads((entry / "key.json").read_text()) != key:
        raise ValueError("key mismatch")
    tree = json.loads((entry / "tree.json").read_text())
    with np.load(entry / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return serial.decode(tree, arrays)


def _store(entry: Path, key: dict, result) -> None:
    """Write the entry into a temporary directory beside it, then rename it into place."""
    tree, arrays = serial.encode(result)  # TypeError here: the result breaks the contract of HELPERS.md
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
    except OSError:
        return  # a read-only checkout: run without storing
    old = None
    try:
        (tmp / "key.json").write_text(json.dumps(key, sort_keys=True))
        (tmp / "tree.json").write_text(json.dumps(tree))
        np.savez(tmp / "arrays.npz", **arrays)
        if entry.exists():  # a corrupt entry: move it aside first (rename cannot replace a full directory)
            old = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".old-"))
            os.replace(entry, old / "entry")
        os.replace(tmp, entry)
    except OSError:
        pass  # another process stored the same entry first, or the disk is full: the result stands
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _log(event: str, name: str, seconds: float) -> None:
    """One line per hit or miss in events.log (appends of one short line do not interleave)."""
    with contextlib.suppress(OSError):
        with open(cache_dir() / "events.log", "a") as log:
            log.write(f"{time.time():.3f} {event} {name} {seconds:.3f}\n")


_MISSING = object()


def lookup(name: str, key: dict, default=None):
    """The stored entry for key (a hit is logged), else default."""
    entry = _entry_dir(name, key)
    start = time.perf_counter()
    if entry.is_dir():
        try:
            result = _load(entry, key)
        except Exception:  # whatever is wrong with the entry: it will be recomputed and overwritten
            return default
        _log("hit", name, time.perf_counter() - start)
        return result
    return default


def store(name: str, key: dict, result, seconds: float = 0.0) -> None:
    """Store result as the entry for key (a miss that took `seconds` to compute is logged)."""
    _store(_entry_dir(name, key), key, result)
    _log("miss", name, seconds)


@contextlib.contextmanager
def _computing(name: str, key: dict) -> Iterator[None]:
    """Hold the entry's lock file while it is computed: another process that needs the same entry
    (two kernels of one render) waits, then reads it, instead of computing it a second time."""
    lock = None
    try:
        import fcntl

        lock_path = _entry_dir(name, key).with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a")  # held across the yield, closed below
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, also if this process dies
    except (ImportError, OSError):  # Windows, a read-only cache: no waiting; at worst computed twice
        pass
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


def fetch(name: str, key: dict, compute: Callable[[], object]):
    """The entry for key if it can be read, else compute(), stored; every hit and miss is logged."""
    found = lookup(name, key, _MISSING)
    if found is not _MISSING:
        return found
    with _computing(name, key):
        found = lookup(name, key, _MISSING)  # computed by another process while this one waited
        if found is not _MISSING:
            return found
        start = time.perf_counter()
        result = compute()
        store(name, key, result, time.perf_counter() - start)
    return result


def cached(function: Callable) -> Callable:
    """Decorate an experiment (arguments -> result): same signature, bit-identical result, stored on disk."""
    name = f"{function.__module__}.{function.__qualname__}"
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if not enabled():
            return function(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = key_for(name, dict(bound.arguments))
        if key is None:
            return function(*args, **kwargs)
        return fetch(name, key, lambda: function(*args, **kwargs))

    wrapper.uncached = function
    return wrapper


# --------------------------------------------------------------------------- `sgdlab cache`


@dataclass(frozen=True)
class Stats:
    """What `sgdlab cache` shows: where, how many entries, how big, and hits/misses since the last clear."""

    path: Path
    entries: int
    bytes: int
    hits: int
    misses: int
    misses_by_function: dict

    def as_dict(self) -> dict:
        return {"path": str(self.path), "entries": self.entries, "bytes": self.bytes, "hits": self.hits,
                "misses": self.misses, "misses_by_function": self.misses_by_function}


def _entries(root: Path) -> list[Path]:
    """Entry directories: <function>/<64 hex digits>."""
    return [p for p in root.glob("*/*") if p.is_dir() and _HEX64.fullmatch(p.name)]


def stats() -> Stats:
    """Count the entries and their size, and the hits and misses logged since the cache was cleared."""
    root = cache_dir()
    entries = _entries(root)
    size = sum(f.stat().st_size for e in entries for f in e.iterdir() if f.is_file())
    hits, misses, by_function = 0, 0, {}
    with contextlib.suppress(OSError):
        for line in (root / "events.log").read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[1] == "hit":
                hits += 1
            elif len(parts) == 4 and parts[1] == "miss":
                misses += 1
                by_function[parts[2]] = by_function.get(parts[2], 0) + 1
    return Stats(root, len(entries), size, hits, misses, by_function)


def _stale(entry: Path) -> bool:
    """An entry this code can never hit: made by other sources or library versions, or unreadable."""
    try:
        key = json.loads((entry / "key.json").read_text())
        return key.get("source") != SOURCE_DIGEST or key.get("versions") != VERSIONS
    except (OSError, ValueError, AttributeError):
        return True


def clear(stale_only: bool = False) -> int:
    """Delete every entry (or, stale_only, those that the code and libraries of today cannot hit, which
    pile up as src/sgdlab is edited), leftovers of interrupted writes and lock files; return how many
    entries went. A full clear also empties the log.

    Only what the cache wrote is removed: $SGDLAB_CACHE_DIR may point at a directory that holds more.
    """
    root = cache_dir()
    entries = [e for e in _entries(root) if _stale(e)] if stale_only else _entries(root)
    for path in entries + [p for p in root.glob("*/.*-*") if p.is_dir()]:
        shutil.rmtree(path, ignore_errors=True)
    for lock in root.glob("*/*.lock"):
        if _HEX64.fullmatch(lock.stem):
            lock.unlink(missing_ok=True)
    for function_dir in {p.parent for p in entries}:
        with contextlib.suppress(OSError):
            function_dir.rmdir()  # only if empty
    if not stale_only:
        (root / "events.log").unlink(missing_ok=True)
    return len(entries)
