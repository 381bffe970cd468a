"""Training speed of ResNet-20 on the CPU: dense vs masked with tickets.MaskEnforcer.

CIFAR ResNet-20 (272,474 parameters), random 3x32x32 batches of 128, SGD with momentum 0.9,
80% of the prunable weights (every conv and the output layer) pruned at random. The two variants
start from the same weights and are timed in interleaved rounds in one process (the order
alternates every round); the script prints the median steps/second and the masked/dense ratio,
by wall clock and by this process's CPU time (steadier when other work shares the cores), and
the cost of one MaskEnforcer.apply() (what masking adds to every optimizer step) on its own.

With as many threads as cores and other work on the machine, one starved thread holds up every
parallel operation (on this project's shared 2-core machine a step took 0.3 s to 2.3 s with two
threads); ``--threads 1`` gives steadier numbers there (0.56 s per step, +-5%).

    python scripts/bench_resnet20.py [--steps 5] [--rounds 7] [--threads 2] [--batch 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench_stats import median_interval
from domains.vision.models import build
from tickets import Mask, MaskEnforcer
from tickets.selection import default_prunable


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build("resnet_20", (3, 32, 32), 10)


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def timed_steps(model, opt, batches) -> tuple[float, float]:
    """Wall-clock and CPU seconds per training step over ``batches``."""
    t0, c0 = time.perf_counter(), time.process_time()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / len(batches), (time.process_time() - c0) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--density", type=float, default=0.2, help="fraction of prunable weights kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=g), torch.randint(0, 10, (args.batch,), generator=g))
               for _ in range(args.steps)]

    dense = make_model()
    masked = make_model()
    prunable = default_prunable(masked)
    mask = Mask({n: torch.rand(p.shape, generator=g) < args.density for n, p in prunable.items()})
    enforcer = MaskEnforcer(prunable, mask).attach()
    variants = {"dense": (dense, sgd(dense)), "masked (MaskEnforcer)": (masked, sgd(masked))}

    for model, opt in variants.values():
        timed_steps(model, opt, batches[: args.warmup] or batches[:1])
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            times[name].append(timed_steps(*variants[name], batches))
    t0 = time.perf_counter()
    for _ in range(100):
        enforcer.apply()
    apply_ms = 1000 * (time.perf_counter() - t0) / 100
    enforcer.detach()
    for n, p in prunable.items():
        assert torch.all(p.detach()[~mask[n]] == 0), n

    kept = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
    print(f"ResNet-20, batch {args.batch}, SGD momentum 0.9, {100 * (1 - kept):.1f}% of the prunable weights "
          f"pruned, {args.threads} thread(s), {args.rounds} rounds x {args.steps} steps")
    print(f"{'variant':<22} {'steps/s':>8} {'ms/step':>9} {'min..max ms':>13} {'CPU ms/step':>12}")
    wall = {name: statistics.median(t for t, _ in ts) for name, ts in times.items()}
    cpu = {name: statistics.median(c for _, c in ts) for name, ts in times.items()}
    for name, ts in times.items():
        spread = f"{1000 * min(t for t, _ in ts):.0f}..{1000 * max(t for t, _ in ts):.0f}"
        print(f"{name:<22} {1 / wall[name]:>8.3f} {1000 * wall[name]:>9.1f} {spread:>13} {1000 * cpu[name]:>12.1f}")
    m = "masked (MaskEnforcer)"
    print(f"masked/dense steps/s: {wall['dense'] / wall[m]:.3f} by wall clock, {cpu['dense'] / cpu[m]:.3f} by CPU time")
    ratios = [x[0] / y[0] for x, y in zip(times[m], times["dense"])]  # time per step, each pair side by side
    low, high = median_interval(ratios)
    print(f"masked/dense time per step, per round: median {statistics.median(ratios):.3f}x "
          f"(95% interval {low:.3f}-{high:.3f}x)")
    print(f"MaskEnforcer.apply() alone: {apply_ms:.3f} ms per step "
          f"({100 * apply_ms / (1000 * wall['dense']):.2f}% of a dense step)")

if __name__ == "__main__":
    main()
