"""Linear mode connectivity (Frankle et al. 2020): the barrier as defined, exact path ends, zero
instability for two copies under the same noise, θk replayed bit for bit, BatchNorm re-estimated."""

import json

import pytest
import torch
from torch import nn

from conftest import vision_config
from tickets.cli import main
from tickets.config import load_experiment
from tickets.methods import make_runner
from tickets.lmc import barrier, badness, over_worse_end, evaluate_path, interpolate, recompute_batchnorm, replay_to, train_copy
from tickets.rewind import load_state
from tickets.runner import seed_everything, stage_seed


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = vision_config(**{"pruning.levels": 1, "train.steps": 20, "controls": [], "rewind.step": 5})
    runner = make_runner(load_experiment(cfg), tmp_path_factory.mktemp("runs"), show_progress=False)
    runner.execute()
    return runner


def test_the_bump_over_the_worse_end_separates_a_barrier_from_unequal_ends():
    # -return along a path between PPO copies ending at 480 and 180: monotone, no bump
    monotone = [-480.0, -400.0, -300.0, -180.0]
    assert barrier(monotone) == pytest.approx(150.0) and over_worse_end(monotone) == 0.0
    assert over_worse_end([0.1, 0.5, 0.3]) == pytest.approx(0.2) and barrier([0.1, 0.5, 0.3]) == pytest.approx(0.3)
    assert over_worse_end([0.2, 0.2, 0.2]) == 0.0
    with pytest.raises(ValueError, match="non-finite"):
        over_worse_end([0.1, float("inf"), 0.2])


def test_the_barrier_is_the_highest_error_minus_the_mean_of_the_ends():
    assert barrier([0.10, 0.30, 0.20]) == pytest.approx(0.30 - 0.15)
    assert barrier([0.2, 0.2, 0.2]) == 0.0
    assert barrier([0.1, 0.2]) == pytest.approx(0.05)  # ends that differ: half their difference, as defined
    assert badness(0.93, True) == pytest.approx(0.07) and badness(12.0, False) == 12.0
    with pytest.raises(ValueError, match="non-finite"):
        barrier([0.1, float("nan"), 0.2])


def test_interpolation_is_exact_at_the_ends_and_takes_integers_from_the_nearer_one():
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(50, generator=g), "n": torch.tensor(3)}
    b = {"w": torch.randn(50, generator=g) * 1e3, "n": torch.tensor(7)}
    assert torch.equal(interpolate(a, b, 0.0)["w"], a["w"]) and torch.equal(interpolate(a, b, 1.0)["w"], b["w"])
    assert torch.allclose(interpolate(a, b, 0.25)["w"], 0.75 * a["w"] + 0.25 * b["w"], rtol=1e-5, atol=1e-3)
    assert [int(interpolate(a, b, x)["n"]) for x in (0.0, 0.49, 0.5, 1.0)] == [3, 3, 7, 7]


def _copies(runner, k, seeds):
    dom, cfg = runner.domain, runner.config
    model = dom.build_model(seed=cfg.seed)
    load_state(model, runner.run.load_state("init"))
    seed_everything(stage_seed(cfg.seed, 0, "dense"))
    theta_k = replay_to(dom, model, steps=cfg.train.steps, k=k, seed=cfg.seed)
    mask = runner._mask_of(1)
    ends = []
    for seed in seeds:
        model = dom.build_model(seed=cfg.seed)
        load_state(model, theta_k)
        seed_everything(seed)
        prunable = {n: p for n, p in model.named_parameters() if n in mask}
        ends.append(train_copy(dom, model, prunable, mask, steps=cfg.train.steps, k=k, seed=seed))
    return model, theta_k, ends, mask


def test_the_replayed_theta_k_is_the_runs_saved_one_bit_for_bit(run):
    _, theta_k, _, _ = _copies(run, 5, [])
    saved = run.run.load_state("rewind")
    assert set(saved) == set(theta_k) and all(torch.equal(saved[n], theta_k[n]) for n in saved)


