"""The framework's stage with each optimizer implementation: torch's default, for_loop, foreach, fused.

The same stage (``Domain.train`` inside the core's ``MaskEnforcer``) is trained with every value of
``optimizer.implementation`` from the same weights, in rounds that interleave the implementations
(the order reverses every round) in one process. The script prints the median ms/step of each,
the median of its per-round ratios to ``default`` with a bootstrap 95% interval, and whether its
final weights equal the default's bit for bit (for_loop and foreach do on the CPU; fused rounds
differently).

    python scripts/bench_optimizers.py                  # the main job's stage, 1 thread
    python scripts/bench_optimizers.py --threads 2 --density 0.2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_stage import build_mask, stage  # noqa: E402
from bench_stats import median_interval  # noqa: E402
from tickets.config import load_experiment  # noqa: E402
from tickets.optim_config import IMPLEMENTATIONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/vision/lenet300_mnist.yaml"))
    parser.add_argument("--steps", type=int, default=500, help="steps per timed run")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--density", type=float, default=1.0, help="1.0: the dense stage; below: a ticket's")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    experiments = {impl: load_experiment(args.config, [f"domain.optimizer.implementation={impl}"])
                   for impl in IMPLEMENTATIONS}
    domains = {impl: exp.make_domain() for impl, exp in experiments.items()}
    first, seed = domains["default"], experiments["default"].config.seed
    init = first.build_model(seed=seed).state_dict()
    mask = build_mask(first.prunable(first.build_model(seed=seed)), args.density)

    def timed(impl: str, steps: int) -> tuple[float, dict[str, torch.Tensor]]:
        """ms/step of bench_stage's stage with ``impl`` from the shared weights, and its final weights."""
        model = domains[impl].build_model(seed=seed)
        model.load_state_dict(init)
        seconds = stage(domains[impl], model, mask, steps=steps, seed=seed, eval_every=args.eval_every)
        return seconds / steps * 1e3, model.state_dict()

    for impl in IMPLEMENTATIONS:  # untimed: first-call costs
        timed(impl, min(args.steps, 50))
    times: dict[str, list[float]] = {impl: [] for impl in IMPLEMENTATIONS}
    finals: dict[str, dict[str, torch.Tensor]] = {}
    for r in range(args.rounds):
        for impl in IMPLEMENTATIONS if r % 2 == 0 else tuple(reversed(IMPLEMENTATIONS)):
            ms, finals[impl] = timed(impl, args.steps)
            times[impl].append(ms)
    print(f"{first.config.optimizer.name}, {args.config}: {args.steps} steps x {args.rounds} rounds, "
          f"density {args.density:g}, {args.threads} thread(s)")
    print(f"{'implementation':<15}{'ms/step':>9}   {'vs default (95% interval)':<28}same weights as default")
    for impl, ts in times.items():
        ratios = [x / y for x, y in zip(ts, times["default"])]
        low, high = median_interval(ratios)
        versus = f"{statistics.median(ratios):.3f}x ({low:.3f}-{high:.3f}x)"
        same = all(torch.equal(finals[impl][k], finals["default"][k]) for k in finals["default"])
        verdict = "bit for bit" if same else "no (rounds differently)"
        print(f"{impl:<15}{statistics.median(ts):>9.3f}   {versus:<28}{verdict}")


if __name__ == "__main__":
    main()
