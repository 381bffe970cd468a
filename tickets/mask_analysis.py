"""``tickets analyze RUN_DIR masks``: what a run's tickets keep, read from their saved masks.

Writes under ``RUN_DIR/analysis/masks/``:
  layer_density.csv / .png   each prunable layer's density at every level (a heat map; all levels,
                             whatever ``--levels`` says: it chooses the levels compared)
  overlap.csv                with ``--compare`` (other run directories, e.g. other seeds, finders
                             or the transfer source, or ticket directories): at every level both
                             have, per layer and overall, the Jaccard index and the shared share of
                             kept weights (:mod:`tickets.mask_overlap`) beside their exact chance
                             level for random masks of the same layer counts, and the excess over
                             chance, (J - E[J]) / (1 - E[J])
Every ticket is loaded checked (:meth:`tickets.artifact.Ticket.load`); nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

from . import run_files, store
from .analyses import Analysis
from .analysis_options import MaskOptions
from .artifact import Ticket
from .errors import ArtifactError
from .mask_overlap import ALL, excess, expected_random_overlap, overlap
from .masks import Mask
from .plot import pyplot, save

OUT = Path("analysis") / "masks"


def tickets_of(path: str | Path) -> dict[int, Mask]:
    """level -> mask of every saved ticket of a run directory, or {0: mask} for a ticket directory."""
    path = Path(path)
    if (path / "ticket.json").is_file():
        return {0: Ticket.load(path, with_rewind=False).mask}
    if not (path / "config.yaml").is_file():
        raise ArtifactError(f"{path}: not a run directory (no config.yaml) or a ticket directory (no ticket.json)",
                            path)
    masks = {level: Ticket.load(d / "ticket", with_rewind=False).mask
             for level, d in sorted(run_files.level_dirs(path).items()) if (d / "ticket").exists()}
    if not masks:
        raise ArtifactError(f"{path}: the run has no saved ticket yet (no level_NN/ticket)", path)
    return masks


def analyze_masks(run_dir: str | Path, compare: list[str | Path] = (), levels: list[int] | None = None) -> str:
    """Write the files above; the overlap table as text (empty without ``compare``)."""
    run_dir = Path(run_dir)
    every = tickets_of(run_dir)
    own = every
    if levels:
        missing = [lvl for lvl in levels if lvl not in every]
        if missing:
            raise ArtifactError(f"{run_dir}: no ticket at level(s) {missing} (it has {sorted(every)})", run_dir)
        own = {lvl: every[lvl] for lvl in levels}
    others = {str(p): tickets_of(p) for p in compare}  # all read and checked before anything is written
    out = run_dir / OUT
    rows = [[lvl, name, f"{d!r}"] for lvl, m in every.items() for name, d in m.layer_density().items()]
    store.write_csv(out / "layer_density.csv", ["level", "layer", "density"], rows)
    _density_figure(every, out / "layer_density.png")
    if not others:
        return ""
    table = []
    lines = [f"{'level':>5}  {'compared with':<40} {'jaccard':>8} {'chance':>8} {'excess':>7} {'shared':>7} "
             f"{'chance':>7}"]
    for other, theirs in others.items():
        for level, mask in own.items():
            match = theirs[0] if set(theirs) == {0} else theirs.get(level)  # a ticket directory: every level
            if match is None:
                continue
            try:
                real, chance = overlap(mask, match), expected_random_overlap(mask, match)
            except ValueError as exc:
                raise ArtifactError(f"{other}: its level {level} ticket cannot be compared with {run_dir}'s: {exc}",
                                    Path(other)) from None
            above = excess(real, chance)
            for layer in [*mask, ALL]:
                r, c = real[layer], chance[layer]
                table.append([level, other, layer, r.kept_a, r.kept_b, r.common, f"{r.jaccard!r}", f"{c.jaccard!r}",
                              "" if above[layer] is None else f"{above[layer]!r}", f"{r.shared!r}", f"{c.shared!r}"])
            r, c, e = real[ALL], chance[ALL], above[ALL]
            lines.append(f"{level:>5}  {_short(other):<40} {r.jaccard:>8.4f} {c.jaccard:>8.4f} "
                         f"{'' if e is None else f'{e:.4f}':>7} {r.shared:>7.4f} {c.shared:>7.4f}")
    store.write_csv(out / "overlap.csv", ["level", "compared_with", "layer", "kept", "kept_other", "common", "jaccard",
                                          "chance_jaccard", "excess", "shared", "chance_shared"], table)
    return "\n".join(lines)


def _short(path: str) -> str:
    return path if len(path) <= 40 else "..." + path[-37:]


def _density_figure(masks: dict[int, Mask], path: Path) -> None:
    plt = pyplot()
    levels = sorted(masks)
    layers = list(masks[levels[0]])
    grid = [[masks[lvl].layer_density()[name] for lvl in levels] for name in layers]
    fig, ax = plt.subplots(figsize=(max(4.5, 2.5 + 0.4 * len(levels)), max(2.5, 1.2 + 0.35 * len(layers))))
    im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(levels)), [str(lvl) for lvl in levels])
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel("level")
    ax.set_title("density of each layer", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    save(fig, path)


class MaskAnalysis(Analysis):
    """Layer densities over levels, and overlap with ``compare``'s tickets against chance."""

    Options = MaskOptions

    def run(self, run_dir: Path, options: MaskOptions) -> str:
        return analyze_masks(run_dir, options.compare, options.levels)
