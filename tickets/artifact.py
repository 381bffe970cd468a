"""The Ticket: a mask (and optionally the rewind weights) saved as a small, pickle-free artifact.

```
ticket/
  ticket.json           format, framework version, names and shapes, sparsity, provenance
  masks.safetensors     one bool tensor per prunable parameter
  rewind.safetensors    weights at the rewind point (optional)
```
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from . import __version__, store, ticket_files
from .errors import TicketMismatchError
from .masks import Mask
from .rewind import apply_mask

FORMAT = "tickets/ticket"
FORMAT_VERSION = 1
FILES = ("ticket.json", "masks.safetensors", "rewind.safetensors")

HeadPolicy = Literal["dense", "source_rate"]


@dataclass
class Ticket:
    mask: Mask
    rewind: dict[str, torch.Tensor] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- files -------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, rewind_file: str | Path | None = None) -> Path:
        """Write the ticket; the directory appears complete or not at all.

        ``rewind_file``: an existing safetensors file to link in as the rewind weights instead
        of writing ``self.rewind`` again (runs share one θk file across all their tickets)."""
        directory = Path(directory)
        tmp = store.staging_dir(directory)
        try:
            store.write_json(tmp / "ticket.json", self.describe(has_rewind=bool(self.rewind) or bool(rewind_file)))
            store.write_tensors(tmp / "masks.safetensors", self.mask.to_dict(), metadata={"format": FORMAT})
            if rewind_file is not None:
                store.link_or_copy(Path(rewind_file), tmp / "rewind.safetensors")
            elif self.rewind is not None:
                store.write_tensors(tmp / "rewind.safetensors", self.rewind, metadata={"format": FORMAT})
            store.replace_dir(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    def describe(self, has_rewind: bool) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "framework_version": __version__,
            "parameters": {n: list(s) for n, s in self.mask.shapes().items()},
            "sparsity": self.mask.sparsity(),
            "layer_sparsity": self.mask.layer_sparsity(),
            "has_rewind": has_rewind,
            **self.meta,
        }

    @classmethod
    def load(cls, directory: str | Path, *, with_rewind: bool = True) -> Ticket:
        """Read a ticket, every file checked (see :mod:`tickets.ticket_files`); a damaged or
        inconsistent ticket raises :class:`~tickets.errors.ArtifactError`. The rewind file, if
        any, is checked even when ``with_rewind`` is false (then it is not loaded)."""
        directory = Path(directory)
        info = ticket_files.read_info(directory, FORMAT, FORMAT_VERSION)
        masks = ticket_files.read_masks(directory, info)
        rewind = ticket_files.check_rewind(directory, info, load=with_rewind)
        meta = {k: v for k, v in info.items() if k not in
                ("format", "format_version", "framework_version", "parameters", "sparsity",
                 "layer_sparsity", "has_rewind")}
        return cls(Mask(masks), rewind, meta)

    def problems(self, shapes: Mapping[str, Sequence[int]]) -> list[str]:
        """How the mask's names and shapes differ from ``shapes`` (a model's prunable set)."""
        prunable = {n: torch.empty(tuple(s), device="meta") for n, s in shapes.items()}
        return self._compare(prunable, prunable, ())[0]

    # ---- applying to a model -----------------------------------------------------------------
    def apply(
        self,
        model: nn.Module,
        prunable: Mapping[str, nn.Parameter] | None = None,
        *,
        rewind: bool = True,
        adapt: Sequence[str] = (),
        head_policy: HeadPolicy = "dense",
        generator: torch.Generator | None = None,
    ) -> Mask:
        """Apply the ticket to ``model`` and return the mask that now holds on it.

        ``prunable``: the model's prunable parameters (default: those named in the ticket).
        ``adapt``: name patterns of layers allowed not to fit (e.g. a new output head). They keep
        the model's own initial weights and are left dense (``head_policy='dense'``) or pruned at
        random to the source layer's density (``'source_rate'``). Any other difference in names
        or shapes raises :class:`TicketMismatchError` listing every one of them, before the model
        is touched. ``rewind``: load the ticket's rewind weights where they fit.
        """
        mask = self.fit(model, prunable, adapt=adapt, head_policy=head_policy, generator=generator,
                        check_rewind=rewind)
        if rewind:
            self.load_weights(model, adapt=adapt)
        apply_mask(model, mask)
        return mask

    def fit(self, model: nn.Module, prunable: Mapping[str, nn.Parameter] | None = None, *,
            adapt: Sequence[str] = (), head_policy: HeadPolicy = "dense",
            generator: torch.Generator | None = None, check_rewind: bool = True) -> Mask:
        """The ticket's mask for ``model`` (adapted layers per ``head_policy``); changes nothing."""
        params = dict(model.named_parameters())
        if prunable is None:
            prunable = {n: params[n] for n in self.mask if n in params}
        problems, adapted = self._compare(prunable, params, adapt)
        if check_rewind and self.rewind is not None:
            problems += self._rewind_problems(model.state_dict(), adapt)
        if problems:
            raise TicketMismatchError("ticket does not fit the model "
                                      f"{type(model).__name__}:\n" + "\n".join(problems))
        generator = generator or torch.Generator().manual_seed(0)
        return Mask({name: self._adapted_mask(name, tuple(p.shape), head_policy, generator) if name in adapted
                     else self.mask[name] for name, p in prunable.items()})

    @torch.no_grad()
    def load_weights(self, model: nn.Module, *, adapt: Sequence[str] = ()) -> None:
        """Copy the rewind weights into ``model`` where names and shapes fit; parameters named in
        ``adapt`` keep the model's own weights."""
        if self.rewind is None:
            raise ValueError("this ticket was loaded or saved without rewind weights")
        state = model.state_dict()
        problems = self._rewind_problems(state, adapt)
        if problems:
            raise TicketMismatchError("ticket's rewind weights do not fit the model "
                                      f"{type(model).__name__}:\n" + "\n".join(problems))
        for name, value in self.rewind.items():
            if name in state and tuple(state[name].shape) == tuple(value.shape) and not _matches(name, adapt):
                state[name].copy_(value)

    def _rewind_problems(self, state: Mapping[str, torch.Tensor], adapt: Sequence[str]) -> list[str]:
        problems = []
        for name, value in (self.rewind or {}).items():
            fits = name in state and tuple(state[name].shape) == tuple(value.shape)
            if fits or _matches(name, adapt):
                continue
            if name not in state:
                problems.append(f"  {name}: in the ticket's rewind weights, not in the model")
            else:
                problems.append(f"  {name}: rewind weights {tuple(value.shape)}, model {tuple(state[name].shape)}")
        return problems

    def _compare(self, prunable, params, adapt) -> tuple[list[str], set[str]]:
        problems: list[str] = []
        adapted: set[str] = set()
        for name, p in prunable.items():
            if _matches(name, adapt):  # adapted whether or not it fits: a new head is a new head
                adapted.add(name)
                continue
            if name in self.mask and tuple(self.mask[name].shape) == tuple(p.shape):
                continue
            if name not in self.mask:
                problems.append(f"  {name}: prunable in the model {tuple(p.shape)}, not in the ticket")
            else:
                problems.append(f"  {name}: ticket {tuple(self.mask[name].shape)}, model {tuple(p.shape)}")
        for name in self.mask:
            if name not in prunable and not _matches(name, adapt):
                where = "not prunable in the model" if name in params else "not in the model"
                problems.append(f"  {name}: in the ticket {tuple(self.mask[name].shape)}, {where}")
        return problems, adapted

    def _adapted_mask(self, name, shape, policy: HeadPolicy, generator) -> torch.Tensor:
        if policy == "dense" or name not in self.mask:
            return torch.ones(shape, dtype=torch.bool)
        src = self.mask[name]
        n = int(torch.Size(shape).numel())
        keep = int(round(float(src.float().mean()) * n))
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=generator)[:keep]] = True
        return flat.reshape(shape)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
