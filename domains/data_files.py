"""Checks and error wording shared by the domains that read a user's files through
``datasets.load_dataset`` (vision, NLP): missing or empty files are named before loading, and the
errors ``load_dataset`` raises for bad files become one line naming the file."""

from __future__ import annotations

import glob
import os
from typing import Any

from tickets.errors import ConfigError


def load_errors() -> tuple[type[BaseException], ...]:
    """What ``load_dataset`` raises for a user's files (a glob matching no file, an empty or
    corrupt file, columns that do not parse, a split with no rows): caught and named, where
    anything else (a bug) keeps its traceback."""
    import pyarrow
    from datasets.exceptions import DatasetsError

    return ValueError, FileNotFoundError, DatasetsError, pyarrow.ArrowException


def cause(exc: BaseException) -> str:
    """The first line of the innermost cause (datasets wraps the reader's error)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def no_data(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and "corresponds to no data" in str(exc)


def check_patterns(files: dict[str, Any], key: str = "dataset.data_files") -> None:
    """Local paths and globs of ``data_files`` (a pattern or a list of them per split) must match
    files that are not all empty (``datasets`` otherwise builds a split with no rows and says only
    ``Instruction "train" corresponds to no data``)."""
    for split, patterns in files.items():
        for pattern in patterns if isinstance(patterns, list) else [patterns]:
            if "://" in pattern:
                continue  # remote (hf://, https://): datasets resolves it
            local = os.path.expanduser(pattern)
            matches = glob.glob(local, recursive=True) if glob.has_magic(local) else [local]
            matches = [m for m in matches if os.path.exists(m)]
            where = "" if os.path.isabs(local) else f" (relative to {os.getcwd()})"
            if not matches:
                raise ConfigError(f"{key}: {split}: {pattern!r} matches no file{where}")
            files_only = [m for m in matches if os.path.isfile(m)]
            if files_only and all(os.path.getsize(m) == 0 for m in files_only):
                raise ConfigError(f"{key}: {split}: {pattern!r} matches only empty files ({files_only[0]})")
