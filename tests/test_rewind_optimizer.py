"""rewind.optimizer: the optimizer state at θk is captured beside the rewind weights and restored
for the ticket and the mask controls (never for reinit); a resumed run then continues exactly."""

import pytest
import torch

from conftest import TinyMLP, vision_config
from domains.vision import VisionDomain
from tickets import registry
from tickets.config import load_experiment
from tickets.enforce import MaskEnforcer
from tickets.errors import ConfigError
from tickets.imp import IMPRun
from tickets.methods import make_runner
from tickets.masks import Mask
from tickets.optim import load_optimizer_tensors, optimizer_tensors
from tickets.rewind import capture, load_state
from tickets.typed import from_dict


class OptSpyVision(VisionDomain):
    """Vision, recording the optimizer state each training gets and the live one at step 10."""

    name = "opt_spy_vision"
    calls: list = []
    live_at_10: dict = {}

    def train(self, model, **kw):
        inner = kw.get("on_step")

        def on_step(step):
            if step == 10:
                OptSpyVision.live_at_10[len(OptSpyVision.calls) - 1] = self.optimizer_state(model)
            if inner is not None:
                inner(step)

        OptSpyVision.calls.append(kw.get("optimizer_state"))
        return super().train(model, **{**kw, "on_step": on_step})


class NoOptimizerStateVision(VisionDomain):
    name = "no_opt_state_vision"
    supports_optimizer_state = False
    trained = 0

    def train(self, model, **kw):
        NoOptimizerStateVision.trained += 1
        return super().train(model, **kw)


registry.domains.register("opt_spy_vision", OptSpyVision)
registry.domains.register("no_opt_state_vision", NoOptimizerStateVision)


def spy_run(tmp_path, optimizer: bool):
    OptSpyVision.calls.clear()
    OptSpyVision.live_at_10.clear()
    exp = load_experiment(vision_config(**{"domain.name": "opt_spy_vision", "rewind.step": 10,
                                           "rewind.optimizer": optimizer, "pruning.levels": 1}))
    return IMPRun(exp, tmp_path, show_progress=False).execute()


def equal_states(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_flat_optimizer_state_round_trips_and_continues_identically():
    torch.manual_seed(0)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))

    def steps(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    for make in (lambda p: torch.optim.Adam(p, lr=1e-2), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)):
        a = TinyMLP()
        opt_a = make(a.parameters())
        steps(a, opt_a, 3)
        names = {id(p): n for n, p in a.named_parameters()}
        state = optimizer_tensors({"opt": opt_a}, names)
        assert state and all(k.startswith("opt/layers.") for k in state)
        b = TinyMLP()
        load_state(b, capture(a))
        opt_b = make(b.parameters())
        load_optimizer_tensors({"opt": opt_b}, {id(p): n for n, p in b.named_parameters()}, state)
        assert equal_states(optimizer_tensors({"opt": opt_b}, {id(p): n for n, p in b.named_parameters()}), state)
        steps(a, opt_a, 2)
        steps(b, opt_b, 2)
        assert equal_states(capture(a), capture(b))
        assert not equal_states(state, optimizer_tensors({"opt": opt_b}, {id(p): n for n, p in b.named_parameters()})), \
            "later steps must not write into the loaded state"


