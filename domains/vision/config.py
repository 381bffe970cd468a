"""The vision domain's settings (model and dataset), checked without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from domains.loop_config import LoopConfig
from tickets.errors import ConfigError, did_you_mean
from tickets.optim_config import OptimizerConfig

# The model names of domains.vision.models.MODELS and their default channel width (None: the model
# takes no width); the models package builds its table from this one.
MODEL_WIDTHS: dict[str, int | None] = {
    "lenet_300_100": None,
    "lenet_5": None,
    **{f"conv_{d}": 64 for d in (2, 4, 6)},
    **{f"resnet_{d}": 16 for d in (20, 32, 56)},
    "resnet_18": 64,
    **{f"vgg_{d}": 64 for d in (11, 16, 19)},
}


@dataclass(frozen=True)
class KnownDataset:
    path: str
    config_name: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    augment: bool = False  # the standard augmentation is on by default
    flip: bool = True  # horizontal flips belong to the augmentation (not for digits and characters)


KNOWN: dict[str, KnownDataset] = {
    "mnist": KnownDataset("ylecun/mnist", flip=False),
    "fashion_mnist": KnownDataset("zalando-datasets/fashion_mnist"),
    "kmnist": KnownDataset("tanganke/kmnist", flip=False),  # columns image, label (its dataset card)
    "cifar10": KnownDataset("uoft-cs/cifar10", image_column="img", augment=True),
    "cifar100": KnownDataset("uoft-cs/cifar100", image_column="img", label_column="fine_label", augment=True),
    "svhn": KnownDataset("ufldl-stanford/svhn", "cropped_digits", augment=True, flip=False),
}
LOCAL = ("mnist_subset", "digits")  # offline, no test split: flips never belong to their augmentation
BUILDERS = ("parquet", "imagefolder", "csv", "json", "arrow", "webdataset")  # need data_files


@dataclass
class VariantConfig:
    """A transformed copy of the dataset, made once at load time for every split (applied in
    the order size, channels, rotate, permute_seed, invert; see domains/vision/variants.py)."""
    size: int | None = None  # resize to size x size (bilinear, antialiased when shrinking, rounded)
    channels: int | None = None  # 1: grayscale (channel mean, rounded); 3: grey replicated to RGB
    rotate: int = 0  # degrees counter-clockwise: 0, 90, 180 or 270 (exact, torch.rot90)
    permute_seed: int | None = None  # a fixed permutation of the pixel positions drawn from this seed
    invert: bool = False  # 255 - x

    def __post_init__(self):
        def integer(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        # one spelling per rotation (no -90 or 360), so the same images have one experiment hash
        if not integer(self.rotate) or self.rotate not in (0, 90, 180, 270):
            raise ConfigError(f"rotate: degrees counter-clockwise, one of 0, 90, 180, 270, got {self.rotate!r}")
        if self.size is not None and (not integer(self.size) or not 2 <= self.size <= 512):
            raise ConfigError(f"size: the side in pixels, from 2 to 512 (or null), got {self.size!r}")
        if self.channels is not None and (not integer(self.channels) or self.channels not in (1, 3)):
            raise ConfigError(f"channels: 1 (grayscale) or 3 (RGB) or null, got {self.channels!r}")
        if self.permute_seed is not None and (not integer(self.permute_seed) or self.permute_seed < 0):
            raise ConfigError(f"permute_seed: a non-negative integer or null, got {self.permute_seed!r}")
        if not isinstance(self.invert, bool):
            raise ConfigError(f"invert: expected true or false, got {self.invert!r}")

    def is_identity(self) -> bool:
        return self == VariantConfig()


@dataclass
class VisionDataConfig:
    name: str = "mnist_subset"
    data_files: dict[str, str] | None = None  # for builders: {"train": ..., "test": ...}
    config_name: str | None = None  # load_dataset's second argument (svhn: "cropped_digits")
    revision: str | None = None
    image_column: str | None = None  # None: the known dataset's column, else "image"
    label_column: str | None = None  # None: the known dataset's column, else "label"
    train_split: str | None = None  # None: "train"
    test_split: str | None = None  # None: "test"; where the source has no test split, one is carved
    validation: float = 0.1  # fraction of the training split held out for validation
    test_fraction: float = 0.2  # fraction of the training split carved for test where there is no test split
    augment: bool | None = None  # None: on for cifar10/100 (crop + flip) and svhn (crop), off otherwise
    max_train: int | None = None  # the first N training examples (after the fixed shuffle)
    split_seed: int = 0  # the fixed shuffle for carving validation/test
    variant: VariantConfig = field(default_factory=VariantConfig)  # rotated, inverted, permuted, resized, ...

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"name: expected a dataset name, got {self.name!r}")
        for key in ("config_name", "revision", "image_column", "label_column", "train_split", "test_split"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{key}: expected a non-empty string or null, got {value!r}")
        for key in ("validation", "test_fraction"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(f"{key}: must be in (0, 1), got {value!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ConfigError(f"augment: expected true, false or null, got {self.augment!r}")
        if self.max_train is not None and (isinstance(self.max_train, bool) or not isinstance(self.max_train, int)
                                           or self.max_train < 1):
            raise ConfigError(f"max_train: must be a positive integer or null, got {self.max_train!r}")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) or self.split_seed < 0:
            raise ConfigError(f"split_seed: must be a non-negative integer, got {self.split_seed!r}")
        if not isinstance(self.variant, VariantConfig):
            raise ConfigError(f"variant: expected a mapping of variant settings, got {self.variant!r}")
        if self.data_files is not None:
            if not isinstance(self.data_files, dict) or not self.data_files:
                raise ConfigError(f"data_files: expected a mapping of split to file(s), e.g. "
                                  f"{{train: train.parquet, test: test.parquet}}, got {self.data_files!r}")
            for split, files in self.data_files.items():
                if not isinstance(files, str) or not files:
                    raise ConfigError(f"data_files: {split}: expected a path or glob, got {files!r}")
        if not _known_source(self.name):
            close = did_you_mean(self.name, [*LOCAL, *KNOWN, *BUILDERS])
            raise ConfigError(f"name: unknown dataset {self.name!r}{close}; built in: {', '.join(LOCAL)}; "
                              f"from the Hugging Face hub: {', '.join(KNOWN)}; "
                              f"your own files: one of the builders {', '.join(BUILDERS)} with data_files, or a "
                              "local dataset directory; any other hub dataset by its owner/name path")
        if self.name in LOCAL:
            for key in ("data_files", "config_name", "revision", "image_column", "label_column",
                        "train_split", "test_split"):
                if getattr(self, key) is not None:
                    raise ConfigError(f"{key}: not used by the {self.name} dataset (it is built in); "
                                      f"leave it out or null")
            if self.validation + self.test_fraction >= 1:
                raise ConfigError(f"validation: validation + test_fraction must be below 1 (both are fractions "
                                  f"of the {self.name} images), got {self.validation} + {self.test_fraction}")
        elif self.name in BUILDERS and self.data_files is None:
            raise ConfigError(f"data_files: the {self.name!r} builder needs data_files, e.g. "
                              f"{{train: train.{self.name}, test: test.{self.name}}}")
        if self.data_files is not None:
            train, test = self.train_split or "train", self.test_split
            if train not in self.data_files:
                key = "train_split" if self.train_split else "data_files"
                raise ConfigError(f"{key}: no {train!r} split in data_files (its splits: "
                                  f"{', '.join(self.data_files)}){did_you_mean(train, self.data_files)}")
            if test is not None and test not in self.data_files:
                raise ConfigError(f"test_split: no {test!r} split in data_files (its splits: "
                                  f"{', '.join(self.data_files)}){did_you_mean(test, self.data_files)}")
        if self.test_split is not None and self.test_split == (self.train_split or "train"):
            raise ConfigError(f"test_split: the same split as train_split ({self.test_split!r})")


def _known_source(name: str) -> bool:
    """A name ``load`` can resolve without guessing: built in, known, a builder, a hub path
    (``owner/name``) or an existing local path. Anything else would go to the hub as a bare
    name (a typo there is a connection error, or offline an opaque one)."""
    return name in LOCAL or name in KNOWN or name in BUILDERS or "/" in name or Path(name).exists()


@dataclass
class VisionConfig(LoopConfig):
    model: str = "lenet_300_100"  # a name in domains.vision.MODEL_WIDTHS
    width: int | None = None  # channel width of the models that take one (None: the paper's)
    dataset: VisionDataConfig = field(default_factory=VisionDataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.model not in MODEL_WIDTHS:
            raise ConfigError(f"model: unknown vision model {self.model!r}{did_you_mean(self.model, MODEL_WIDTHS)} "
                              f"(known: {', '.join(MODEL_WIDTHS)})")
        if self.width is not None and MODEL_WIDTHS[self.model] is None:
            raise ConfigError(f"width: {self.model} takes no width")
        if self.width is not None and self.width < 1:
            raise ConfigError(f"width: must be positive, got {self.width}")
