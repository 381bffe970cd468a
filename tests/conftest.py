import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TICKETS_PROGRESS", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


class TinyMLP(torch.nn.Module):
    def __init__(self, sizes=(12, 16, 8, 3)):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


@pytest.fixture
def tiny_mlp():
    torch.manual_seed(0)
    return TinyMLP()


def vision_config(**overrides):
    """A tiny IMP experiment on scikit-learn digits (seconds per run)."""
    cfg = {
        "name": "tiny",
        "seed": 0,
        "domain": {"name": "vision", "dataset": {"name": "digits"}, "batch_size": 32,
                   "optimizer": {"name": "adam", "lr": 0.002}},
        "train": {"steps": 30, "eval_every": 10},
        "pruning": {"levels": 3, "fraction": 0.2, "groups": [{"pattern": "output.weight", "fraction": 0.1}]},
        "controls": ["reinit", "random_mask", "shuffled_mask"],
    }
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg
