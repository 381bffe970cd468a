"""N:M tickets (pruning.pattern): every group of M consecutive input weights keeps at most N once a
layer reaches density N/M, reached gradually by IMP; the pattern holds through training, rewinding
and transfer; configs and models that cannot take it are refused before work."""

import pytest
import torch

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.nm_pattern import Pattern
from tickets.nm_select import eligible, grouped, keep_top_within, satisfies
from tickets.scorers import prune
from tickets.selection import Group
from tickets.masks import Mask
from tickets.store import read_tensors

INPUT_AXIS = 1  # torch's Linear weights: out x in


def groups_kept(mask: torch.Tensor, m: int = 4, axis: int = INPUT_AXIS) -> torch.Tensor:
    return grouped(mask, axis, m).sum(-1)


def test_the_cap_falls_to_n_as_the_density_reaches_n_over_m():
    p = Pattern.parse("2:4")
    assert [p.cap(d) for d in (1.0, 0.8, 0.76, 0.7, 0.512, 0.505, 0.5, 0.3)] == [4, 4, 4, 3, 3, 2, 2, 2]
    assert Pattern.parse(" 1:8 ").density == 0.125 and str(Pattern.parse("2:4")) == "2:4"


@pytest.mark.parametrize("text, says", [("2-4", "expected 'N:M'"), ("4:2", "1 <= N < M"), ("0:4", "1 <= N < M"),
                                        ("2:2", "1 <= N < M")])
def test_a_malformed_pattern_is_refused(text, says):
    with pytest.raises(ConfigError, match=f"pruning.pattern: .*{says}"):
        load_experiment(vision_config(**{"pruning.pattern": text}))


def test_a_method_that_does_not_apply_patterns_is_refused():
    cfg = vision_config(**{"pruning.pattern": "2:4", "pruning.method": "early_bird", "pruning.compressions": [2]})
    with pytest.raises(ConfigError, match="pruning.pattern: an N:M pattern is applied by imp and at_init, not by "
                                          "method 'early_bird'"):
        load_experiment(cfg)


def test_a_layer_whose_inputs_do_not_split_into_groups_is_refused_before_work(tmp_path):
    exp = load_experiment(vision_config(**{"pruning.pattern": "3:8"}))  # LeNet on digits: 64 -> 300 -> 100 -> 10
    with pytest.raises(ConfigError, match=r"hidden.1.weight \(100, 300\) \(input size 300\)") as info:
        make_runner(exp, tmp_path, show_progress=False)
    assert "hidden.0.weight" not in str(info.value)  # 64 inputs: 8 groups of 8
    assert not any(tmp_path.iterdir())  # nothing written


def test_eligible_keeps_each_groups_highest_alive_scores_ties_to_the_earliest():
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    alive = torch.tensor([[False, True, True, True, True, True, True, True]])
    got = eligible(scores, alive, 1, 4, 2)
    assert got.tolist() == [[False, True, True, False, True, True, False, False]]
    # GPT-2's Conv1D (in x out): the groups run down axis 0
    w = torch.randn(8, 3)
    got = eligible(w.abs(), torch.ones(8, 3, dtype=torch.bool), 0, 4, 2)
    assert satisfies(got, 0, Pattern(2, 4)) and int(got.sum()) == 12
    ref = torch.zeros(3, 2, 4, dtype=torch.bool).scatter_(-1, grouped(w.abs(), 0, 4).topk(2, dim=-1).indices, True)
    assert torch.equal(grouped(got, 0, 4), ref)


def test_pruning_to_half_in_one_step_gives_exactly_2_of_every_4():
    torch.manual_seed(0)
    scores = {"a": torch.randn(6, 16).abs(), "b": torch.randn(5, 8).abs()}
    mask = Mask.ones_like(scores)
    new = prune(scores, mask, [Group("all", 0.5, ("a", "b"))], "global", pattern=Pattern(2, 4),
                input_axes={"a": 1, "b": 1})
    for name in scores:
        assert (groups_kept(new[name]) == 2).all()  # 50% overall and every group at 2: each group exactly 2
    with pytest.raises(ValueError, match="input_axes"):
        prune(scores, mask, [Group("all", 0.5, ("a", "b"))], "global", pattern=Pattern(2, 4))


def test_keep_top_within_keeps_the_count_when_the_cap_allows_it():
    torch.manual_seed(1)
    s = {"w": torch.randn(10, 20).abs()}
    alive = {"w": torch.ones(10, 20, dtype=torch.bool)}
    kept = keep_top_within(s, 140, alive, ["w"], 200, Pattern(2, 4), {"w": 1})  # 70%: cap 3 of 4
    assert int(kept["w"].sum()) == 140 and int(groups_kept(kept["w"].reshape(10, 20)).max()) <= 3


@pytest.fixture(scope="module")
def nm_run(tmp_path_factory):
    cfg = vision_config(**{"pruning.pattern": "2:4", "pruning.levels": 4, "pruning.groups": [],
                           "controls": ["random_mask"], "train.steps": 20})
    out = tmp_path_factory.mktemp("nm")
    return make_runner(load_experiment(cfg), out, show_progress=False).execute(), out


