"""Analyses as registered parts. An analysis reads a finished run directory and writes its own
files under ``RUN_DIR/analysis/<name>/``; it runs from ``tickets analyze RUN_DIR <name>`` or as a
node of a run's stage graph (a study file's ``analyses:``), after every stage of the run, on any
executor. When it has written its files, ``done.json`` records the options it ran with, so a node
is done exactly when the same options' results are there.

To add one, subclass :class:`Analysis` in a module and register it (``registry.analyses`` or the
``tickets.analyses`` entry point): see the README ("Adding an analysis").
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from . import registry, store
from .analysis_options import canonical, check_options
from .errors import ConfigError

DONE = "done.json"


class Analysis(abc.ABC):
    Options: ClassVar[type]  # a dataclass of the analysis's options (checked strictly)
    name: str = ""  # the name it is registered under (set by :func:`get`)

    @abc.abstractmethod
    def run(self, run_dir: Path, options: Any) -> str:
        """Write the analysis's files under :func:`out_dir`; a text summary for the terminal."""

    def report(self, run_dir: Path, options: Any, study_dir: Path) -> list[str]:
        """Markdown lines for a study report (default: its figures, linked from ``study_dir``)."""
        out = out_dir(run_dir, self.name)
        return [f"![{self.name}: {p.name}]({os.path.relpath(p, study_dir)})" for p in sorted(out.glob("*.png"))]


def out_dir(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / "analysis" / name


def get(name: str) -> Analysis:
    cls = registry.analyses.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Analysis)):
        raise ConfigError(f"analyses: {name!r} is registered as {cls!r}, not a tickets.analyses.Analysis subclass")
    analysis = cls()
    analysis.name = name
    return analysis


def run_analysis(name: str, run_dir: str | Path, options: dict[str, Any] | Any = None) -> str:
    """Run the analysis on ``run_dir`` and record it done; its text summary."""
    if not dataclasses.is_dataclass(options):
        options = check_options(name, options)
    out = out_dir(run_dir, name)
    done = out / DONE
    if done.exists():
        done.unlink()  # results being rewritten are not done until they all are
    summary = get(name).run(Path(run_dir), options)
    store.write_json(done, {"analysis": name, "options": json.loads(canonical(options))})
    return summary


def is_done(name: str, run_dir: str | Path, options: Any) -> bool:
    """The analysis ran to the end on ``run_dir`` with these options (a damaged record: not done,
    so it runs again and rewrites its files)."""
    path = out_dir(run_dir, name) / DONE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("analysis") == name
            and json.dumps(record.get("options"), sort_keys=True) == canonical(options))
