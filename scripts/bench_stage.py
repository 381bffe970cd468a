"""The framework's stage against a bare PyTorch loop: same model, data, batch order and optimizer.

A stage is what ``tickets run`` trains per level and condition: ``Domain.train`` inside the core's
``MaskEnforcer`` (the dense stage's all-ones mask, or a ticket's mask with ``--density``). The bare
loop is what a researcher would write by hand over the same in-memory tensors: index the batch the
stage's sampler gives for each step, forward, backward, the same optimizer's step, the mask
multiply where there is one, and the same validation passes. Both start from the same weights;
rounds alternate in one process, and the script prints the median ms/step of each, their ratio,
a per-part breakdown of the costs the stage adds around the bare loop's work, and whether the two
ended with bit-identical weights.

    python scripts/bench_stage.py                       # the main job's stage, 1 thread
    python scripts/bench_stage.py --threads 2 --rounds 5 --steps 500
    python scripts/bench_stage.py --config configs/vision/conv2_mnist_subset.yaml --density 0.2
    python scripts/bench_stage.py --set domain.optimizer.implementation=fused
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_stats import median_interval  # noqa: E402
from domains.supervised import StepBatchSampler  # noqa: E402
from tickets.config import load_experiment  # noqa: E402
from tickets.enforce import MaskEnforcer  # noqa: E402
from tickets.masks import Mask  # noqa: E402
from tickets.optim import set_lr  # noqa: E402


def build_mask(prunable: dict[str, torch.nn.Parameter], density: float) -> Mask:
    if density >= 1.0:
        return Mask.ones_like({n: p.detach() for n, p in prunable.items()})
    g = torch.Generator().manual_seed(0)
    return Mask({n: torch.rand(p.shape, generator=g) < density for n, p in prunable.items()})


def stage(domain, model, mask, *, steps, seed, eval_every) -> float:
    t0 = time.perf_counter()
    with MaskEnforcer(domain.prunable(model), mask):
        domain.train(model, steps=steps, start_step=0, seed=seed, eval_every=eval_every)
    return time.perf_counter() - t0


def bare(domain, model, mask, *, steps, seed, eval_every) -> float:
    """The same training written by hand: no framework code between the tensors and torch."""
    cfg = domain.config
    table, val = domain.data.train, domain.data.validation
    columns = table.columns
    opt = cfg.optimizer.build(model.parameters())
    base = [g["lr"] for g in opt.param_groups]
    prunable = domain.prunable(model)
    masked = [(p, mask[n].to(p.dtype)) for n, p in prunable.items() if not bool(mask[n].all())]
    with torch.no_grad():
        for p, m in masked:
            p.mul_(m)
    sampler = StepBatchSampler(len(table), cfg.batch_size, seed=seed, start_step=0, steps=steps)
    t0 = time.perf_counter()
    model.train()
    for step, idx in enumerate(sampler, start=1):
        index = torch.as_tensor(idx)
        batch = {k: v[index] for k, v in columns.items()}
        set_lr(opt, base, cfg.schedule.factor(step - 1, steps))
        opt.zero_grad(set_to_none=True)
        loss, _ = domain.loss(model, batch, train=True)
        loss.backward()
        opt.step()
        if masked:
            with torch.no_grad():
                torch._foreach_mul_([p for p, _ in masked], [m for _, m in masked])
        if step == steps or (eval_every and step % eval_every == 0):
            model.eval()
            with torch.no_grad():
                for start in range(0, len(val), cfg.eval_batch_size):
                    vb = {k: v[start:start + cfg.eval_batch_size] for k, v in val.columns.items()}
                    vloss, logits = domain.loss(model, vb, train=False)
                    float(vloss), int((logits.argmax(-1) == vb["labels"]).sum())
            model.train()
    return time.perf_counter() - t0


def parts(domain, model, *, reps: int = 2000) -> dict[str, float]:
    """Microseconds per call of what the stage does per step beyond the bare loop's work."""
    from accelerate import Accelerator  # noqa: F401  (the stage's own import, paid once)

    out: dict[str, float] = {}

    def timed(name, fn, n=reps):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out[name] = (time.perf_counter() - t0) / n * 1e6

    timed("torch.manual_seed (per-step reseed)", lambda: torch.manual_seed(12345))
    timed("torch.default_generator.manual_seed", lambda: torch.default_generator.manual_seed(12345))
    table = domain.data.train
    idx = list(range(domain.config.batch_size))
    timed("TensorTable.__getitems__ (one batch)", lambda: table.__getitems__(idx))
    opt = domain.config.optimizer.build(model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    timed(f"{type(opt).__name__}.step (bare)", opt.step, n=reps // 4)
    mask = build_mask(domain.prunable(model), 0.2)
    enforcer = MaskEnforcer(domain.prunable(model), mask)
    timed("MaskEnforcer.apply (80% pruned)", enforcer.apply, n=reps // 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/vision/lenet300_mnist.yaml"))
    parser.add_argument("--steps", type=int, default=300, help="steps per timed run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds of (stage, bare)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--density", type=float, default=1.0, help="1.0: the dense stage; below: a ticket's")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, as after `tickets run CONFIG`")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    exp = load_experiment(args.config, args.set)
    domain, seed = exp.make_domain(), exp.config.seed
    init = domain.build_model(seed=seed).state_dict()
    mask = build_mask(domain.prunable(domain.build_model(seed=seed)), args.density)

    def fresh():
        model = domain.build_model(seed=seed)
        model.load_state_dict(init)
        return model

    times: dict[str, list[float]] = {"stage": [], "bare": []}
    finals = {}
    for run in (stage, bare):  # untimed: first-call costs (the accelerator, lazy imports, allocator)
        run(domain, fresh(), mask, steps=min(args.steps, 50), seed=seed, eval_every=args.eval_every)
    for r in range(args.rounds):
        for name, run in (("stage", stage), ("bare", bare)) if r % 2 == 0 else (("bare", bare), ("stage", stage)):
            model = fresh()
            times[name].append(run(domain, model, mask, steps=args.steps, seed=seed, eval_every=args.eval_every)
                               / args.steps * 1e3)
            finals[name] = {k: v.clone() for k, v in model.state_dict().items()}
    same = all(torch.equal(finals["stage"][k], finals["bare"][k]) for k in finals["bare"])
    s, b = statistics.median(times["stage"]), statistics.median(times["bare"])
    print(f"{exp.config.name}: {args.steps} steps x {args.rounds} rounds, batch {domain.config.batch_size}, "
          f"{domain.config.optimizer.name} ({domain.config.optimizer.implementation}), density {args.density:g}, "
          f"validation every {args.eval_every}, "
          f"{args.threads} thread(s)")
    print(f"{'loop':<8}{'ms/step':>9}{'min..max':>16}")
    for name, ts in times.items():
        print(f"{name:<8}{statistics.median(ts):>9.3f}{min(ts):>8.3f}..{max(ts):<7.3f}")
    ratios = [x / y for x, y in zip(times["stage"], times["bare"])]  # drift cancels in a pair
    low, high = median_interval(ratios)
    print(f"stage/bare: {s / b:.3f}x (median of the per-round ratios {statistics.median(ratios):.3f}x, "
          f"95% interval {low:.3f}-{high:.3f}x)   final weights bit-identical: {'yes' if same else 'NO'}")
    print("\nper call, microseconds (what the stage adds around the bare work):")
    for name, us in parts(domain, fresh()).items():
        print(f"  {name:<42}{us:>9.1f}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
