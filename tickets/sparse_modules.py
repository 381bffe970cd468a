"""Layers whose weight is a torch sparse CSR tensor, with forwards that multiply by it: what a ticket
exported ``--to sparse`` runs on. Linear (``out x in``), GPT-2-style ``Conv1D`` (``in x out``, found
by its class name so the core imports no domain library) and ``Conv2d`` (by unfolding the input;
``groups=1`` only). Each computes what the dense layer computes with the masked weight, up to the
order of float additions.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


@contextlib.contextmanager
def quiet_beta():
    """torch warns that CSR support is beta; the layers here are tested against the dense ones."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        yield


def _csr(dense_2d: torch.Tensor) -> torch.Tensor:
    with quiet_beta():
        return dense_2d.detach().to_sparse_csr()


class SparseLinear(nn.Module):
    """y = x Wᵀ + b with W (out x in) in CSR."""

    def __init__(self, weight_csr: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight", weight_csr)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.out_features, self.in_features = weight_csr.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = torch.sparse.mm(self.weight, flat.t().contiguous()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


class SparseConv2d(nn.Module):
    """A 2-D convolution as W (out x in·kh·kw, CSR) times the unfolded input."""

    def __init__(self, conv: nn.Conv2d, weight_csr: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight_csr)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.out_channels = conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        positions = cols.shape[-1]
        flat = cols.transpose(0, 1).reshape(cols.shape[1], batch * positions)
        y = torch.sparse.mm(self.weight, flat).reshape(self.out_channels, batch, positions).transpose(0, 1)
        if self.bias is not None:
            y = y + self.bias[None, :, None]
        out_h = (height + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        out_w = (width + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        return y.reshape(batch, self.out_channels, out_h, out_w)


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D`` (transformers.pytorch_utils), an ``in x out`` linear layer."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None


def why_not_sparse(module: nn.Module) -> str | None:
    """None where the module's weight can run as CSR, else the reason."""
    if isinstance(module, nn.Linear) or is_conv1d(module):
        return None
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            return f"a grouped convolution (groups={module.groups})"
        if module.padding_mode != "zeros":
            return f"padding_mode {module.padding_mode!r}"
        if isinstance(module.padding, str):
            return f"padding {module.padding!r}"
        return None
    return f"a {type(module).__name__}, which has no CSR forward here"


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The layer's weight as the out x in matrix its CSR form stores."""
    w = module.weight.detach()
    if is_conv1d(module):
        return w.t()
    return w.reshape(w.shape[0], -1)


def sparse_module(module: nn.Module, weight_csr: torch.Tensor) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        return SparseConv2d(module, weight_csr)
    return SparseLinear(weight_csr, module.bias)


def to_sparse(model: nn.Module, weights: Mapping[str, torch.Tensor | None]) -> nn.Module:
    """``model`` with the modules owning each ``<module>.weight`` in ``weights`` replaced by their
    CSR versions, in place (``None``: the module's own, masked, weight converted)."""
    for name, csr in weights.items():
        owner_name = name.rsplit(".", 1)[0] if "." in name else ""
        owner = model.get_submodule(owner_name)
        why = why_not_sparse(owner)
        if why:
            raise ValueError(f"{name}: {why}")
        replacement = sparse_module(owner, _csr(weight_matrix(owner)) if csr is None else csr)
        parent_name, _, attr = owner_name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, replacement)
    return model
