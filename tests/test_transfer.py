"""Transfer: a ticket found on dataset A trained on dataset B with another class count."""

import numpy as np
import pytest
import torch

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.store import read_tensors


@pytest.fixture(scope="module")
def four_digit_classes(tmp_path_factory):
    """Dataset B: the scikit-learn digits 0-3 only (4 classes, same 8x8 images), as a parquet
    file in the schema of the hub's image datasets."""
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PIL
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = d.target < 4
    images = [PIL.fromarray((x * 16).clip(0, 255).astype(np.uint8)) for x in d.images[keep]]
    features = Features({"image": Image(), "label": ClassLabel(names=["0", "1", "2", "3"])})
    ds = Dataset.from_dict({"image": images, "label": d.target[keep].tolist()}, features=features)
    root = tmp_path_factory.mktemp("four")
    split = ds.train_test_split(test_size=0.25, seed=0)
    split["train"].to_parquet(str(root / "train.parquet"))
    split["test"].to_parquet(str(root / "test.parquet"))
    return {"train": str(root / "train.parquet"), "test": str(root / "test.parquet")}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    exp = load_experiment(vision_config(**{"pruning.levels": 2, "controls": []}))
    out = tmp_path_factory.mktemp("runs")
    return make_runner(exp, out, show_progress=False).execute(), out


def target_config(source, data_files, **transfer):
    return vision_config(**{
        "name": "to_four",
        "domain.dataset": {"name": "parquet", "data_files": data_files},
        "controls": ["reinit", "random_mask"],
        "transfer": {"source": str(source), "adapt": ["output.*"], **transfer},
    })


@pytest.mark.parametrize("policy", ["dense", "source_rate"])
def test_shared_layers_keep_their_masks_and_the_head_follows_the_policy(source_run, four_digit_classes, tmp_path,
                                                                       policy):
    source, _ = source_run
    exp = load_experiment(target_config(source.path, four_digit_classes, head_policy=policy))
    run = make_runner(exp, tmp_path, show_progress=False).execute()
    rows = run.rows()
    assert [(r["level"], r["condition"]) for r in rows] == [
        (0, "dense"), (1, "ticket"), (1, "random_mask"), (1, "reinit"),
        (2, "ticket"), (2, "random_mask"), (2, "reinit")]
    theta_k = read_tensors(source.state_path("rewind"))
    for level in (1, 2):
        src = Ticket.load(source.ticket_dir(level))
        got = Ticket.load(run.ticket_dir(level))
        for name in ("hidden.0.weight", "hidden.1.weight"):
            assert torch.equal(got.mask[name], src.mask[name])  # shared layers keep the mask
            m = src.mask[name]
            assert torch.equal(got.rewind[name][m], theta_k[name][m])  # ... and the source's weights
        head = got.mask["output.weight"]
        assert head.shape == (4, 100)
        if policy == "dense":
            assert head.all()
        else:
            src_density = src.mask["output.weight"].float().mean().item()
            assert head.sum().item() == round(src_density * 400)
        trained = read_tensors(run.trained_path(level, "ticket"))
        for name, m in got.mask.items():
            assert torch.all(trained[name][~m] == 0.0)
        assert got.meta["found"]["method"] == "transfer" and got.meta["found"]["source_found"]["level"] == level


def test_a_ticket_that_does_not_fit_is_refused_before_training(source_run, four_digit_classes, tmp_path):
    source, _ = source_run
    exp = load_experiment(target_config(source.path, four_digit_classes, adapt=[]))
    with pytest.raises(Exception, match="output.weight: ticket \\(10, 100\\), model \\(4, 100\\)"):
        make_runner(exp, tmp_path)
    assert not any(tmp_path.iterdir())


def test_source_may_be_the_source_config_and_missing_levels_are_named(source_run, tmp_path):
    source, out = source_run
    import yaml

    cfg_path = tmp_path / "source.yaml"
    cfg_path.write_text(yaml.safe_dump(vision_config(**{"pruning.levels": 2, "controls": []})))
    exp = load_experiment(vision_config(**{"name": "opt_transfer", "domain.optimizer": {"name": "sgd", "lr": 0.05,
                                                                                      "momentum": 0.9},
                                          "transfer": {"source": str(cfg_path), "levels": [2]}}))
    run = make_runner(exp, out, show_progress=False).execute()  # SGD trains the tickets Adam found
    assert [r["level"] for r in run.rows()] == [0, 2, 2, 2, 2]  # dense, then level 2 with three controls
    assert torch.equal(Ticket.load(run.ticket_dir(2)).mask["hidden.0.weight"],
                       Ticket.load(source.ticket_dir(2)).mask["hidden.0.weight"])
    bad = load_experiment(vision_config(**{"transfer": {"source": str(source.path), "levels": [5]}}))
    with pytest.raises(ConfigError, match=r"transfer.levels: \[5\] not in the source \(it has \[1, 2\]\)"):
        make_runner(bad, out)
