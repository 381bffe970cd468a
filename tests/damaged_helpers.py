"""Helpers of the damaged-input and resumption tests: a directory's exact state, and the one
error line a command must print."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def snapshot(directory: Path) -> dict:
    """Every entry under ``directory``: mode, size, mtime and (regular files) content digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            digest = None
            if os.path.isfile(p) and not os.path.islink(p):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(directory))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def one_error_line(capsys_or_text) -> str:
    """The single ``tickets: error:`` line of stderr (the last line; no traceback)."""
    err = capsys_or_text if isinstance(capsys_or_text, str) else capsys_or_text.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("tickets: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "mask_seconds")} for r in rows]
