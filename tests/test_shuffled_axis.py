"""The shuffled-mask control keeps every output unit's fan-in, along the axis the domain names:
GPT-2's Conv1D stores its weights in x out, so its units are columns."""

import torch

from tickets.masks import Mask
from tickets.rewind import shuffled_mask


def gpt2_and_domain():
    from transformers import GPT2Config, GPT2LMHeadModel

    from domains.nlp.domain import NLPConfig, NLPDomain

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_inner=24, n_positions=16))
    return model, NLPDomain(NLPConfig(task="causal_lm"))


def test_every_gpt2_conv1d_output_unit_keeps_its_fan_in():
    model, domain = gpt2_and_domain()
    prunable = domain.prunable(model)
    axes = domain.output_axes(model)
    assert axes["transformer.h.0.attn.c_attn.weight"] == 1 and axes["transformer.h.0.mlp.c_fc.weight"] == 1
    g = torch.Generator().manual_seed(1)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.3 for n, p in prunable.items()})
    shuffled = shuffled_mask(mask, torch.Generator().manual_seed(2), axes)
    for name, m in mask.items():
        w = dict(model.named_parameters())[name]
        assert w.shape[0] == model.config.n_embd or name.endswith("c_proj.weight")  # in x out storage
        assert torch.equal(shuffled[name].sum(dim=0), m.sum(dim=0)), name  # fan-in of each output unit (column)
        assert not torch.equal(shuffled[name], m)
    # the axis matters: by rows (the old behaviour) the columns' fan-in is not kept
    by_rows = shuffled_mask(mask, torch.Generator().manual_seed(2))
    assert any(not torch.equal(by_rows[n].sum(dim=0), m.sum(dim=0)) for n, m in mask.items())


def test_default_axis_is_rows_and_unchanged():
    g = torch.Generator().manual_seed(3)
    mask = Mask({"w": torch.rand(6, 9, generator=g) < 0.5, "b": torch.rand(7, generator=g) < 0.5})
    a = shuffled_mask(mask, torch.Generator().manual_seed(4))
    b = shuffled_mask(mask, torch.Generator().manual_seed(4), {"w": 0})
    assert a == b and torch.equal(a["w"].sum(dim=1), mask["w"].sum(dim=1)) and int(a["b"].sum()) == int(mask["b"].sum())


def test_the_runner_passes_the_domains_output_axes(tmp_path, monkeypatch):
    from conftest import vision_config
    from domains.vision import VisionDomain
    from tickets import controls, registry
    from tickets.config import load_experiment
    from tickets.methods import make_runner

    class Columns(VisionDomain):
        name = "columns_out"

        def output_axes(self, model):
            return {n: 1 for n in self.prunable(model)}

    registry.domains.register("columns_out", Columns)
    seen = []
    real = controls.ShuffledMask.mask
    monkeypatch.setattr(controls.ShuffledMask, "mask", lambda self, m, g, axes: seen.append(axes) or real(self, m, g, axes))
    cfg = vision_config(**{"domain.name": "columns_out", "train.steps": 2, "train.eval_every": 0,
                           "pruning.levels": 1, "controls": ["shuffled_mask"]})
    make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    assert seen and set(seen[0].values()) == {1}
