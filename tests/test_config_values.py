"""Config values are checked before any work: every float spelling, finite positive learning
rates, Adam betas, seeds, levels, duplicate YAML keys, config files that are not text, batch
sizes against the data, unknown dataset names, bare ``list``/``dict`` field types."""

import math
import os
from dataclasses import dataclass, field

import pytest
import yaml

from conftest import vision_config
from tickets.cli import main
from tickets.config import load_experiment, parse_overrides, parse_yaml
from tickets.errors import ConfigError
from tickets.optim import OptimizerConfig
from tickets.typed import from_dict


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def config_text(lr: str) -> str:
    """vision_config() as YAML text, with ``lr`` spelled exactly as given."""
    text = yaml.safe_dump(vision_config(**{"domain.optimizer.lr": 12345.0}), sort_keys=False)
    assert "lr: 12345.0" in text
    return text.replace("lr: 12345.0", f"lr: {lr}")


@pytest.mark.parametrize("spelling, value", [
    ("3e-3", 3e-3), ("1E-5", 1e-5), (".5", 0.5), ("+1.0e-3", 1e-3), ("2.5E+1", 25.0), ("1.e-2", 0.01),
    ("1_0.5e-2", 0.105), ("0.003", 0.003), ("1", 1.0),
])
def test_every_float_spelling_is_a_number_in_files_and_overrides(tmp_path, spelling, value):
    # README: `tickets run ... domain.optimizer.lr=3e-3`; PyYAML (YAML 1.1) made '3e-3' a string
    assert load_experiment(write(tmp_path, config_text(spelling))).domain_config.optimizer.lr == pytest.approx(value)
    exp = load_experiment(vision_config(), [f"domain.optimizer.lr={spelling}"])
    assert exp.domain_config.optimizer.lr == pytest.approx(value)


def test_strings_that_merely_start_like_numbers_stay_strings():
    values = dict((k[0], v) for k, v in parse_overrides(["a=1e3abc", "b=e3", "c=3e", "d=1:30.5", "e=mnist",
                                                         "f=1__0.5", "g=infinite", "h=0x1e3"]))
    assert values == {"a": "1e3abc", "b": "e3", "c": "3e", "d": "1:30.5", "e": "mnist", "f": "1__0.5",
                      "g": "infinite", "h": 0x1E3}
    with pytest.raises(ConfigError, match="config.domain.optimizer.lr: expected a number, got '1e3abc'"):
        load_experiment(vision_config(), ["domain.optimizer.lr=1e3abc"])


@pytest.mark.parametrize("spelling, value", [("10", 10), ("010", 10), ("1_000", 1000), ("0x1f", 31), ("0o17", 15),
                                             ("0b101", 5), ("+7", 7)])
def test_integers_are_read_as_python_reads_them(spelling, value):
    exp = load_experiment(vision_config(), [f"train.steps={spelling}"])
    assert exp.config.train.steps == value  # YAML 1.1 read 010 as 8 and refused 0o17


@pytest.mark.parametrize("spelling", ["1:00", "1:30", "2:00:00"])
def test_base_60_numbers_are_not_silently_integers(spelling):
    # YAML 1.1 reads 1:00 as 60: train.steps=1:00 trained 60 steps without a word
    with pytest.raises(ConfigError, match=f"config.train.steps: expected an integer, got '{spelling}'"):
        load_experiment(vision_config(), [f"train.steps={spelling}"])


@pytest.mark.parametrize("spelling", [".inf", "-.inf", ".nan", ".NaN", "inf", "nan", "Infinity", "1e999"])
def test_non_finite_learning_rates_are_refused(tmp_path, spelling):
    with pytest.raises(ConfigError, match=r"^config.domain.optimizer.lr: expected a finite number"):
        load_experiment(write(tmp_path, config_text(spelling)))
    with pytest.raises(ConfigError, match=r"^config.domain.optimizer.lr: expected a finite number"):
        load_experiment(vision_config(), [f"domain.optimizer.lr={spelling}"])


