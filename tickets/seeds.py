"""One experiment over several seeds: a run per seed (each an ordinary, resumable run directory)
and a summary directory with the mean and standard deviation of every level and condition."""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import store, validate
from .config import Experiment
from .errors import ArtifactError
from .plot import plot
from .run_dir import RunDir

SUMMARY = "seeds.json"


def summary_dir(experiment: Experiment, out: str | Path) -> Path:
    return experiment.run_dir(out)


def run_seeds(experiment: Experiment, out: str | Path, make_runner, *, show_progress=None, execute=None) -> Path:
    """Check every seed's runner first (bad input fails before any training), then run them
    (``execute(runners)``: an executor of :mod:`tickets.executors`; default one after another)."""
    runners = [make_runner(experiment.with_seed(s), out, show_progress=show_progress) for s in experiment.config.seeds]
    if execute is None:
        for runner in runners:
            runner.execute()
    else:
        execute(runners)
    path = summary_dir(experiment, out)
    for leftover in store.leftovers(path, {SUMMARY, "summary.csv", "plot.png"}.__contains__):
        store.remove(leftover)  # a killed earlier run's temporaries of these very files
    store.write_json(path / SUMMARY, {"seeds": experiment.config.seeds,
                                      "runs": [str(r.run.path.resolve()) for r in runners]})
    return path


def aggregate(path: str | Path) -> list[dict[str, Any]]:
    """Rows of mean ± std (sample standard deviation) over the seeds, per level and condition."""
    info = read_summary(path)
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for run in info["runs"]:
        for row in RunDir(run).rows():
            groups[(row["level"], row["condition"])].append(row)
    out = []
    for (level, condition), rows in groups.items():
        values = [r["value"] for r in rows]
        stops = [r["early_stop_step"] for r in rows if r.get("early_stop_step") is not None]
        out.append({
            "level": level, "condition": condition, "metric": rows[0]["metric"], "n": len(rows),
            "weights_remaining_pct": statistics.fmean(r["weights_remaining_pct"] for r in rows),
            "value": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values, "early_stop_step": statistics.fmean(stops) if stops else None,
            "paths_cut": sum(r.get("path_survives") is False for r in rows),
        })
    order = {"dense": 0, "ticket": 1}
    return sorted(out, key=lambda r: (r["level"], order.get(r["condition"], 2), r["condition"]))


def read_summary(path: str | Path) -> dict[str, Any]:
    """seeds.json, checked: the seeds and the run directory of each."""
    file = Path(path) / SUMMARY
    info = store.read_json(file)
    validate.check_fields(file, info, {
        "seeds": (lambda v: isinstance(v, list) and all(validate.is_count(s) for s in v), "a list of seeds"),
        "runs": (lambda v: isinstance(v, list) and v and all(isinstance(r, str) and r for r in v),
                 "a list of run directories"),
    }, "seeds.json")
    if len(info["runs"]) != len(info["seeds"]):
        raise ArtifactError(f"{file}: lists {len(info['seeds'])} seeds but {len(info['runs'])} runs", file)
    for run in info["runs"]:
        if not os.path.lexists(Path(run) / "config.yaml"):
            raise ArtifactError(f"{file}: lists {run}, which is not a run directory (no config.yaml); rerun the "
                                "experiment to make it again", file)
    return info


def format_summary(rows: list[dict[str, Any]]) -> str:
    metric = rows[0]["metric"] if rows else "metric"
    header = (f"{'level':>5}  {'condition':<13} {'weights %':>9}  {metric + ' mean ± std':>24}  {'n':>2}  "
              f"{'early stop':>10}")
    lines = [header, "-" * len(header)]
    for r in rows:
        es = "" if r["early_stop_step"] is None else f"{r['early_stop_step']:.0f}"
        cell = f"{r['value']:.4f} ± {r['std']:.4f}"
        lines.append(f"{r['level']:>5}  {r['condition']:<13} {r['weights_remaining_pct']:>9.2f}  {cell:>24}  "
                     f"{r['n']:>2}  {es:>10}")
    return "\n".join(lines)


def write_summary(path: str | Path) -> tuple[str, Path]:
    """Print-ready table; writes summary.csv and a plot (mean with a ±std band per condition)."""
    rows = aggregate(path)
    text = store.csv_text(["level", "condition", "weights_remaining_pct", "metric", "mean", "std", "n",
                           "early_stop_step", "paths_cut"],
                          [[r["level"], r["condition"], f"{r['weights_remaining_pct']:.6g}", r["metric"],
                            f"{r['value']:.6g}", f"{r['std']:.6g}", r["n"],
                            "" if r["early_stop_step"] is None else f"{r['early_stop_step']:.6g}", r["paths_cut"]]
                           for r in rows])
    store.best_effort(Path(path) / "summary.csv", lambda p: store.write_text(p, text))
    png = store.best_effort(Path(path) / "plot.png", lambda p: plot(rows, p, title=Path(path).name, band="std"))
    return format_summary(rows), png
