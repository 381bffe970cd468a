"""The study report (``tickets study report DIR``): ``report.md`` with its figures, from the runs
``study.json`` lists, every row read back checked (:meth:`tickets.run_dir.RunDir.rows`).

* Per experiment (seeds aggregated): the dense value, the sparsest level whose ticket stays within
  ``tolerance`` of dense (relative: ticket >= dense x (1 - tol), or <= dense x (1 + tol) for metrics
  where lower is better), the ticket's advantage over each control per level with its spread over seeds and a
  bootstrap 95% interval of the ticket's mean (seeds resampled; with 2 seeds it is crude, say so).
* A cross-domain figure: each experiment's value relative to its dense network against weights
  remaining, ticket and controls, mean ± std over seeds, one panel per domain.
* Transfer matrices (one section each): source x target, the ticket's value at each transferred
  level and its advantage over each control (ticket − control, or control − ticket where lower is
  better: + favours the ticket); the diagonal is the target's own IMP ticket at the same level.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import store, validate
from .errors import ArtifactError
from .run_dir import RunDir
from .study_config import StudyAnalysis, analysis_item
from .study_run import STUDY_FILE

LOWER_IS_BETTER = {"perplexity", "loss", "mse", "mae"}
TOLERANCE = 0.01


def read_study(directory: Path) -> dict[str, Any]:
    path = Path(directory) / STUDY_FILE
    info = store.read_json(path)
    validate.check_fields(path, info, {
        "name": (lambda v: isinstance(v, str) and bool(v), "a name"),
        "entries": (lambda v: isinstance(v, list) and bool(v) and all(isinstance(e, dict) for e in v),
                    "a list of entries"),
    }, STUDY_FILE)
    for i, e in enumerate(info["entries"]):
        for key in ("label", "group", "role", "run", "domain"):
            if not isinstance(e.get(key), str) or not e[key]:
                raise ArtifactError(f"{path}: entries[{i}].{key}: expected a non-empty string", path)
        for key in ("source", "target", "matrix"):
            if e.get(key) is not None and (not isinstance(e[key], str) or not e[key]):
                raise ArtifactError(f"{path}: entries[{i}].{key}: expected a non-empty string or null", path)
        if e["role"] == "target" and not (e.get("source") and e.get("target")):
            raise ArtifactError(f"{path}: entries[{i}]: a target entry names its source and target", path)
        if not isinstance(e.get("seed", 0), int) or isinstance(e.get("seed", 0), bool):
            raise ArtifactError(f"{path}: entries[{i}].seed: expected an integer", path)
    info["analyses"] = _read_analyses(path, info.get("analyses", []))
    return info


def _read_analyses(path: Path, raw: Any) -> list[StudyAnalysis]:
    """study.json's analyses, read as the study file's (names, as older studies wrote them, or
    {name, options, groups}): names registered, options valid for them."""
    from . import registry
    from .config import registry_message
    from .errors import ConfigError

    if not isinstance(raw, list):
        raise ArtifactError(f"{path}: analyses: expected a list, got {type(raw).__name__}", path)
    out = []
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name not in registry.analyses:
            raise ArtifactError(f"{path}: analyses[{i}]: {registry_message(registry.analyses, name)}", path)
        try:
            out.append(analysis_item(item, f"analyses[{i}]"))
        except ConfigError as exc:
            raise ArtifactError(f"{path}: {exc}", path) from None
    return out


def bootstrap(values: list[float], *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile interval of the mean, resampling ``values`` (the seeds)."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(n))
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


def aggregate(rows_per_seed: list[list[dict]]) -> dict[tuple[int, str], dict[str, Any]]:
    cells: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for rows in rows_per_seed:
        for r in rows:
            cells[(r["level"], r["condition"])].append(r)
    out = {}
    for key, rs in cells.items():
        values = [r["value"] for r in rs]
        out[key] = {"level": key[0], "condition": key[1], "metric": rs[0]["metric"], "values": values,
                    "value": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "weights_remaining_pct": statistics.fmean(r["weights_remaining_pct"] for r in rs),
                    "early_stop_step": _mean([r.get("early_stop_step") for r in rs]),
                    "wall_seconds": sum(r.get("wall_seconds") or 0.0 for r in rs)}
    return out


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def advantage(ticket: float, control: float, metric: str) -> float:
    """How much better the ticket is than the control: ticket − control, or control − ticket for
    metrics where lower is better (perplexity), so that + always favours the ticket."""
    return control - ticket if metric in LOWER_IS_BETTER else ticket - control


def within(value: float, dense: float, metric: str, tolerance: float) -> bool:
    if metric in LOWER_IS_BETTER:
        return value <= dense * (1 + tolerance)
    return value >= dense * (1 - tolerance)


def report(directory: str | Path, *, tolerance: float = TOLERANCE) -> Path:
    directory = Path(directory)
    info = read_study(directory)
    groups: dict[str, list[dict]] = defaultdict(list)
    for e in info["entries"]:
        groups[e["group"]].append(e)
    data: dict[str, dict] = {}
    missing = []
    for group, entries in groups.items():
        runs = [e["run"] for e in entries if Path(e["run"], "config.yaml").exists()]
        missing += [e["label"] for e in entries if e["run"] not in runs]
        rows = [RunDir(run).rows() for run in runs]
        if rows:
            data[group] = {"entry": entries[0], "cells": aggregate(rows), "seeds": len(rows)}
    lines = [f"# Study {info['name']}", "", f"Tolerance: a ticket counts as matching dense within "
             f"{100 * tolerance:g}% of the dense value (relative). Means over seeds; ± is the standard "
             "deviation, [..] a bootstrap 95% interval of the mean (crude with 2-3 seeds). \"ticket vs X\" is "
             "the ticket's advantage over control X: ticket − X, or X − ticket where lower is better ("
             + ", ".join(sorted(LOWER_IS_BETTER)) + "), so + always favours the ticket."]
    if missing:
        lines += ["", f"Not run (no run directory yet): {', '.join(missing)}."]
    lines += ["", "## Experiments", "", "| experiment | domain | seeds | metric | dense | sparsest within tolerance "
              "(weights %) | ticket there | wall s |", "|---|---|---:|---|---:|---:|---:|---:|"]
    details = []
    for group, d in data.items():
        if d["entry"]["role"] == "target":
            continue
        cells, e = d["cells"], d["entry"]
        dense = cells.get((0, "dense"))
        if dense is None:
            continue
        tickets = sorted((c for (lvl, cond), c in cells.items() if cond == "ticket"), key=lambda c: c["level"])
        ok = [c for c in tickets if within(c["value"], dense["value"], dense["metric"], tolerance)]
        best = min(ok, key=lambda c: c["weights_remaining_pct"]) if ok else None
        wall = sum(c["wall_seconds"] for c in cells.values())
        there = f"{best['value']:.4f} ± {best['std']:.4f}" if best else "none"
        lines.append(f"| {group} | {e['domain']} | {d['seeds']} | {dense['metric']} | {dense['value']:.4f} | "
                     f"{best['weights_remaining_pct']:.1f} | {there} | {wall:.0f} |" if best else
                     f"| {group} | {e['domain']} | {d['seeds']} | {dense['metric']} | {dense['value']:.4f} | none | "
                     f"{there} | {wall:.0f} |")
        controls = sorted({cond for (_, cond) in cells if cond not in ("dense", "ticket")})
        details += ["", f"### {group}", "", "| level | weights % | ticket | 95% interval | early stop | "
                    + " | ".join(f"ticket vs {c}" for c in controls) + " |",
                    "|---:|---:|---:|---|---:|" + "---:|" * len(controls)]
        for c in tickets:
            lo, hi = bootstrap(c["values"])
            gaps = []
            for control in controls:
                other = cells.get((c["level"], control))
                gaps.append("" if other is None else f"{advantage(c['value'], other['value'], c['metric']):+.4f}")
            stop = "" if c["early_stop_step"] is None else f"{c['early_stop_step']:.0f}"
            details.append(f"| {c['level']} | {c['weights_remaining_pct']:.1f} | {c['value']:.4f} ± {c['std']:.4f} "
                           f"| [{lo:.4f}, {hi:.4f}] | {stop} | " + " | ".join(gaps) + " |")
    lines += details
    lines += _transfer_section(data, directory)
    if any(a.name == "masks" for a in info["analyses"]):
        from .study_masks import mask_section

        lines += mask_section(info["entries"])
    for analysis in info["analyses"]:
        lines += _analysis_section(analysis, info["entries"], directory)
    figure = cross_domain_figure(data, directory / "cross_domain.png")
    if figure:
        lines += ["", "## Across domains", "", f"![value relative to dense]({figure.name})"]
    path = directory / "report.md"
    store.write_text(path, "\n".join(lines) + "\n")
    return path


def _analysis_section(analysis: StudyAnalysis, entries: list[dict], directory: Path) -> list[str]:
    """Each run's part of an analysis, as the analysis writes it (its figures linked)."""
    from . import analyses

    part = analyses.get(analysis.name)
    lines = ["", f"## Analysis: {analysis.name}"]
    for e in (e for e in entries if analysis.applies_to(e["group"])):
        lines += ["", f"### {e['label']}", ""]
        if not analyses.is_done(analysis.name, e["run"], analysis.checked):
            lines.append("not run (the run did not finish, or the analysis failed)")
            continue
        lines += part.report(Path(e["run"]), analysis.checked, directory)
    return lines