@pytest.mark.parametrize("lr", [0, -1e-3])
def test_non_positive_learning_rates_are_refused(lr):
    with pytest.raises(ConfigError, match=r"^config.domain.optimizer.lr: must be positive"):
        load_experiment(vision_config(**{"domain.optimizer.lr": lr}))


def test_optimizer_config_built_in_code_is_checked_too():
    for bad in (math.inf, math.nan):
        with pytest.raises(ConfigError, match="lr: expected a finite number"):
            OptimizerConfig(lr=bad)
    with pytest.raises(ConfigError, match="weight_decay: expected a finite number"):
        OptimizerConfig(weight_decay=math.nan)


def test_every_float_field_refuses_nan_and_infinity():
    with pytest.raises(ConfigError, match=r"^config.pruning.fraction: expected a finite number, got nan"):
        load_experiment(vision_config(), ["pruning.fraction=.nan"])
    with pytest.raises(ConfigError, match=r"^config.domain.max_grad_norm: expected a finite number, got inf"):
        load_experiment(vision_config(), ["domain.max_grad_norm=.inf"])


def test_the_rl_learning_rate_is_checked_by_the_same_optimizer_config():
    rl = {"name": "rl", "domain": {"name": "rl", "optimizer": {"name": "adam", "lr": 3e-4}}, "train": {"steps": 256}}
    assert load_experiment(rl, ["domain.optimizer.lr=1e-3"]).domain_config.optimizer.lr == 1e-3
    for bad, message in ((".inf", "expected a finite number"), ("0", "must be positive")):
        with pytest.raises(ConfigError, match=f"^config.domain.optimizer.lr: {message}"):
            load_experiment(rl, [f"domain.optimizer.lr={bad}"])


@pytest.mark.parametrize("betas, message", [
    ([0.9, 1.0], r"betas.1: must be in \[0, 1\), got 1.0"),
    ([-0.1, 0.999], r"betas.0: must be in \[0, 1\), got -0.1"),
    ([1.5, 0.999], r"betas.0: must be in \[0, 1\), got 1.5"),
    ([0.9], "betas: needs two numbers"),
])
def test_adam_betas_outside_zero_one_are_refused(betas, message):
    with pytest.raises(ConfigError, match="^config.domain.optimizer." + message):
        load_experiment(vision_config(**{"domain.optimizer.betas": betas}))
    ok = load_experiment(vision_config(**{"domain.optimizer.betas": [0.0, 0.95]}))
    assert ok.domain_config.optimizer.kwargs()["betas"] == (0.0, 0.95)


def test_betas_for_sgd_are_refused():
    with pytest.raises(ConfigError, match="betas: only Adam/AdamW take betas"):
        load_experiment(vision_config(**{"domain.optimizer": {"name": "sgd", "lr": 0.1, "betas": [0.9, 0.99]}}))


@pytest.mark.parametrize("seed, key", [(-1, "seed"), (2**32, "seed"), (2**63, "seed"), (2**64 + 5, "seed")])
def test_seeds_outside_the_libraries_range_are_refused(seed, key):
    with pytest.raises(ConfigError, match=rf"^config.{key}: must be in \[0, 2\^32 - 1\]"):
        load_experiment(vision_config(seed=seed))
    with pytest.raises(ConfigError, match=r"^config.seeds.1: must be in \[0, 2\^32 - 1\]"):
        load_experiment(vision_config(seeds=[0, seed]))


def test_the_largest_seed_is_accepted():
    assert load_experiment(vision_config(seed=2**32 - 1)).config.seed == 2**32 - 1


def test_zero_imp_levels_is_refused():
    with pytest.raises(ConfigError, match=r"^config.pruning.levels: 0 levels of IMP trains the dense network only"):
        load_experiment(vision_config(**{"pruning.levels": 0}))
    at_init = load_experiment(vision_config(**{"pruning.levels": 0, "pruning.method": "at_init",
                                               "pruning.compressions": [10], "pruning.scorer": "snip"}))
    assert at_init.config.pruning.levels == 0  # levels is IMP's; pruning at init has its compressions


