"""Running a study (:mod:`tickets.study`): its entries' stage graphs on one executor, the entries
whose sources are done first (a transfer target's runner loads its source's tickets when built),
and ``study.json`` in ``<out>/<study name>/``, which the report reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import progress, store
from .errors import StagesFailedError
from .analysis_options import canonical
from .study import Study, analyses_of, run_path

if TYPE_CHECKING:
    from .runner import Runner

STUDY_FILE = "study.json"


def study_dir(study: Study) -> Path:
    return Path(study.out) / study.name


def run_study(study: Study, make_runner, execute: Callable[[list[Runner]], None] | None = None, *,
              show_progress: bool | None = None) -> Path:
    """Run every entry; waves by ``needs`` (sources before their targets). A failed stage does not
    stop the others; every failure is raised together at the end."""
    directory = study_dir(study)
    store.write_json(directory / STUDY_FILE, describe(study))
    failures: list[tuple[str, str]] = []
    skipped = 0
    finished: set[str] = set()
    remaining = list(study.entries)
    while remaining:
        wave = [e for e in remaining if all(n in finished for n in e.needs)]
        if not wave:  # every remaining entry needs one that failed to build or run
            skipped += sum(1 for _ in remaining)
            break
        remaining = [e for e in remaining if e not in wave]
        runners = []
        for entry in wave:
            try:
                runner = make_runner(entry.experiment, study.out, show_progress=show_progress)
                runner.analyses = [(a.name, canonical(a.checked)) for a in analyses_of(study, entry)]
                runners.append((entry, runner))
            except Exception as exc:  # a target whose source lacks a level, ...: that entry alone
                failures.append((entry.label, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        try:
            if execute is None:
                for _, runner in runners:
                    runner.execute()
            else:
                execute([r for _, r in runners])
        except StagesFailedError as exc:
            failures.extend(exc.failures)
        for entry, runner in runners:
            if all(runner.node_done(n) for n in runner.graph()):
                finished.add(entry.label)
        progress.message(f"study {study.name}: {len(finished)} of {len(study.entries)} entries done")
    if failures:
        raise StagesFailedError(failures, skipped=skipped)
    return directory


def describe(study: Study) -> dict:
    return {"name": study.name, "study_file": str(Path(study.path).resolve()), "seeds": study.seeds,
            "analyses": [{"name": a.name, "options": json.loads(canonical(a.checked)), "groups": a.groups}
                         for a in study.analyses],
            "entries": [{"label": e.label, "group": e.group, "role": e.role, "seed": e.seed,
                         "source": e.source_label, "target": e.target_label, "matrix": e.matrix,
                         "needs": list(e.needs),
                         "domain": e.experiment.config.domain["name"],
                         "run": str(run_path(e.experiment, study.out).resolve())} for e in study.entries]}
