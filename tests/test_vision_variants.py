"""Dataset variants (domain.dataset.variant): rotated, inverted, pixel-permuted, resized and
recoloured copies of a dataset, made at load time, for transfer studies."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import vision_config
from domains.vision import models
from domains.vision.config import VariantConfig, VisionDataConfig
from domains.vision.data import _load_local, _split_indices, load
from domains.vision.variants import apply, permutation, permute
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.methods import make_runner

ROOT = Path(__file__).resolve().parents[1]


def one_pixel(h, w, r, c, channels=1):
    x = torch.zeros((1, channels, h, w), dtype=torch.uint8)
    x[0, :, r, c] = 200
    return x


def lit(x):
    return [tuple(p) for p in torch.nonzero(x[0, 0]).tolist()]


@pytest.fixture(scope="module")
def mnist():
    return load(VisionDataConfig(name="mnist_subset"))


@pytest.mark.parametrize("degrees, where, shape", [
    (90, (0, 0), (4, 3)),     # counter-clockwise: the top-right pixel goes to the top left
    (180, (2, 0), (3, 4)),    # ... to the bottom left
    (270, (3, 2), (4, 3)),    # ... to the bottom right
])
def test_rotate_turns_a_lit_pixel_counter_clockwise(degrees, where, shape):
    got = apply(one_pixel(3, 4, 0, 3), VariantConfig(rotate=degrees))
    assert tuple(got.shape[2:]) == shape and lit(got) == [where] and got.dtype == torch.uint8
    back = apply(got, VariantConfig(rotate=360 - degrees))
    assert torch.equal(back, one_pixel(3, 4, 0, 3))


def test_invert_is_255_minus_x():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(apply(x, VariantConfig(invert=True)), (255 - torch.arange(256)).to(torch.uint8).view(1, 1, 16, 16))


def test_a_permutation_is_a_seeded_bijection_of_pixel_positions():
    perm = permutation(784, 3)
    assert torch.equal(perm.sort().values, torch.arange(784))
    assert torch.equal(perm, permutation(784, 3)) and not torch.equal(perm, permutation(784, 4))
    x = torch.arange(2 * 2 * 16, dtype=torch.uint8).view(2, 2, 4, 4)
    got = apply(x, VariantConfig(permute_seed=5))
    p = permutation(16, 5)
    for c in range(2):  # the same positions in every channel: output pixel i is input pixel p[i]
        assert torch.equal(got[:, c].reshape(2, 16), x[:, c].reshape(2, 16)[:, p])


def test_the_permutation_is_the_same_for_every_split_and_reproducible(mnist):
    variant = VariantConfig(permute_seed=7)
    data = load(VisionDataConfig(name="mnist_subset", variant=variant))
    perm = permutation(28 * 28, 7)
    for split in ("train", "validation", "test"):
        plain, got = getattr(mnist, split).columns, getattr(data, split).columns
        assert torch.equal(got["images"], permute(plain["images"], perm))
        assert torch.equal(got["labels"], plain["labels"])
    again = load(VisionDataConfig(name="mnist_subset", variant=VariantConfig(permute_seed=7)))
    assert torch.equal(again.train.columns["images"], data.train.columns["images"])
    other = load(VisionDataConfig(name="mnist_subset", variant=VariantConfig(permute_seed=8)))
    assert not torch.equal(other.train.columns["images"], data.train.columns["images"])
    assert data.mean == pytest.approx(mnist.mean) and data.std == pytest.approx(mnist.std)  # the same pixels


def test_digits_at_28_by_28_fit_a_lenet_built_for_mnist(mnist):
    digits = load(VisionDataConfig(name="digits", variant=VariantConfig(size=28)))
    assert digits.input_shape == mnist.input_shape == (1, 28, 28)
    images = digits.train.columns["images"]
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
    torch.manual_seed(0)
    model = models.build("lenet_300_100", mnist.input_shape, mnist.num_classes)
    assert model(digits.to_inputs(images[:5], train=False)).shape == (5, 10)
    plain = load(VisionDataConfig(name="digits"))  # the mean is that of the resized images
    assert digits.mean != plain.mean and digits.mean == pytest.approx(plain.mean, abs=0.02)


def test_resize_is_bilinear_rounded_and_exact_on_constant_images():
    x = torch.full((3, 1, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(apply(x, VariantConfig(size=28)), torch.full((3, 1, 28, 28), 77, dtype=torch.uint8))
    assert torch.equal(apply(x, VariantConfig(size=5)), torch.full((3, 1, 5, 5), 77, dtype=torch.uint8))
    ramp = torch.tensor([[0, 255]], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 1, 2, 2)
    # 2 -> 4 pixels, align_corners=False: 0, 0.25, 0.75, 1 of the way
    assert apply(ramp, VariantConfig(size=4))[0, 0, 0].tolist() == [0, 64, 191, 255]


def test_channels_replicate_grey_to_rgb_and_average_rgb_to_grey():
    grey = torch.randint(0, 256, (2, 1, 5, 5), dtype=torch.uint8)
    rgb = apply(grey, VariantConfig(channels=3))
    assert rgb.shape == (2, 3, 5, 5) and all(torch.equal(rgb[:, c], grey[:, 0]) for c in range(3))
    assert torch.equal(apply(rgb, VariantConfig(channels=1)), grey)
    px = torch.tensor([10, 20, 31], dtype=torch.uint8).view(1, 3, 1, 1)  # mean 20.33
    assert apply(px, VariantConfig(channels=1)).item() == 20
    assert apply(torch.tensor([0, 1, 1], dtype=torch.uint8).view(1, 3, 1, 1), VariantConfig(channels=1)).item() == 1


def test_the_operations_compose_in_the_documented_order():
    x = torch.randint(0, 256, (2, 1, 6, 6), dtype=torch.uint8)
    variant = VariantConfig(size=4, channels=3, rotate=90, permute_seed=2, invert=True)
    manual = apply(x, VariantConfig(size=4))
    for step in (VariantConfig(channels=3), VariantConfig(rotate=90), VariantConfig(permute_seed=2),
                 VariantConfig(invert=True)):
        manual = apply(manual, step)
    got = apply(x, variant)
    assert torch.equal(got, manual) and got.shape == (2, 3, 4, 4) and got.is_contiguous()
    permuted_first = apply(apply(x, VariantConfig(permute_seed=2)), VariantConfig(rotate=90))
    assert not torch.equal(apply(x, VariantConfig(rotate=90, permute_seed=2)), permuted_first)  # order matters


def test_a_hub_style_dataset_gets_the_variant_on_every_split(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PIL

    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 20), ("test", 6)):
        arrays = rng.integers(0, 256, (n, 3, 5), dtype=np.uint8)  # grey, 3 high and 5 wide
        ds = Dataset.from_dict({"image": [PIL.fromarray(a) for a in arrays], "label": [i % 2 for i in range(n)]},
                               features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])}))
        files[split] = str(tmp_path / f"{split}.parquet")
        ds.to_parquet(files[split])
    plain = load(VisionDataConfig(name="parquet", data_files=files))
    variant = VariantConfig(channels=3, rotate=90, invert=True)
    data = load(VisionDataConfig(name="parquet", data_files=files, variant=variant))
    assert plain.input_shape == (1, 3, 5) and data.input_shape == (3, 5, 3) and len(data.mean) == 3
    for split in ("train", "validation", "test"):
        expect = 255 - torch.rot90(getattr(plain, split).columns["images"], 1, dims=(2, 3)).expand(-1, 3, -1, -1)
        assert torch.equal(getattr(data, split).columns["images"], expect)


def test_the_default_leaves_the_data_bit_identical(mnist):
    images, labels, _ = _load_local("mnist_subset")
    parts = _split_indices(len(images), VisionDataConfig(name="mnist_subset"), carve_test=True, what="mnist_subset")
    for split, idx in parts.items():
        assert np.array_equal(getattr(mnist, split).columns["images"].numpy(), images[idx])
        assert np.array_equal(getattr(mnist, split).columns["labels"].numpy(), labels[idx])
    x = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    assert apply(x, VariantConfig()) is x


# the hashes before dataset variants existed (commit f8ca74b)
@pytest.mark.parametrize("config, digest", [
    ("configs/vision/lenet300_mnist.yaml", "43c953dc74"),
    ("configs/vision/transfer_lenet300_adam_to_sgd.yaml", "d1f2762201"),
    ("configs/vision/conv2_cifar10.yaml", "798c461488"),
    (None, "25a25c696b"),  # conftest's tiny digits experiment
])
def test_an_existing_experiment_keeps_its_hash(config, digest):
    source = vision_config() if config is None else str(ROOT / config)
    assert load_experiment(source).hash() == digest
    defaults = {"rotate": 0, "invert": False, "permute_seed": None, "size": None, "channels": None}
    assert load_experiment(source, [f"domain.dataset.variant={json.dumps(defaults)}"]).hash() == digest
    assert load_experiment(source, ["domain.dataset.variant.rotate=90"]).hash() != digest


PROBE = """
import sys
from tickets.config import load_experiment
from tickets.errors import ConfigError
for override in sys.argv[1:]:
    try:
        load_experiment("configs/vision/lenet300_mnist.yaml", [override])
        print("accepted")
    except ConfigError as exc:
        print(exc)