def test_duplicate_keys_are_refused_with_the_key_and_lines(tmp_path):
    text = config_text("0.002").replace("  optimizer:\n", "  optimizer:\n    lr: 0.1\n", 1)
    path = write(tmp_path, text)
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() == "lr: 0.1") + 1
    second = next(i for i, line in enumerate(lines) if line.strip() == "lr: 0.002") + 1
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(err.value) == (f"{path}: key 'lr' is given twice in one mapping (lines {first} and {second}); "
                              "keep one")
    with pytest.raises(ConfigError, match=r"key 'a' is given twice in one mapping \(line 1, columns 2 and 8\)"):
        parse_overrides(["domain.env_kwargs={a: 1, a: 2}"])


def test_yaml_merge_keys_may_still_be_overridden():
    data = parse_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n", "f.yaml")
    assert data == {"base": {"x": 1, "y": 2}, "d": {"x": 3, "y": 2}}  # an explicit key wins over a merged one


def test_a_yaml_syntax_error_is_one_line(tmp_path):
    path = write(tmp_path, "name: x\ndomain: {name: vision\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert "\n" not in str(err.value) and f"{path}: not valid YAML: line" in str(err.value)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a directory, not a config file"),
    (lambda p: p.write_bytes(b"name: x\n\xff\xfe\x00\x01binary"), r"not a text \(UTF-8\) config file: byte 8 is 0xff"),
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: None, "no such config file"),
])
def test_config_files_that_are_not_text_are_one_line_errors(tmp_path, capsys, make, message):
    path = tmp_path / "exp.yaml"
    make(path)
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tickets: error: ") and message.split(" ")[0] in err
    assert not (tmp_path / "runs").exists()


def test_a_batch_larger_than_the_training_split_is_refused_before_any_work(tmp_path):
    from tickets.methods import make_runner

    exp = load_experiment(vision_config(**{"domain.dataset.max_train": 20, "domain.batch_size": 32}))
    with pytest.raises(ConfigError, match=r"^config.domain.batch_size: 32 is larger than the training split "
                                          r"\(20 examples\); lower batch_size to 20 or less"):
        make_runner(exp, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    make_runner(load_experiment(vision_config(**{"domain.dataset.max_train": 32, "domain.batch_size": 32})),
                tmp_path / "runs")  # exactly one batch is fine


def test_an_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        load_experiment(vision_config(**{"domain.dataset.name": "mnsit"}))
    msg = str(err.value)
    assert msg.startswith("config.domain.dataset.name: unknown dataset 'mnsit'; did you mean 'mnist'?")
    for name in ("mnist_subset", "digits", "cifar10", "svhn", "parquet", "imagefolder", "data_files", "owner/name"):
        assert name in msg


def test_hub_paths_and_local_directories_are_still_accepted(tmp_path):
    for name in ("someone/tiny", str(tmp_path)):
        exp = load_experiment(vision_config(**{"domain.dataset.name": name}))
        assert exp.domain_config.dataset.name == name


def test_an_unreachable_hub_dataset_is_one_line(monkeypatch):
    import datasets

    from domains.vision.data import VisionDataConfig, load

    def offline(path, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConfigError, match=r"^config.domain.dataset.name: cannot load 'someone/none': Couldn't reach"):
        load(VisionDataConfig(name="someone/none"))


@dataclass
class Bare:
    items: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    pairs: tuple = ()


def test_bare_list_and_dict_field_types_are_supported():
    cfg = from_dict(Bare, {"items": [1, "a", {"b": 2}], "options": {"x": [1]}, "pairs": [1, 2]})
    assert cfg.items == [1, "a", {"b": 2}] and cfg.options == {"x": [1]} and cfg.pairs == [1, 2]
    with pytest.raises(ConfigError, match=r"^config.items: expected a list, got 3"):
        from_dict(Bare, {"items": 3})
    with pytest.raises(ConfigError, match=r"^config.options: expected a mapping, got \[1\]"):
        from_dict(Bare, {"options": [1]})
