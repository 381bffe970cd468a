"""Compare ways of finding tickets on one config: IMP, Early-Bird, SNIP, GraSP, SynFlow, magnitude
and random at initialisation, at a list of compressions (total weights / remaining weights).

Writes one table (CSV) and one plot: the metric against compression, one line per finder, an x
where a finder's mask left no path from input to output (layer collapse), plus the time each
took to produce its mask. ``--masks-only`` skips training: it draws the at-initialisation masks
and reports their collapse (the SynFlow paper's Figure 1 / Table 1 question) in seconds.

    python scripts/compare_finders.py configs/vision/conv2_mnist_subset.yaml --out runs/compare
    python scripts/compare_finders.py configs/vision/conv2_mnist_subset.yaml --masks-only \\
        --set domain.model=vgg_16 domain.width=16 --finders magnitude random snip grasp synflow
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tickets import registry
from tickets.at_init import compressions as default_compressions
from tickets.at_init import density_of, prune_at_init
from tickets.collapse import diagnose, max_compression_before_collapse
from tickets.config import load_experiment
from tickets.domain import forward_ones_of
from tickets.errors import ConfigError, RegistryError, TicketMismatchError
from tickets.methods import make_runner
from tickets.masks import Mask
from tickets.prune_at_init import scoring_batches_for, scoring_context
from tickets.runner import stage_seed

AT_INIT = ["magnitude", "random", "snip", "grasp", "synflow"]
FINDERS = ["imp", "early_bird", *AT_INIT]


@dataclass
class Row:
    finder: str
    compression: float  # the target
    density: float  # as reached
    path_survives: bool | None
    empty_layers: int
    mask_seconds: float
    metric: str = ""
    value: float | None = None  # the trained ticket's metric (None with --masks-only)
    random_mask_value: float | None = None  # the random-mask control at the same sparsity


def masks_only(config: str, overrides: list[str], finder: str, targets: list[float], seed: int) -> list[Row]:
    exp = load_experiment(config, overrides)
    domain = exp.make_domain()
    model = domain.build_model(seed=exp.config.seed)
    from tickets.selection import select_prunable

    p = exp.config.pruning
    prunable = select_prunable(model, p.include, p.exclude, base=domain.prunable(model))
    forward_ones = forward_ones_of(domain, model)
    batches, _ = scoring_batches_for(domain, finder, p, seed, model)
    scorer = registry.scorers.get(finder)
    iterations = p.iterations or registry.scorer_needs(finder).iterations
    ones = Mask({n: torch.ones(q.shape, dtype=torch.bool) for n, q in prunable.items()})
    rows = []
    for c in targets:
        t0 = time.perf_counter()
        mask = prune_at_init(scorer, lambda m: scoring_context(domain, model, prunable, m, scorer=finder,
                                                               batches=batches, seed=stage_seed(seed, c),
                                                               forward_ones=forward_ones),
                             ones, list(prunable), density_of(c), iterations=iterations)
        seconds = time.perf_counter() - t0
        diag = diagnose(model, mask, forward_ones, zero=domain.path_bias_patterns)
        rows.append(Row(finder, c, diag["density"], diag["path_survives"], len(diag["empty_layers"]), seconds))
    return rows


def finder_experiment(config: str, overrides: list[str], finder: str, targets: list[float]):
    """The experiment that runs ``finder`` on ``config`` at ``targets`` (IMP: enough levels to pass
    the highest compression)."""
    base = load_experiment(config, overrides)
    if finder == "imp":
        fraction = base.config.pruning.fraction
        levels = math.ceil(math.log(max(targets)) / -math.log(1 - fraction))
        extra = ["pruning.method=imp", f"pruning.levels={levels}", "controls=[random_mask]"]
    else:
        method = "early_bird" if finder == "early_bird" else "at_init"
        extra = [f"pruning.method={method}", f"pruning.compressions={targets}", "pruning.groups=[]",
                 "controls=[random_mask]", "rewind.step=0"]
        if method == "at_init":
            extra.append(f"pruning.scorer={finder}")
    exp = load_experiment(config, [*overrides, *extra])
    exp.config.name = f"{exp.config.name}-{finder}"
    return exp


def prepare(config: str, overrides: list[str], finders: list[str], targets: list[float],
            out: Path) -> dict[str, object]:
    """Check every finder's settings before any of them trains: build each one's runner (which checks
    the config, the domain and the finder's own settings; with --masks-only too, though only the
    masks are drawn). Raises the first bad setting, prefixed with the finder's name."""
    prepared = {}
    for finder in finders:  # building a runner checks everything and trains nothing
        try:
            prepared[finder] = make_runner(finder_experiment(config, overrides, finder, targets), out,
                                           show_progress=False)
        except (ConfigError, RegistryError, TicketMismatchError, FileNotFoundError) as exc:
            raise ConfigError(f"{finder}: {exc}") from None
    return prepared


def trained(runner, finder: str, targets: list[float]) -> list[Row]:
    run = runner.execute()
    rows = run.rows()
    tickets = {r["level"]: r for r in rows if r["condition"] == "ticket"}
    controls = {r["level"]: r for r in rows if r["condition"] == "random_mask"}
    if finder == "imp":  # the level nearest each target; its mask cost the trainings before it
        dense = next(r for r in rows if r["condition"] == "dense")
        chosen = {}
        for c in targets:
            level = min(tickets, key=lambda lvl: abs(math.log(100 / tickets[lvl]["weights_remaining_pct"] / c)))
            chosen[c] = level
        cost = {lvl: dense["wall_seconds"] + sum(tickets[k]["wall_seconds"] for k in tickets if k < lvl)
                for lvl in tickets}
        pairs = [(c, chosen[c], cost[chosen[c]]) for c in targets]
    else:
        pairs = [(c, i + 1, tickets[i + 1]["mask_seconds"] or 0.0) for i, c in enumerate(targets)]
    return [Row(finder, c, tickets[lvl]["weights_remaining_pct"] / 100, tickets[lvl]["path_survives"],
                len(tickets[lvl]["empty_layers"]), seconds, tickets[lvl]["metric"], tickets[lvl]["value"],
                controls[lvl]["value"]) for c, lvl, seconds in pairs]


def write_table(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["finder", "compression", "density", "path_survives", "empty_layers", "mask_seconds",
                    "metric", "value", "random_mask_value"])
        for r in rows:
            w.writerow([r.finder, f"{r.compression:.4g}", f"{r.density:.6g}", r.path_survives, r.empty_layers,
                        f"{r.mask_seconds:.3f}", r.metric, "" if r.value is None else f"{r.value:.4f}",
                        "" if r.random_mask_value is None else f"{r.random_mask_value:.4f}"])


def plot(rows: list[Row], path: Path, masks_only_mode: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for finder in dict.fromkeys(r.finder for r in rows):
        mine = sorted((r for r in rows if r.finder == finder), key=lambda r: r.compression)
        ys = [r.density if masks_only_mode else r.value for r in mine]
        line, = ax.plot([r.compression for r in mine], ys, marker="o", label=finder)
        cut = [(r.compression, y) for r, y in zip(mine, ys) if r.path_survives is False]
        if cut:
            ax.scatter(*zip(*cut), marker="x", s=90, color=line.get_color(), zorder=3)
    ax.set_xscale("log")
    if masks_only_mode:
        ax.set_yscale("log")
    ax.set_xlabel("compression (total / remaining weights)")
    ax.set_ylabel("density reached" if masks_only_mode else f"test {rows[0].metric}")
    ax.set_title("x: no path from input to output (layer collapse)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="compare_finders.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every finder's settings are checked before any finder trains: a bad setting is one error line "
               "(exit status 2) naming the finder, and nothing is trained.")
    parser.add_argument("config", help="experiment YAML the finders share (domain, model, train.steps, seed, ...)")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value",
                        help="dotted config overrides applied to every finder, e.g. domain.model=vgg_16 "
                             "pruning.early_bird.every=50")
    parser.add_argument("--finders", nargs="*", default=FINDERS, choices=FINDERS, metavar="FINDER",
                        help=f"which finders to compare (default: all): {', '.join(FINDERS)}. imp runs IMP "
                             "levels until the highest compression; early_bird draws its ticket while training; "
                             "the others score at initialisation")
    parser.add_argument("--compressions", nargs="*", type=float, default=default_compressions(), metavar="C",
                        help="target compressions, total weights / remaining weights (default: 10^0.5 ... 10^3 "
                             "in half-decades)")
    parser.add_argument("--masks-only", action="store_true",
                        help="no training: draw the at-initialisation masks (magnitude, random, snip, grasp, "
                             "synflow) and report density and layer collapse only; imp and early_bird are skipped")
    parser.add_argument("--out", default="runs/compare",
                        help="directory for the runs, the table (compare.csv or compare_masks.csv) and the plot "
                             "(default: runs/compare)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    finders = [f for f in args.finders if not (args.masks_only and f not in AT_INIT)]
    for finder in args.finders:
        if finder not in finders:
            print(f"{finder}: needs training; skipped with --masks-only")
    try:
        if not args.compressions or any(not c > 1 for c in args.compressions):
            raise ConfigError(f"--compressions: need target compressions above 1, got {args.compressions}")
        prepared = prepare(args.config, args.set, finders, args.compressions, out)
    except ConfigError as exc:
        print(f"compare_finders: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for finder in finders:
        if args.masks_only:
            seed = prepared[finder].config.seed  # a runner's config
            found = masks_only(args.config, args.set, finder, args.compressions, seed)
        else:
            found = trained(prepared[finder], finder, args.compressions)
        rows += found
        survived = [(r.compression, bool(r.path_survives)) for r in found]
        print(f"{finder:<11} highest compression before collapse: {max_compression_before_collapse(survived)}")
    name = "compare_masks" if args.masks_only else "compare"
    write_table(rows, out / f"{name}.csv")
    plot(rows, out / f"{name}.png", args.masks_only)
    print(f"\n{'finder':<11} {'compression':>11} {'density':>9} {'path':>5} {'empty':>5} {'mask s':>7} {'value':>7} "
          f"{'random':>7}")
    for r in rows:
        value = "" if r.value is None else f"{r.value:.4f}"
        rnd = "" if r.random_mask_value is None else f"{r.random_mask_value:.4f}"
        path = {True: "yes", False: "CUT", None: "-"}[r.path_survives]
        print(f"{r.finder:<11} {r.compression:>11.4g} {r.density:>9.5f} {path:>5} {r.empty_layers:>5} "
              f"{r.mask_seconds:>7.2f} {value:>7} {rnd:>7}")
    print(f"\ntable: {out / (name + '.csv')}\nplot:  {out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
