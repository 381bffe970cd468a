"""The LTH-style plot: primary metric vs % weights remaining, one curve per condition."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

STYLE = {"dense": ("black", "o"), "ticket": ("tab:blue", "o"), "reinit": ("tab:orange", "s"),
         "random_mask": ("tab:green", "^"), "shuffled_mask": ("tab:red", "v"),
         "random_mask_uniform": ("tab:purple", "D"), "random_mask_erk": ("tab:brown", "P"),
         "random_units": ("tab:olive", "X")}


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, write (making the directory) and close ``fig``."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


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
    weights_axis(ax, [r["weights_remaining_pct"] for r in rows])
    ax.set_ylabel(f"test {rows[0]['metric']}" if rows else "")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def weights_axis(ax, percents, label: str = "% of prunable weights remaining") -> None:
    """A log x axis of weights remaining, densest on the left, ticked at the levels' own values."""
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = sorted({round(float(x), 1) for x in percents}, reverse=True)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks], rotation=45, fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel(label)
