"""``tickets analyze RUN_DIR weight_change``: how the weights a ticket keeps moved in training,
against the ones it prunes (Zhou et al. 2019, "Deconstructing lottery tickets", find that what
IMP keeps is largely what kept its sign and grew).

For every level's ticket and every prunable layer, between θ0 (the run's ``init`` state) and the
dense network's trained weights (level 0: the one training every level's mask descends from),
for the kept and the pruned weights apart:
  sign_flip         the share whose sign changed (weights exactly 0 at θ0 left out)
  grew              the share with |w_trained| > |w_0|
  mean_abs_init     mean |w_0|;  mean_abs_trained: mean |w_trained|
Writes ``RUN_DIR/analysis/weight_change/weight_change.csv`` (rows per level, layer and group, and
"all" for all prunable layers together) and ``weight_change.png`` (sign flips and growth against
the weights remaining). Every file is read checked: shapes against the tickets, values finite.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import run_files, store
from .analyses import Analysis, out_dir
from .analysis_options import WeightChangeOptions
from .artifact import Ticket
from .errors import ArtifactError
from .masks import Mask
from .plot import pyplot, save, weights_axis
from .run_dir import RunDir

ALL = "all"
FIELDS = ["level", "layer", "group", "weights_remaining_pct", "count", "sign_flip", "grew", "mean_abs_init",
          "mean_abs_trained"]


def group_stats(init: torch.Tensor, trained: torch.Tensor) -> dict[str, float | int]:
    """The change statistics of a set of weights (1-D tensors of the same length)."""
    init, trained = init.double(), trained.double()
    nonzero = init != 0
    n = int(init.numel())
    if n == 0:
        return {"count": 0, "sign_flip": None, "grew": None, "mean_abs_init": None, "mean_abs_trained": None}
    flips = (torch.sign(init) != torch.sign(trained)) & nonzero
    return {"count": n,
            "sign_flip": float(flips.sum()) / max(1, int(nonzero.sum())),
            "grew": float((trained.abs() > init.abs()).double().mean()),
            "mean_abs_init": float(init.abs().mean()), "mean_abs_trained": float(trained.abs().mean())}


def weight_change(init: dict[str, torch.Tensor], trained: dict[str, torch.Tensor],
                  masks: dict[int, Mask]) -> list[dict]:
    rows = []
    for level, mask in sorted(masks.items()):
        pct = 100.0 * mask.density()
        for group, pick in (("kept", lambda m: m), ("pruned", lambda m: ~m)):
            flat_i, flat_t = [], []
            for name, m in mask.items():
                sel = pick(m)
                a, b = init[name][sel], trained[name][sel]
                flat_i.append(a)
                flat_t.append(b)
                rows.append({"level": level, "layer": name, "group": group, "weights_remaining_pct": pct,
                             **group_stats(a, b)})
            rows.append({"level": level, "layer": ALL, "group": group, "weights_remaining_pct": pct,
                         **group_stats(torch.cat(flat_i), torch.cat(flat_t))})
    return rows


def analyze_weight_change(run_dir: str | Path, levels: list[int] | None = None) -> list[dict]:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ArtifactError(f"{run_dir}: not a run directory (no config.yaml)", run_dir)
    run = RunDir(run_dir)
    have = sorted(lvl for lvl, d in run_files.level_dirs(run_dir).items() if (d / "ticket").exists())
    levels = sorted(levels) if levels else have
    missing = [lvl for lvl in levels if lvl not in have]
    if missing or not levels:
        raise ArtifactError(f"{run_dir}: no ticket at level(s) {missing or 'any'} (it has {have})", run_dir)
    masks = {lvl: Ticket.load(run.ticket_dir(lvl), with_rewind=False).mask for lvl in levels}
    trained_path = run.trained_path(0, "dense")
    init, trained = run.load_state("init"), store.read_tensors(trained_path)
    for name, m in masks[levels[0]].items():
        for what, source, path in (("θ0", init, run.state_path("init")), ("trained", trained, trained_path)):
            t = source.get(name)
            if t is None or tuple(t.shape) != tuple(m.shape):
                raise ArtifactError(f"{path}: {what} {name} is {'missing' if t is None else tuple(t.shape)}, the "
                                    f"tickets' mask is {tuple(m.shape)}", path)
            if not bool(torch.isfinite(t).all()):
                raise ArtifactError(f"{path}: {what} {name} holds NaN or infinite values", path)
    rows = weight_change(init, trained, masks)
    out = out_dir(run_dir, "weight_change")
    store.write_csv(out / "weight_change.csv", FIELDS,
                    [["" if r[k] is None else (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in FIELDS]
                     for r in rows])
    _figure([r for r in rows if r["layer"] == ALL], out / "weight_change.png")
    return rows


def summary(rows: list[dict]) -> str:
    lines = [f"{'level':>5} {'weights %':>9} {'sign flip kept':>14} {'pruned':>7} {'grew kept':>9} {'pruned':>7}"]
    by = {(r["level"], r["group"]): r for r in rows if r["layer"] == ALL}
    for level in sorted({lvl for lvl, _ in by}):
        k, p = by[(level, "kept")], by[(level, "pruned")]
        fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"{level:>5} {k['weights_remaining_pct']:>9.1f} {fmt(k['sign_flip']):>14} "
                     f"{fmt(p['sign_flip']):>7} {fmt(k['grew']):>9} {fmt(p['grew']):>7}")
    return "\n".join(lines)


def _figure(rows: list[dict], path: Path) -> None:
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in ((axes[0], "sign_flip", "sign flipped, θ0 → trained"),
                           (axes[1], "grew", "|w| grew, θ0 → trained")):
        for group, color in (("kept", "tab:blue"), ("pruned", "tab:red")):
            pts = sorted((r["weights_remaining_pct"], r[key]) for r in rows if r["group"] == group
                         and r["layer"] == ALL and r[key] is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", color=color, label=group)
        weights_axis(ax, [r["weights_remaining_pct"] for r in rows])
        ax.set(ylabel="share of the weights (all prunable layers)", title=title)
        ax.legend(fontsize=7)
    save(fig, path)


class WeightChangeAnalysis(Analysis):
    """Sign flips and growth θ0 → trained, for each ticket's kept vs pruned weights."""

    Options = WeightChangeOptions

    def run(self, run_dir: Path, options: WeightChangeOptions) -> str:
        return summary(analyze_weight_change(run_dir, options.levels))
