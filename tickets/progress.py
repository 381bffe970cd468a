"""Progress bars (tqdm, shown on terminals only unless forced) and stage messages."""

from __future__ import annotations

import os
import sys


def enabled(force: bool | None) -> bool | None:
    if force is not None:
        return force
    if os.environ.get("TICKETS_PROGRESS") in ("0", "1"):
        return os.environ["TICKETS_PROGRESS"] == "1"
    return sys.stderr.isatty()


_SLOT = [0]  # lines below the first that this process's bars start at (a pool worker's index)


def set_slot(index: int) -> None:
    """Put this process's bars ``index`` lines lower, below other processes' bars."""
    _SLOT[0] = index


def bar(total: int, desc: str, *, leave: bool = False, force: bool | None = None, position: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=leave, disable=not enabled(force), position=position + _SLOT[0],
                dynamic_ncols=True)


def message(text: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stderr)
