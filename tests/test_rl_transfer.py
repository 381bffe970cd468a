"""RL tickets transfer onto an environment variant; tickets that do not fit are refused."""

import pytest
import torch

from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import TicketMismatchError
from tickets.methods import make_runner


def rl_config(name, **domain):
    return {"name": name, "train": {"steps": 64}, "pruning": {"levels": 2, "fraction": 0.5},
            "domain": {"name": "rl", "n_steps": 32, "batch_size": 32, "net_arch": [16], "eval_episodes": 2,
                       **domain},
            "controls": ["random_mask"]}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return make_runner(load_experiment(rl_config("cartpole")), out, show_progress=False).execute(), out


def test_a_cartpole_ticket_transfers_onto_a_variant(source, tmp_path):
    run, _ = source
    cfg = rl_config("cartpole_short", env_kwargs={"max_episode_steps": 100})  # a CartPole variant
    cfg["transfer"] = {"source": str(run.path)}
    target = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    theta0 = Ticket.load(run.ticket_dir(2)).rewind
    for level in (1, 2):
        src, got = Ticket.load(run.ticket_dir(level)), Ticket.load(target.ticket_dir(level))
        assert got.mask == src.mask
        for name, m in got.mask.items():
            assert torch.equal(got.rewind[name][m], theta0[name][m])
    assert [(r["level"], r["condition"]) for r in target.rows()] == [
        (0, "dense"), (1, "ticket"), (1, "random_mask"), (2, "ticket"), (2, "random_mask")]


def test_a_ticket_that_does_not_fit_the_policy_is_refused(source, tmp_path):
    run, _ = source
    cfg = rl_config("wider", net_arch=[32])
    cfg["transfer"] = {"source": str(run.path)}
    with pytest.raises(TicketMismatchError, match=r"mlp_extractor.policy_net.0.weight: ticket \(16, 4\), model \(32, 4\)"):
        make_runner(load_experiment(cfg), tmp_path)
    assert not any(tmp_path.iterdir())


def test_sample_efficiency_is_recorded(source):
    run, _ = source
    rows = run.rows()
    for r in rows:
        assert r["summary"]["return_threshold"] == 475.0  # CartPole-v1's reward_threshold
        assert "steps_to_threshold" in r["summary"]
    assert "steps_to_threshold" in (run.path / "results.csv").read_text().splitlines()[0]
    from domains.rl import RLConfig, RLDomain

    d = RLDomain(RLConfig(net_arch=[16], return_threshold=100.0))
    history = [{"step": 32, "mean_return": 20.0}, {"step": 64, "mean_return": 150.0}, {"step": 96, "mean_return": 90.0}]
    assert d.summarize(history) == {"return_threshold": 100.0, "steps_to_threshold": 64}
    assert d.summarize(history[:1])["steps_to_threshold"] is None


def test_a_cartpole_ticket_transfers_onto_other_physics(source, tmp_path):
    """A variant by env_attrs (gymnasium 1.x CartPole takes no physics keywords)."""
    from domains.rl.domain import algorithm_of

    run, _ = source
    cfg = rl_config("cartpole_long_pole", env_attrs={"length": 1.0, "masspole": 0.2})
    cfg["transfer"] = {"source": str(run.path)}
    runner = make_runner(load_experiment(cfg), tmp_path, show_progress=False)
    env = algorithm_of(runner.domain.build_model(0)).env.envs[0].unwrapped
    assert (env.length, env.masspole, env.polemass_length) == (1.0, 0.2, pytest.approx(0.2))
    target = runner.execute()
    for level in (1, 2):
        assert Ticket.load(target.ticket_dir(level)).mask == Ticket.load(run.ticket_dir(level)).mask
    where = Ticket.load(target.ticket_dir(1)).meta["where"]
    assert where["env_attrs"] == {"length": 1.0, "masspole": 0.2}
