"""The random_units control: a structured ticket's random counterpart, as many whole units of every
group as the ticket keeps, drawn at random, with all they own (Prasanna et al. 2020's random heads
and neurons). Its mask has the ticket's structure and size, not its units."""

import pytest
import torch

from conftest import vision_config
from test_structured_nlp_rl import HEAD_SIZE, HEADS, bert_config, heads_alive
from tickets import registry
from tickets import runner as runner_module
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.stage_seeds import stage_seed
from tickets.structured import prune_units

pytest.importorskip("torch_pruning")


def alive_rows(m):
    return m.reshape(m.shape[0], -1).any(1)


def structured_lenet(**overrides):
    return vision_config(**{"pruning.structure": "units", "pruning.levels": 2, "controls": ["random_units"],
                            "train.steps": 10, **overrides})


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    """The runner after its run, with the mask each random_units stage trained (in level order)."""
    runner = make_runner(load_experiment(structured_lenet()), tmp_path_factory.mktemp("lenet"), show_progress=False)
    runner.trained_masks = []
    check = runner_module.check_control_mask

    def record(name, mask, shapes):
        check(name, mask, shapes)
        runner.trained_masks.append(mask)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_module, "check_control_mask", record)
        runner.execute()
    return runner


def control_mask(runner, level, seed=None):
    ticket = Ticket.load(runner.run.ticket_dir(level)).mask
    seed = stage_seed(runner.config.seed, level, "random_units") if seed is None else seed
    return ticket, registry.control("random_units").unit_mask(ticket, torch.Generator().manual_seed(seed),
                                                              runner.units, runner.shapes)


def test_it_keeps_as_many_whole_units_of_every_layer_as_the_ticket_but_others(lenet):
    rows = {(r["level"], r["condition"]): r for r in lenet.run.rows()}
    assert len(lenet.trained_masks) == 2
    for level, trained in zip((1, 2), lenet.trained_masks):
        ticket, mask = control_mask(lenet, level)
        assert all(torch.equal(trained[n], mask[n]) for n in mask)  # what the stage trained
        for layer in ("hidden.0", "hidden.1"):
            kept = alive_rows(mask[f"{layer}.weight"])
            assert int(kept.sum()) == int(alive_rows(ticket[f"{layer}.weight"]).sum())
            assert not torch.equal(kept, alive_rows(ticket[f"{layer}.weight"]))
            assert torch.equal(mask[f"{layer}.bias"], kept)  # a removed unit takes its bias ...
        # ... and the next layer's columns that read it; alive units keep every alive input
        assert torch.equal(mask["hidden.1.weight"].any(0), alive_rows(mask["hidden.0.weight"]))
        assert torch.equal(mask["output.weight"].any(0), alive_rows(mask["hidden.1.weight"]))
        h1 = mask["hidden.1.weight"]
        assert bool(h1[alive_rows(h1)][:, h1.any(0)].all())
        assert bool(alive_rows(mask["output.weight"]).all())  # the classes are never units
        assert sum(mask.kept().values()) == sum(ticket.kept().values())
        row = rows[(level, "random_units")]
        assert row["weights_remaining_pct"] == pytest.approx(rows[(level, "ticket")]["weights_remaining_pct"])


def test_its_units_are_drawn_uniformly_from_the_stage_seed(lenet):
    ticket, first = control_mask(lenet, 1)
    assert all(torch.equal(first[n], control_mask(lenet, 1)[1][n]) for n in first)  # the stage seed fixes it
    chosen = torch.stack([alive_rows(control_mask(lenet, 1, seed=s)[1]["hidden.1.weight"]) for s in range(400)])
    share = float(alive_rows(ticket["hidden.1.weight"]).float().mean())
    freq = chosen.float().mean(0)  # each of the 100 units kept in about `share` of the draws
    assert float((freq - share).abs().max()) < 0.1
    assert abs(float(freq.mean()) - share) < 1e-6


