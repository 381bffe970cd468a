"""The results table and the LTH-style plot: primary metric vs % weights remaining."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .collapse import max_compression_before_collapse
from .run_dir import RunDir

STYLE = {"dense": ("black", "o"), "ticket": ("tab:blue", "o"), "reinit": ("tab:orange", "s"),
         "random_mask": ("tab:green", "^"), "shuffled_mask": ("tab:red", "v")}


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


def plot(rows: list[dict[str, Any]], path: str | Path, title: str = "", band: str | None = None) -> Path:
    """``band``: a row key (e.g. ``std``) drawn as a shaded band around each curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_condition: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    dense = [r for r in rows if r["condition"] == "dense"]
    spread = (lambda r: r.get(band) or 0.0) if band else (lambda r: 0.0)
    for r in rows:
        if r["condition"] != "dense":
            by_condition[r["condition"]].append((r["weights_remaining_pct"], r["value"], spread(r)))
    if dense:  # every curve starts at the dense network
        for points in by_condition.values():
            points.append((dense[0]["weights_remaining_pct"], dense[0]["value"], spread(dense[0])))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for condition, points in by_condition.items():
        points.sort(reverse=True)
        color, marker = STYLE.get(condition, (None, "x"))
        xs, ys, ss = zip(*points)
        line, = ax.plot(xs, ys, marker=marker, color=color, label=condition)
        if band:
            ax.fill_between(xs, [y - s for y, s in zip(ys, ss)], [y + s for y, s in zip(ys, ss)],
                            color=line.get_color(), alpha=0.15)
    if dense:
        ax.axhline(dense[0]["value"], color="gray", linestyle="--", linewidth=1, label="dense")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = sorted({round(r["weights_remaining_pct"], 1) for r in rows}, reverse=True)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks], rotation=45, fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("% of prunable weights remaining")
    ax.set_ylabel(f"test {rows[0]['metric']}" if rows else "")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(run_path: str | Path) -> tuple[str, Path | None]:
    """The table and plot of a run directory, or of a several-seed summary directory."""
    from .seeds import SUMMARY, write_summary

    if (Path(run_path) / SUMMARY).is_file():
        return write_summary(run_path)
    run = RunDir(run_path)
    if not (run.path / "config.yaml").is_file():
        raise FileNotFoundError(f"{run.path}: not a run directory (no config.yaml)")
    rows = run.rows()
    table = format_table(rows)
    png = plot(rows, run.path / "plot.png", title=run.path.name) if rows else None
    return table, png
