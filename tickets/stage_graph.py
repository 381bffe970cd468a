"""An experiment as a graph of stages, so that stages whose inputs are ready can run anywhere.

A node is one unit of work with its place in the run directory:

* ``Node("dense", 0)``: trains the dense network from θ0 (writes θ0, θk and the trained weights);
* ``Node("mask", L)``: finds level L's mask and saves the level's ticket (mask and start weights);
* ``Node("train", L, condition)``: trains the ticket or a control of level L on that mask;
* ``Node("analysis", 0, name, options)``: a registered analysis of the finished run
  (:mod:`tickets.analyses`; ``options`` its canonical JSON, so a worker needs nothing else).

Edges say what a node reads: IMP's mask L reads the trained ticket of level L - 1 (the dense
network for L = 1); pruning at initialisation reads θ0, so every mask needs only the dense stage;
a transfer's masks come from its source's tickets (checked when the runner is built), and a
level's trainings read its mask. Each node is seeded from (seed, level, condition) alone and its
outputs are content-addressed files, so any schedule of the graph gives the same results as the
serial one, and a node that is done is never redone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, order=True)
class Node:
    kind: Literal["dense", "mask", "train", "analysis"]
    level: int
    condition: str = ""
    options: str = ""  # an analysis's options (canonical JSON)

    def __str__(self) -> str:
        if self.kind == "dense":
            return "level 0 dense"
        if self.kind == "mask":
            return f"level {self.level} mask"
        if self.kind == "analysis":
            return f"analysis {self.condition}"
        return f"level {self.level} {self.condition}"

    @property
    def is_stage(self) -> bool:
        """A training, with a result row (what the progress bars count)."""
        return self.kind in ("dense", "train")


DENSE = Node("dense", 0, "dense")


def mask(level: int) -> Node:
    return Node("mask", level)


def train(level: int, condition: str) -> Node:
    return Node("train", level, condition)


def analysis(name: str, options: str) -> Node:
    return Node("analysis", 0, name, options)


def serial_order(graph: dict[Node, tuple[Node, ...]]) -> list[Node]:
    """The schedule the serial executor runs: the graph's nodes in the order they were added
    (dense, then each level's mask, ticket and controls), checked to respect every edge."""
    seen: set[Node] = set()
    for node, needs in graph.items():
        missing = [n for n in needs if n not in seen]
        if missing:
            raise ValueError(f"{node} needs {', '.join(map(str, missing))}, which comes later or not at all")
        seen.add(node)
    return list(graph)


def dependents(graph: dict[Node, tuple[Node, ...]], failed: Iterable[Node]) -> set[Node]:
    """Every node that needs one of ``failed``, directly or through others."""
    out: set[Node] = set()
    frontier = set(failed)
    while frontier:
        frontier = {n for n, needs in graph.items() if n not in out and any(d in frontier or d in out for d in needs)}
        out |= frontier
    return out
