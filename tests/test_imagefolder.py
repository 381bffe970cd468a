"""The README's imagefolder example, run as written on a folder of real images (scikit-learn digits
saved as PNG files, one folder per class)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tickets.config import load_experiment
from tickets.methods import make_runner

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    found = re.search(r"<!-- imagefolder-example[^>]*-->\s*```yaml\n(.*?)```", text, re.S)
    assert found, "README.md lost its imagefolder example"
    return found.group(1)


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("imgs") / "my_images"
    names = {0: "cat", 1: "dog", 2: "emu"}
    counts = {"train": {}, "test": {}}
    for i in range(450):
        y = int(d.target[i])
        if y not in names:
            continue
        split = "train" if i < 350 else "test"
        folder = root / split / names[y]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
        counts[split][names[y]] = counts[split].get(names[y], 0) + 1
    return root, counts


def test_readme_imagefolder_example_runs(image_folders, tmp_path):
    root, counts = image_folders
    text = readme_example().replace('"my_images/', f'"{root}/')
    data = yaml.safe_load(text)
    assert data["domain"]["dataset"]["name"] == "imagefolder"
    exp = load_experiment(data, ["train.steps=20", "train.eval_every=10", "pruning.levels=1",
                                 "domain.batch_size=16"])
    domain = exp.make_domain()
    images = domain.data
    assert images.num_classes == 3
    assert images.input_shape == (1, 8, 8)
    n_train = sum(counts["train"].values())
    assert len(images.train) + len(images.validation) == n_train
    assert len(images.test) == sum(counts["test"].values())
    # labels are the sorted folder names: cat=0, dog=1, emu=2, in the counts the folders hold
    test_labels = images.test[list(range(len(images.test)))]["labels"]
    assert torch.bincount(test_labels, minlength=3).tolist() == [counts["test"][n] for n in ("cat", "dog", "emu")]

    run = make_runner(exp, tmp_path, show_progress=False).execute()
    rows = run.rows()
    assert [(r["level"], r["condition"]) for r in rows] == [(0, "dense"), (1, "ticket"), (1, "random_mask"),
                                                           (1, "reinit")]
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)
