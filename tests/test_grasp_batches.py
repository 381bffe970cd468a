"""GraSP scores on its paper's class-balanced batches (Wang et al. 2020: 10 examples of every class;
``GraSP_fetch_data`` in their code), checked before any training; domains without classes fall back
to the ordinary scoring batches, and the ticket says which it got."""

import pytest
import torch
import yaml

from conftest import vision_config
from tickets import prune_at_init
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner


def grasp_config(**kw):
    return vision_config(**{"pruning.method": "at_init", "pruning.scorer": "grasp", "pruning.compressions": [10],
                            "pruning.groups": [], "controls": [], "train.steps": 2, "train.eval_every": 0, **kw})


def per_class(batch):
    return torch.bincount(batch["labels"]).tolist()


def test_vision_domain_gives_exactly_samples_per_class_of_every_class():
    domain = load_experiment(vision_config()).make_domain()
    batches = domain.balanced_scoring_batches(4, 3, seed=7)
    classes = torch.unique(domain.data.train.columns["labels"]).numel()
    assert len(batches) == 3 and all(per_class(b) == [4] * classes for b in batches)
    assert not torch.equal(batches[0]["images"], batches[1]["images"])  # the next examples, not the same ones
    again = domain.balanced_scoring_batches(4, 3, seed=7)
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(batches, again))


def test_grasp_scores_on_class_balanced_batches(tmp_path, monkeypatch):
    seen = []
    real = prune_at_init.scoring_context

    def spy(*args, **kw):
        seen.append((kw["scorer"], kw["batches"]))
        return real(*args, **kw)

    monkeypatch.setattr(prune_at_init, "scoring_context", spy)
    exp = load_experiment(grasp_config(**{"pruning.samples_per_class": 3, "pruning.scoring_batches": 2}))
    run = make_runner(exp, tmp_path, show_progress=False).execute()
    classes = torch.unique(exp.make_domain().data.train.columns["labels"]).numel()
    assert seen and all(scorer == "grasp" for scorer, _ in seen)
    for _, batches in seen:
        assert len(batches) == 2 and all(per_class(b) == [3] * classes for b in batches)
    found = Ticket.load(run.ticket_dir(1), with_rewind=False).meta["found"]
    assert found["batches"] == "class_balanced" and found["samples_per_class"] == 3


def test_snip_keeps_the_ordinary_batches(tmp_path, monkeypatch):
    seen = []
    real = prune_at_init.scoring_context
    monkeypatch.setattr(prune_at_init, "scoring_context", lambda *a, **kw: seen.append(kw["batches"]) or real(*a, **kw))
    make_runner(load_experiment(grasp_config(**{"pruning.scorer": "snip"})), tmp_path, show_progress=False).execute()
    assert seen and all(len(b["labels"]) == 32 for batches in seen for b in batches)  # domain.batch_size


def test_a_domain_without_classes_falls_back_to_the_ordinary_batches(tmp_path):
    from domains.vision import VisionDomain
    from tickets import registry

    class Classless(VisionDomain):
        name = "classless"

        def balanced_scoring_batches(self, samples_per_class, n, seed):
            return None

    registry.domains.register("classless", Classless)
    run = make_runner(load_experiment(grasp_config(**{"domain.name": "classless"})), tmp_path,
                      show_progress=False).execute()
    assert Ticket.load(run.ticket_dir(1), with_rewind=False).meta["found"]["batches"] == "ordinary"


def test_samples_per_class_beyond_a_class_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match="pruning.samples_per_class: 1000 examples of every class"):
        make_runner(load_experiment(grasp_config(**{"pruning.samples_per_class": 1000})), tmp_path)
    assert not any(tmp_path.rglob("*.safetensors"))
    with pytest.raises(ConfigError, match="samples_per_class: must be >= 1"):
        load_experiment(grasp_config(**{"pruning.samples_per_class": 0}))


def test_samples_per_class_is_a_cli_override(tmp_path):
    from tickets.cli import main

    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump(grasp_config()))
    assert main(["run", str(cfg), "pruning.samples_per_class=1000", "--out", str(tmp_path / "runs"), "--quiet"]) == 2
