"""Files that are either complete or absent: every write goes to a temporary name in the same
directory and is renamed into place, so a killed process never leaves a half-written file
that a later run would read back as complete. Files and directories get the permissions the
umask gives (``mkstemp``/``mkdtemp`` alone would make them private to the owner). Reads are
checked (:mod:`tickets.validate`): a damaged file is an ``ArtifactError`` naming it."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from . import validate

# The temporary names _atomic and staging_dir make: "." + target name + "." + the writer
# ("p<pid>h<host digest>.", so a process never removes the temporaries of a live writer: several
# workers and study processes share a run directory) + mkstemp's 8 random characters + ".tmp";
# and replace_dir's ".<name>.old". Temporaries without the writer (older versions) count as dead.
TEMP_NAME = re.compile(r"\.(?P<name>.+?)\.(?:p(?P<pid>\d+)h(?P<host>[0-9a-f]{8})\.)?[a-z0-9_]{8}\.tmp")
OLD_NAME = re.compile(r"\.(?P<name>.+)\.old")
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
REMOTE_WRITER_GRACE = 3600.0  # seconds: another host's writer cannot be asked whether it lives


def _writer() -> str:
    return f"p{os.getpid()}h{HOST}."


def writer_alive(pid: int, host: str, mtime: float) -> bool:
    """Whether the process that names a temporary may still be writing it."""
    if host != HOST:
        return time.time() - mtime < REMOTE_WRITER_GRACE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@functools.cache
def umask() -> int:
    """The process umask, read once (from /proc where there is one: setting it to read it back
    is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer()}", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())  # after writing: a writer may have made the file anew
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def csv_text(header: list[str], rows) -> str:
    """A CSV document (``\n`` line ends) of ``header`` and ``rows``."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: Path, header: list[str], rows) -> None:
    write_text(path, csv_text(header, rows))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path):
    """Parsed JSON of a regular file (an ``ArtifactError`` if it is not one, or not JSON)."""
    return validate.read_json(Path(path))


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    data = {n: t.detach().to("cpu").contiguous() for n, t in tensors.items()}

    def write(tmp: str) -> None:
        try:
            save_file(data, tmp, metadata=metadata)
        except SafetensorError as exc:  # its I/O failures (a full disk) are not OSErrors
            raise OSError(errno.EIO, f"cannot write tensors: {exc}", str(path)) from None

    _atomic(path, write)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file (no unpickling), its header checked first."""
    return validate.read_tensors(Path(path))


def replace_dir(src: Path, dst: Path) -> None:
    """Move a fully written directory ``src`` to ``dst``, replacing any old ``dst``."""
    dst = Path(dst)
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def staging_dir(dst: Path) -> Path:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.{_writer()}", suffix=".tmp", dir=dst.parent))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (no extra space), copying where links are not possible."""
    dst = Path(dst)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def leftovers(directory: Path, names=None) -> list[Path]:
    """The temporaries a killed writer left directly in ``directory``: entries named exactly as
    ``_atomic``/``staging_dir`` name them (or replace_dir's ``.<name>.old``), regular files or
    directories (never a symlink), for a target name accepted by ``names`` (default: any), whose
    writer is gone (a live process's temporaries are its writes in progress)."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        m = TEMP_NAME.fullmatch(entry.name) or OLD_NAME.fullmatch(entry.name)
        if not m or (names is not None and not names(m["name"])):
            continue
        if entry.is_symlink() or not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)):
            continue
        if m.re is TEMP_NAME and m["pid"] is not None:
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if writer_alive(int(m["pid"]), m["host"], mtime):
                continue  # a live writer's file in the making
        found.append(Path(entry.path))
    return sorted(found)


def remove(path: Path) -> None:
    """Remove a file or a directory tree (symlinks inside are removed, not followed)."""
    if Path(path).is_dir() and not Path(path).is_symlink():
        shutil.rmtree(path)
    else:
        Path(path).unlink(missing_ok=True)


def best_effort(path: Path, write) -> Path | None:
    """``write(path)`` for an output that is a convenience (a plot, a table a command also
    prints); where the storage refuses it (read-only, full), one line on stderr says so and
    None is returned."""
    import sys

    try:
        write(path)
    except OSError as exc:
        print(f"tickets: warning: could not write {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    return Path(path)
