import pickle

import pytest
import torch

from conftest import TinyMLP
from tickets.artifact import Ticket
from tickets.errors import TicketMismatchError
from tickets.masks import Mask
from tickets.rewind import capture
from tickets.selection import default_prunable


def make_ticket(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.4 for n, p in default_prunable(model).items()})
    return Ticket(mask, capture(model), {"domain": "test", "found": {"level": 3}})


def test_round_trip_is_identical_and_writes_exactly_three_files(tmp_path, tiny_mlp):
    ticket = make_ticket(tiny_mlp)
    ticket.save(tmp_path / "t")
    files = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert files == ["masks.safetensors", "rewind.safetensors", "ticket.json"]
    loaded = Ticket.load(tmp_path / "t")
    assert loaded.mask == ticket.mask
    assert loaded.rewind.keys() == ticket.rewind.keys()
    assert all(torch.equal(loaded.rewind[n], ticket.rewind[n]) for n in ticket.rewind)
    assert loaded.meta == ticket.meta


def test_loading_never_unpickles(tmp_path, tiny_mlp, monkeypatch):
    make_ticket(tiny_mlp).save(tmp_path / "t")

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert Ticket.load(tmp_path / "t").mask.density() > 0


def test_apply_rewinds_and_masks_a_fresh_model(tiny_mlp):
    ticket = make_ticket(tiny_mlp)
    torch.manual_seed(5)
    fresh = TinyMLP()
    mask = ticket.apply(fresh)
    assert mask == ticket.mask
    for name, p in fresh.state_dict().items():
        expected = ticket.rewind[name] * (mask[name] if name in mask else 1)
        assert torch.equal(p, expected)


def test_mismatched_ticket_is_refused_naming_every_difference(tiny_mlp):
    ticket = make_ticket(tiny_mlp)
    other = TinyMLP(sizes=(12, 20, 8, 3))  # layers 0 and 1 differ
    before = capture(other)
    with pytest.raises(TicketMismatchError) as err:
        ticket.apply(other, default_prunable(other))
    msg = str(err.value)
    assert "layers.0.weight: ticket (16, 12), model (20, 12)" in msg
    assert "layers.1.weight: ticket (8, 16), model (8, 20)" in msg
    assert "layers.0.bias" in msg  # the rewind weights do not fit either
    assert all(torch.equal(before[n], v) for n, v in capture(other).items())  # nothing was changed


def test_new_head_follows_the_named_policy(tiny_mlp):
    ticket = make_ticket(tiny_mlp)
    torch.manual_seed(1)
    target = TinyMLP(sizes=(12, 16, 8, 5))  # a head for 5 classes instead of 3
    head_init = target.layers[2].weight.detach().clone()
    mask = ticket.apply(target, default_prunable(target), adapt=["layers.2.*"], head_policy="dense")
    assert mask["layers.0.weight"].equal(ticket.mask["layers.0.weight"])
    assert mask["layers.2.weight"].all()
    assert torch.equal(target.layers[2].weight.detach(), head_init)  # re-initialised head kept
    mask = ticket.apply(target, default_prunable(target), adapt=["layers.2.*"], head_policy="source_rate")
    src_density = ticket.mask["layers.2.weight"].float().mean().item()
    assert mask["layers.2.weight"].sum().item() == round(src_density * 40)


def test_corrupt_ticket_is_refused(tmp_path, tiny_mlp):
    make_ticket(tiny_mlp).save(tmp_path / "t")
    text = (tmp_path / "t" / "ticket.json").read_text().replace("16,", "17,", 1)
    (tmp_path / "t" / "ticket.json").write_text(text)
    with pytest.raises(ValueError, match="does not match ticket.json"):
        Ticket.load(tmp_path / "t")
    with pytest.raises(FileNotFoundError, match="not a ticket"):
        Ticket.load(tmp_path)


def test_failed_save_leaves_the_old_ticket_intact(tmp_path, tiny_mlp, monkeypatch):
    good = make_ticket(tiny_mlp, seed=0)
    good.save(tmp_path / "t")
    import tickets.store as store

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_file", boom)
    with pytest.raises(OSError):
        make_ticket(tiny_mlp, seed=1).save(tmp_path / "t")
    monkeypatch.undo()
    assert Ticket.load(tmp_path / "t").mask == good.mask
    assert [p.name for p in tmp_path.iterdir()] == ["t"]  # no temporary left behind


def test_an_adapted_head_that_fits_is_still_replaced(tiny_mlp):
    ticket = make_ticket(tiny_mlp)
    torch.manual_seed(3)
    target = TinyMLP()  # same shapes: e.g. CIFAR-10 -> SVHN, 10 classes both
    head = target.layers[2].weight.detach().clone()
    mask = ticket.apply(target, default_prunable(target), adapt=["layers.2.*"], head_policy="dense")
    assert mask["layers.2.weight"].all()
    assert torch.equal(target.layers[2].weight.detach(), head)  # the target's own initialisation
    assert torch.equal(mask["layers.0.weight"], ticket.mask["layers.0.weight"])
