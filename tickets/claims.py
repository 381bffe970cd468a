"""A claim on a stage, so that it runs once however many workers or study processes share a run
directory, and a crashed claimant's leftover cannot block it forever.

A claim is a file created exclusively (``O_CREAT | O_EXCL``: atomic on a local or NFSv3+ file
system) holding the claimant's host, pid and start time; a thread refreshes its mtime every
``HEARTBEAT`` seconds. It is stale when its process is gone (same host) or its mtime is older
than ``STALE`` seconds (any host: a killed machine stops the heartbeat). A stale claim is taken
over by renaming it away first, which only one contender can do.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from . import store

HEARTBEAT = 5.0
STALE = 60.0


class Claim:
    def __init__(self, path: Path):
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"claim {path.name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(path: str | Path) -> Claim | None:
    """The claim at ``path``, or None while a live claimant holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~store.umask())
        except FileExistsError:
            judged = _stale_inode(path)
            if judged is None:
                return None
            _take_over(path, judged)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "host_digest": store.HOST, "pid": os.getpid(),
                       "started": time.time()}, f)
        return Claim(path)
    return None


def holder(path: Path) -> dict | None:
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def stale(path: Path) -> bool:
    return _stale_inode(path) is not None


def _stale_inode(path: Path) -> int | None:
    """The claim file's inode if it is stale (-1: gone already), else None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return -1
    if time.time() - st.st_mtime > STALE:
        return st.st_ino
    info = holder(path)
    if info is None:  # being written this very moment, or damaged: the age decides
        return None
    pid, host = info.get("pid"), info.get("host_digest")
    if isinstance(pid, int) and host == store.HOST and not store.writer_alive(pid, host, st.st_mtime):
        return st.st_ino
    return None


def _take_over(path: Path, judged: int) -> None:
    """Move the stale claim aside (one contender wins the rename). Where another contender took
    it over between our judgement and the rename, what we moved is its fresh claim: put it back."""
    if judged < 0:
        return
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        if os.stat(aside).st_ino != judged:
            os.link(aside, path)  # fails if yet another claim appeared: then that one stands
    except OSError:
        pass
    aside.unlink(missing_ok=True)
