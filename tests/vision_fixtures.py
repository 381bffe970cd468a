"""Tiny image datasets in the schema of the hub ones (an Image column and a ClassLabel column,
written to parquet), and a stand-in for ``datasets.load_dataset`` that serves them under hub
paths, so that tests go through the same code path as the real hub datasets, offline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image


@dataclass
class TinySplit:
    images: np.ndarray  # uint8 N x C x H x W, as written
    labels: np.ndarray  # int64


@dataclass
class TinyDataset:
    data_files: dict[str, str]
    splits: dict[str, TinySplit]
    num_classes: int


def unique_images(n: int, *, channels: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` random uint8 images (N x C x H x W), pairwise different."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256  # with the rest random, collisions are (very) unlikely
    return images


def to_pil(image: np.ndarray) -> PIL.Image.Image:
    """C x H x W uint8 -> a PIL image, mode L (C = 1) or RGB (C = 3)."""
    return PIL.Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))


def write_split(path: Path, images: np.ndarray, labels: np.ndarray, *, image_column: str = "img",
                label_column: str = "label", class_names: list[str] | None = None, pil_images=None) -> None:
    from datasets import ClassLabel, Dataset, Features, Image, Value

    label_feature = ClassLabel(names=class_names) if class_names is not None else Value("int64")
    pil = pil_images if pil_images is not None else [to_pil(im) for im in images]
    ds = Dataset.from_dict({image_column: pil, label_column: [int(v) for v in labels]},
                           features=Features({image_column: Image(), label_column: label_feature}))
    ds.to_parquet(str(path))


def write_dataset(root: Path, *, image_column: str = "img", label_column: str = "label", channels: int = 3,
                  size: int = 8, n_train: int = 40, n_test: int | None = 10, num_classes: int = 4,
                  used_classes: int | None = None, class_label: bool = True, seed: int = 0) -> TinyDataset:
    """Train (and test, unless ``n_test`` is None) parquet files under ``root``. Labels use the
    first ``used_classes`` (default all) of ``num_classes`` class names."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    sizes = {"train": n_train} if n_test is None else {"train": n_train, "test": n_test}
    names = [f"class_{i}" for i in range(num_classes)] if class_label else None
    images = unique_images(sum(sizes.values()), channels=channels, size=size, seed=seed)
    splits, files, start = {}, {}, 0
    for split, n in sizes.items():
        split_images = images[start:start + n]
        start += n
        labels = rng.integers(0, used_classes or num_classes, n).astype(np.int64)
        files[split] = str(root / f"{split}.parquet")
        write_split(Path(files[split]), split_images, labels, image_column=image_column,
                    label_column=label_column, class_names=names)
        splits[split] = TinySplit(split_images, labels)
    return TinyDataset(files, splits, num_classes)


LOCAL_BUILDERS = ("csv", "json", "parquet", "text", "imagefolder")


@dataclass
class FakeHub:
    """Serves parquet files under hub paths; records every call ``(path, name, split, data_files,
    revision)``. Unknown splits raise the ValueError the real ``load_dataset`` raises."""

    repos: dict[tuple[str, str | None], dict[str, str]] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    real_load_dataset: Callable | None = None  # set by install_fake_hub

    def add(self, path: str, data_files: dict[str, str], name: str | None = None) -> None:
        self.repos[(path, name)] = data_files

    def __call__(self, path, name=None, *, data_files=None, revision=None, split=None, **kwargs):
        self.calls.append((path, name, split, data_files, revision))
        if path in LOCAL_BUILDERS:  # the user's own files are not on any hub
            return self.real_load_dataset(path, name, data_files=data_files, split=split, **kwargs)
        if (path, name) not in self.repos:
            raise FileNotFoundError(f"Dataset {path!r} (config {name!r}) is not on the fake hub")
        return self.real_load_dataset("parquet", data_files=self.repos[(path, name)], split=split)


def install_fake_hub(monkeypatch, hub: FakeHub | None = None) -> FakeHub:
    """Replace ``datasets.load_dataset`` with ``hub`` (a new one by default) for the test."""
    import datasets

    hub = hub if hub is not None else FakeHub()
    hub.real_load_dataset = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", hub)
    return hub


def crop_candidates(image: np.ndarray, padding: int = 4) -> dict[tuple[int, int, bool], np.ndarray]:
    """Every (row offset, column offset, flipped) crop of the zero-padded ``image`` (C x H x W),
    the size of the image."""
    _, h, w = image.shape
    padded = np.pad(image.astype(np.float64), ((0, 0), (padding, padding), (padding, padding)))
    out = {}
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            out[(dy, dx, False)] = crop
            out[(dy, dx, True)] = crop[:, :, ::-1]
    return out
