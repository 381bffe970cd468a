"""A transfer matrix ("One ticket to win them all", Morcos et al. 2019): IMP finds tickets on each
variant of one config (a dataset variant, another optimizer, an environment variant, a task), and
every variant's tickets are trained on every other variant, next to the controls. The diagonal is
each variant's own IMP ticket, the reference of its column.

A variant is a label and the overrides that make it (`KEY=VALUE`, as `tickets run` takes them);
a transfer is nothing more than the target's config with `transfer.source` set to the source's run
directory. Every run is an ordinary run directory under --out, so a stage done before (by this
script, `tickets run` or a study) is not redone.

    python scripts/transfer_matrix.py        # LeNet-300-100: the MNIST subset, rotated, inverted; SGD
    python scripts/transfer_matrix.py configs/rl/ppo_cartpole.yaml --set seeds=[] pruning.levels=3 \\
        train.steps=8192 train.eval_every=2048 --levels 1 3 \\
        --variant cartpole --variant long_pole 'domain.env_attrs={length: 1.0}'

Prints the ticket's value per (source, target) at each level with its gap over each control, and
writes matrix.csv and a heat map per level under --out/<name>. The same as a study file:
configs/studies/transfer_mnist_variants.yaml (`tickets study`, with a report and seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = [
    ["mnist"],
    ["rot90", "domain.dataset.variant={rotate: 90}"],
    ["inverted", "domain.dataset.variant={invert: true}"],
    ["sgd", "domain.optimizer={name: sgd, lr: 0.05, momentum: 0.9}"],
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", default=str(ROOT / "configs/vision/lenet300_mnist.yaml"))
    p.add_argument("--variant", nargs="+", action="append", metavar=("LABEL", "KEY=VALUE"),
                   help="a label and its overrides; give it once per variant (default: "
                        + ", ".join(v[0] for v in DEFAULT_VARIANTS) + ")")
    p.add_argument("--set", nargs="*", default=["pruning.levels=4", "train.steps=500"], metavar="KEY=VALUE",
                   help="overrides for every variant (default: %(default)s)")
    p.add_argument("--levels", nargs="+", type=int, default=[2, 4], help="the source levels to transfer")
    p.add_argument("--controls", nargs="+", default=["reinit", "random_mask"])
    p.add_argument("--adapt", nargs="*", default=[], help="layers that may not fit (a new head): transfer.adapt")
    p.add_argument("--workers", type=int, default=2, help="worker processes (1: serial)")
    p.add_argument("--out", default="runs/transfer_matrix")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    from tickets import load_experiment
    from tickets.errors import ConfigError

    variants = {v[0]: v[1:] for v in (args.variant or DEFAULT_VARIANTS)}
    if len(variants) < 2:
        print("transfer_matrix: error: --variant: give at least two variants", file=sys.stderr)
        return 2
    common = [*args.set, f"controls={json.dumps(args.controls)}"]

    # 1. the sources (each variant's own IMP run) and the transfers, every config checked first
    from tickets.methods import make_runner

    try:
        base = load_experiment(args.config, common).config.name
        sources = {label: make_runner(load_experiment(args.config, [*common, f"name={base}-{label}", *extra]),
                                      args.out, show_progress=False)
                   for label, extra in variants.items()}
        for label, runner in sources.items():
            levels = runner.levels()
            if any(level not in levels for level in args.levels):
                raise ConfigError(f"--levels {args.levels}: variant {label} has levels {levels[0]}..{levels[-1]}")
        transfers = {}
        for s, source in sources.items():
            for t, extra in variants.items():
                if s != t:
                    transfer = [f"transfer.source={source.run.path}", f"transfer.levels={json.dumps(args.levels)}",
                                f"transfer.adapt={json.dumps(args.adapt)}"]
                    transfers[(s, t)] = load_experiment(args.config, [*common, f"name={base}-{s}-to-{t}", *extra,
                                                                      *transfer])
    except ConfigError as exc:
        print(f"transfer_matrix: error: {exc}", file=sys.stderr)
        return 2

    # 2. sources first (a transfer's runner reads its source's tickets when it is built), then the rest
    from tickets.errors import StagesFailedError

    try:
        run(list(sources.values()), args.workers)
        targets = {pair: make_runner(e, args.out, show_progress=False) for pair, e in transfers.items()}
        run(list(targets.values()), args.workers)
    except StagesFailedError as exc:  # the independent stages ran; rerunning resumes
        print(f"transfer_matrix: error: {exc}", file=sys.stderr)
        return 1

    # 3. the matrix: the diagonal from the sources' own runs, every other cell from its transfer run
    cells = {}  # (level, source, target, condition) -> value
    for (s, t), runner in [*(((k, k), r) for k, r in sources.items()), *targets.items()]:
        for row in runner.run.rows():  # every row read back checked
            if row["level"] in args.levels:
                cells[(row["level"], s, t, row["condition"])] = row["value"]
    out = Path(args.out) / base
    from tickets import store
    from tickets.study_report import advantage, heat_map

    store.write_csv(out / "matrix.csv", ["level", "source", "target", "condition", "value"],
                    [[*key, repr(value)] for key, value in sorted(cells.items())])

    labels = list(variants)
    metric = next(iter(sources.values())).domain.primary_metric
    for level in args.levels:
        print(f"\nlevel {level}: the ticket's {metric} (its advantage over {', '.join(args.controls)}, + when "
              "the ticket is better); rows: where it was found")
        corner = "source \\ target"
        print(f"{corner:<16}" + "".join(f"{t:>28}" for t in labels))
        grid = {}
        for s in labels:
            line = f"{s:<16}"
            for t in labels:
                ticket = cells.get((level, s, t, "ticket"))
                if ticket is None:  # a stage that failed: its cell stays empty
                    line += f"{'':>28}"
                    continue
                gaps = {c: advantage(ticket, cells[(level, s, t, c)], metric) for c in args.controls
                        if (level, s, t, c) in cells}
                grid[(s, t)] = (ticket, gaps, metric)
                text = f"{ticket:.4f} (" + ", ".join(f"{g:+.3f}" for g in gaps.values()) + ")"
                line += f"{text:>28}"
            print(line)
        figure = heat_map(grid, labels, labels, level, out / f"level_{level:02d}.png")
        print(f"heat map: {figure}")
    print(f"\nmatrix: {out / 'matrix.csv'}")
    return 0


def run(runners: list, workers: int) -> None:
    from tickets.executors import run_processes, run_serial

    if workers > 1:
        run_processes(runners, workers, show_progress=False)
    else:
        run_serial(runners)


if __name__ == "__main__":
    sys.exit(main())
