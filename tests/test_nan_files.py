"""Stored tensors read back with NaN in them are refused, naming the file and the tensor."""

import pytest
import torch
from safetensors.torch import save_file

from tickets.errors import ArtifactError
from tickets.store import read_tensors


def test_nan_in_a_stored_tensor_is_refused(tmp_path):
    w = torch.randn(4, 3)
    w[1, 2] = float("nan")
    save_file({"fc.weight": w, "fc.bias": torch.zeros(4)}, str(tmp_path / "rewind.safetensors"))
    with pytest.raises(ArtifactError, match=r"rewind.safetensors: fc.weight holds NaN values \(1 of 12\)"):
        read_tensors(tmp_path / "rewind.safetensors")


def test_infinities_and_integer_tensors_pass(tmp_path):
    tensors = {"mask_bias": torch.tensor([0.0, -float("inf")]), "count": torch.tensor([3], dtype=torch.int64)}
    save_file(tensors, str(tmp_path / "state.safetensors"))
    got = read_tensors(tmp_path / "state.safetensors")
    assert torch.equal(got["mask_bias"], tensors["mask_bias"]) and torch.equal(got["count"], tensors["count"])
