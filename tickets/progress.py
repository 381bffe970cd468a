"""Progress bars (tqdm, shown on terminals only unless forced) and stage messages."""

from __future__ import annotations

import os
import sys


def _enabled(force: bool | None) -> bool | None:
    if force is not None:
        return force
    if os.environ.get("TICKETS_PROGRESS") in ("0", "1"):
        return os.environ["TICKETS_PROGRESS"] == "1"
    return sys.stderr.isatty()


def bar(total: int, desc: str, *, leave: bool = False, force: bool | None = None, position: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=leave, disable=not _enabled(force), position=position,
                dynamic_ncols=True)


def message(text: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stderr)
