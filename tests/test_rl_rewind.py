"""Rewinding in RL: θk in a ticket is the step-k policy bit for bit, and the optimizer state at k
(rewind.optimizer) is restored bit for bit.

A level restarted at k cannot replay the uninterrupted run after k: SB3 resets the environments
at the start of learn() (the uninterrupted run was mid-episode at k) and reseeds its generators,
so the rollouts differ. What can be exact is checked instead: the restored optimizer state equals
the captured one, and the first update from it, on the uninterrupted run's next rollout, equals
the uninterrupted run's update."""

import copy

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from stable_baselines3.common.logger import configure  # noqa: E402

from domains.rl import RLConfig, RLDomain  # noqa: E402
from domains.rl.domain import algorithm_of  # noqa: E402
from tickets import registry  # noqa: E402
from tickets.artifact import Ticket  # noqa: E402
from tickets.config import load_experiment  # noqa: E402
from tickets.enforce import MaskEnforcer  # noqa: E402
from tickets.methods import make_runner  # noqa: E402
from tickets.masks import Mask  # noqa: E402
from tickets.rewind import capture, load_state  # noqa: E402

K, N = 64, 96  # rewind step and budget: two and three 32-step rollouts


class SpyRL(RLDomain):
    """RL, recording each training's start weights and the optimizer state it was given."""

    name = "spy_rl"
    starts: list = []

    def train(self, model, **kw):
        SpyRL.starts.append((capture(model), kw.get("optimizer_state")))
        return super().train(model, **kw)


registry.domains.register("spy_rl", SpyRL)

DOMAIN = {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "net_arch": [16], "eval_episodes": 1}


def equal_states(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def late_rewind_run(tmp_path_factory):
    SpyRL.starts.clear()
    exp = load_experiment({"name": "ppo_late", "train": {"steps": N}, "rewind": {"step": K, "optimizer": True},
                           "pruning": {"levels": 1, "fraction": 0.5}, "controls": ["reinit", "random_mask"],
                           "domain": {"name": "spy_rl", **DOMAIN}})
    run = make_runner(exp, tmp_path_factory.mktemp("runs"), show_progress=False).execute()
    return exp, run, list(SpyRL.starts)


@pytest.fixture(scope="module")
def stopped_at_k(late_rewind_run):
    """An independent same-seed run stopped at step k: its weights and optimizer state."""
    exp, _, _ = late_rewind_run
    domain = RLDomain(RLConfig(**DOMAIN))
    model = domain.build_model(seed=exp.config.seed)
    assert domain.train(model, steps=K, seed=exp.config.seed).steps == K
    return capture(model), domain.optimizer_state(model)


def test_a_ticket_rewinds_to_the_step_k_weights_bit_for_bit(late_rewind_run, stopped_at_k):
    _, run, starts = late_rewind_run
    theta_k, _ = stopped_at_k
    ticket = Ticket.load(run.ticket_dir(1))
    assert equal_states(ticket.rewind, theta_k)
    assert not equal_states(ticket.rewind, run.load_state("init"))
    start, _ = starts[1]  # the level-1 ticket's weights as its training began
    for name, m in ticket.mask.items():
        assert not m.all() and m.any()
        assert torch.equal(start[name][m], theta_k[name][m]), name  # survivors: θk
        assert torch.all(start[name][~m] == 0), name
    for name in theta_k.keys() - ticket.mask.keys():  # biases, log_std: θk as they are
        assert torch.equal(start[name], theta_k[name]), name


def test_the_optimizer_state_at_k_is_saved_and_given_to_ticket_and_mask_control(late_rewind_run, stopped_at_k):
    _, run, starts = late_rewind_run
    _, opt_k = stopped_at_k
    saved = run.load_state("rewind_optimizer")
    assert equal_states(saved, opt_k)
    assert float(saved["optimizer/action_net.weight/step"]) == 2 * 2  # two updates of 2 epochs x 1 batch
    (_, dense), (_, ticket), (_, reinit), (_, random_mask) = starts
    assert dense is None and reinit is None
    assert equal_states(ticket, saved) and equal_states(random_mask, saved)


def _record_updates(model):
    """Wrap the algorithm's train() to keep (rollout buffer, numpy RNG state) before each update."""
    algo = algorithm_of(model)
    real, seen = algo.train, []

    def train():
        seen.append((copy.deepcopy(algo.rollout_buffer), np.random.get_state()))
        real()

    algo.train = train
    return seen


def _replay_update(domain, model, rollout, np_state):
    """One PPO update of ``model`` on a recorded rollout, minibatches drawn as recorded, under
    an all-ones mask."""
    algo = algorithm_of(model)
    algo.set_logger(configure(None, []))
    algo.rollout_buffer = rollout
    np.random.set_state(np_state)
    prunable = domain.prunable(model)
    with MaskEnforcer(prunable, Mask.ones_like({n: p.detach() for n, p in prunable.items()})):
        algo.train()


@pytest.mark.parametrize("restore", [True, False])
def test_ppo_first_update_from_the_restored_state_equals_the_uninterrupted_one(restore):
    domain = RLDomain(RLConfig(**DOMAIN))
    full = domain.build_model(seed=0)
    updates = _record_updates(full)
    at_k = {}

    def on_step(step):
        if step == K:
            at_k.update(weights=capture(full), optimizer=domain.optimizer_state(full))

    domain.train(full, steps=N, seed=0, on_step=on_step)
    rollout, np_state = updates[-1]  # the update on the rollout after k

    resumed = domain.build_model(seed=0)
    load_state(resumed, at_k["weights"])
    state = at_k["optimizer"] if restore else None
    domain.train(resumed, steps=K, start_step=K, seed=0, optimizer_state=state)  # nothing left to run
    restored = domain.optimizer_state(resumed)
    if restore:
        assert equal_states(restored, at_k["optimizer"])
    else:
        assert restored == {}  # a fresh Adam, no moments yet
    _replay_update(domain, resumed, rollout, np_state)
    assert equal_states(capture(resumed), capture(full)) == restore


def test_sac_optimizer_state_carries_the_entropy_coefficient():
    domain = RLDomain(RLConfig(env_id="Pendulum-v1", algorithm="sac", batch_size=16, buffer_size=500,
                               learning_starts=20, net_arch=[16], eval_episodes=1))
    model = domain.build_model(seed=0)
    domain.train(model, steps=60, seed=0)
    state = domain.optimizer_state(model)
    prefixes = {k.split("/")[0] for k in state}
    assert prefixes == {"actor.optimizer", "critic.optimizer", "ent_coef_optimizer", "log_ent_coef"}
    assert float(state["log_ent_coef"]) != 0.0  # it trained away from log(1)
    other = domain.build_model(seed=1)
    domain.train(other, steps=60, start_step=60, seed=0, optimizer_state=state)
    assert equal_states(domain.optimizer_state(other), state)
