"""Structured tickets (pruning.structure: units): IMP over neurons and channels with their couplings
(the next layers' inputs, biases, BatchNorm, a residual stream), exactly the smaller network at any
weights, and exported --to dense-small as that smaller network."""

import pytest
import torch

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.export import export, load_exported
from tickets.export_small import shrink
from tickets.methods import make_runner
from tickets.rewind import load_state
from tickets.store import read_tensors

pytest.importorskip("torch_pruning")


def structured(**overrides):
    return vision_config(**{"pruning.structure": "units", "pruning.levels": 3, "controls": ["reinit", "random_mask"],
                            "train.steps": 20, **overrides})


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    out = tmp_path_factory.mktemp("lenet")
    return make_runner(load_experiment(structured()), out, show_progress=False).execute()


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet")
    cfg = structured(**{"domain.model": "resnet_20", "domain.width": 4, "pruning.levels": 2, "controls": [],
                        "domain.optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}})
    return make_runner(load_experiment(cfg), out, show_progress=False).execute()


def rows_alive(m):
    return int(m.reshape(m.shape[0], -1).any(1).sum())


def test_each_level_removes_a_fifth_of_every_layers_units_and_their_couplings(lenet):
    alive = {"hidden.0": 300, "hidden.1": 100}
    for level in (1, 2, 3):
        mask = Ticket.load(lenet.ticket_dir(level)).mask
        for layer in alive:
            alive[layer] -= int(0.2 * alive[layer] + 0.5)
            m = mask[f"{layer}.weight"]
            assert rows_alive(m) == alive[layer]
            kept_rows = m.any(1)
            assert torch.equal(mask[f"{layer}.bias"], kept_rows)  # a removed neuron's bias goes with it
            assert bool(m[kept_rows][:, m.any(0)].all())  # alive units keep every input that is alive
        # the next layer reads only the alive units; the output layer keeps all 10 classes
        assert torch.equal(mask["hidden.1.weight"].any(0), mask["hidden.0.weight"].any(1))
        assert torch.equal(mask["output.weight"].any(0), mask["hidden.1.weight"].any(1))
        assert rows_alive(mask["output.weight"]) == 10 and "output.bias" not in mask  # classes are never units
    meta = Ticket.load(lenet.ticket_dir(3)).meta["found"]
    assert meta["structure"] == "units" and meta["unit_score"] == "l1"


def test_the_lowest_l1_units_of_the_trained_weights_go_first(lenet):
    trained = read_tensors(lenet.trained_path(0, "dense"))
    mask = Ticket.load(lenet.ticket_dir(1)).mask
    w = trained["hidden.1.weight"].abs().sum(1).double()  # hidden.1's units are produced by its rows alone
    removed = ~mask["hidden.1.weight"].any(1)
    assert int(removed.sum()) == 20 and float(w[removed].max()) <= float(w[~removed].min())


def test_the_masked_network_is_the_smaller_network_after_training(resnet):
    """Trained with the mask held (BatchNorm and all), the masked ResNet computes what the cut-down
    one computes: nothing of a removed channel reaches the output."""
    exp = load_experiment(resnet.path / "config.yaml")
    domain = exp.make_domain()
    model = domain.build_model(seed=0)
    ticket = Ticket.load(resnet.ticket_dir(2))
    ticket.apply(model)
    load_state(model, {**dict(model.state_dict()), **read_tensors(resnet.trained_path(2, "ticket"))})
    model.eval()
    assert any("bn" in n for n in ticket.mask) and any(not bool(m.all()) for n, m in ticket.mask.items() if "bn" in n)
    params = dict(model.named_parameters())
    small, removed = shrink(domain, model, ticket.mask, {n: params[n] for n in ticket.mask}, seed=0)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    assert removed["conv1"]  # the residual stream's channels go too
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)


def test_dense_small_export_loads_back_as_the_smaller_model(lenet, tmp_path):
    record = export(lenet.level_dir(3), tmp_path / "small", to="dense-small")
    assert record["check"]["max_relative_difference"] <= 1e-5
    model, domain = load_exported(tmp_path / "small")
    assert (model.hidden[0].out_features, model.hidden[1].in_features, model.hidden[1].out_features,
            model.output.in_features) == (154, 154, 51, 51)
    assert record["parameters"]["after"] == sum(p.numel() for p in model.parameters())
    reference = domain.build_model(seed=0)
    Ticket.load(lenet.ticket_dir(3)).apply(reference)
    reference.eval()
    x = torch.randn(32, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5)
    assert main(["export", str(lenet.level_dir(2)), "--to", "dense-small", "--out", str(tmp_path / "c")]) == 0


def test_dense_small_refuses_an_unstructured_ticket(tmp_path):
    run = make_runner(load_experiment(vision_config(**{"pruning.levels": 1, "controls": [], "train.steps": 10})),
                      tmp_path / "runs", show_progress=False).execute()
    with pytest.raises(ConfigError, match="not whole units removed"):
        export(run.level_dir(1), tmp_path / "x", to="dense-small")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("overrides, says", [
    ({"pruning.method": "at_init", "pruning.compressions": [2]}, "cannot take method"),
    ({"pruning.pattern": "2:4"}, "cannot take pattern"),
    ({"pruning.scorer": "random"}, "cannot take scorer"),
    ({"pruning.structure": "weights", "pruning.unit_score": "l2"}, "unit_score: only read with structure: units")])
def test_structure_settings_that_do_not_go_together_are_refused(overrides, says):
    with pytest.raises(ConfigError, match=says):
        load_experiment(structured(**overrides))


def test_controls_and_transfer_keep_the_structured_mask(lenet, tmp_path):
    rows = {(r["level"], r["condition"]) for r in lenet.rows()}
    assert {(3, "reinit"), (3, "random_mask")} <= rows
    cfg = vision_config(**{"name": "to_sgd", "domain.optimizer": {"name": "sgd", "lr": 0.05}, "train.steps": 10,
                           "controls": [], "transfer": {"source": str(lenet.path), "levels": [3]}})
    target = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    src, got = Ticket.load(lenet.ticket_dir(3)).mask, Ticket.load(target.ticket_dir(3)).mask
    for name in got:
        assert torch.equal(got[name], src[name])
    trained = read_tensors(target.trained_path(3, "ticket"))
    assert rows_alive(trained["hidden.0.weight"] != 0) <= 154
