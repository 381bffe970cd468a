"""RL reports no loss, so its divergence shows in the weights: a stage whose weights grew over
1000 x max(1, their max |w| at the start) is refused, for any domain. And evaluations fall only
where the RL loop's weights change (a multiple of its rollout)."""

import re

import pytest
import torch
import yaml
from safetensors.torch import load_file

torch.set_num_threads(1)

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from tickets.cli import main  # noqa: E402
from tickets.config import load_experiment  # noqa: E402
from tickets.errors import DivergedError  # noqa: E402
from tickets.imp import IMPRun  # noqa: E402
from tickets.weight_growth import WEIGHT_GROWTH, check_weight_growth, max_abs_weight  # noqa: E402


def rl_config(**overrides):
    """PPO on CartPole, one 32-step rollout per level (a second or so per stage)."""
    cfg = {
        "name": "tiny_rl",
        "seed": 0,
        "domain": {"name": "rl", "env_id": "CartPole-v1", "n_steps": 32, "batch_size": 32, "n_epochs": 2,
                   "net_arch": [16], "eval_episodes": 1, "optimizer": {"name": "adam", "lr": 3e-4}},
        "train": {"steps": 32, "eval_every": 32},
        "pruning": {"levels": 1, "fraction": 0.2},
        "controls": [],
    }
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg


def runner_for(tmp_path, overrides=(), **settings):
    return IMPRun(load_experiment(rl_config(**settings), list(overrides)), tmp_path, show_progress=False)


def assert_nothing_recorded(runner):
    path = runner.run.path
    assert not list(path.glob("level_*/*.result.json")) and not (path / "results.csv").exists()
    assert not list(path.glob("level_*/*.trained.safetensors"))
    assert not list(path.glob("level_*/ticket*"))


def test_an_exploding_ppo_learning_rate_is_refused_not_recorded(tmp_path):
    # lr=1e6 used to exit 0 with a recorded mean_return, its weights at max |w| ~1e6 and finite
    runner = runner_for(tmp_path, ["domain.optimizer.lr=1e6"])
    with pytest.raises(DivergedError) as err:
        runner.execute()
    msg = str(err.value)
    assert re.match(r"^level 0 dense: training diverged: the weights grew from max \|w\| 0\.\d+ to \d(\.\d+)?e\+0[5-7] "
                    r"\(\S+\) in 32 steps, over 1000 x 1 \(the larger of 1 and the start's max \|w\|\); lower the "
                    r"learning rate \(optimizer\.lr is 1e\+06\); nothing of this stage is recorded$", msg), msg
    assert_nothing_recorded(runner)


def test_a_sane_ppo_run_is_recorded_far_below_the_threshold(tmp_path):
    runner = runner_for(tmp_path)
    start, _ = max_abs_weight(runner.domain.build_model(seed=0))
    rows = runner.execute().rows()
    assert [(r["level"], r["condition"]) for r in rows] == [(0, "dense"), (1, "ticket")]
    trained = load_file(str(runner.run.trained_path(0, "dense")))
    peak = max(float(t.abs().max()) for t in trained.values())
    assert peak < WEIGHT_GROWTH / 100 * max(1.0, start)  # a wide margin, not a near miss


def test_the_growth_rule_scales_with_the_start_weights(tmp_path):
    runner = runner_for(tmp_path)
    model = runner.domain.build_model(seed=0)
    weight = model.action_net.weight
    with torch.no_grad():
        weight[0, 0] = 999.0
    check_weight_growth("level 0 dense", model, 0.5, 32)  # under 1000 x max(1, 0.5)
    check_weight_growth("level 0 dense", model, 2.0, 32)
    with torch.no_grad():
        weight[0, 0] = -1001.0
    with pytest.raises(DivergedError, match=r"from max \|w\| 0\.5 to 1e\+03 \(action_net\.weight\) in 32 steps, "
                                            r"over 1000 x 1 "):
        check_weight_growth("level 0 dense", model, 0.5, 32)
    check_weight_growth("level 0 dense", model, 2.0, 32)  # 1000 x 2: a larger start allows more
    assert not runner.run.path.exists()


def test_an_eval_every_between_rollouts_is_refused_by_the_cli(tmp_path, capsys):
    # 48 with 32-step rollouts: the evaluation at 48 saw the weights of step 32, and was recorded as 48
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(rl_config(**{"train.steps": 96})))
    out = tmp_path / "runs"
    assert main(["run", str(path), "train.eval_every=48", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("tickets: error:")]
    assert errors == [err[-1]] and "Traceback" not in "\n".join(err)
    assert errors[0].startswith("tickets: error: train.eval_every: 48 is not a step the rl loop reports")
    assert "use 32 or 64, or 0 to evaluate only at the end" in errors[0]
    assert not out.exists() or not any(out.iterdir())
    for every in (0, 32, 64):  # on a rollout, or only at the end: accepted (built, nothing trained)
        runner_for(out, [f"train.eval_every={every}"], **{"train.steps": 96})
    assert not out.exists() or not any(out.iterdir())
