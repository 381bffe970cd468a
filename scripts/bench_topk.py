"""Time and memory of a global exact-k magnitude mask at BERT-base size: the routine before
tickets.topk (numpy argpartition over a float64 copy of every score, copied here as the reference)
beside ``tickets.scorers.prune`` as it is now, on the same scores, one CPU thread.

Each method runs in its own subprocess, so its peak extra memory is the growth of the process's
peak resident size (``ru_maxrss``) over the call (torch allocations are invisible to tracemalloc).
The scores are |w| of BERT-base-shaped float32 weights drawn N(0, 0.02) (its 2-D matrices:
embeddings, attention, feed-forward, pooler: 109.5M weights), made in place so that no
temporary inflates the baseline. The masks are then compared: they must keep the same count and
may differ only among weights whose score equals the threshold (the old routine breaks such ties
arbitrarily; the new one keeps the earliest positions).

    python scripts/bench_topk.py              # full size (needs ~4 GB free for the reference)
    python scripts/bench_topk.py --scale 0.01 # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRACTION = 0.2  # IMP's default: prune 20% of the weights


def bert_base_shapes(scale: float) -> dict[str, tuple[int, int]]:
    shapes = {"embeddings.word": (30522, 768), "embeddings.position": (512, 768), "embeddings.token_type": (2, 768)}
    for layer in range(12):
        for m in ("query", "key", "value", "attention_output"):
            shapes[f"layer.{layer}.{m}"] = (768, 768)
        shapes[f"layer.{layer}.intermediate"] = (3072, 768)
        shapes[f"layer.{layer}.output"] = (768, 3072)
    shapes["pooler"] = (768, 768)
    return {n: (max(1, round(r * scale)), c) for n, (r, c) in shapes.items()}


def make_scores(scale: float, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in bert_base_shapes(scale).items():
        t = torch.empty(shape)
        t.normal_(0.0, 0.02, generator=g)
        out[name] = t.abs_()
    return out


# --- the routine as it was before tickets.topk (tickets/scorers.py, prune + _prune_unit) ----------

def reference_prune(scores, mask, names, fraction):
    new = {n: t.clone() for n, t in mask.items()}
    alive_scores = []
    for name in names:
        s = scores[name].detach().to("cpu", torch.float64).reshape(-1).numpy()
        if np.isnan(s).any():
            raise ValueError(f"scores for {name!r} contain NaN; cannot rank weights")
        alive_scores.append(s[new[name].reshape(-1).numpy()])
    flat = np.concatenate(alive_scores) if alive_scores else np.empty(0)
    k = int(fraction * flat.size + 0.5)
    if k <= 0:
        return new
    if k >= flat.size:
        drop = np.ones(flat.size, dtype=bool)
    else:
        drop = np.zeros(flat.size, dtype=bool)
        drop[np.argpartition(flat, k - 1)[:k]] = True
    offset = 0
    for name, s in zip(names, alive_scores):
        m = new[name].reshape(-1)
        alive_idx = torch.nonzero(m).reshape(-1)
        part = torch.from_numpy(drop[offset:offset + s.size])
        m[alive_idx[part]] = False
        offset += s.size
    return new


def new_prune(scores, mask, names, fraction):
    from tickets.masks import Mask
    from tickets.scorers import prune
    from tickets.selection import Group

    return dict(prune(scores, Mask(mask), [Group("all", fraction, tuple(names))], scope="global"))


METHODS = {"reference": reference_prune, "tickets": new_prune}


def worker(method: str, scale: float, out: Path) -> None:
    torch.set_num_threads(1)
    scores = make_scores(scale)
    mask = {n: torch.ones(s.shape, dtype=torch.bool) for n, s in scores.items()}
    if method == "tickets":
        import tickets.scorers  # noqa: F401  (imported before the baseline, as the reference's numpy is)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = METHODS[method](scores, mask, list(scores), FRACTION)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flat = torch.cat([result[n].reshape(-1) for n in scores]).numpy()
    np.save(out, np.packbits(flat))
    print(json.dumps({"seconds": seconds, "extra_bytes": (peak - before) * 1024,
                      "kept": int(flat.sum()), "total": int(flat.size)}))


def compare(scale: float, a: Path, b: Path) -> dict:
    scores = make_scores(scale)
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    n = flat.numel()
    ma = torch.from_numpy(np.unpackbits(np.load(a))[:n].astype(bool))
    mb = torch.from_numpy(np.unpackbits(np.load(b))[:n].astype(bool))
    threshold = float(flat[mb].min())
    diff = ma ^ mb
    return {"differ": int(diff.sum()), "differ_off_threshold": int((diff & (flat != threshold)).sum()),
            "tied_at_threshold": int((flat == threshold).sum()), "same_count": int(ma.sum()) == int(mb.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description="Global exact-k magnitude mask at BERT-base size: the old "
                                                 "argpartition routine beside tickets.topk (1 thread).")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of BERT-base's rows per matrix (default 1: 109.5M weights)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--worker", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--mask-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.scale, Path(args.mask_out))
        return
    shapes = bert_base_shapes(args.scale)
    total = sum(r * c for r, c in shapes.values())
    print(f"{total / 1e6:.1f}M float32 weights in {len(shapes)} matrices ({total * 4 / 2**30:.2f} GiB); "
          f"prune {FRACTION:.0%} globally; 1 thread; load average {os.getloadavg()[0]:.2f}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            path = Path(tmp) / f"{method}.npy"
            proc = subprocess.run([sys.executable, __file__, "--worker", method, "--scale", str(args.scale),
                                   "--mask-out", str(path)], capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
            results[method] = {**json.loads(proc.stdout.strip().splitlines()[-1]), "path": path}
        print(f"\n{'method':<10} {'seconds':>8} {'extra memory':>13} {'kept':>12}")
        for method, r in results.items():
            print(f"{method:<10} {r['seconds']:>8.3f} {r['extra_bytes'] / 2**30:>9.3f} GiB {r['kept']:>12}")
        print(f"(the weights themselves: {total * 4 / 2**30:.3f} GiB)")
        if len(results) == 2:
            c = compare(args.scale, results["reference"]["path"], results["tickets"]["path"])
            ok = c["same_count"] and c["differ_off_threshold"] == 0
            print(f"\nmasks: {'same' if ok else 'DIFFERENT'} count; {c['differ']} positions differ, all among the "
                  f"{c['tied_at_threshold']} weights tied at the threshold" if ok else
                  f"\nmasks DIFFER beyond ties: {c}")
            if not ok:
                sys.exit(1)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
