"""Checks that need CUDA (run with `pytest -m gpu` on a GPU box; skipped elsewhere)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import vision_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
HERE = Path(__file__).resolve().parent


def test_resnet20_trains_in_bf16_under_accelerate_with_masks_held(tmp_path):
    from domains.vision import VisionDomain
    from tickets.enforce import MaskEnforcer
    from tickets.masks import Mask
    from tickets.typed import from_dict
    from vision_fixtures import write_dataset

    files = write_dataset(tmp_path / "cifar", channels=3, size=32, num_classes=10, n_train=256, n_test=64).data_files
    d = VisionDomain(from_dict(VisionDomain.Config, {
        "model": "resnet_20", "dataset": {"name": "parquet", "data_files": files, "augment": True},
        "batch_size": 64, "mixed_precision": "bf16",
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}}))
    model = d.build_model(seed=0)
    prunable = d.prunable(model)
    mask = Mask({n: torch.rand(p.shape, generator=torch.Generator().manual_seed(0)) < 0.2 for n, p in prunable.items()})
    with MaskEnforcer(prunable, mask):
        d.train(model, steps=20, seed=0)
    assert next(model.parameters()).is_cuda
    for n, p in prunable.items():
        assert torch.all(p.detach().cpu()[~mask[n]] == 0.0)
    assert torch.isfinite(torch.tensor(d.evaluate(model)["loss"]))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpu_processes_train_identical_masks(tmp_path):
    cfg = vision_config(**{"domain.name": "recording_vision", "pruning.levels": 2, "train.steps": 12,
                           "controls": ["random_mask"]})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(HERE / "distributed_worker.py"), str(path), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [[json.loads(x) for x in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()] for r in range(2)]
    assert ranks[0] == ranks[1]
