"""The results table and the LTH-style plot: primary metric vs % weights remaining."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import store
from .collapse import max_compression_before_collapse
from .errors import ArtifactMissingError
from .plot import STYLE, plot  # noqa: F401  (plot: re-exported, it lived here)
from .run_dir import RunDir
from .seeds import SUMMARY, write_summary


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no finished stages yet)"
    metric = rows[0]["metric"]
    header = (f"{'level':>5}  {'condition':<13} {'weights %':>9}  {metric:>10}  {'loss':>8}  "
              f"{'early stop':>10}  {'wall s':>7}  {'path':>4}  empty layers")
    lines = [header, "-" * len(header)]
    for r in rows:
        loss = "" if r.get("loss") is None else f"{r['loss']:.4f}"
        es = "" if r.get("early_stop_step") is None else str(r["early_stop_step"])
        path = {True: "yes", False: "CUT", None: "-"}[r.get("path_survives")]
        lines.append(f"{r['level']:>5}  {r['condition']:<13} {r['weights_remaining_pct']:>9.2f}  "
                     f"{r['value']:>10.4f}  {loss:>8}  {es:>10}  {r['wall_seconds']:>7.1f}  {path:>4}  "
                     f"{' '.join(r.get('empty_layers') or [])}")
    tickets = [(100.0 / r["weights_remaining_pct"], r["path_survives"]) for r in rows
               if r["condition"] == "ticket" and r.get("path_survives") is not None and r["weights_remaining_pct"] > 0]
    if tickets:
        best = max_compression_before_collapse(tickets)
        lines.append(f"\nhighest compression with an input-to-output path (tickets): "
                     f"{'none' if best is None else f'{best:.4g}x'}"
                     f"{'' if all(p for _, p in tickets) else '; collapsed beyond it'}")
    return "\n".join(lines)


def report(run_path: str | Path) -> tuple[str, Path | None]:
    """The table and plot of a run directory, or of a several-seed summary directory. The plot
    is written where the storage allows (else one line on stderr says it was not; png is None)."""
    if (Path(run_path) / SUMMARY).is_file():
        return write_summary(run_path)
    run = RunDir(run_path)
    if not os.path.lexists(run.path / "config.yaml"):
        raise ArtifactMissingError(f"{run.path}: not a run directory (no config.yaml)", run.path)
    rows = run.rows()
    _check_tickets(run, rows)
    table = format_table(rows)
    total = getattr(run.expected(), "total", None)
    if rows and total is not None and len(rows) < total:
        table += (f"\n\n{len(rows)} of {total} stages done: the run is unfinished (rerun `tickets run` with its "
                  "config to finish it)")
    png = None
    if rows:
        png = store.best_effort(run.path / "plot.png", lambda path: plot(rows, path, title=run.path.name))
    return table, png


def _check_tickets(run: RunDir, rows: list[dict[str, Any]]) -> None:
    """The tickets beside the table's rows are read back and checked (masks, sparsity, the rewind
    file's header): a table of a run whose tickets are damaged is not reported as if sound."""
    from .artifact import Ticket
    from .errors import ArtifactError
    from .resume import with_hint

    for r in rows:
        if r["condition"] == "ticket" and os.path.lexists(run.ticket_dir(r["level"])):
            try:
                Ticket.load(run.ticket_dir(r["level"]), with_rewind=False)
            except ArtifactError as exc:
                raise with_hint(run, exc) from None