def test_imp_reaches_the_pattern_gradually_and_holds_it_from_density_n_over_m(nm_run):
    run, _ = nm_run
    p = Pattern(2, 4)
    reached = []
    for level in range(1, 5):
        ticket = Ticket.load(run.ticket_dir(level))
        assert ticket.meta["found"]["pattern"] == "2:4"
        for name, m in ticket.mask.items():
            density = m.float().mean().item()
            assert int(groups_kept(m).max()) <= p.cap(density)
            if density <= 0.505:
                assert satisfies(m, INPUT_AXIS, p), (level, name)
                reached.append(level)
        # the per-level rate is kept where the cap allows it: 0.8^level of every layer
        if level < 4:
            for name, m in ticket.mask.items():
                assert int(m.sum()) == pytest.approx(0.8 ** level * m.numel(), abs=level + 1)
    assert min(reached) == 4  # 0.8^3 = 51.2%: cap 3; 0.8^4 = 41%: 2:4 in every layer
    assert not satisfies(Ticket.load(run.ticket_dir(2)).mask["hidden.0.weight"], INPUT_AXIS, p)


def test_the_pattern_survives_training_and_rewinding(nm_run):
    run, _ = nm_run
    theta0 = read_tensors(run.state_path("rewind"))
    ticket = Ticket.load(run.ticket_dir(4))
    trained = read_tensors(run.trained_path(4, "ticket"))
    for name, m in ticket.mask.items():
        assert torch.all(trained[name][~m] == 0.0)
        assert satisfies(trained[name] != 0, INPUT_AXIS, Pattern(2, 4))
        assert torch.equal(ticket.rewind[name][m], theta0[name][m])
    model = load_experiment(run.path / "config.yaml").make_domain().build_model(seed=0)
    ticket.apply(model)  # the ticket rewound onto a fresh model: survivors θk bit for bit, the pattern's zeros
    weights = dict(model.named_parameters())
    for name, m in ticket.mask.items():
        assert torch.equal(weights[name].detach()[m], theta0[name][m]) and torch.all(weights[name].detach()[~m] == 0)
        assert satisfies(weights[name].detach() != 0, INPUT_AXIS, Pattern(2, 4))


def test_a_transferred_nm_ticket_keeps_its_mask_and_pattern(nm_run, tmp_path):
    run, _ = nm_run
    cfg = vision_config(**{"name": "nm_to_sgd", "domain.optimizer": {"name": "sgd", "lr": 0.05},
                           "train.steps": 20, "controls": [], "transfer": {"source": str(run.path), "levels": [4]}})
    target = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    got = Ticket.load(target.ticket_dir(4)).mask
    src = Ticket.load(run.ticket_dir(4)).mask
    trained = read_tensors(target.trained_path(4, "ticket"))
    for name in src:
        assert torch.equal(got[name], src[name])
        assert satisfies(trained[name] != 0, INPUT_AXIS, Pattern(2, 4))


@pytest.mark.parametrize("compression, exact", [(2, True), (4, False)])
def test_at_init_scorers_follow_the_pattern(tmp_path, compression, exact):
    cfg = vision_config(**{"pruning.method": "at_init", "pruning.scorer": "snip", "pruning.pattern": "2:4",
                           "pruning.compressions": [compression], "pruning.groups": [], "controls": [],
                           "train.steps": 10})
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    ticket = Ticket.load(run.ticket_dir(1))
    total = sum(m.numel() for m in ticket.mask.values())
    assert sum(int(m.sum()) for m in ticket.mask.values()) == round(total / compression)
    for m in ticket.mask.values():
        kept = groups_kept(m)
        assert int(kept.max()) <= 2 and (bool((kept == 2).all()) if exact else True)
    assert ticket.meta["found"]["pattern"] == "2:4"


def test_the_level_that_reaches_n_over_m_leaves_exactly_n_in_every_group(tmp_path):
    """Chen et al.'s schedule (10% of the original per level, global) with 2:4: the mild levels
    never take a group below 2, so the fifth level (50%) is exactly 2 of every 4."""
    cfg = vision_config(**{"pruning.pattern": "2:4", "pruning.levels": 5, "pruning.fraction": 0.1,
                           "pruning.fraction_of": "original", "pruning.scope": "global", "pruning.groups": [],
                           "controls": [], "train.steps": 10})
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    for level in range(1, 5):
        mask = Ticket.load(run.ticket_dir(level)).mask
        assert all(int(groups_kept(m).min()) >= 2 for m in mask.values())
    mask = Ticket.load(run.ticket_dir(5)).mask
    assert all(bool((groups_kept(m) == 2).all()) for m in mask.values())
    assert mask.density() == 0.5


def test_the_floor_keeps_each_groups_best_while_the_density_allows():
    alive = {"w": torch.ones(1, 8, dtype=torch.bool)}
    s = {"w": torch.tensor([[9.0, 8.0, 7.5, 7.0, 1.0, 0.9, 0.8, 0.7]])}
    # 6 of 8 (75%): plain top-6 would keep all of the first group and two of the second; the cap (3)
    # and the floor (2) keep 3 + 3
    kept = keep_top_within(s, 6, alive, ["w"], 8, Pattern(2, 4), {"w": 1})["w"]
    assert kept.tolist() == [[True, True, True, False, True, True, True, False]]
    # 4 of 8 (50%): plain top-4 would empty the second group; the pattern keeps exactly 2 + 2
    kept = keep_top_within(s, 4, alive, ["w"], 8, Pattern(2, 4), {"w": 1})["w"]
    assert kept.tolist() == [[True, True, False, False, True, True, False, False]]
