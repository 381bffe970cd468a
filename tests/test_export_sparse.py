"""tickets export --to sparse: CSR layers that compute what the masked model computes, checked
before anything is written; the export loads back with every part checked; bad sources refused."""

import json

import pytest
import torch
from torch import nn

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ArtifactError, ConfigError, ExportCheckError
from tickets.export import export, load_exported
from tickets.methods import make_runner
from tickets.sparse_modules import SparseConv2d, SparseLinear, to_sparse


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    exp = load_experiment(vision_config(**{"pruning.levels": 2, "controls": [], "train.steps": 10}))
    return make_runner(exp, out, show_progress=False).execute()


def masked(module: nn.Module, density: float, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(torch.rand(m.weight.shape, generator=g) < density)
    return module


@pytest.mark.parametrize("stride, padding, bias", [(1, 1, True), (2, 0, False), (2, 2, True)])
def test_sparse_conv_and_linear_compute_the_dense_layers(stride, padding, bias):
    torch.manual_seed(0)
    conv = masked(nn.Conv2d(3, 6, 3, stride=stride, padding=padding, bias=bias), 0.2)
    lin = masked(nn.Linear(7, 5, bias=bias), 0.3)
    x, v = torch.randn(4, 3, 9, 9), torch.randn(2, 3, 7)
    model = nn.ModuleDict({"conv": conv, "lin": lin})
    ref = (conv(x), lin(v))
    to_sparse(model, {"conv.weight": None, "lin.weight": None})
    assert isinstance(model["conv"], SparseConv2d) and isinstance(model["lin"], SparseLinear)
    assert model["conv"].weight.layout == torch.sparse_csr
    assert torch.allclose(model["conv"](x), ref[0], atol=1e-6) and torch.allclose(model["lin"](v), ref[1], atol=1e-6)
    assert model["lin"].weight._nnz() == int((lin.weight != 0).sum())


def test_a_grouped_convolution_is_refused():
    model = nn.ModuleDict({"c": nn.Conv2d(4, 4, 3, groups=2)})
    with pytest.raises(ValueError, match=r"c.weight: a grouped convolution \(groups=2\)"):
        to_sparse(model, {"c.weight": None})


def test_the_export_computes_the_ticket_and_loads_back(lenet_run, tmp_path):
    out = tmp_path / "exp"
    record = export(lenet_run.level_dir(2), out)
    assert record["check"]["max_relative_difference"] <= 1e-5 and record["check"]["batches"] == 2
    info = json.loads((out / "export.json").read_text())
    ticket = Ticket.load(lenet_run.ticket_dir(2))
    assert {n: v["kept"] for n, v in info["layers"].items()} == {n: int(m.sum()) for n, m in ticket.mask.items()}
    model, domain = load_exported(out)
    dense = domain.build_model(seed=0)
    ticket.apply(dense)
    dense.eval()
    for name, m in ticket.mask.items():
        csr = model.get_submodule(name.rpartition(".")[0]).weight
        assert csr.layout == torch.sparse_csr and csr._nnz() == int(m.sum())
        assert torch.equal(csr.to_dense(), dict(dense.named_parameters())[name].detach())  # bit for bit
    x = torch.randn(16, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), dense(x), atol=1e-5)
    assert domain.evaluate(model)["accuracy"] == pytest.approx(domain.evaluate(dense)["accuracy"])


def test_bad_sources_and_outputs_are_refused_before_anything_is_written(lenet_run, tmp_path):
    with pytest.raises(ArtifactError, match="level 0 is the dense network"):
        export(lenet_run.level_dir(0), tmp_path / "a")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds files"):
        export(lenet_run.level_dir(1), full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    with pytest.raises(ConfigError, match="not an export format"):
        export(lenet_run.level_dir(1), tmp_path / "b", to="onnx")
    alone = tmp_path / "alone"
    import shutil

    shutil.copytree(lenet_run.ticket_dir(1), alone)
    with pytest.raises(ArtifactError, match="a ticket outside a run directory"):
        export(alone, tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c"))


def test_a_sparse_model_that_computes_something_else_is_refused(lenet_run, tmp_path, monkeypatch):
    from tickets import sparse_modules

    real = sparse_modules.SparseLinear.forward
    monkeypatch.setattr(sparse_modules.SparseLinear, "forward", lambda self, x: real(self, x) * 1.001)
    with pytest.raises(ExportCheckError, match="differs from the masked model's"):
        export(lenet_run.level_dir(1), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("damage, says", [
    (lambda t: t.__setitem__("hidden.0.weight.col_indices", t["hidden.0.weight.col_indices"] + 1000), "valid"),
    (lambda t: t.__setitem__("hidden.0.weight.values", t["hidden.0.weight.values"] * float("nan")), "NaN"),
    (lambda t: t.pop("hidden.1.weight.crow_indices"), "missing"),
    (lambda t: t.pop("output.bias"), "do not match the model")])
def test_a_damaged_export_is_refused_on_load(lenet_run, tmp_path, damage, says):
    from tickets.store import read_tensors, write_tensors

    out = tmp_path / "exp"
    export(lenet_run.level_dir(1), out)
    tensors = read_tensors(out / "weights.safetensors")
    damage(tensors)
    write_tensors(out / "weights.safetensors", tensors)
    with pytest.raises(ArtifactError, match=says):
        load_exported(out)


def test_the_cli_exports_and_reports_errors_on_one_line(lenet_run, tmp_path, capsys):
    assert main(["export", str(lenet_run.level_dir(2)), "--to", "sparse", "--out", str(tmp_path / "e")]) == 0
    said = capsys.readouterr().out
    assert "exported 3 layers as CSR" in said and "64.3%" in said
    assert main(["export", str(lenet_run.level_dir(2)), "--to", "sparse", "--out", str(tmp_path / "e")]) == 2
    assert "already holds files" in capsys.readouterr().err