def test_two_copies_under_the_same_noise_have_no_barrier_and_the_ends_are_the_trained_networks(run):
    model, _, (a, b), mask = _copies(run, 5, [11, 11])
    assert all(torch.equal(a[n], b[n]) for n in a)
    alphas, metrics = evaluate_path(run.domain, model, a, b, points=4)
    errors = [badness(m["accuracy"], True) for m in metrics]
    assert barrier(errors) == 0.0 and alphas == [0.0, 1 / 3, 2 / 3, 1.0]
    model, _, (a, b), mask = _copies(run, 5, [11, 12])
    assert any(not torch.equal(a[n], b[n]) for n in a)  # other noise, other networks
    for n, m in mask.items():
        assert torch.all(a[n][~m] == 0) and torch.all(b[n][~m] == 0)  # the mask held in both copies
    _, metrics = evaluate_path(run.domain, model, a, b, points=3)
    for end, state in ((metrics[0], a), (metrics[-1], b)):
        load_state(model, state)
        assert end == run.domain.evaluate(model, split="test")  # exactly the trained networks' metrics


class _NormDomain:
    def scoring_loss(self, model, batch):
        return model(batch).sum()


def test_batchnorm_statistics_are_reestimated_as_the_average_over_the_batches():
    model = nn.Sequential(nn.BatchNorm1d(3))
    model.eval()
    batches = [torch.randn(16, 3) + shift for shift in (0.0, 4.0)]
    recompute_batchnorm(_NormDomain(), model, batches)
    bn = model[0]
    expected = torch.stack([b.mean(0) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-6)
    assert bn.momentum == 0.1 and not model.training  # restored


def test_the_cli_writes_the_analysis_and_refuses_bad_input_before_training(run, capsys):
    path = str(run.run.path)
    assert main(["analyze", path, "lmc", "--ks", "25"]) == 2
    assert "--ks: [25] are not steps the vision loop reports below train.steps (20)" in capsys.readouterr().err
    assert main(["analyze", path, "lmc", "--levels", "3"]) == 2
    assert "no ticket at level(s) [3] (it has [1])" in capsys.readouterr().err
    assert not (run.run.path / "analysis/lmc").exists()
    assert main(["analyze", path, "lmc", "--ks", "0", "5", "--points", "3"]) == 0
    info = json.loads((run.run.path / "analysis/lmc/lmc.json").read_text())
    assert [(p["level"], p["k"]) for p in info["paths"]] == [(0, 0), (1, 0), (0, 5), (1, 5)]
    for p in info["paths"]:
        assert p["instability"] == pytest.approx(max(p["errors"]) - (p["errors"][0] + p["errors"][-1]) / 2)
        assert p["over_worse_end"] == pytest.approx(max(p["errors"]) - max(p["errors"][0], p["errors"][-1]))
        assert len(p["alphas"]) == 3
    assert (run.run.path / "analysis/lmc/instability.png").read_bytes()[:4] == b"\x89PNG"


def test_a_non_finite_metric_on_the_path_is_refused_not_recorded():
    from tickets.errors import DivergedError
    from tickets.lmc import path_result

    class Dom:
        primary_metric, higher_is_better = "accuracy", True

    metrics = [{"accuracy": 0.9}, {"accuracy": float("nan")}, {"accuracy": 0.9}]
    with pytest.raises(DivergedError, match=r"lmc level 1, k=5: the test accuracy is not finite at α = 0.5"):
        path_result(Dom(), 5, 1, [0.0, 0.5, 1.0], metrics, (1, 2))
    result = path_result(Dom(), 5, 1, [0.0, 0.5, 1.0], [{"accuracy": 0.9}, {"accuracy": 0.8}, {"accuracy": 0.85}],
                         (1, 2))
    assert result.instability == pytest.approx(0.2 - 0.125) and result.over_worse_end == pytest.approx(0.05)
