"""One lottery-ticket question in three domains side by side: does the IMP ticket beat its
re-initialised and random-mask controls in vision (LeNet-300-100 on the bundled MNIST subset),
NLP (a 2-layer BERT from scratch on the shipped sentiment set) and RL (PPO on CartPole-v1)?

Every experiment is an ordinary run directory under --out (shared with `tickets run`, so a stage
done by either is never redone), trained on the executor you choose; the script then reads the
runs back and prints, per domain, each condition's value relative to its dense network at every
level (mean ± std over seeds), and draws the same as one figure, a panel per domain.

    python scripts/cross_domain.py                          # offline, minutes on a few cores
    python scripts/cross_domain.py --workers 4 --seeds 0 1 2
    python scripts/cross_domain.py --budget config          # the shipped configs' own budgets
    python scripts/cross_domain.py --budget paper           # the papers' budgets (hub data, a GPU)

The same study as a file: configs/studies/cross_domain.yaml (`tickets study`, with a report).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (config, overrides) per domain and budget. "small": minutes here; "config": each config's own
# budget, offline; "paper": the published settings (MNIST and SST-2 from the hub).
EXPERIMENTS = {
    "small": {
        "vision": ("configs/vision/lenet300_mnist.yaml", ["pruning.levels=3", "train.steps=300",
                                                          "train.eval_every=100"]),
        "nlp": ("configs/nlp/tiny_bert_sentiment.yaml", ["pruning.levels=3", "train.steps=200",
                                                         "train.eval_every=50"]),
        "rl": ("configs/rl/ppo_cartpole.yaml", ["pruning.levels=3", "train.steps=8192", "train.eval_every=2048"]),
    },
    "config": {
        "vision": ("configs/vision/lenet300_mnist.yaml", []),
        "nlp": ("configs/nlp/tiny_bert_sentiment.yaml", []),
        "rl": ("configs/rl/ppo_cartpole.yaml", []),
    },
    "paper": {
        "vision": ("configs/vision/lenet300_mnist_paper.yaml", []),  # Frankle & Carbin 2019
        "nlp": ("configs/nlp/bert_base_sst2_chen2020.yaml", []),  # Chen et al. 2020
        "rl": ("configs/rl/ppo_cartpole.yaml", []),  # Yu et al. 2020's classic control, our budget
    },
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=list(EXPERIMENTS), default="small")
    p.add_argument("--domains", nargs="+", choices=["vision", "nlp", "rl"], default=["vision", "nlp", "rl"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--controls", nargs="+", default=["reinit", "random_mask"])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every experiment")
    p.add_argument("--executor", choices=["serial", "processes", "ray"], default="processes")
    p.add_argument("--workers", type=int, default=2, help="processes: the pool's size")
    p.add_argument("--out", default="runs/cross_domain")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    from tickets import load_experiment
    from tickets.errors import ConfigError

    # 1. every experiment, every seed: checked before anything trains
    experiments = {}
    try:
        for domain in args.domains:
            config, overrides = EXPERIMENTS[args.budget][domain]
            overrides = [*overrides, f"controls={json.dumps(args.controls)}", f"seeds={json.dumps(args.seeds)}",
                         *args.set]
            experiments[domain] = load_experiment(ROOT / config, overrides)
    except ConfigError as exc:
        print(f"cross_domain: error: {exc}", file=sys.stderr)
        return 2

    # 2. a runner per (domain, seed), all run on one executor: the controls beside the ticket chain
    from tickets.executors import run_processes, run_serial
    from tickets.methods import make_runner

    from tickets.errors import StagesFailedError

    runners = {(d, k): make_runner(e.with_seed(k), args.out) for d, e in experiments.items() for k in args.seeds}
    try:
        if args.executor == "serial":
            run_serial(list(runners.values()))
        elif args.executor == "processes":
            run_processes(list(runners.values()), args.workers)
        else:
            from tickets.ray_executor import run_ray

            run_ray(list(runners.values()))
    except StagesFailedError as exc:  # the other stages ran; rerunning resumes
        print(f"cross_domain: error: {exc}", file=sys.stderr)
        return 1

    # 3. read the runs back (every row checked) and put the domains side by side
    curves = {}
    for domain in experiments:
        per_seed = [runners[(domain, k)].run.rows() for k in args.seeds]
        curves[domain] = relative_to_dense(per_seed)
        print(f"\n{domain}: {per_seed[0][0]['metric']} relative to dense (mean ± std over {len(args.seeds)} seeds)")
        conditions = ["ticket", *args.controls]
        print(f"{'level':>5} {'weights %':>9} " + " ".join(f"{c:>17}" for c in conditions))
        for level, weights in sorted({(lvl, w) for (lvl, _), (w, _, _) in curves[domain].items() if lvl > 0}):
            cells = [curves[domain].get((level, c)) for c in conditions]
            print(f"{level:>5} {weights:>9.1f} " + " ".join(
                f"{m:>9.3f} ± {s:<5.3f}" if (m, s) != (None, None) else f"{'':>17}"
                for m, s in ((c[1], c[2]) if c else (None, None) for c in cells)))
    from tickets.study_report import aggregate, cross_domain_figure

    panels = {d: {"entry": {"role": "experiment", "domain": d},
                  "cells": aggregate([runners[(d, k)].run.rows() for k in args.seeds])} for d in experiments}
    figure = cross_domain_figure(panels, Path(args.out) / f"cross_domain_{args.budget}.png")
    print(f"\nfigure: {figure}")
    return 0


def relative_to_dense(per_seed: list[list[dict]]) -> dict[tuple[int, str], tuple[float, float, float]]:
    """(level, condition) -> (weights remaining %, mean and std over seeds of value / that seed's dense)."""
    ratios: dict[tuple[int, str], list[float]] = {}
    weights: dict[tuple[int, str], float] = {}
    for rows in per_seed:
        dense = next(r["value"] for r in rows if r["condition"] == "dense")
        for r in rows:
            ratios.setdefault((r["level"], r["condition"]), []).append(r["value"] / dense)
            weights[(r["level"], r["condition"])] = r["weights_remaining_pct"]
    return {key: (weights[key], statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
            for key, v in ratios.items()}


if __name__ == "__main__":
    sys.exit(main())
