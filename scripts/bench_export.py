"""Inference latency of tickets exported ``--to sparse`` (torch CSR layers) against the dense model.

For LeNet-300-100, a CIFAR ResNet-20, the MiniLM encoder (with its classifier head) and the PPO
CartPole policy, each built by its domain from the shipped config, the prunable weights are pruned
at random to 90, 95 and 99% unstructured sparsity (latency depends on the count kept, not on which
weights); the dense model (masked, so the same numbers) and its CSR export are timed in
interleaved rounds in one process (the order alternates every round), at batch 1 and a large
batch, and the script prints the median milliseconds per forward, CSR/dense (above 1: CSR is
slower), and each row's theoretical cost: the parameters kept and the multiply-adds of the pruned
layers per example, dense and sparse. Outputs are checked equal (1e-5 of their scale) first.

    python scripts/bench_export.py [--threads 1] [--rounds 5] [--seconds 0.2]
                                   [--models lenet resnet20 minilm ppo] [--csv bench_export.csv]
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from tickets.config import load_experiment  # noqa: E402
from tickets.sparse_modules import to_sparse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = (0.90, 0.95, 0.99)


def vision(config: str, overrides: list[str], shape: tuple[int, ...], large: int):
    exp = load_experiment(ROOT / config, overrides)
    domain = exp.make_domain()
    model = domain.build_model(seed=0)
    return model, domain.prunable(model), (lambda b: (torch.randn(b, *shape),)), large


def nlp(large: int):
    exp = load_experiment(ROOT / "configs/nlp/minilm_sentiment.yaml")
    domain = exp.make_domain()
    model = domain.build_model(seed=0)
    vocab, length = model.config.vocab_size, exp.config.domain.max_length
    gen = torch.Generator().manual_seed(0)

    def inputs(b):
        ids = torch.randint(1000, vocab, (b, length), generator=gen)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return model, domain.prunable(model), inputs, large


def ppo(large: int):
    exp = load_experiment(ROOT / "configs/rl/ppo_cartpole.yaml")
    domain = exp.make_domain()
    policy = domain.build_model(seed=0)
    return policy, domain.prunable(policy), (lambda b: {"obs": torch.randn(b, 4), "deterministic": True}), large


MODELS = {
    "lenet": lambda: vision("configs/vision/lenet300_mnist.yaml", [], (1, 28, 28), 1024),
    "resnet20": lambda: vision("configs/vision/resnet20w8_mnist_subset.yaml",
                               ["domain.width=16"], (1, 28, 28), 128),
    "minilm": lambda: nlp(64),
    "ppo": lambda: ppo(1024),
}


def call(model: nn.Module, x):
    return model(**x) if isinstance(x, dict) else model(*x)


def first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return next(t for t in out if isinstance(t, torch.Tensor) and t.is_floating_point())  # PPO: the values


def macs(model: nn.Module, names: list[str], x) -> tuple[int, int]:
    """Multiply-adds per example of the layers owning ``names``: dense, and with their zeros skipped."""
    owners = {n.rpartition(".")[0]: n for n in names}
    count = [0, 0]
    batch = next(t for t in (x.values() if isinstance(x, dict) else x) if isinstance(t, torch.Tensor)).shape[0]
    hooks = []
    params = dict(model.named_parameters())
    for owner, name in owners.items():
        w = params[name]
        hooks.append(model.get_submodule(owner).register_forward_hook(
            lambda m, i, o, w=w: _count(m, o, w, count, batch)))
    with torch.no_grad():
        call(model, x)
    for h in hooks:
        h.remove()
    return count[0], count[1]


def _count(module, out, weight, count, batch) -> None:
    """A layer's weight is used once per output position: a Linear's tokens, a conv's pixels."""
    out_units = weight.shape[1] if type(module).__name__ == "Conv1D" else weight.shape[0]
    positions = out.numel() // batch // out_units
    count[0] += positions * weight.numel()
    count[1] += positions * int((weight != 0).sum())


def timed(model: nn.Module, x, min_seconds: float = 0.2) -> float:
    """Median-ready milliseconds per forward, over enough calls to fill ``min_seconds``."""
    with torch.no_grad():
        call(model, x)
        n, t0 = 0, time.perf_counter()
        while True:
            call(model, x)
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                return 1000 * elapsed / n


def bench(name: str, rounds: int, seconds: float) -> list[dict]:
    model, prunable, inputs, large = MODELS[name]()
    model.eval()
    total_params = sum(p.numel() for p in model.parameters())
    prunable_params = sum(p.numel() for p in prunable.values())
    rows = []
    for sparsity in SPARSITIES:
        dense = copy.deepcopy(model)
        params = dict(dense.named_parameters())
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for n in prunable:
                params[n].mul_(torch.rand(params[n].shape, generator=gen) >= sparsity)
        sparse = to_sparse(copy.deepcopy(dense), {n: None for n in prunable})
        kept = sum(int((params[n] != 0).sum()) for n in prunable)
        for batch in (1, large):
            x = inputs(batch)
            with torch.no_grad():
                a, b = first_tensor(call(dense, x)), first_tensor(call(sparse, x))
            scale = max(1.0, float(a.abs().max()))
            assert float((a - b).abs().max()) <= 1e-5 * scale, f"{name}: the CSR model computes something else"
            dense_macs, sparse_macs = macs(dense, list(prunable), x)
            times = {"dense": [], "csr": []}
            for r in range(rounds):
                order = (("dense", dense), ("csr", sparse)) if r % 2 == 0 else (("csr", sparse), ("dense", dense))
                for label, m in order:
                    times[label].append(timed(m, x, seconds))
            d, c = statistics.median(times["dense"]), statistics.median(times["csr"])
            rows.append({"model": name, "sparsity_pct": 100 * sparsity, "batch": batch, "dense_ms": d, "csr_ms": c,
                         "csr_over_dense": c / d, "params": total_params,
                         "params_kept": total_params - prunable_params + kept,
                         "pruned_layer_macs_dense": dense_macs, "pruned_layer_macs_sparse": sparse_macs})
            r = rows[-1]
            print(f"{name:9s} {100 * sparsity:4.0f}% batch {batch:5d}  dense {d:9.3f} ms  csr {c:9.3f} ms  "
                  f"csr/dense {c / d:6.2f}x  params {r['params_kept']:>10,}/{total_params:,}  "
                  f"MACs/example {sparse_macs:>12,}/{dense_macs:,}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seconds", type=float, default=0.2, help="least time per timing (repeats the forward)")
    parser.add_argument("--csv", default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} interleaved rounds, median ms/forward")
    rows = [row for name in args.models for row in bench(name, args.rounds, args.seconds)]
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
