"""Per-step cost of keeping a mask: dense vs masked (tickets.MaskEnforcer) vs torch.nn.utils.prune.

LeNet-300-100, batch 60, Adam (the main job's optimizer, built from its config), 80% of the
weights pruned, one CPU thread. Dense and masked are the same model and optimizer with the
``MaskEnforcer`` detached or attached, so they differ by the mask alone (two model instances differ
by memory placement, which on this machine moves a step by more than the mask costs);
``torch.nn.utils.prune`` has a model of its own. The variants are timed in short rounds in one
process, interleaved in an order that reverses every round, and the script prints the median time
per step, the ratio to dense, the median of the per-round masked/dense ratios (each pair side by
side, so the machine's drift cancels) with a bootstrap 95% interval, the same against a loop that
multiplies by the mask by hand after each step (the reference: any masked loop pays that
multiply, so this ratio is the enforcer's own cost), and what the multiply costs inside the loop
and on its own.

    python scripts/bench_masking.py [--steps 10] [--rounds 400] [--threads 1] [--implementation fused]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torch.nn.utils.prune as torch_prune

from bench_stats import median_interval
from domains.vision.models import LeNet300100
from tickets import MaskEnforcer, Mask
from tickets.optim import OptimizerConfig
from tickets.optim_config import IMPLEMENTATIONS
from tickets.selection import default_prunable


def make_mask(model: torch.nn.Module, density: float) -> Mask:
    g = torch.Generator().manual_seed(0)
    return Mask({n: torch.rand(p.shape, generator=g) < density for n, p in default_prunable(model).items()})


def timed_steps(model, opt, batches, after_step=None) -> float:
    t0 = time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()
    return (time.perf_counter() - t0) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--implementation", default="default", choices=IMPLEMENTATIONS,
                        help="the optimizer's (optimizer.implementation)")
    parser.add_argument("--flush-denormal", action="store_true",
                        help="flush subnormal floats to zero (torch.set_flush_denormal) for the whole run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        raise SystemExit("--flush-denormal: not supported on this CPU")
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(60, 784, generator=g), torch.randint(0, 10, (60,), generator=g)) for _ in range(args.steps)]

    torch.manual_seed(0)
    model = LeNet300100()
    adam = OptimizerConfig(name="adam", lr=1.2e-3, implementation=args.implementation)
    opt = adam.build(model.parameters())
    mask = make_mask(model, args.density)
    enforcer = MaskEnforcer(default_prunable(model), mask)

    torch.manual_seed(0)
    ref = LeNet300100()
    for name, module in [(n, m) for n, m in ref.named_modules() if isinstance(m, torch.nn.Linear)]:
        torch_prune.custom_from_mask(module, "weight", mask[f"{name}.weight"])
    ref_opt = adam.build(ref.parameters())

    def dense_round(steps):
        return timed_steps(model, opt, steps)

    def masked_round(steps):
        enforcer.attach()
        enforcer.apply()  # the dense rounds trained the pruned weights back: zero them (untimed)
        try:
            return timed_steps(model, opt, steps)
        finally:
            enforcer.detach()

    weights = list(default_prunable(model).values())
    floats = [mask[n].float() for n in default_prunable(model)]

    data = [w.data for w in weights]
    in_loop: list[float] = []

    def multiply():
        t0 = time.perf_counter()
        torch._foreach_mul_(data, floats)
        in_loop.append(time.perf_counter() - t0)

    def by_hand_round(steps):  # the same multiply written into the loop: what any masked loop pays
        multiply()
        return timed_steps(model, opt, steps, after_step=multiply)

    variants = {"dense": dense_round, "tickets MaskEnforcer": masked_round, "multiply by hand": by_hand_round,
                "torch.nn.utils.prune": lambda steps: timed_steps(ref, ref_opt, steps)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for run in variants.values():  # warm-up
        run(batches[:20])
    in_loop.clear()
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            times[name].append(variants[name](batches))

    base = statistics.median(times["dense"])
    print(f"LeNet-300-100, batch 60, Adam ({args.implementation}), {100 * (1 - args.density):.0f}% pruned, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps"
          + (", subnormals flushed" if args.flush_denormal else ""))
    print(f"{'variant':<22} {'ms/step':>8} {'vs dense':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<22} {1000 * med:>8.3f} {med / base:>8.3f}x")
    ratios = [x / y for x, y in zip(times["tickets MaskEnforcer"], times["dense"])]
    low, high = median_interval(ratios)
    print(f"masked/dense per round (side by side): median {statistics.median(ratios):.3f}x "
          f"(95% interval {low:.3f}-{high:.3f}x)")
    ours = [x / y for x, y in zip(times["tickets MaskEnforcer"], times["multiply by hand"])]
    low, high = median_interval(ours)
    print(f"MaskEnforcer / multiply by hand per round: median {statistics.median(ours):.3f}x "
          f"(95% interval {low:.3f}-{high:.3f}x; the enforcer's own cost)")
    loop_ms = statistics.median(in_loop) * 1e3
    print(f"the multiply inside the loop: {loop_ms:.3f} ms per step "
          f"({100 * loop_ms / (1000 * base):.1f}% of a dense step)")
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        enforcer.apply()
    apply_ms = (time.perf_counter() - t0) / reps * 1e3
    share = 100 * apply_ms / (1000 * base)
    print(f"MaskEnforcer.apply() alone: {apply_ms:.3f} ms per step ({share:.1f}% of a dense step)")
    with enforcer:
        timed_steps(model, opt, batches[:5])
        for p, m in zip(default_prunable(model).values(), mask.values()):
            assert torch.all(p.detach()[~m] == 0)


if __name__ == "__main__":
    main()
