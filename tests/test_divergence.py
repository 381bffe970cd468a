"""A diverged training run is an error naming the stage and the step, never a result: a NaN or
infinite loss, weight or metric, or a validation loss far beyond chance (``lr: 1e6``)."""

import math

import pytest
import torch

from conftest import vision_config
from domains.supervised import DivergenceGuard
from domains.vision import VisionDomain
from tickets.config import load_experiment
from tickets.errors import DivergedError
from tickets.imp import IMPRun, early_stop
from tickets.typed import from_dict


def run(tmp_path, overrides=(), **settings):
    exp = load_experiment(vision_config(**{"pruning.levels": 1, "controls": [], **settings}), list(overrides))
    runner = IMPRun(exp, tmp_path, show_progress=False)
    return runner, runner.execute


def assert_nothing_recorded(runner):
    path = runner.run.path
    assert not list(path.glob("level_*/*.result.json")) and not (path / "results.csv").exists()
    assert not list(path.glob("level_*/*.trained.safetensors"))


def test_an_exploding_learning_rate_is_refused_not_recorded(tmp_path):
    # lr=1e6 used to exit 0 with test loss 1e19 and chance accuracy
    runner, execute = run(tmp_path, ["domain.optimizer.lr=1e6"])
    with pytest.raises(DivergedError) as err:
        execute()
    msg = str(err.value)
    assert msg.startswith("level 0 dense: training diverged: the validation loss is ")
    assert "at step 10 (of 30), over 1000 x 2.3" in msg and "lower the learning rate (optimizer.lr is 1e+06)" in msg
    assert "\n" not in msg
    assert_nothing_recorded(runner)


def test_a_nan_loss_is_refused_with_its_step(tmp_path):
    # lr=1e30 used to record nan, with an early-stop step taken from min() over NaNs
    runner, execute = run(tmp_path, ["domain.optimizer.lr=1e30"])
    with pytest.raises(DivergedError, match=r"^level 0 dense: training diverged: the training loss is nan at step "
                                            r"\d+ \(of 30\); lower the learning rate"):
        execute()
    assert_nothing_recorded(runner)


def digits_domain(**kw):
    cfg = {"dataset": {"name": "digits"}, "batch_size": 32, **kw}
    return VisionDomain(from_dict(VisionDomain.Config, cfg))


def nan_from_step(domain, first_bad: int):
    """Make the domain's training loss NaN from (1-based) step ``first_bad`` on."""
    original, calls = domain.loss, {"n": 0}

    def loss(model, batch, *, train):
        value, logits = original(model, batch, train=train)
        if train:
            calls["n"] += 1
            if calls["n"] >= first_bad:
                return value * math.nan, logits
        return value, logits

    domain.loss = loss


def test_the_error_names_the_exact_step_though_it_is_read_only_at_validation():
    d = digits_domain()
    nan_from_step(d, 7)
    model = d.build_model(seed=0)
    seen = []
    with pytest.raises(DivergedError, match=r"the training loss is nan at step 7 \(of 40\)"):
        d.train(model, steps=40, seed=0, eval_every=20, on_step=seen.append)
    assert seen[-1] == 20  # no host read per step: noticed at the first validation point


def test_a_callback_that_ends_training_early_still_meets_the_check():
    class Stop(Exception):  # like an Early-Bird draw
        pass

    d = digits_domain()
    nan_from_step(d, 3)

    def on_step(step):
        if step == 5:
            raise Stop()

    with pytest.raises(DivergedError, match="at step 3 ") as err:
        d.train(d.build_model(seed=0), steps=40, seed=0, on_step=on_step)
    assert isinstance(err.value.__cause__, Stop)
    clean = digits_domain()
    with pytest.raises(Stop):  # a sane run's callback exception passes through unchanged
        clean.train(clean.build_model(seed=0), steps=40, seed=0, on_step=on_step)


