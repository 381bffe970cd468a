"""``tickets analyze RUN_DIR lmc``: instability against the rewind iteration k for the dense
network (level 0) and chosen levels' tickets (see :mod:`tickets.lmc` for the method).

Writes under ``RUN_DIR/analysis/lmc/``: ``lmc.json`` (every path: α, the test metrics at each
point, the errors, the barrier), ``lmc.csv`` (a row per (level, k): weights remaining, instability,
the loss barrier, the bump over the worse end, the two copies' test values), ``path.png`` (the
test metric along the path, as measured: accuracy, perplexity, return; a line per k,
a panel per level) and ``instability.png`` (instability and the copies' mean test value against
k, a line per level: the paper's Figures 3-5). Everything is checked before training starts: the
run's config, θ0, the tickets of the levels asked for, and k against the loop's step multiple.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from . import run_files, store
from .analyses import Analysis
from .analysis_options import LMCOptions
from .artifact import Ticket
from .config import load_experiment
from .errors import ArtifactError, ConfigError
from .lmc import POINTS, PathResult, evaluate_path, path_result, replay_states, train_copy
from .masks import Mask
from .plot import pyplot, save
from .rewind import load_state
from .run_dir import RunDir
from .runner import seed_everything, stage_seed
from .selection import select_prunable

OUT = Path("analysis") / "lmc"


def analyze_lmc(run_dir: str | Path, ks: list[int], levels: list[int] | None = None, *, points: int = POINTS,
                recompute_bn: bool = False, show: bool = True) -> list[PathResult]:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ArtifactError(f"{run_dir}: not a run directory (no config.yaml)", run_dir)
    experiment = load_experiment(run_dir / "config.yaml")
    cfg = experiment.config
    run = RunDir(run_dir)
    tickets = sorted(lvl for lvl, d in run_files.level_dirs(run_dir).items() if (d / "ticket").exists())
    levels = sorted(set(levels if levels else [0, *tickets[-1:]]))
    missing = [lvl for lvl in levels if lvl != 0 and lvl not in tickets]
    if missing:
        raise ArtifactError(f"{run_dir}: no ticket at level(s) {missing} (it has {tickets})", run_dir)
    if not ks or len(set(ks)) != len(ks) or min(ks) < 0:
        raise ConfigError(f"--ks: distinct iterations >= 0, got {ks}")
    if points < 2:
        raise ConfigError(f"--points: at least 2 (the two ends), got {points}")
    domain = experiment.make_domain()
    multiple = domain.step_multiple()
    bad = [k for k in ks if k % multiple or k >= cfg.train.steps]
    if bad:
        raise ConfigError(f"--ks: {bad} are not steps the {domain.name} loop reports below train.steps "
                          f"({cfg.train.steps}); use multiples of {multiple}")
    theta0 = run.load_state("init")  # checked on read
    template = domain.build_model(seed=cfg.seed)
    p = cfg.pruning
    masks = {0: Mask.ones_like(select_prunable(template, p.include, p.exclude, base=domain.prunable(template)))}
    for level in levels:
        if level:
            masks[level] = Ticket.load(run.ticket_dir(level), with_rewind=False).mask
    saved_rewind = run.load_state("rewind") if run.state_path("rewind").exists() else None
    seeds = (stage_seed(cfg.seed, "lmc", 1), stage_seed(cfg.seed, "lmc", 2))
    bn_batches = None
    if recompute_bn:
        bn_batches = domain.scoring_batches(8, stage_seed(cfg.seed, "lmc", "bn"), model=template)
        if bn_batches is None:
            raise ConfigError(f"--recompute-bn: the {domain.name} domain gives no training batches to estimate "
                              "BatchNorm statistics from")

    model = domain.build_model(seed=cfg.seed)
    load_state(model, theta0)
    seed_everything(stage_seed(cfg.seed, 0, "dense"))
    replayed = replay_states(domain, model, steps=cfg.train.steps, ks=ks, seed=cfg.seed)  # one pass for every k
    results = []
    for k in sorted(ks):
        theta_k = replayed[k]
        if k == cfg.rewind.step and saved_rewind is not None:
            differ = [n for n, t in saved_rewind.items() if n in theta_k and not torch.equal(t, theta_k[n])]
            if differ:
                raise RuntimeError(f"k={k}: replaying the dense run did not reproduce its saved θk "
                                   f"({run.state_path('rewind')}; {differ[0]} differs): the domain's training is "
                                   "not deterministic here, so the paths would not start from the run's θk")
        for level in levels:
            ends = []
            for copy, seed in enumerate(seeds):
                model = domain.build_model(seed=cfg.seed)
                load_state(model, theta_k)
                seed_everything(stage_seed(cfg.seed, "lmc", k, level, copy))
                prunable = {n: q for n, q in model.named_parameters() if n in masks[level]}
                ends.append(train_copy(domain, model, prunable, masks[level], steps=cfg.train.steps, k=k, seed=seed))
            alphas, metrics = evaluate_path(domain, model, *ends, points=points, bn_batches=bn_batches)
            result = path_result(domain, k, level, alphas, metrics, seeds)
            result.extra["weights_remaining_pct"] = 100.0 * masks[level].density()
            results.append(result)
            if show:
                from . import progress

                progress.message(f"lmc level {level:2d} k={k:<6d} instability {result.instability:+.4f} "
                                 f"({domain.primary_metric} ends {metrics[0][domain.primary_metric]:.4f}, "
                                 f"{metrics[-1][domain.primary_metric]:.4f})")
    _write(run_dir / OUT, results, domain.primary_metric, recompute_bn)
    return results


def _write(out: Path, results: list[PathResult], metric: str, recompute_bn: bool) -> None:
    store.write_json(out / "lmc.json", {"metric": metric, "recompute_bn": recompute_bn,
                                        "paths": [asdict(r) for r in results]})
    store.write_csv(out / "lmc.csv", ["level", "k", "weights_remaining_pct", "instability", "loss_instability",
                                      "over_worse_end", f"{metric}_a", f"{metric}_b"],
                    [[r.level, r.k, repr(r.extra["weights_remaining_pct"]), repr(r.instability),
                      "" if r.loss_instability is None else repr(r.loss_instability), repr(r.over_worse_end),
                      repr(r.metrics[0][metric]), repr(r.metrics[-1][metric])] for r in results])
    _figures(out, results, metric)


def _figures(out: Path, results: list[PathResult], metric: str) -> None:
    plt = pyplot()
    levels = sorted({r.level for r in results})
    fig, axes = plt.subplots(1, len(levels), figsize=(4.5 * len(levels), 3.5), squeeze=False)
    for ax, level in zip(axes[0], levels):
        for r in (r for r in results if r.level == level):
            ax.plot(r.alphas, [m[metric] for m in r.metrics], label=f"k={r.k}")
        pct = next(r.extra["weights_remaining_pct"] for r in results if r.level == level)
        ax.set(title=f"level {level} ({pct:.1f}% weights)", xlabel="α (θA → θB)", ylabel=f"test {metric}")
        ax.legend(fontsize=7)
    save(fig, out / "path.png")

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for level in levels:
        rs = sorted((r for r in results if r.level == level), key=lambda r: r.k)
        ks = [r.k for r in rs]
        left.plot(ks, [r.instability for r in rs], marker="o", label=f"level {level}")
        right.plot(ks, [statistics.fmean([r.metrics[0][metric], r.metrics[-1][metric]]) for r in rs], marker="o",
                   label=f"level {level}")
    left.set(xlabel="rewind iteration k", ylabel="instability (error barrier)", title="instability")
    right.set(xlabel="rewind iteration k", ylabel=f"test {metric} (mean of the copies)", title="trained from θk")
    left.axhline(0.0, color="gray", linewidth=1, linestyle="--")
    for ax in (left, right):
        ax.legend(fontsize=7)
    save(fig, out / "instability.png")


class LMCAnalysis(Analysis):
    """Instability against k for the dense network and the chosen levels' tickets."""

    Options = LMCOptions

    def run(self, run_dir: Path, options: LMCOptions) -> str:
        results = analyze_lmc(run_dir, options.ks, options.levels, points=options.points,
                              recompute_bn=options.recompute_bn)
        return summary_table(results)

    def report(self, run_dir: Path, options: LMCOptions, study_dir: Path) -> list[str]:
        rows = read_lmc_csv(run_dir / OUT / "lmc.csv")
        lines = ["| level | k | weights % | instability | over the worse end |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['level']} | {r['k']} | {r['weights_remaining_pct']:.1f} | {r['instability']:.4f} "
                  f"| {r['over_worse_end']:.4f} |" for r in rows]
        return lines + [""] + super().report(run_dir, options, study_dir)


