"""Two processes (gloo on the CPU; nccl where GPUs exist): the same masks and weights on both,
and one set of files written by the main process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import vision_config

HERE = Path(__file__).resolve().parent


NLP = {"name": "tiny_gpt2_lm", "seed": 0, "train": {"steps": 6}, "pruning": {"levels": 2, "fraction": 0.3},
       "domain": {"name": "recording_nlp", "task": "causal_lm", "tokenizer": "shipped", "batch_size": 8,
                  "max_length": 16, "model": {"architecture": "gpt2", "hidden_size": 16, "num_hidden_layers": 1,
                                              "num_attention_heads": 2, "intermediate_size": 32}},
       "controls": ["random_mask"]}


@pytest.mark.parametrize("nproc, domain", [(2, "vision"), (2, "nlp")])
def test_two_processes_train_identical_masks(tmp_path, nproc, domain):
    cfg = NLP if domain == "nlp" else vision_config(**{"domain.name": "recording_vision", "pruning.levels": 2,
                                                       "train.steps": 12, "controls": ["random_mask"]})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(HERE / "distributed_worker.py"), str(path), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [[json.loads(line) for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()]
               for r in range(nproc)]
    assert len(records[0]) == 1 + 2 * 2  # dense + (ticket, random_mask) x 2 levels
    assert records[0] == records[1]  # same surviving weights, same values, on both processes
    sparsity = [sum(r["nonzero"] for n, r in rec.items() if n.endswith("weight")) for rec in records[0]]
    assert sparsity[0] > sparsity[1] > sparsity[3]
    run_dir = next((tmp_path / "runs").iterdir())
    assert len(list(run_dir.glob("level_*/*.result.json"))) == 5
    assert not list(run_dir.rglob("*.tmp"))
