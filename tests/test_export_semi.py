"""tickets export --to semi-structured: a 2:4 ticket's linear weights as torch's semi-structured
sparse tensors. The checks that a ticket fits, and the refusal without CUDA, run everywhere; the
conversion itself only on a CUDA GPU (pytest -m gpu)."""

import pytest
import torch

from conftest import vision_config
from test_structured_nlp_rl import bert_config
from tickets.artifact import Ticket
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.export import export, load_exported
from tickets.masks import Mask
from tickets.methods import make_runner


def two_four_bert():
    cfg = bert_config()
    cfg["pruning"] = {"levels": 1, "fraction": 0.5, "scope": "layer", "pattern": "2:4", "fraction_of": "original"}
    cfg["controls"] = []
    cfg["domain"]["model"]["intermediate_size"] = 128  # every matrix a multiple of 32 x 64
    return cfg


@pytest.fixture(scope="module")
def bert_24(tmp_path_factory):
    return make_runner(load_experiment(two_four_bert()), tmp_path_factory.mktemp("b24"), show_progress=False).execute()


def test_a_2_4_ticket_that_fits_is_refused_without_cuda_and_nothing_is_written(bert_24, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mask = Ticket.load(bert_24.ticket_dir(1)).mask
    assert all(int(m.reshape(m.shape[0], -1, 4).sum(-1).max()) <= 2 for m in mask.values())
    with pytest.raises(ConfigError, match="run on CUDA GPUs only.*--to sparse"):
        export(bert_24.level_dir(1), tmp_path / "s", to="semi-structured")
    assert not (tmp_path / "s").exists()
    assert main(["export", str(bert_24.level_dir(1)), "--to", "semi-structured", "--out", str(tmp_path / "c")]) == 2


def test_the_mask_decides_whether_a_ticket_is_2_4_not_its_record(bert_24):
    from tickets.export_semi import check_fits

    ticket = Ticket.load(bert_24.ticket_dir(1))
    model = load_experiment(two_four_bert()).make_domain().build_model(seed=0)
    check_fits({}, model, ticket.mask)  # a transferred 2:4 ticket records no pattern: it fits
    name = next(iter(ticket.mask))
    three = dict(ticket.mask.items())
    three[name] = three[name].clone()
    three[name][0, :4] = torch.tensor([True, True, True, False])
    with pytest.raises(ConfigError, match=f"this ticket is pattern 2:4, and {name} keeps 3 of some group of 4"):
        check_fits({"pattern": "2:4"}, model, Mask(three))


def test_an_unstructured_ticket_is_refused_before_the_device_is_asked(tmp_path):
    run = make_runner(load_experiment(vision_config(**{"pruning.levels": 1, "controls": [], "train.steps": 10})),
                      tmp_path / "runs", show_progress=False).execute()
    with pytest.raises(ConfigError, match="take 2:4 tickets.*this ticket is unstructured"):
        export(run.level_dir(1), tmp_path / "s", to="semi-structured")


def test_a_layer_the_kernels_cannot_take_is_named(tmp_path):
    cfg = vision_config(**{"pruning.levels": 1, "pruning.fraction": 0.5, "pruning.pattern": "2:4", "pruning.groups": [],
                           "controls": [], "train.steps": 10, "domain.model": "lenet_300_100"})
    run = make_runner(load_experiment(cfg), tmp_path / "runs", show_progress=False).execute()
    with pytest.raises(ConfigError, match=r"hidden\.0\.weight is 300 x 64; the kernels take multiples of 32 x 64"):
        export(run.level_dir(1), tmp_path / "s", to="semi-structured")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_export_computes_the_ticket_and_loads_back(bert_24, tmp_path):
    from torch.sparse import SparseSemiStructuredTensor

    record = export(bert_24.level_dir(1), tmp_path / "s", to="semi-structured")
    assert record["check"]["max_relative_difference"] <= record["check"]["tolerance"]
    model, domain = load_exported(tmp_path / "s")
    q = model.bert.encoder.layer[0].attention.self.query.weight
    assert isinstance(q, SparseSemiStructuredTensor)
    reference = domain.build_model(seed=0)
    Ticket.load(bert_24.ticket_dir(1)).apply(reference)
    reference = reference.half().cuda().eval()
    batch = domain.scoring_batches(1, 0, model=reference)[0]
    inputs = {k: v.cuda() for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        a, b = model(**inputs).logits.float(), reference(**inputs).logits.float()
    assert torch.allclose(a, b, atol=1e-2 * max(1.0, float(b.abs().max())))
