"""Study files: parsed, checked and compiled into experiment entries before anything runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import vision_config
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.study import load_study, run_path

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted((ROOT / "configs" / "studies").glob("*.yaml"))


@pytest.fixture
def configs(tmp_path):
    """Tiny digits configs (seconds to build) in tmp_path/configs: adam, sgd, conv (another model)."""
    folder = tmp_path / "configs"
    folder.mkdir()
    variants = {
        "adam": vision_config(name="adam", controls=["reinit"]),
        "sgd": vision_config(name="sgd", controls=["reinit"], **{"domain.optimizer": {"name": "sgd", "lr": 0.05}}),
        "conv": vision_config(name="conv", **{"domain.model": "conv_2", "domain.width": 4}),
        "chain": vision_config(name="chain", transfer={"source": str(folder / "adam.yaml")}),
    }
    for name, cfg in variants.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def write_study(tmp_path, text: str, name="study.yaml") -> Path:
    folder = tmp_path / "studies"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def refused(path: Path, out: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_study(path, out)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()  # nothing written for a refused study
    return message


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_every_shipped_study_loads(path, tmp_path):
    study = load_study(path, tmp_path / "runs")
    assert study.entries
    labels = [e.label for e in study.entries]
    assert len(set(labels)) == len(labels)
    for n, e in enumerate(study.entries):
        assert set(e.needs) <= set(labels[:n])  # needs come first
    assert not (tmp_path / "runs").exists()


def test_cross_domain_is_one_entry_per_domain_and_seed(tmp_path):
    study = load_study(ROOT / "configs/studies/cross_domain.yaml", tmp_path / "runs")
    assert [(e.label, e.role, e.seed, e.group, e.needs) for e in study.entries] == [
        (f"{d}@seed{k}", "experiment", k, d, ()) for d in ("vision", "nlp", "rl") for k in (0, 1)]
    domains = [e.experiment.config.domain["name"] for e in study.entries]
    assert domains == ["vision", "vision", "nlp", "nlp", "rl", "rl"]
    for e in study.entries:
        assert (e.experiment.config.seed, e.experiment.config.seeds) == (e.seed, [])
    # the run `tickets run` makes of each seed: the config with its overrides over the study's seeds
    rl = load_experiment(ROOT / "configs/rl/ppo_cartpole.yaml",
                         ["pruning.levels=3", "train.steps=8192", "train.eval_every=2048", "seeds=[0, 1]"])
    assert study.run_dir("rl@seed1") == tmp_path / "runs" / f"ppo_cartpole-{rl.with_seed(1).hash()}"


def test_transfer_matrix_compiles_per_seed_with_the_sources_run_directories(configs, tmp_path):
    path = write_study(tmp_path, """
name: optim
seeds: [0, 1]
transfer:
  sources: [{label: adam, config: ../configs/adam.yaml, overrides: {pruning.levels: 2}}]
  targets: [{label: sgd, config: ../configs/sgd.yaml}, {label: adam}]
  levels: [1, 2]
  adapt: [output.weight]
  head_policy: source_rate
  weights: target_init
  controls: [reinit, random_mask]
  diagonal: true
""")
    out = tmp_path / "runs"
    study = load_study(path, out)
    assert [(e.label, e.role, e.needs, e.source_label, e.target_label) for e in study.entries] == [
        ("adam@seed0", "source", (), "adam", None), ("adam@seed1", "source", (), "adam", None),
        ("sgd@seed0", "diagonal", (), None, "sgd"), ("sgd@seed1", "diagonal", (), None, "sgd"),
        ("adam->sgd@seed0", "target", ("adam@seed0",), "adam", "sgd"),
        ("adam->sgd@seed1", "target", ("adam@seed1",), "adam", "sgd")]
    for k in (0, 1):
        target = study.entry(f"adam->sgd@seed{k}").experiment.config
        assert target.name == "optim-adam-to-sgd" and target.seed == k and target.seeds == []
        assert target.controls == ["reinit", "random_mask"]
        assert target.domain["optimizer"]["name"] == "sgd"
        t = target.transfer
        assert (t.levels, t.adapt, t.head_policy, t.weights) == ([1, 2], ["output.weight"], "source_rate",
                                                                 "target_init")
        # the directory the source seed's runner creates, built as the runner and run_seeds build it
        source = load_experiment(configs / "adam.yaml", ["pruning.levels=2", "seeds=[0, 1]"]).with_seed(k)
        assert t.source == str(make_runner(source, out).run.path) == str(out / f"adam-{source.hash()}")
        assert t.source == str(study.run_dir(f"adam@seed{k}"))
        assert study.entry(f"sgd@seed{k}").experiment.config.transfer is None  # the diagonal: the target's IMP
    assert len({run_path(e.experiment, out) for e in study.entries}) == len(study.entries)
    assert not out.exists()


def test_targets_that_are_sources_give_the_full_matrix(configs, tmp_path):
    path = write_study(tmp_path, """
