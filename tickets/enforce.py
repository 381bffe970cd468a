"""Keep pruned weights at exactly zero, whoever owns the training loop.

After every ``optimizer.step()`` of any optimizer that holds one of the masked parameters, the
parameters are multiplied by float copies of the mask (one ``torch._foreach_mul_`` call). The
hook is global (``torch.optim.optimizer.register_optimizer_step_post_hook``), so it also fires
for optimizers created inside other libraries' loops (stable-baselines3's ``train()``, the
Hugging Face ``Trainer``). Re-zeroing after the step keeps SGD with momentum, Adam and AdamW
with weight decay exact; parameter names stay plain.

Gradient clipping by global norm and layer-wise adaptive optimizers (LARS/LAMB) read the pruned
weights' gradients before the step: pass ``mask_grads=True`` to zero those gradients as they are
computed.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from .masks import Mask


class MaskEnforcer:
    """Applies ``mask`` to ``params`` now and after every optimizer step until :meth:`detach`."""

    def __init__(self, params: Mapping[str, nn.Parameter], mask: Mask, *, mask_grads: bool = False):
        missing = [n for n in mask if n not in params]
        if missing:
            raise KeyError(f"mask names parameters the model does not have: {missing}")
        self.names = list(mask)
        self.params = [params[n] for n in self.names]
        for name, p in zip(self.names, self.params):
            if tuple(p.shape) != tuple(mask[name].shape):
                raise ValueError(f"mask for {name!r} has shape {tuple(mask[name].shape)}, "
                                 f"parameter has {tuple(p.shape)}")
        # all-ones masks (the dense stage, layers left dense) change nothing: no multiply, no hook
        active = [i for i, n in enumerate(self.names) if not bool(mask[n].all())]
        self._targets = [self.params[i] for i in active]
        self._ids = {id(p) for p in self._targets}
        self._bool_masks = [mask[self.names[i]] for i in active]
        # float copies on the parameters' device and dtype, made again when the model moves
        self._place_masks([p.data for p in self._targets])
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._handles: list = []
        self.mask_grads = mask_grads
        self.apply()

    def apply(self) -> None:
        """Zero every pruned weight now."""
        if not self._targets:
            return
        # the parameters' .data: an in-place op on a Parameter itself would bump its autograd
        # version and break a graph built before another optimizer's step (SAC's actor loss)
        data = [p.data for p in self._targets]
        if [(d.device, d.dtype) for d in data] != self._placed:  # the model moved (a GPU, bf16)
            self._place_masks(data)
        torch._foreach_mul_(data, self._factors)

    def _place_masks(self, data: list[torch.Tensor]) -> None:
        self._factors = [m.to(device=d.device, dtype=d.dtype) for m, d in zip(self._bool_masks, data)]
        self._placed = [(d.device, d.dtype) for d in data]

    def attach(self) -> MaskEnforcer:
        if not self._handles and self._targets:
            self._handles.append(register_optimizer_step_post_hook(self._after_step))
            if self.mask_grads:
                for k, p in enumerate(self._targets):
                    self._handles.append(p.register_hook(self._grad_hook(k)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> MaskEnforcer:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _grad_hook(self, k: int):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            m = self._factors[k]
            if m.device != grad.device or m.dtype != grad.dtype:
                m = self._bool_masks[k].to(device=grad.device, dtype=grad.dtype)
            return grad * m
        return hook

    def _after_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        if self._holds_masked_param(optimizer):
            self.apply()

    def _holds_masked_param(self, optimizer: torch.optim.Optimizer) -> bool:
        n_params = sum(len(g["params"]) for g in optimizer.param_groups)
        cached = self._seen.get(optimizer)
        if cached is None or cached[0] != n_params:
            holds = any(id(p) in self._ids for g in optimizer.param_groups for p in g["params"])
            cached = (n_params, holds)
            self._seen[optimizer] = cached
        return cached[1]
