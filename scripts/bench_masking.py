"""Per-step cost of keeping a mask: dense vs masked (tickets.MaskEnforcer) vs torch.nn.utils.prune.

LeNet-300-100, batch 60, Adam, 80% of the weights pruned, one CPU thread. The three variants are
timed in interleaved rounds in one process, and the script prints the median time per step and
the ratio to dense.

    python scripts/bench_masking.py [--steps 200] [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torch.nn.utils.prune as torch_prune

from domains.vision.models import LeNet300100
from tickets import MaskEnforcer, Mask
from tickets.selection import default_prunable


def make_mask(model: torch.nn.Module, density: float) -> Mask:
    g = torch.Generator().manual_seed(0)
    return Mask({n: torch.rand(p.shape, generator=g) < density for n, p in default_prunable(model).items()})


def timed_steps(model, opt, batches) -> float:
    t0 = time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--density", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(60, 784, generator=g), torch.randint(0, 10, (60,), generator=g)) for _ in range(args.steps)]

    variants = {}
    torch.manual_seed(0)
    dense = LeNet300100()
    variants["dense"] = (dense, torch.optim.Adam(dense.parameters(), lr=1.2e-3))

    torch.manual_seed(0)
    ours = LeNet300100()
    mask = make_mask(ours, args.density)
    MaskEnforcer(default_prunable(ours), mask).attach()
    variants["tickets MaskEnforcer"] = (ours, torch.optim.Adam(ours.parameters(), lr=1.2e-3))

    torch.manual_seed(0)
    ref = LeNet300100()
    for name, module in [(n, m) for n, m in ref.named_modules() if isinstance(m, torch.nn.Linear)]:
        torch_prune.custom_from_mask(module, "weight", mask[f"{name}.weight"])
    variants["torch.nn.utils.prune"] = (ref, torch.optim.Adam(ref.parameters(), lr=1.2e-3))

    times: dict[str, list[float]] = {k: [] for k in variants}
    for model, opt in variants.values():  # warm-up
        timed_steps(model, opt, batches[:20])
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            times[name].append(timed_steps(*variants[name], batches))

    base = statistics.median(times["dense"])
    print(f"LeNet-300-100, batch 60, Adam, {100 * (1 - args.density):.0f}% pruned, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps")
    print(f"{'variant':<22} {'ms/step':>8} {'vs dense':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<22} {1000 * med:>8.3f} {med / base:>8.3f}x")
    for p, m in zip(default_prunable(ours).values(), mask.values()):
        assert torch.all(p.detach()[~m] == 0)


if __name__ == "__main__":
    main()