def _transfer_section(data: dict[str, dict], directory: Path) -> list[str]:
    """One section per transfer matrix (entries without ``matrix``: the study's one matrix)."""
    names = sorted({d["entry"].get("matrix") or "" for d in data.values() if d["entry"]["role"] == "target"})
    out: list[str] = []
    for name in names:
        targets = {g: d for g, d in data.items()
                   if d["entry"]["role"] == "target" and (d["entry"].get("matrix") or "") == name}
        out += _matrix_section(data, targets, name, directory)
    return out


def _matrix_section(data: dict[str, dict], targets: dict[str, dict], name: str, directory: Path) -> list[str]:
    out = ["", f"## Transfer: {name}" if name else "## Transfer", ""]
    stem = f"transfer_{name}" if name else "transfer"
    levels = sorted({lvl for d in targets.values() for (lvl, cond) in d["cells"] if cond == "ticket"})
    sources = sorted({d["entry"]["source"] for d in targets.values()})
    cols = sorted({d["entry"]["target"] for d in targets.values()} | set(sources))
    for level in levels:
        out += [f"Level {level}: the ticket's value (its advantage over each control; + favours the ticket).", "",
                "| source \\ target | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        grid: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}
        for s in sources:
            cells = []
            for t in cols:
                d = next((d for d in targets.values() if d["entry"]["source"] == s and d["entry"]["target"] == t),
                         None)
                if d is None and s == t:  # the diagonal: the source's own IMP ticket
                    d = next((d for d in data.values() if d["entry"]["group"] == s), None)
                cell = d["cells"].get((level, "ticket")) if d else None
                if cell is None:
                    cells.append("")
                    continue
                gap = {c: advantage(cell["value"], d["cells"][(level, c)]["value"], cell["metric"])
                       for (lvl, c) in d["cells"] if lvl == level and c not in ("ticket", "dense")}
                grid[(s, t)] = (cell["value"], gap, cell["metric"])
                gaps = [f"{c}: {g:+.3f}" for c, g in gap.items()]
                cells.append(f"{cell['value']:.3f} ({', '.join(gaps)})" if gaps else f"{cell['value']:.3f}")
            out.append(f"| {s} | " + " | ".join(cells) + " |")
        figure = heat_map(grid, sources, cols, level, directory / f"{stem}_level_{level:02d}.png")
        out += ["", f"![transfer at level {level}]({figure.name})", ""]
    return out


def heat_map(grid, sources: list[str], targets: list[str], level: int, path: Path) -> Path:
    """Source x target: the ticket's value, and its advantage over each control, one panel each.
    ``grid[(source, target)] = (value, {control: advantage}, metric)``. Where the targets' metrics
    differ (a task matrix: perplexity beside accuracy) or lower is better, the value panel is coloured
    within each target column, brighter where better, and has no colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    controls = sorted({c for _, gap, _ in grid.values() for c in gap})
    metrics = {metric for _, _, metric in grid.values()}
    per_column = len(metrics) > 1 or bool(metrics & LOWER_IS_BETTER)
    values = [[grid[(s, t)][0] if (s, t) in grid else float("nan") for t in targets] for s in sources]
    colours = _column_goodness(values, [_column_metric(grid, sources, t) for t in targets]) if per_column else values
    panels = [("ticket", values, colours)]
    for c in controls:
        m = [[grid[(s, t)][1].get(c, float("nan")) if (s, t) in grid else float("nan") for t in targets]
             for s in sources]
        panels.append((f"ticket vs {c} (+: ticket better)", m, m))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.3), squeeze=False)
    for ax, (title, shown, coloured) in zip(axes[0], panels):
        diverging = title != "ticket"
        bound = max((abs(x) for row in coloured for x in row if x == x), default=1.0) or 1.0
        limits = {"vmin": -bound, "vmax": bound} if diverging else ({"vmin": 0.0, "vmax": 1.0} if per_column else {})
        cmap = plt.get_cmap("RdBu" if diverging else "viridis")
        im = ax.imshow(coloured, cmap=cmap, **limits)
        for i, row in enumerate(shown):
            for j, x in enumerate(row):
                if x == x:
                    r, g, b, _ = cmap(im.norm(coloured[i][j]))
                    ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                    ax.text(j, i, f"{x:+.3f}" if diverging else f"{x:.3f}", ha="center", va="center", fontsize=7,
                            color=ink)
        ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(sources)), sources, fontsize=7)
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.set_title(f"level {level}: {title}" + (" (colour: within each target)" if per_column and not diverging
                                                  else ""), fontsize=8)
        if diverging or not per_column:
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _column_metric(grid, sources: list[str], target: str) -> str | None:
    return next((grid[(s, target)][2] for s in sources if (s, target) in grid), None)


def _column_goodness(values: list[list[float]], metrics: list[str | None]) -> list[list[float]]:
    """Each column scaled to 0 (its worst value) .. 1 (its best); 0.5 where a column has one value."""
    out = [[float("nan")] * len(metrics) for _ in values]
    for j, metric in enumerate(metrics):
        column = [row[j] for row in values if row[j] == row[j]]
        if not column:
            continue
        lo, hi = min(column), max(column)
        for i, row in enumerate(values):
            x = row[j]
            if x == x:
                good = 0.5 if hi == lo else (x - lo) / (hi - lo)
                out[i][j] = 1.0 - good if metric in LOWER_IS_BETTER and hi != lo else good
    return out


def cross_domain_figure(data: dict[str, dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import STYLE

    panels: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for group, d in data.items():
        if d["entry"]["role"] != "target" and (0, "dense") in d["cells"]:
            panels[d["entry"]["domain"]].append((group, d["cells"]))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (domain, groups) in zip(axes[0], sorted(panels.items())):
        for k, (group, cells) in enumerate(groups):
            dense = cells[(0, "dense")]["value"]
            style = ("-", "--", ":", "-.")[k % 4]  # conditions by colour, experiments by line
            for condition in sorted({c for (_, c) in cells if c != "dense"}):
                pts = sorted(((c["weights_remaining_pct"], c["value"] / dense, c["std"] / abs(dense))
                              for (lvl, cond), c in cells.items() if cond == condition), reverse=True)
                xs, ys, ss = zip(*pts)
                color, marker = STYLE.get(condition, (None, "x"))
                ax.plot(xs, ys, marker=marker, color=color, linestyle=style, label=f"{group} {condition}")
                ax.fill_between(xs, [y - s for y, s in zip(ys, ss)], [y + s for y, s in zip(ys, ss)],
                                color=color, alpha=0.15)
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_title(domain)
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel("value / dense")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