def test_gradient_accumulation_micro_batches_are_watched_too():
    d = digits_domain(grad_accumulation=2)
    nan_from_step(d, 9)  # the second micro-batch of step 5
    with pytest.raises(DivergedError, match="at step 5 "):
        d.train(d.build_model(seed=0), steps=10, seed=0)


def test_the_explosion_rule_does_not_fire_on_sane_runs():
    for optimizer in ({"name": "adam", "lr": 0.1}, {"name": "sgd", "lr": 1.0}):
        d = digits_domain(optimizer=optimizer)
        result = d.train(d.build_model(seed=0), steps=60, seed=0, eval_every=20)
        assert all(math.isfinite(h["loss"]) for h in result.history)


def test_the_guard_scale_is_chance_or_the_first_loss():
    guard = DivergenceGuard(steps=10, lr=0.1)
    guard.record(torch.tensor(0.01), torch.zeros(4, 100), 1)  # a rewound start: a low first loss
    guard.check_validation({"loss": 4000.0}, 5)  # 1000 x ln(100) = 4605: not yet
    with pytest.raises(DivergedError, match=r"validation loss is 4.7e\+03 at step 5 \(of 10\), over 1000 x 4.61"):
        guard.check_validation({"loss": 4700.0}, 5)
    with pytest.raises(DivergedError, match="validation loss is nan"):
        guard.check_validation({"loss": math.nan}, 5)
    regression = DivergenceGuard(steps=10, lr=0.1)
    regression.record(torch.tensor(30.0), torch.zeros(4, 1), 1)
    regression.check_validation({"loss": 29_000.0}, 5)  # 1000 x the first loss, chance has no meaning
    with pytest.raises(DivergedError):
        regression.check_validation({"loss": 31_000.0}, 5)


def test_non_finite_weights_after_training_are_refused_for_any_domain(tmp_path, monkeypatch):
    # a domain without a loss (RL) relies on this check: here a bias (not prunable) turns inf
    original = VisionDomain.train

    def train(self, model, **kw):
        result = original(self, model, **kw)
        with torch.no_grad():
            model.output.bias[0] = math.inf
        return result

    monkeypatch.setattr(VisionDomain, "train", train)
    runner, execute = run(tmp_path)
    with pytest.raises(DivergedError, match=r"^level 0 dense: training diverged: output.bias holds NaN or infinite "
                                            r"values after 30 steps; lower the learning rate"):
        execute()
    assert_nothing_recorded(runner)


def test_a_library_error_on_nan_weights_becomes_the_divergence_error(tmp_path, monkeypatch):
    original = VisionDomain.train

    def train(self, model, **kw):
        original(self, model, **kw)
        with torch.no_grad():
            model.output.weight.fill_(math.nan)
        raise ValueError("Expected parameter logits to satisfy the constraint, but found invalid values:\ntensor")

    monkeypatch.setattr(VisionDomain, "train", train)
    runner, execute = run(tmp_path)
    with pytest.raises(DivergedError, match=r"output.weight holds NaN or infinite values, and training stopped "
                                            r"\(ValueError: Expected parameter logits .* invalid values\)"):
        execute()
    assert_nothing_recorded(runner)


def test_a_non_finite_metric_is_refused(tmp_path, monkeypatch):
    original = VisionDomain.evaluate

    def evaluate(self, model, split="test"):
        out = original(self, model, split)
        return {**out, "loss": math.inf} if split == "test" else out

    monkeypatch.setattr(VisionDomain, "evaluate", evaluate)
    runner, execute = run(tmp_path)
    with pytest.raises(DivergedError, match="^level 0 dense: training diverged: the test loss is inf"):
        execute()
    assert_nothing_recorded(runner)


