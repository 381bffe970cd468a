import math

import pytest
import torch

from conftest import vision_config
from domains.vision import VisionDomain
from tickets import registry
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.imp import IMPRun, early_stop
from tickets.report import report
from tickets.rewind import capture
from tickets.store import read_tensors


class SpyVision(VisionDomain):
    """Vision, recording the weights each training starts from."""

    name = "spy_vision"
    starts: list = []

    def train(self, model, **kw):
        SpyVision.starts.append((kw["start_step"], capture(model)))
        return super().train(model, **kw)


registry.domains.register("spy_vision", SpyVision)


def run(tmp_path, **overrides):
    exp = load_experiment(vision_config(**overrides))
    return IMPRun(exp, tmp_path, show_progress=False).execute()


def comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "mask_seconds")} for r in rows]


@pytest.fixture(scope="module")
def spy_run(tmp_path_factory):
    SpyVision.starts.clear()
    exp = load_experiment(vision_config(**{"domain.name": "spy_vision", "rewind.step": 10}))
    run = IMPRun(exp, tmp_path_factory.mktemp("runs"), show_progress=False).execute()
    return run, list(SpyVision.starts)


def test_group_density_is_geometric_per_level(spy_run):
    run, _ = spy_run
    fractions = {"output.weight": 0.1, "hidden.0.weight": 0.2, "hidden.1.weight": 0.2}
    for level in range(1, 4):
        mask = Ticket.load(run.ticket_dir(level)).mask
        for name, p in fractions.items():
            n = mask[name].numel()
            assert abs(mask.kept()[name] - n * (1 - p) ** level) <= level, (level, name)


def test_survivors_start_every_level_at_theta_k_bit_for_bit(spy_run):
    run, starts = spy_run
    theta_k = read_tensors(run.state_path("rewind"))
    theta_0 = read_tensors(run.state_path("init"))
    assert not all(torch.equal(theta_k[n], theta_0[n]) for n in theta_k)  # k = 10: late rewinding
    conditions = [(lvl, c) for lvl in range(1, 4) for c in ["ticket", "reinit", "random_mask", "shuffled_mask"]]
    assert len(starts) == 1 + len(conditions)
    for (level, condition), (start_step, state) in zip(conditions, starts[1:]):
        assert start_step == 10
        ticket_mask = Ticket.load(run.ticket_dir(level)).mask
        for name in ticket_mask:
            used = state[name] != 0  # initial weights are never exactly zero: this is the mask used
            assert used.sum() == ticket_mask[name].sum()
            if condition == "ticket":
                assert torch.equal(used, ticket_mask[name])
                assert torch.equal(state[name][used], theta_k[name][used])  # survivors are θk
            elif condition == "reinit":
                assert torch.equal(used, ticket_mask[name])  # same mask ...
                assert not torch.equal(state[name][used], theta_k[name][used])  # ... new weights
            else:
                assert not torch.equal(used, ticket_mask[name])  # another mask, θk weights
                assert torch.equal(state[name][used], theta_k[name][used])


def test_controls_share_or_change_the_mask_as_defined(spy_run):
    run, _ = spy_run
    for level in range(1, 4):
        rows = {r["condition"]: r for r in run.rows() if r["level"] == level}
        ticket = rows["ticket"]["layer_density"]
        for c in ["reinit", "random_mask", "shuffled_mask"]:
            assert rows[c]["layer_density"] == ticket  # same per-layer sparsity for every control


def test_pruned_weights_are_zero_after_training(spy_run):
    run, _ = spy_run
    for level in range(1, 4):
        mask = Ticket.load(run.ticket_dir(level)).mask
        trained = read_tensors(run.trained_path(level, "ticket"))
        for name, m in mask.items():
            assert torch.all(trained[name][~m] == 0.0)
            assert torch.all(trained[name][m] != 0.0)