name: both
transfer:
  sources: [{label: adam, config: ../configs/adam.yaml}, {label: sgd, config: ../configs/sgd.yaml}]
  targets: [{label: adam}, {label: sgd, config: ../configs/sgd.yaml}]
  diagonal: true
""")
    study = load_study(path, tmp_path / "runs")
    assert [(e.label, e.role, e.needs) for e in study.entries] == [
        ("adam", "source", ()), ("sgd", "source", ()), ("adam->sgd", "target", ("adam",)),
        ("sgd->adam", "target", ("sgd",))]
    assert study.entry("sgd->adam").experiment.config.controls == ["reinit"]  # the target config's own


def test_a_grid_expands_to_one_experiment_per_combination(configs, tmp_path):
    path = write_study(tmp_path, """
name: sweep
experiments:
  - label: a
    config: ../configs/adam.yaml
    overrides: {pruning.levels: 2}
    grid: {domain.optimizer.lr: [1.0e-3, 3.0e-3], train.steps: [20, 40]}
  - {label: b, config: ../configs/adam.yaml, grid: {domain.optimizer.lr: [0.01], pruning.fraction: [0.3]}}
""")
    study = load_study(path, tmp_path / "runs", check_fit=False)
    grid = [(e.label, e.experiment.domain_config.optimizer.lr, e.experiment.config.train.steps)
            for e in study.entries[:4]]
    assert grid == [("a[lr=0.001,steps=20]", 1e-3, 20), ("a[lr=0.001,steps=40]", 1e-3, 40),
                    ("a[lr=0.003,steps=20]", 3e-3, 20), ("a[lr=0.003,steps=40]", 3e-3, 40)]
    assert all(e.experiment.config.pruning.levels == 2 for e in study.entries[:4])
    assert study.entries[4].label == "b[lr=0.01,fraction=0.3]"
    assert len(study.entries) == 5


def test_grid_keys_that_end_alike_are_written_out(configs, tmp_path):
    path = write_study(tmp_path, """
name: sweep
experiments:
  - {label: a, config: ../configs/adam.yaml, grid: {domain.optimizer.lr: [0.01], x.lr: [1]}}
""")
    refused(path, tmp_path / "runs", "experiments[0] (a[domain.optimizer.lr=0.01,x.lr=1]): config.x: unknown key")


def test_config_paths_are_relative_to_the_study_file(configs, tmp_path, monkeypatch):
    path = write_study(tmp_path, "name: rel\nexperiments: [{label: a, config: ../configs/adam.yaml}]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    study = load_study(path, "runs")
    assert study.entries[0].experiment.hash() == load_experiment(configs / "adam.yaml").hash()
    assert study.run_dir("a") == Path("runs") / f"adam-{study.entries[0].experiment.hash()}"


def test_an_experiments_own_seeds_expand_without_study_seeds(configs, tmp_path):
    path = write_study(tmp_path, """
name: own
transfer:
  sources: [{label: adam, config: ../configs/adam.yaml, overrides: {seeds: [3, 4]}}]
  targets: [{label: sgd, config: ../configs/sgd.yaml, overrides: {seed: 4}}]
""")
    study = load_study(path, tmp_path / "runs")
    assert [(e.label, e.needs) for e in study.entries] == [("adam@seed3", ()), ("adam@seed4", ()),
                                                            ("adam->sgd", ("adam@seed4",))]
    assert study.entry("adam->sgd").experiment.config.transfer.source == str(study.run_dir("adam@seed4"))


def test_the_target_takes_tickets_of_another_layer_set_only_with_adapt(configs, tmp_path):
    text = """
name: heads
transfer:
  sources: [{label: adam, config: ../configs/adam.yaml}]
  targets: [{label: body, config: ../configs/sgd.yaml, overrides: {pruning.exclude: [output.weight]}}]
"""
    refused(write_study(tmp_path, text), tmp_path / "runs",
            "transfer.targets[0] (body): cannot take the tickets of transfer.sources[0] (adam): output.weight: "
            "in the ticket (10, 100), not prunable in the model", "transfer.adapt names the layers")
    study = load_study(write_study(tmp_path, text + "  adapt: [output.weight]\n"), tmp_path / "runs")
    assert [e.label for e in study.entries] == ["adam", "adam->body"]


def test_several_matrices_share_a_source_listed_in_both(configs, tmp_path):
    path = write_study(tmp_path, """