def summary_table(results: list[PathResult]) -> str:
    lines = [f"{'level':>5} {'k':>6} {'weights %':>9} {'instability':>11} {'over worse end':>14}"]
    lines += [f"{r.level:>5} {r.k:>6} {r.extra['weights_remaining_pct']:>9.1f} {r.instability:>11.4f} "
              f"{r.over_worse_end:>14.4f}" for r in results]
    return "\n".join(lines)


def read_lmc_csv(path: Path) -> list[dict]:
    """lmc.csv read back checked: integers where integers belong, finite numbers elsewhere."""
    import csv
    import math

    try:
        with open(path, newline="") as f:
            raw = list(csv.DictReader(f))
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the LMC results ({exc.strerror or exc})", path) from None
    rows = []
    for i, r in enumerate(raw, start=2):
        try:
            row = {"level": int(r["level"]), "k": int(r["k"]),
                   "weights_remaining_pct": float(r["weights_remaining_pct"]), "instability": float(r["instability"]),
                   "over_worse_end": float(r["over_worse_end"])}
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"{path}: line {i} is not a (level, k, weights %, instability, over the worse end) "
                                "row", path) from None
        if (not all(math.isfinite(v) for v in row.values()) or not 0 <= row["weights_remaining_pct"] <= 100
                or row["over_worse_end"] < 0 or row["over_worse_end"] > row["instability"] + 1e-12):
            raise ArtifactError(f"{path}: line {i} holds a non-finite or out-of-range value", path)
        rows.append(row)
    if not rows:
        raise ArtifactError(f"{path}: no LMC results", path)
    return rows
