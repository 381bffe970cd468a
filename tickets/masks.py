"""Binary masks over named parameters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch


class Mask(Mapping[str, torch.Tensor]):
    """One boolean tensor per prunable parameter name; ``True`` keeps the weight."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        self._tensors = {name: _as_bool(name, t) for name, t in tensors.items()}

    @classmethod
    def ones_like(cls, params: Mapping[str, torch.Tensor]) -> Mask:
        return cls({name: torch.ones(p.shape, dtype=torch.bool) for name, p in params.items()})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"Mask({len(self)} tensors, density={self.density():.4f})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask) or self.keys() != other.keys():
            return False
        return all(torch.equal(self[n], other[n]) for n in self)

    __hash__ = None  # type: ignore[assignment]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(t.shape) for name, t in self._tensors.items()}

    def kept(self) -> dict[str, int]:
        return {name: int(t.sum()) for name, t in self._tensors.items()}

    def sizes(self) -> dict[str, int]:
        return {name: t.numel() for name, t in self._tensors.items()}

    def density(self) -> float:
        total = sum(self.sizes().values())
        return sum(self.kept().values()) / total if total else 1.0

    def sparsity(self) -> float:
        return 1.0 - self.density()

    def layer_density(self) -> dict[str, float]:
        return {name: (int(t.sum()) / t.numel() if t.numel() else 1.0) for name, t in self._tensors.items()}

    def layer_sparsity(self) -> dict[str, float]:
        return {name: 1.0 - d for name, d in self.layer_density().items()}

    def empty_layers(self) -> list[str]:
        return [name for name, t in self._tensors.items() if t.numel() and not bool(t.any())]

    def _combine(self, other: Mask, op) -> Mask:
        if self.shapes() != other.shapes():
            raise ValueError("masks differ in parameter names or shapes")
        return Mask({n: op(self[n], other[n]) for n in self})

    def __and__(self, other: Mask) -> Mask:
        return self._combine(other, torch.logical_and)

    def __or__(self, other: Mask) -> Mask:
        return self._combine(other, torch.logical_or)

    def __sub__(self, other: Mask) -> Mask:
        return self._combine(other, lambda a, b: a & ~b)

    def hamming(self, other: Mask) -> float:
        """Fraction of positions where the two masks differ (normalised Hamming distance)."""
        diff = self._combine(other, torch.logical_xor)
        total = sum(diff.sizes().values())
        return sum(diff.kept().values()) / total if total else 0.0

    def to_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._tensors)


def _as_bool(name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` as a CPU bool tensor; a non-bool tensor must hold only 0 and 1 (casting -1, 2 or
    NaN to ``True`` would silently keep weights the mask never chose)."""
    t = t.detach()
    if t.dtype != torch.bool:
        if t.is_complex() or bool(((t != 0) & (t != 1)).any()):
            raise ValueError(f"mask {name}: holds values other than 0 and 1 (dtype {t.dtype})")
        t = t.to(torch.bool)
    return t.cpu()
