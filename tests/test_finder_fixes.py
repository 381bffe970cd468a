"""Review fixes in the finders: Early-Bird without a draw and without rewinding trains (from θk, said
so) instead of recording untrained networks; a SynFlow config a domain cannot score is a one-line
CLI error before any training."""

import yaml

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.methods import make_runner


def test_early_bird_without_rewind_and_without_a_draw_trains_every_condition(tmp_path, capsys):
    cfg = vision_config(**{"pruning.method": "early_bird", "pruning.compressions": [5], "pruning.groups": [],
                           # 3 observations (steps 10, 20, 30) never fill a window of 5: nothing is drawn
                           "pruning.early_bird": {"every": 10, "window": 5, "rewind": False},
                           "train.steps": 30, "train.eval_every": 10, "controls": ["reinit", "random_mask"]})
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    rows = {r["condition"]: r for r in run.rows() if r["level"] == 1}
    for condition in ("ticket", "reinit", "random_mask"):
        assert [h["step"] for h in rows[condition]["history"]] == [10, 20, 30], condition  # 30 steps trained
    found = Ticket.load(run.ticket_dir(1), with_rewind=False).meta["found"]
    assert found["drawn_step"] is None and found["start"] == "rewind" and found["start_step"] == 0


def test_early_bird_without_rewind_goes_on_from_the_draw(tmp_path):
    cfg = vision_config(**{"pruning.method": "early_bird", "pruning.compressions": [5], "pruning.groups": [],
                           "pruning.early_bird": {"every": 5, "window": 2, "epsilon": 0.9, "rewind": False},
                           "train.steps": 30, "train.eval_every": 10, "controls": []})
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    found = Ticket.load(run.ticket_dir(1), with_rewind=False).meta["found"]
    assert found["drawn_step"] == 10 and found["start"] == "draw" and found["start_step"] == 10
    ticket = next(r for r in run.rows() if r["condition"] == "ticket")
    assert [h["step"] for h in ticket["history"]] == [20, 30]


def test_synflow_on_a_domain_without_an_all_ones_input_is_a_cli_error(tmp_path, capsys):
    from domains.vision import VisionDomain
    from tickets import registry
    from tickets.cli import main

    class NoOnes(VisionDomain):
        name = "no_ones_cli"
        forward_ones_unavailable = "inputs are graphs"

        def forward_ones(self, model):
            return None

    registry.domains.register("no_ones_cli", NoOnes)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(**{"domain.name": "no_ones_cli", "pruning.method": "at_init",
                                                   "pruning.scorer": "synflow", "pruning.compressions": [10]})))
    assert main(["run", str(cfg), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tickets: error: pruning.scorer: SynFlow needs an all-ones input" in err and "inputs are graphs" in err
    assert "Traceback" not in err and not any((tmp_path / "runs").rglob("*.safetensors"))
