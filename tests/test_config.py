from pathlib import Path

import pytest
import yaml

from conftest import vision_config
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key, value, message", [
    ("pruning.fracton", 0.2, "config.pruning.fracton: unknown key; did you mean 'fraction'?"),
    ("domain.optimzer", {}, "config.domain.optimzer: unknown key; did you mean 'optimizer'?"),
    ("domain.optimizer.lrr", 0.1, "config.domain.optimizer.lrr: unknown key; did you mean 'lr'?"),
    ("trian", {}, "config.trian: unknown key; did you mean 'train'?"),
    ("pruning.fraction", 1.5, "config.pruning.fraction: must be in (0, 1), got 1.5"),
    ("pruning.levels", "ten", "config.pruning.levels: expected an integer, got 'ten'"),
    ("pruning.scope", "globl", "config.pruning.scope: 'globl' is not one of 'layer', 'global'; did you mean 'global'?"),
    ("pruning.scorer", "magnitud", "did you mean 'magnitude'?"),
    ("controls", ["reinit", "randmo_mask"], "config.controls.1: unknown control 'randmo_mask'; did you mean 'random_mask'"),
    ("domain.name", "visoin", "unknown domain 'visoin'; did you mean 'vision'?"),
    ("domain.dataset.validation", 2, "config.domain.dataset.validation: must be in (0, 1), got 2"),
    ("domain.dataset.nmae", "cifar10", "config.domain.dataset.nmae: unknown key; did you mean 'name'?"),
    ("domain.model", "resnet20", "config.domain.model: unknown vision model 'resnet20'; did you mean 'resnet_20'?"),
    ("domain.schedule.milestones", [5, 3], "config.domain.schedule.milestones: must be increasing"),
    ("rewind.step", 30, "rewind.step: 30 must be below train.steps (30)"),
])
def test_bad_configs_are_refused_with_the_key_named(key, value, message):
    with pytest.raises(ConfigError) as err:
        load_experiment(vision_config(**{key: value}))
    assert message in str(err.value)


def test_overrides_are_typed_and_checked():
    exp = load_experiment(vision_config(), ["pruning.levels=5", "domain.optimizer.lr=0.01",
                                            "pruning.groups.0.fraction=0.05"])
    assert exp.config.pruning.levels == 5
    assert exp.domain_config.optimizer.lr == 0.01
    assert exp.config.pruning.groups[0].fraction == 0.05
    with pytest.raises(ConfigError, match="config.pruning.levls: unknown key"):
        load_experiment(vision_config(), ["pruning.levls=5"])
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_experiment(vision_config(), ["pruning.levels"])
    with pytest.raises(ConfigError, match="'3' is not an index"):
        load_experiment(vision_config(), ["pruning.groups.3.fraction=0.1"])


def test_hash_ignores_defaults_and_name_but_not_settings():
    base = load_experiment(vision_config())
    assert load_experiment(vision_config(name="other")).hash() == base.hash()
    assert load_experiment(vision_config(**{"pruning.scope": "layer"})).hash() == base.hash()  # the default
    assert load_experiment(vision_config(**{"pruning.scope": "global"})).hash() != base.hash()
    assert load_experiment(vision_config(**{"domain.optimizer.lr": 0.003})).hash() != base.hash()


def test_shipped_config_hashes_are_pinned():
    # Changing these silently would orphan every existing run directory: update on purpose only.
    assert load_experiment(ROOT / "configs/vision/lenet300_mnist.yaml").hash() == "43c953dc74"


def test_every_shipped_config_validates():
    configs = sorted(p for p in (ROOT / "configs").glob("*/*.yaml") if p.parent.name != "studies")
    assert configs
    for path in configs:
        load_experiment(path)


def test_cli_refuses_a_typo_before_any_work(tmp_path, capsys):
    cfg = vision_config(**{"pruning.levles": 3})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    assert "config.pruning.levles: unknown key; did you mean 'levels'?" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err