def test_early_stop_ignores_nan_records():
    history = [{"step": 10, "loss": 0.5}, {"step": 20, "loss": math.nan}, {"step": 30, "loss": 0.4},
               {"step": 40, "loss": math.nan}]
    assert early_stop(history, "accuracy", True) == 30
    assert early_stop([{"step": 10, "loss": math.nan}, {"step": 20, "loss": math.nan}], "accuracy", True) is None
    by_metric = [{"step": 10, "accuracy": 0.5}, {"step": 20, "accuracy": math.nan}, {"step": 30, "accuracy": 0.4}]
    assert early_stop(by_metric, "accuracy", True) == 10
    assert early_stop(by_metric, "accuracy", False) == 30


def test_train_loop_guard_costs_no_step_sync(monkeypatch):
    """The loss is read on the host only at validation points and the end: count reads."""
    d = digits_domain()
    reads = {"n": 0}
    original = DivergenceGuard.check

    def counting(self, cause=None):
        reads["n"] += 1
        return original(self, cause)

    monkeypatch.setattr(DivergenceGuard, "check", counting)
    d.train(d.build_model(seed=0), steps=30, seed=0, eval_every=10)
    assert reads["n"] == 4  # three validation points and the end


def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    import yaml

    from tickets.cli import main

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(vision_config(**{"pruning.levels": 1, "controls": []})))
    assert main(["run", str(path), "domain.optimizer.lr=1e6", "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tickets: error: level 0 dense: training diverged: the validation loss is ")
    assert "Traceback" not in "\n".join(err)
    assert not list((tmp_path / "runs").glob("*/level_*/*.result.json"))


def test_a_buffer_non_finite_by_design_is_not_divergence(tmp_path, monkeypatch):
    original = VisionDomain.build_model

    def build_model(self, seed):
        model = original(self, seed)
        model.register_buffer("attention_mask", torch.tensor([0.0, -math.inf]))  # -inf before any training
        return model

    monkeypatch.setattr(VisionDomain, "build_model", build_model)
    runner, execute = run(tmp_path)
    assert [(r["level"], r["condition"]) for r in execute().rows()] == [(0, "dense"), (1, "ticket")]


def test_a_diverging_early_bird_search_names_its_level(tmp_path):
    from tickets.early_bird_run import EarlyBirdRun

    cfg = vision_config(**{"pruning.method": "early_bird", "pruning.compressions": [5], "pruning.groups": [],
                           "pruning.early_bird": {"every": 10, "window": 5}, "controls": []})
    runner = EarlyBirdRun(load_experiment(cfg), tmp_path, show_progress=False)
    runner.run.claim(runner.experiment.resolved())
    runner._dense()  # level 0 trains as usual; then the search's loss turns NaN
    nan_from_step(runner.domain, 3)
    previous = runner.run.load_state("init")
    with pytest.raises(DivergedError, match=r"^level 1 early-bird search: .*training loss is nan at step 3"):
        runner.level_mask(1, previous)
    assert not (runner.run.level_dir(1) / "drawn.safetensors").exists()


def test_the_guard_names_the_first_bad_step_whenever_it_is_checked(monkeypatch):
    monkeypatch.setattr(DivergenceGuard, "FLUSH", 8)
    guard = DivergenceGuard(steps=100, lr=0.1)
    for step in range(1, 8):  # below the flush: nothing inspected yet, so nothing raised
        guard.record(torch.tensor(math.inf if step in (5, 6) else 1.0), None, step)
    with pytest.raises(DivergedError, match=r"training loss is inf at step 5 \(of 100\)"):
        guard.record(torch.tensor(1.0), None, 8)  # the 8th loss flushes: the first bad one is named
    clean = DivergenceGuard(steps=100, lr=0.1)
    for step in range(1, 20):
        clean.record(torch.tensor(float(step)), None, step)
    assert len(clean.pending) == 19 - 16  # flushed twice, nothing kept that was checked
    clean.record(torch.tensor(math.nan, dtype=torch.bfloat16), None, 20)
    with pytest.raises(DivergedError, match="training loss is nan at step 20"):
        clean.check()