def test_on_a_bert_it_draws_whole_heads_and_neurons_per_layer(tmp_path):
    runner = make_runner(load_experiment(bert_config(levels=1) | {"controls": ["random_units"]}), tmp_path,
                         show_progress=False)
    g = torch.Generator().manual_seed(1)
    weights = {n: torch.randn(s, generator=g) for n, s in runner.shapes.items()}
    ones = runner.units.mask_without({}, runner.shapes)
    ticket = prune_units(runner.units, weights, ones, {n: 0.5 for n in runner.shapes}, "layer", "l1", runner.shapes)
    mask = registry.control("random_units").unit_mask(ticket, torch.Generator().manual_seed(0), runner.units,
                                                      runner.shapes)
    for layer in (0, 1):
        p = f"bert.encoder.layer.{layer}"
        alive = heads_alive(mask, layer)
        assert len(alive) == len(heads_alive(ticket, layer)) == HEADS // 2
        rows = torch.zeros(HEADS, HEAD_SIZE, dtype=torch.bool)
        rows[alive] = True
        rows = rows.flatten()
        for part in ("query", "key", "value"):
            assert torch.equal(mask[f"{p}.attention.self.{part}.weight"].any(1), rows)
            assert torch.equal(mask[f"{p}.attention.self.{part}.bias"], rows)
        assert torch.equal(mask[f"{p}.attention.output.dense.weight"].any(0), rows)
        kept = mask[f"{p}.intermediate.dense.weight"].any(1)
        assert int(kept.sum()) == int(ticket[f"{p}.intermediate.dense.weight"].any(1).sum())
        assert torch.equal(mask[f"{p}.output.dense.weight"].any(0), kept)
    assert sum(mask.kept().values()) == sum(ticket.kept().values())


@pytest.mark.parametrize("overrides, says", [
    ({}, "needs a structured ticket"),
    ({"pruning.method": "at_init", "pruning.compressions": [2]}, "needs a structured ticket"),
    ({"pruning.structure": "units", "transfer": {"source": "configs/vision/lenet300_mnist_units.yaml"}},
     "a transfer takes its masks from the source")])
def test_a_run_without_structured_units_is_refused_from_the_config(overrides, says):
    with pytest.raises(ConfigError, match=f"controls: random_units draws whole units at random.*{says}"):
        load_experiment(vision_config(**{"controls": ["reinit", "random_units"], **overrides}))


def test_a_plugin_control_that_needs_units_is_refused_from_its_class():
    class MyUnits(registry.control("random_units").__class__):
        pass

    registry.controls.register("test_my_units", MyUnits)
    with pytest.raises(ConfigError, match="controls: test_my_units draws whole units.*prunes single weights"):
        load_experiment(vision_config(controls=["test_my_units"]))


def test_what_the_registry_says_of_a_built_in_control_is_what_the_control_says():
    for name in registry.controls.names():
        assert registry.control_needs_units(name) == registry.control(name).needs_units, name
    assert registry.control_needs_units("random_units") and not registry.control_needs_units("reinit")


def test_a_transfer_target_keeps_its_controls_but_random_units(tmp_path):
    import yaml

    from tickets.study import load_study

    src, dst = tmp_path / "src.yaml", tmp_path / "dst.yaml"
    src.write_text(yaml.safe_dump(structured_lenet(name="src")))
    dst.write_text(yaml.safe_dump(structured_lenet(name="dst", controls=["reinit", "random_units"],
                                                   **{"domain.optimizer": {"name": "sgd", "lr": 0.05}})))
    (tmp_path / "study.yaml").write_text("name: s\ntransfer:\n  sources: [{label: a, config: src.yaml}]\n"
                                         "  targets: [{label: b, config: dst.yaml}]\n")
    study = load_study(tmp_path / "study.yaml", tmp_path / "runs")
    assert study.entry("a->b").experiment.config.controls == ["reinit"]
    assert not (tmp_path / "runs").exists()