name: two
transfers:
  - name: optimizers
    sources: [{label: adam, config: ../configs/adam.yaml}]
    targets: [{label: sgd, config: ../configs/sgd.yaml}]
  - name: models
    sources: [{label: adam, config: ../configs/adam.yaml}, {label: sgd2, config: ../configs/sgd.yaml,
               overrides: {train.steps: 30}}]
    targets: [{label: adam}, {label: sgd2}]
""")
    study = load_study(path, tmp_path / "runs")
    assert [(e.label, e.role, e.matrix, e.needs) for e in study.entries] == [
        ("adam", "source", "optimizers", ()), ("sgd2", "source", "models", ()),
        ("adam->sgd", "target", "optimizers", ("adam",)), ("adam->sgd2", "target", "models", ("adam",)),
        ("sgd2->adam", "target", "models", ("sgd2",))]
    # both matrices read the one run of adam
    assert study.entry("adam->sgd").experiment.config.transfer.source == str(study.run_dir("adam"))
    assert study.entry("adam->sgd2").experiment.config.transfer.source == str(study.run_dir("adam"))


BAD = {
    "transfer_and_transfers": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                               "targets: [{label: b, config: ../configs/sgd.yaml}]}\ntransfers: [{name: m, "
                               "sources: [{label: c, config: ../configs/adam.yaml}], targets: [{label: c}]}]\n",
                               ["transfers: give one matrix as transfer: or several as transfers:, not both"]),
    "unnamed_matrix": ("name: s\ntransfers: [{sources: [{label: a, config: ../configs/adam.yaml}], "
                       "targets: [{label: b, config: ../configs/sgd.yaml}]}]\n",
                       ["transfers[0].name: required (it names the matrix in the report)"]),
    "matrix_name_twice": ("name: s\ntransfers:\n"
                          "  - {name: m, sources: [{label: a, config: ../configs/adam.yaml}], "
                          "targets: [{label: b, config: ../configs/sgd.yaml}]}\n"
                          "  - {name: m, sources: [{label: c, config: ../configs/adam.yaml, overrides: "
                          "{train.steps: 30}}], targets: [{label: d, config: ../configs/sgd.yaml, overrides: "
                          "{train.steps: 30}}]}\n",
                          ["transfers[1].name: 'm' is also the name of transfers[0]"]),
    "label_of_another_matrix": ("name: s\ntransfers:\n"
                                "  - {name: m, sources: [{label: a, config: ../configs/adam.yaml}], "
                                "targets: [{label: b, config: ../configs/sgd.yaml}]}\n"
                                "  - {name: n, sources: [{label: b, config: ../configs/adam.yaml, overrides: "
                                "{train.steps: 30}}], targets: [{label: e, config: ../configs/sgd.yaml, "
                                "overrides: {train.steps: 40}}]}\n",
                                ["transfers[1].sources[0] (b): label 'b' is already used by "
                                 "transfers[0].targets[0] (b)"]),
    "levels_in_a_later_matrix": ("name: s\ntransfers:\n"
                                 "  - {name: m, sources: [{label: a, config: ../configs/adam.yaml}], "
                                 "targets: [{label: b, config: ../configs/sgd.yaml}]}\n"
                                 "  - {name: n, sources: [{label: a, config: ../configs/adam.yaml}], "
                                 "targets: [{label: c, config: ../configs/sgd.yaml, overrides: {train.steps: 30}}], "
                                 "levels: [9]}\n",
                                 ["transfers[1].levels: [9] beyond the levels of transfers[0].sources[0] (a)"]),
    "unknown_top_key": ("name: s\nseed: [0]\nexperiments: [{label: a, config: ../configs/adam.yaml}]\n",
                        ["seed: unknown key; did you mean 'seeds'?"]),
    "unknown_item_key": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml, overide: {}}]\n",
                         ["experiments[0] (a): overide: unknown key; did you mean 'overrides'?"]),
    "unknown_matrix_key": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                           "targets: [{label: b, config: ../configs/sgd.yaml}], diagnoal: true}\n",
                           ["transfer.diagnoal: unknown key; did you mean 'diagonal'?"]),
    "missing_config": ("name: s\nexperiments: [{label: a, config: ../configs/nope.yaml}]\n",
                       ["experiments[0] (a): ", "nope.yaml: no such config file"]),
    "config_is_a_directory": ("name: s\nexperiments: [{label: a, config: ../configs}]\n",
                              ["experiments[0] (a): ", "is a directory, not a config file"]),
    "bad_override_key": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml, "
                         "overrides: {train.stepz: 3}}]\n",
                         ["experiments[0] (a): config.train.stepz: unknown key; did you mean 'steps'?"]),
    "bad_override_value": ("name: s\ntransfer:\n  sources: [{label: a, config: ../configs/adam.yaml}]\n"
                           "  targets: [{label: b, config: ../configs/sgd.yaml}, "
                           "{label: c, config: ../configs/sgd.yaml, overrides: {train.steps: -1}}]\n",
                           ["transfer.targets[1] (c): config.train.steps: must be positive, got -1"]),
    "bad_grid_value": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml, "
                       "grid: {domain.optimizer.name: [adam, adamm]}}]\n",
                       ["experiments[0] (a[name=adamm]): ", "adamm"]),
    "duplicate_label": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml}]\n"
                        "transfer: {sources: [{label: a, config: ../configs/sgd.yaml}], "
                        "targets: [{label: b, config: ../configs/adam.yaml, overrides: {train.steps: 20}}]}\n",
                        ["transfer.sources[0] (a): label 'a' is already used by experiments[0] (a)"]),
    "same_run_twice": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml}, "
                       "{label: b, config: ../configs/adam.yaml}]\n",
                       ["experiments[1] (b): the same run as experiments[0] (a)", "list the experiment once"]),
    "transfer_from_itself": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                             "targets: [{label: b, config: ../configs/adam.yaml}]}\n",
                             ["transfer.targets[0] (b): the same experiment as transfer.sources[0] (a): "
                              "a transfer from itself", "{label: a} among the targets"]),
    "self_reference": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                       "targets: [{label: a}]}\n",
                       ["transfer: every target is a source's own experiment; there is no pair to transfer"]),
    "source_as_target_twice": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}, "
                               "{label: b, config: ../configs/sgd.yaml}], targets: [{label: a}, {label: a}]}\n",
                               ["transfer.targets[1] (a): label 'a' is already used by transfer.targets[0] (a)"]),
    "source_label_other_experiment": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                                      "targets: [{label: a, config: ../configs/sgd.yaml}]}\n",
                                      ["transfer.targets[0] (a): label 'a' is the label of transfer.sources[0] (a), "
                                       "a different experiment"]),
    "unknown_source_label": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                             "targets: [{label: x}]}\n",
                             ["transfer.targets[0] (x): config: required (or the label of a source"]),
    "chain": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/chain.yaml}], "
              "targets: [{label: b, config: ../configs/sgd.yaml}]}\n",
              ["transfer.sources[0] (a): ", "chain.yaml is itself a transfer (transfer.source: "]),
    "transfer_in_experiments": ("name: s\nexperiments: [{label: a, config: ../configs/chain.yaml}]\n",
                                ["experiments[0] (a): ", "is itself a transfer"]),
    "other_domain": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                     "targets: [{label: rl, config: " + str(ROOT / "configs/rl/ppo_cartpole.yaml") + "}]}\n",
                     ["transfer.targets[0] (rl): cannot take the tickets of transfer.sources[0] (a): domain 'rl', "
                      "the source's is 'vision'"]),
    "other_shapes": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                     "targets: [{label: conv, config: ../configs/conv.yaml}], adapt: [output.weight]}\n",
                     ["transfer.targets[0] (conv): cannot take the tickets of transfer.sources[0] (a): ",
                      "convs.0.weight: prunable in the model (4, 1, 3, 3), not in the ticket"]),
    "levels_beyond_the_source": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                                 "targets: [{label: b, config: ../configs/sgd.yaml}], levels: [2, 5]}\n",
                                 ["transfer.levels: [5] beyond the levels of transfer.sources[0] (a) (1..3)"]),
    "empty": ("name: s\n", ["the study has no experiments and no transfer matrix"]),
    "empty_matrix": ("name: s\ntransfer: {sources: [], targets: []}\n",
                     ["transfer.sources/targets: a transfer matrix needs at least one source and one target"]),
    "seed_in_study_and_override": ("name: s\nseeds: [0, 1]\nexperiments: [{label: a, config: ../configs/adam.yaml, "
                                   "overrides: {seed: 3}}]\n",
                                   ["experiments[0] (a): seed: the study sets seeds: [0, 1]; set the seeds in one "
                                    "place"]),
    "seeds_in_study_and_grid": ("name: s\nseeds: [0]\nexperiments: [{label: a, config: ../configs/adam.yaml, "
                                "grid: {seeds: [[1], [2]]}}]\n",
                                ["experiments[0] (a[seeds=[1]]): seeds: the study sets seeds: [0]"]),
    "target_seed_the_source_lacks": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                                     "targets: [{label: b, config: ../configs/sgd.yaml, overrides: {seed: 2}}]}\n",
                                     ["transfer.targets[0] (b): seed 2 is not among the seeds of "
                                      "transfer.sources[0] (a) ([0])"]),
    "transfer_override": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml, "
                          "overrides: {transfer.source: x}}]\n",
                          ["experiments[0] (a): transfer.source: a study's transfers come from its transfer matrix"]),
    "controls_twice": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                       "targets: [{label: b, config: ../configs/sgd.yaml, overrides: {controls: [reinit]}}], "
                       "controls: [random_mask]}\n",
                       ["transfer.targets[0] (b): controls: transfer.controls sets the transfer runs' controls"]),
    "target_that_cannot_transfer": ("name: s\ntransfer: {sources: [{label: a, config: ../configs/adam.yaml}], "
                                    "targets: [{label: b, config: ../configs/sgd.yaml, overrides: "
                                    "{rewind: {step: 5, optimizer: true}}}]}\n",
                                    ["transfer.targets[0] (b): as a target of transfer.sources[0] (a): "
                                     "rewind.optimizer: a transfer starts from the source tickets' weights"]),
    "bad_label": ("name: s\nexperiments: [{label: a/b, config: ../configs/adam.yaml}]\n",
                  ["experiments[0] (a/b): label: 'a/b' must start with a letter or digit"]),
    "bad_name": ("name: my study\nexperiments: [{label: a, config: ../configs/adam.yaml}]\n",
                 ["name: 'my study' must start"]),
    "grid_value_twice": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml, "
                         "grid: {train.steps: [20, 20]}}]\n",
                         ["experiments[0] (a): grid.train.steps: a value is listed twice in [20, 20]"]),
    "grid_and_override": ("name: s\nexperiments: [{label: a, config: ../configs/adam.yaml, "
                          "overrides: {train.steps: 20}, grid: {train.steps: [30]}}]\n",
                          ["experiments[0] (a): grid.train.steps: also set in overrides"]),
    "item_not_a_mapping": ("name: s\nexperiments: [../configs/adam.yaml]\n",
                           ["experiments[0]: expected a mapping of StudyItem settings"]),
    "duplicate_yaml_key": ("name: s\nname: t\n", ["key 'name' is given twice in one mapping"]),
    "not_yaml": ("name: [s\n", ["not valid YAML"]),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_study_is_refused_naming_the_entry_and_writes_nothing(case, configs, tmp_path):
    text, fragments = BAD[case]
    refused(write_study(tmp_path, text), tmp_path / "runs", *fragments)


def test_a_missing_study_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_study(tmp_path / "nope.yaml", tmp_path / "runs")


def test_a_grid_error_names_the_combination(configs, tmp_path):
    path = write_study(tmp_path, "name: s\nexperiments: [{label: c, config: ../configs/adam.yaml, "
                                 "grid: {domain.optimizer.lr: [0.02], rewind.lr: [1]}}]\n")
    refused(path, tmp_path / "runs", "experiments[0] (c[domain.optimizer.lr=0.02,rewind.lr=1]): config.rewind.lr: "
                                     "unknown key")


def test_loading_a_study_imports_no_torch(tmp_path):
    code = ("import sys; from tickets.study import load_study; "
            f"load_study({str(ROOT / 'configs/studies/cross_domain.yaml')!r}, 'runs'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_compiled_entries_run_in_order_and_the_target_trains_its_seeds_source_tickets(configs, tmp_path):
    path = write_study(tmp_path, """
name: tiny
seeds: [0, 1]
transfer:
  sources: [{label: adam, config: ../configs/adam.yaml, overrides: {pruning.levels: 1, train.steps: 10}}]
  targets: [{label: sgd, config: ../configs/sgd.yaml, overrides: {train.steps: 10}}]
  controls: []
""")
    out = tmp_path / "runs"
    study = load_study(path, out)
    for entry in study.entries:
        make_runner(entry.experiment, out).execute()
    for k in (0, 1):
        source = study.run_dir(f"adam@seed{k}") / "level_01" / "ticket"
        ticket = yaml.safe_load((study.run_dir(f"adam->sgd@seed{k}") / "level_01" / "ticket" / "ticket.json")
                                .read_text())["found"]
        assert (ticket["method"], ticket["source"], ticket["seed"]) == ("transfer", str(source), k)
