"""A scorer registered from outside the package runs under IMP when it fits (it scores trained
weights, alone), and is refused before any work when it does not."""

import pytest
import torch

from conftest import vision_config
from tickets import registry
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.scorer_needs import ScorerNeeds
from tickets.scorers import prune
from tickets.selection import assign_groups
from tickets.store import read_tensors


def smallest_first(ctx):
    """The inverse of magnitude: keeps the weights nearest zero (a plugin no built-in equals)."""
    return {n: -w.detach().abs().float() for n, w in ctx.weights.items()}


def needs_data(ctx):
    raise AssertionError("never called: IMP refuses it")


needs_data.needs = ScorerNeeds(weights=("trained", "init"), model=True, data="batches")

registry.scorers.register("test_smallest_first", smallest_first)  # needs nothing declared: weights alone
registry.scorers.register("test_needs_data", needs_data)
registry.scorers.register("test_init_only", smallest_first, ScorerNeeds(weights=("init",)))


def test_a_plugin_scorer_prunes_each_level_by_its_own_scores(tmp_path):
    exp = load_experiment(vision_config(**{"pruning.scorer": "test_smallest_first", "pruning.levels": 2,
                                           "controls": ["random_mask"]}))
    run = make_runner(exp, tmp_path, show_progress=False).execute()
    cfg = exp.config
    previous = None
    for level in (1, 2):
        ticket = Ticket.load(run.ticket_dir(level))
        assert ticket.meta["found"]["scorer"] == "test_smallest_first"
        source = (0, "dense") if level == 1 else (level - 1, "ticket")
        weights = read_tensors(run.trained_path(*source))
        if previous is None:
            previous = type(ticket.mask)({n: torch.ones_like(m) for n, m in ticket.mask.items()})
        groups = assign_groups(list(weights), [(g.pattern, g.fraction) for g in cfg.pruning.groups],
                               cfg.pruning.fraction)
        expected = prune(smallest_first(type("C", (), {"weights": weights})), previous, groups, cfg.pruning.scope)
        for name in expected:
            assert torch.equal(ticket.mask[name], expected[name]), (level, name)
            kept = weights[name][ticket.mask[name]].abs()
            pruned = weights[name][previous[name] & ~ticket.mask[name]].abs()
            assert kept.max() <= pruned.min()  # it kept the smallest, unlike magnitude
        previous = ticket.mask
    assert (run.path / "results.csv").exists()


@pytest.mark.parametrize("name, says", [("test_needs_data", "needs the network itself"),
                                        ("test_init_only", "scores the initialisation")])
def test_a_plugin_scorer_that_does_not_fit_imp_is_refused_before_work(tmp_path, name, says):
    with pytest.raises(ConfigError, match=says):
        load_experiment(vision_config(**{"pruning.scorer": name}))
    assert not any(tmp_path.iterdir())


def test_a_plugin_scorer_with_malformed_needs_is_refused():
    def odd(ctx):
        return {}

    odd.needs = {"data": "batches"}
    registry.scorers.register("test_odd_needs", odd)
    with pytest.raises(ConfigError, match="ScorerNeeds"):
        load_experiment(vision_config(**{"pruning.scorer": "test_odd_needs"}))
