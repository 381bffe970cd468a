"""Inference latency of exported tickets against the dense model.

``--to sparse``: for LeNet-300-100, a ResNet-20, the MiniLM encoder (with its classifier head) and
the PPO CartPole policy, each built by its domain from a shipped config, the prunable weights are
pruned at random to 90, 95 and 99% unstructured sparsity (latency depends on the count kept, not
on which weights) and exported as torch CSR layers. ``--to dense-small``: for each of them, 50, 75
and 90% of every unit group (neurons; channels, a residual stream's together; MiniLM's attention
heads and feed-forward neurons of every layer; the policy's and value network's hidden units)
removed by L1 norm, exported as the smaller dense model. Each export and the dense model are timed
in interleaved rounds in one process (the order alternates every round), at batch 1 and a large
batch; the script prints the median milliseconds per forward, export/dense (above 1: slower than
dense), and each row's theoretical cost: the parameters kept and the multiply-adds per example of
the Linear and conv layers. Outputs are checked equal to the masked model's (1e-5 of their scale).

    python scripts/bench_export.py [--to sparse dense-small] [--threads 1] [--rounds 5] [--seconds 0.2]
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
from tickets.export import output_tensor  # noqa: E402
from tickets.sparse_modules import to_sparse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = (0.90, 0.95, 0.99)  # --to sparse: unstructured sparsity of the prunable weights
UNITS_REMOVED = (0.50, 0.75, 0.90)  # --to dense-small: share of every layer's units (neurons, channels) removed


def vision(config: str, overrides: list[str], shape: tuple[int, ...], large: int):
    exp = load_experiment(ROOT / config, overrides)
    domain = exp.make_domain()
    model = domain.build_model(seed=0)
    model._bench_domain = domain
    return model, domain.prunable(model), (lambda b: (torch.randn(b, *shape),)), large


def nlp(large: int):
    exp = load_experiment(ROOT / "configs/nlp/minilm_sentiment.yaml")
    domain = exp.make_domain()
    model = domain.build_model(seed=0)
    vocab, length = model.config.vocab_size, domain.config.max_length
    gen = torch.Generator().manual_seed(0)

    def inputs(b):
        ids = torch.randint(1000, vocab, (b, length), generator=gen)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    model._bench_domain = domain
    return model, domain.prunable(model), inputs, large


def ppo(large: int):
    exp = load_experiment(ROOT / "configs/rl/ppo_cartpole.yaml")
    domain = exp.make_domain()
    policy = domain.build_model(seed=0)
    policy._bench_domain = domain
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


def macs(model: nn.Module, x, skip_zeros: bool) -> int:
    """Multiply-adds per example of the model's Linear, Conv1D and Conv2d layers (``skip_zeros``:
    only the nonzero weights count: the theoretical cost of the sparse model)."""
    count = [0]
    batch = next(t for t in (x.values() if isinstance(x, dict) else x) if isinstance(t, torch.Tensor)).shape[0]

    def hook(module, _inp, out):
        w = module.weight
        out_units = w.shape[1] if type(module).__name__ == "Conv1D" else w.shape[0]
        positions = output_tensor(out).numel() // batch // out_units
        count[0] += positions * (int((w != 0).sum()) if skip_zeros else w.numel())
    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Linear, nn.Conv2d)) or type(m).__name__ == "Conv1D"]
    with torch.no_grad():
        call(model, x)
    for h in hooks:
        h.remove()
    return count[0]


def timed(model: nn.Module, x, min_seconds: float = 0.2) -> float:
    """Milliseconds per forward, over enough calls to fill ``min_seconds``."""
    with torch.no_grad():
        call(model, x)
        n, t0 = 0, time.perf_counter()
        while True:
            call(model, x)
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                return 1000 * elapsed / n


def compare(name: str, fmt: str, removed_pct: float, dense: nn.Module, exported: nn.Module, reference: nn.Module,
            inputs, large: int, rounds: int, seconds: float, kept: int) -> list[dict]:
    """Rows for batch 1 and ``large``: ``dense`` (the unpruned model) against ``exported``, timed in
    interleaved rounds; ``reference`` (the masked dense model) checks the export's outputs."""
    rows = []
    for batch in (1, large):
        x = inputs(batch)
        with torch.no_grad():
            a, b = output_tensor(call(reference, x)), output_tensor(call(exported, x))
        scale = max(1.0, float(a.abs().max()))
        assert float((a - b).abs().max()) <= 1e-5 * scale, f"{name}: the exported model computes something else"
        times = {"dense": [], "export": []}
        for r in range(rounds):
            order = (("dense", dense), ("export", exported)) if r % 2 == 0 else (("export", exported), ("dense", dense))
            for label, m in order:
                times[label].append(timed(m, x, seconds))
        d, e = statistics.median(times["dense"]), statistics.median(times["export"])
        kept_macs = macs(reference, x, skip_zeros=True) if fmt == "csr" else macs(exported, x, skip_zeros=False)
        params = sum(p.numel() for p in dense.parameters())
        rows.append({"model": name, "format": fmt, "removed_pct": removed_pct, "batch": batch, "dense_ms": d,
                     "export_ms": e, "export_over_dense": e / d, "params": params, "params_kept": kept,
                     "macs_dense": macs(dense, x, skip_zeros=False), "macs_kept": kept_macs})
        r = rows[-1]
        print(f"{name:9s} {fmt:11s} {removed_pct:4.0f}% removed  batch {batch:5d}  dense {d:9.3f} ms  "
              f"{fmt} {e:9.3f} ms  {fmt}/dense {e / d:6.2f}x  params {kept:>10,}/{params:,}  "
              f"MACs/example {r['macs_kept']:>12,}/{r['macs_dense']:,}", flush=True)
    return rows


