"""N:M sparsity patterns (``pruning.pattern: "2:4"``): within every group of M consecutive weights
along a layer's input dimension, at most N survive (2:4 is what NVIDIA's sparse tensor cores run).

The input dimension is the axis a weight is multiplied along: axis 1 of torch's ``out x in``
Linear weights and of ``out x in x kh x kw`` convolutions (groups of M consecutive input channels
at every output channel and kernel position), axis 0 of GPT-2's ``in x out`` ``Conv1D`` (the
domain's ``output_axes`` says which axis is the output; the input axis is the other of the first
two). Its size must be a multiple of M.

IMP reaches the pattern gradually: a level that leaves a layer (or a global unit) at density d may
keep at most ``cap(d) = max(N, ceil(M d))`` weights per group, and while d >= N/M at least each
group's N best, so the early, mild levels are unstructured within groups yet never take a group
below N, the level that reaches N/M leaves exactly N in every group, and sparser levels stay within
N:M; the per-level pruning rate is unchanged wherever the cap leaves enough eligible weights.
Within a group the highest scores are eligible, ties to the earliest position; a level that
leaves the unit within 1% above N/M counts as reaching it (rounding of the per-level counts).
Torch-free (configs are checked before torch is imported); the selection is in
:mod:`tickets.nm_select`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

_PATTERN = re.compile(r"(\d+):(\d+)")
REACHED = 0.01  # a density within 1% above N/M is N/M (per-level counts are rounded)


@dataclass(frozen=True)
class Pattern:
    n: int
    m: int

    @classmethod
    def parse(cls, text: str, key: str = "pruning.pattern") -> Pattern:
        match = _PATTERN.fullmatch(str(text).strip())
        if not match:
            raise ConfigError(f"{key}: expected 'N:M' such as '2:4', got {text!r}")
        n, m = int(match[1]), int(match[2])
        if not 1 <= n < m:
            raise ConfigError(f"{key}: N:M needs 1 <= N < M, got {text!r}")
        return cls(n, m)

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"

    @property
    def density(self) -> float:
        return self.n / self.m

    def cap(self, density: float) -> int:
        """Weights a group may keep at overall density ``density`` (see the module docstring)."""
        if density <= self.density * (1 + REACHED):
            return self.n
        return min(self.m, math.ceil(self.m * density - 1e-9))


def input_axis(shape: tuple[int, ...], output_axis: int) -> int:
    if len(shape) < 2:
        raise ValueError("an N:M pattern needs a weight of at least 2 dimensions")
    return 1 if output_axis == 0 else 0


def check_fits(shapes: Mapping[str, tuple[int, ...]], output_axes: Mapping[str, int], pattern: Pattern) -> None:
    """Refuse, naming every layer, weights whose input dimension is not a multiple of M."""
    bad = []
    for name, shape in shapes.items():
        if len(shape) < 2:
            bad.append(f"{name} {tuple(shape)} (1-D)")
            continue
        axis = input_axis(tuple(shape), output_axes.get(name, 0))
        if shape[axis] % pattern.m:
            bad.append(f"{name} {tuple(shape)} (input size {shape[axis]})")
    if bad:
        raise ConfigError(f"pruning.pattern: {pattern} groups {pattern.m} consecutive input weights; these prunable "
                          f"weights do not split into groups of {pattern.m}: {', '.join(bad)} (exclude them with "
                          "pruning.exclude)")
