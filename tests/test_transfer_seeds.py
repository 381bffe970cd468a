"""Transfer from a source run over several seeds takes the tickets of the target's own seed; a source
run made with command-line overrides is not found by its YAML, and the error says so."""

import pytest
import yaml

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.seeds import run_seeds

TINY = {"train.steps": 4, "train.eval_every": 0, "pruning.levels": 1, "controls": []}


@pytest.fixture(scope="module")
def seeded_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeded")
    cfg = root / "source.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(**{"name": "src", "seeds": [0, 1], **TINY})))
    out = root / "runs"
    summary = run_seeds(load_experiment(cfg), out, make_runner, show_progress=False)
    runs = {s: make_runner(load_experiment(cfg).with_seed(s), out).run.path for s in (0, 1)}
    return cfg, out, summary, runs


def target(source, **kw):
    return vision_config(**{"name": "dst", "transfer": {"source": str(source)}, **TINY, **kw})


@pytest.mark.parametrize("via", ["yaml", "summary"])
def test_each_target_seed_trains_the_tickets_of_the_same_source_seed(seeded_source, via, tmp_path):
    cfg, out, summary, runs = seeded_source
    source = cfg if via == "yaml" else summary
    for seed in (1, 0):
        run = make_runner(load_experiment(target(source, seed=seed)), out, show_progress=False).execute()
        found = Ticket.load(run.ticket_dir(1), with_rewind=False).meta["found"]
        assert found["source"].startswith(str(runs[seed])), found["source"]
        assert found["source_found"]["seed"] == seed


def test_a_seeded_target_pairs_the_seeds(seeded_source):
    cfg, out, _, runs = seeded_source
    exp = load_experiment(target(cfg, seeds=[0, 1], name="dst_seeds"))
    run_seeds(exp, out, make_runner, show_progress=False)
    for seed in (0, 1):
        run = make_runner(exp.with_seed(seed), out).run
        assert Ticket.load(run.ticket_dir(1), with_rewind=False).meta["found"]["source_found"]["seed"] == seed


def test_a_seed_the_source_lacks_is_refused(seeded_source):
    cfg, out, summary, _ = seeded_source
    for source in (cfg, summary):
        with pytest.raises(ConfigError, match=r"was run with seeds \[0, 1\].*seed 5 is not among them"):
            make_runner(load_experiment(target(source, seed=5)), out)


def test_a_source_run_made_with_overrides_is_named_in_the_error(tmp_path):
    cfg = tmp_path / "source.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(**{"name": "src2", **TINY})))
    out = tmp_path / "runs"
    made = make_runner(load_experiment(cfg, ["train.steps=3"]), out, show_progress=False).execute()
    with pytest.raises(ConfigError, match="has not been run under") as err:
        make_runner(load_experiment(target(cfg)), out)
    assert str(made.path) in str(err.value) and "command-line overrides" in str(err.value)