def csr_rows(name: str, rounds: int, seconds: float) -> list[dict]:
    model, prunable, inputs, large = MODELS[name]()
    model.eval()
    rows = []
    for sparsity in SPARSITIES:
        masked = copy.deepcopy(model)
        params = dict(masked.named_parameters())
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for n in prunable:
                params[n].mul_(torch.rand(params[n].shape, generator=gen) >= sparsity)
        sparse = to_sparse(copy.deepcopy(masked), {n: None for n in prunable})
        pruned = sum(int((params[n] == 0).sum()) for n in prunable)
        kept = sum(p.numel() for p in model.parameters()) - pruned
        rows += compare(name, "csr", 100 * sparsity, model, sparse, masked, inputs, large, rounds, seconds, kept)
    return rows


def small_rows(name: str, rounds: int, seconds: float) -> list[dict]:
    """Structured: the lowest-L1 ``fraction`` of every unit group removed (one unit always kept)."""
    from tickets.export_small import shrink
    from tickets.structured import units_of

    model, prunable, inputs, large = MODELS[name]()
    domain = model._bench_domain
    model.eval()
    graph = units_of(domain, model, prunable, seed=0)  # MiniLM: heads and neurons; the others traced
    params = dict(model.named_parameters())
    shapes = {n: tuple(params[n].shape) for n in {**prunable, **graph.coupled}}
    rows = []
    for fraction in UNITS_REMOVED:
        dead = {}
        for g in graph.groups:
            score = graph.unit_scores(params, g, "l1")
            k = min(int(fraction * g.size + 0.5), g.size - 1)
            dead[g.root] = sorted(range(g.size), key=lambda i: (float(score[i]), -i))[:k]
        mask = graph.mask_without(dead, shapes)
        masked = copy.deepcopy(model)
        masked_params = dict(masked.named_parameters())
        with torch.no_grad():
            for n, m in mask.items():
                masked_params[n].mul_(m)
        small, _ = shrink(domain, masked, mask, {n: masked_params[n] for n in shapes}, seed=0)
        small.eval()
        kept = sum(p.numel() for p in small.parameters())
        rows += compare(name, "dense-small", 100 * fraction, model, small, masked, inputs, large, rounds, seconds, kept)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--to", nargs="*", default=["sparse", "dense-small"], choices=["sparse", "dense-small"])
    parser.add_argument("--seconds", type=float, default=0.2, help="least time per timing (repeats the forward)")
    parser.add_argument("--csv", default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} interleaved rounds, median ms/forward")
    rows = []
    for name in args.models:
        if "sparse" in args.to:
            rows += csr_rows(name, args.rounds, args.seconds)
        if "dense-small" in args.to:
            rows += small_rows(name, args.rounds, args.seconds)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