def test_results_table_has_a_row_per_level_and_condition(spy_run, capsys):
    run, _ = spy_run
    rows = run.rows()
    assert [(r["level"], r["condition"]) for r in rows][:3] == [(0, "dense"), (1, "ticket"), (1, "random_mask")]
    assert len(rows) == 1 + 3 * 4
    assert rows[0]["weights_remaining_pct"] == 100.0
    for r in rows:
        assert 0.0 <= r["value"] <= 1.0 and r["early_stop_step"] in {10, 20, 30}
    header = (run.path / "results.csv").read_text().splitlines()[0]
    assert header.startswith("level,condition,weights_remaining_pct,metric,value,loss,early_stop_step")
    table, png = report(run.path)
    assert "shuffled_mask" in table and png.read_bytes()[:4] == b"\x89PNG"


def test_killed_run_resumes_to_the_same_table(tmp_path, monkeypatch):
    full = run(tmp_path / "a", **{"pruning.levels": 2})
    calls = {"n": 0}
    original = VisionDomain.train

    def dies_on_fifth_training(self, model, **kw):
        calls["n"] += 1
        if calls["n"] == 5:  # mid-level 2, after its ticket trained
            def on_step(step, inner=kw["on_step"]):
                inner(step)
                if step == 20:
                    raise KeyboardInterrupt
            kw["on_step"] = on_step
        return original(self, model, **kw)

    monkeypatch.setattr(VisionDomain, "train", dies_on_fifth_training)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", **{"pruning.levels": 2})
    monkeypatch.setattr(VisionDomain, "train", original)
    partial_dir = next((tmp_path / "b").iterdir())
    assert len(list(partial_dir.glob("level_*/*.result.json"))) == 4
    assert not list(partial_dir.rglob("*.tmp"))  # nothing half-written left behind

    retrained = {"n": 0}

    def counting(self, model, **kw):
        retrained["n"] += 1
        return original(self, model, **kw)

    monkeypatch.setattr(VisionDomain, "train", counting)
    resumed = run(tmp_path / "b", **{"pruning.levels": 2})
    assert retrained["n"] == 9 - 4  # only the unfinished stages ran
    assert comparable(resumed.rows()) == comparable(full.rows())


def test_early_stop_is_the_lowest_validation_loss():
    history = [{"step": 10, "loss": 0.5, "accuracy": 0.8}, {"step": 20, "loss": 0.3, "accuracy": 0.85},
               {"step": 30, "loss": 0.4, "accuracy": 0.9}]
    assert early_stop(history, "accuracy", True) == 20
    assert early_stop([{k: v for k, v in h.items() if k != "loss"} for h in history], "accuracy", True) == 30
    assert early_stop([], "accuracy", True) is None
    assert math.isclose(0.8 ** 3, 0.512)


def test_a_run_directory_is_not_overwritten_by_another_config(tmp_path):
    first = run(tmp_path, **{"pruning.levels": 1, "controls": []})
    (first.path / "config.yaml").write_text((first.path / "config.yaml").read_text().replace("seed: 0", "seed: 7"))
    from tickets.errors import ConfigError

    with pytest.raises(ConfigError, match="different config"):
        run(tmp_path, **{"pruning.levels": 1, "controls": []})


def test_sigkilled_run_resumes_to_the_same_table(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from tickets.cli import main

    cfg = vision_config(**{"pruning.levels": 2, "train.steps": 150})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "tickets.cli", "run", str(path), "--out", str(tmp_path / "killed"),
                             "--threads", "1", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((tmp_path / "killed").glob("*/level_01/ticket.result.json")):
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = next((tmp_path / "killed").iterdir())
    done = len(list(run_dir.glob("level_*/*.result.json")))
    assert 2 <= done < 9

    assert main(["run", str(path), "--out", str(tmp_path / "killed"), "--quiet"]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    from tickets.run_dir import RunDir

    resumed = RunDir(run_dir).rows()
    whole = RunDir(next((tmp_path / "whole").iterdir())).rows()
    assert len(resumed) == 9
    assert comparable(resumed) == comparable(whole)
