"""Pruning at initialisation and Early-Bird as experiments, with collapse diagnostics in every row."""

import pytest
import torch

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.store import read_tensors


def at_init(scorer, **kw):
    return vision_config(**{"pruning.method": "at_init", "pruning.scorer": scorer, "pruning.compressions": [10, 100],
                            "pruning.groups": [], "controls": ["random_mask"], **kw})


@pytest.mark.parametrize("scorer", ["snip", "grasp", "synflow", "magnitude", "random"])
def test_pruning_at_init_hits_each_target_and_trains_from_theta0(scorer, tmp_path):
    run = make_runner(load_experiment(at_init(scorer, **{"pruning.iterations": 5})), tmp_path,
                      show_progress=False).execute()
    rows = {(r["level"], r["condition"]): r for r in run.rows()}
    theta0 = read_tensors(run.state_path("init"))
    for level, compression in [(1, 10), (2, 100)]:
        ticket = Ticket.load(run.ticket_dir(level))
        total = sum(m.numel() for m in ticket.mask.values())
        assert sum(ticket.mask.kept().values()) == round(total / compression)  # exact-k, globally
        for name, m in ticket.mask.items():
            assert torch.equal(ticket.rewind[name], theta0[name])  # starts from θ0
        assert ticket.meta["found"]["scorer"] == scorer and ticket.meta["found"]["mask_seconds"] >= 0
        for condition in ("ticket", "random_mask"):
            row = rows[(level, condition)]
            assert row["collapse"]["density"] == pytest.approx(1 / compression, rel=1e-3)
            assert isinstance(row["path_survives"], bool)


def test_synflow_without_an_all_ones_input_says_why(tmp_path):
    from domains.vision import VisionDomain
    from tickets import registry

    class NoOnes(VisionDomain):
        name = "no_ones"
        forward_ones_unavailable = "inputs are graphs"

        def forward_ones(self, model):
            return None

    registry.domains.register("no_ones", NoOnes)
    exp = load_experiment(at_init("synflow", **{"domain.name": "no_ones"}))
    with pytest.raises(ValueError, match="SynFlow needs an all-ones input.*inputs are graphs"):
        make_runner(exp, tmp_path)


def test_early_bird_draws_a_ticket_and_records_when(tmp_path):
    cfg = vision_config(**{"pruning.method": "early_bird", "pruning.compressions": [5], "pruning.groups": [],
                           "pruning.early_bird": {"every": 5, "window": 3, "epsilon": 0.2},
                           "train.steps": 200, "domain.optimizer": {"name": "sgd", "lr": 0.05},
                           "controls": ["random_mask"]})
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    ticket = Ticket.load(run.ticket_dir(1))
    found = ticket.meta["found"]
    assert found["method"] == "early_bird" and found["drawn_step"] is not None
    assert found["drawn_step"] < 200 and found["drawn_step"] % 5 == 0
    total = sum(m.numel() for m in ticket.mask.values())
    assert sum(ticket.mask.kept().values()) == round(total / 5)
    search = found["search"]["observations"]
    assert search[-1]["max_distance"] < 0.2  # the window condition held at the draw
    assert [r["condition"] for r in run.rows()] == ["dense", "ticket", "random_mask"]


def test_collapse_is_reported_in_the_results_table(tmp_path):
    run = make_runner(load_experiment(at_init("magnitude", **{"pruning.compressions": [1000]})), tmp_path,
                      show_progress=False).execute()
    row = next(r for r in run.rows() if r["condition"] == "ticket")
    assert row["collapse"]["kept"] == round(row["collapse"]["total"] / 1000)
    # 50 weights left by magnitude at init: no input-to-output path survives, though no layer is empty
    assert row["path_survives"] is False and row["collapse"]["collapsed"] is True
    dense = next(r for r in run.rows() if r["condition"] == "dense")
    assert dense["path_survives"] is True and dense["empty_layers"] == []
    header = (run.path / "results.csv").read_text().splitlines()[0]
    assert "path_survives" in header and "empty_layers" in header
    from tickets.report import format_table

    table = format_table(run.rows())
    assert "CUT" in table and "highest compression with an input-to-output path (tickets): none" in table


def test_finder_configs_are_checked():
    with pytest.raises(ConfigError, match="compressions: method 'at_init' needs target compressions"):
        load_experiment(vision_config(**{"pruning.method": "at_init"}))
    with pytest.raises(ConfigError, match="rewind.step: pruning at initialisation trains from θ0"):
        load_experiment(at_init("snip", **{"rewind.step": 5}))
    # settings that need no model are refused with the config, before torch is imported
    with pytest.raises(ConfigError, match="pruning.scorer: 'snip' scores the initialisation, not trained weights"):
        load_experiment(vision_config(**{"pruning.scorer": "snip"}))
    with pytest.raises(ConfigError, match="pruning.early_bird.every: 500 is beyond train.steps"):
        load_experiment(vision_config(**{"pruning.method": "early_bird", "pruning.compressions": [5],
                                         "pruning.early_bird": {"every": 500}}))


@pytest.mark.parametrize("overrides, message", [
    ({"pruning.method": "early_bird", "pruning.compressions": [5], "pruning.early_bird": {"mode": "bn_channels", "every": 10}},
     "pruning.early_bird.mode: LeNet300100 has no BatchNorm layer"),
])
def test_finder_settings_that_cannot_run_are_refused_before_training(tmp_path, overrides, message):
    exp = load_experiment(vision_config(**{"pruning.groups": [], **overrides}))
    with pytest.raises(ConfigError, match=message):
        make_runner(exp, tmp_path)
    assert not any(tmp_path.iterdir())


def test_rl_rewind_steps_must_fall_on_a_rollout(tmp_path):
    cfg = {"name": "rl", "domain": {"name": "rl", "n_steps": 32, "batch_size": 32, "net_arch": [16]},
           "train": {"steps": 128}, "rewind": {"step": 40}}
    with pytest.raises(ConfigError, match=r"rewind.step: 40 is not a step the rl loop reports \(it reports every 32 steps\)"):
        make_runner(load_experiment(cfg), tmp_path)