print("torch imported:", "torch" in sys.modules)
"""


def test_bad_variants_are_refused_before_torch_is_imported():
    cases = {
        "domain.dataset.variant.rotate=45": "config.domain.dataset.variant.rotate: degrees counter-clockwise, one of "
                                            "0, 90, 180, 270, got 45",
        "domain.dataset.variant.rotate=-90": "config.domain.dataset.variant.rotate: degrees",
        "domain.dataset.variant.size=1": "config.domain.dataset.variant.size: the side in pixels, from 2 to 512",
        "domain.dataset.variant.size=513": "config.domain.dataset.variant.size: the side in pixels",
        "domain.dataset.variant.channels=2": "config.domain.dataset.variant.channels: 1 (grayscale) or 3 (RGB)",
        "domain.dataset.variant.permute_seed=-1": "config.domain.dataset.variant.permute_seed: a non-negative",
        "domain.dataset.variant.invert=1": "config.domain.dataset.variant.invert: expected true or false",
        "domain.dataset.variant.rotation=90": "config.domain.dataset.variant.rotation: unknown key; did you mean "
                                              "'rotate'?",
        "domain.dataset.variant={size: 28, channels: 3, rotate: 270, permute_seed: 0, invert: true}": "accepted",
    }
    done = subprocess.run([sys.executable, "-c", PROBE, *cases], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "torch imported: False", done.stderr
    for (override, message), line in zip(cases.items(), lines):
        assert line.startswith(message), (override, line)


def test_a_ticket_found_on_mnist_trains_on_rotated_mnist_with_its_mask(tmp_path):
    def config(name, **variant):
        dataset = {"name": "mnist_subset", "max_train": 600, **({"variant": variant} if variant else {})}
        return vision_config(**{"name": name, "domain.dataset": dataset, "pruning.levels": 1, "controls": [],
                                "train.steps": 10, "train.eval_every": 5})

    source = make_runner(load_experiment(config("upright")), tmp_path, show_progress=False).execute()
    target_cfg = config("rotated", rotate=90)
    target_cfg["transfer"] = {"source": str(source.path)}
    target_cfg["controls"] = ["random_mask"]
    target = make_runner(load_experiment(target_cfg), tmp_path, show_progress=False).execute()
    assert [(r["level"], r["condition"]) for r in target.rows()] == [(0, "dense"), (1, "ticket"), (1, "random_mask")]
    src, got = Ticket.load(source.ticket_dir(1)), Ticket.load(target.ticket_dir(1))
    assert set(got.mask) == set(src.mask)
    for name, m in src.mask.items():
        assert torch.equal(got.mask[name], m)
    assert got.meta["where"]["dataset"]["variant"]["rotate"] == 90  # the target: rotated MNIST
    assert got.meta["found"]["source_where"]["dataset"]["variant"]["rotate"] == 0
    assert got.meta["where"]["input_shape"] == [1, 28, 28]