def test_optimizer_state_that_does_not_fit_is_refused():
    model = TinyMLP()
    names = {id(p): n for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(KeyError, match="fit no optimized parameter"):
        load_optimizer_tensors({"opt": opt}, names, {"opt/nothing.weight/exp_avg": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"opt/layers.0.weight/exp_avg has shape \(3,\)"):
        load_optimizer_tensors({"opt": opt}, names, {"opt/layers.0.weight/exp_avg": torch.zeros(3)})


def vision(**kw) -> VisionDomain:
    cfg = {"dataset": {"name": "digits"}, "batch_size": 32, "model": "lenet_300_100", **kw}
    return VisionDomain(from_dict(VisionDomain.Config, cfg))


def test_supervised_resume_at_k_with_the_optimizer_state_is_bit_for_bit():
    """Adam's moments and step count are the only state the step-indexed loop cannot replay:
    with them, 0 -> 8 (captured) then 8 -> 20 under an all-ones mask equals 0 -> 20; without
    them it does not."""
    d = vision(optimizer={"name": "adam", "lr": 1e-3}, schedule={"kind": "cosine", "warmup_steps": 5})
    full = d.build_model(seed=0)
    at_k = {}

    def on_step(s):
        if s == 8:
            at_k.update(weights=capture(full), optimizer=d.optimizer_state(full))

    d.train(full, steps=20, seed=3, on_step=on_step)
    assert d.optimizer_state(full) is None  # only while training
    assert float(at_k["optimizer"]["optimizer/hidden.0.weight/step"]) == 8.0
    resumed, fresh = d.build_model(seed=1), d.build_model(seed=1)
    for model in (resumed, fresh):
        load_state(model, at_k["weights"])
    for model, state in ((resumed, at_k["optimizer"]), (fresh, None)):
        prunable = d.prunable(model)
        with MaskEnforcer(prunable, Mask.ones_like({n: p.detach() for n, p in prunable.items()})):
            d.train(model, steps=20, start_step=8, seed=3, optimizer_state=state)
    assert equal_states(capture(full), capture(resumed))
    assert not equal_states(capture(full), capture(fresh))


def test_the_runner_restores_the_step_k_optimizer_state_except_for_reinit(tmp_path):
    run = spy_run(tmp_path, optimizer=True)
    saved = run.load_state("rewind_optimizer")
    assert equal_states(saved, OptSpyVision.live_at_10[0])  # the dense run's state at k = 10
    dense, *level1 = OptSpyVision.calls
    assert dense is None
    conditions = ["ticket", "reinit", "random_mask", "shuffled_mask"]
    got = dict(zip(conditions, level1))
    assert got["reinit"] is None  # new random weights: a fresh optimizer
    for c in ("ticket", "random_mask", "shuffled_mask"):
        assert equal_states(got[c], saved), c


def test_without_rewind_optimizer_every_level_starts_fresh(tmp_path):
    run = spy_run(tmp_path, optimizer=False)
    assert not run.state_path("rewind_optimizer").exists()
    assert OptSpyVision.calls == [None] * 5


def test_the_default_keeps_existing_hashes():
    base = load_experiment(vision_config(**{"rewind.step": 10}))
    assert load_experiment(vision_config(**{"rewind.step": 10, "rewind.optimizer": False})).hash() == base.hash()
    assert load_experiment(vision_config(**{"rewind.step": 10, "rewind.optimizer": True})).hash() != base.hash()


@pytest.mark.parametrize("overrides, message", [
    ({"rewind.optimizer": True}, "rewind.optimizer: at step 0"),
    ({"rewind.optimizer": True, "rewind.step": 10, "transfer": {"source": "elsewhere"}},
     "rewind.optimizer: a transfer"),
    ({"rewind.optimizer": True, "rewind.step": 10, "pruning.method": "early_bird", "pruning.compressions": [2],
      "pruning.early_bird": {"rewind": False, "every": 10}}, "rewind.optimizer: with pruning.early_bird.rewind false"),
])
def test_rewind_optimizer_where_no_state_exists_is_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=rf"^config\.{message}"):
        load_experiment(vision_config(**overrides))


def test_a_domain_without_optimizer_state_is_refused_before_training(tmp_path):
    exp = load_experiment(vision_config(**{"domain.name": "no_opt_state_vision", "rewind.step": 10,
                                           "rewind.optimizer": True}))
    with pytest.raises(ConfigError, match=r"^rewind.optimizer: domain 'no_opt_state_vision' cannot"):
        make_runner(exp, tmp_path)
    assert NoOptimizerStateVision.trained == 0 and not any(tmp_path.iterdir())


def test_a_run_from_before_the_key_existed_resumes(tmp_path):
    import yaml

    exp = load_experiment(vision_config(**{"pruning.levels": 1, "controls": []}))
    run = IMPRun(exp, tmp_path, show_progress=False).execute()
    stored = yaml.safe_load((run.path / "config.yaml").read_text())
    del stored["rewind"]["optimizer"]  # as written before rewind.optimizer was added
    (run.path / "config.yaml").write_text(yaml.safe_dump(stored))
    IMPRun(exp, tmp_path, show_progress=False).execute()  # same hash, same run: resumes
    stored["rewind"]["step"] = 5
    (run.path / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(ConfigError, match="different config"):
        IMPRun(exp, tmp_path, show_progress=False).execute()
