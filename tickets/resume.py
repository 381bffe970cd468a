"""Checking a run directory before a (re)run trains anything: every finished stage's files are
read back and checked, a resumed ticket must fit the model, temporaries a killed run left are
removed, and a deleted rewind.safetensors is recovered from the files that hold the same weights.
A damaged file is an :class:`ArtifactError` that says which stage it belongs to and what to
delete to redo it; nothing is ever trained on it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import claims, progress, store, validate
from .artifact import Ticket
from .errors import ArtifactError, ArtifactMissingError
from .run_dir import RunDir
from .run_files import LEVEL_DIR

if TYPE_CHECKING:
    from .runner import Runner

STATE_FILES = ("init.safetensors", "rewind.safetensors", "rewind_optimizer.safetensors")


def redo_hint(run: RunDir, path: Any) -> str:
    """What to delete to redo the stage a file of ``run`` belongs to ('' if not the run's)."""
    if path is None:
        return ""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(run.path))
    except ValueError:
        return ""
    if not rel.parts:
        return ""
    top = rel.parts[0]
    m = LEVEL_DIR.fullmatch(top)
    if m:
        level = int(m[1])
        what = "the dense stage" if level == 0 else f"level {level}"
        return f"delete {run.path / top}{os.sep} to redo {what}"
    if top in STATE_FILES:
        return f"delete {run.path / 'level_00'}{os.sep} to redo the dense stage, which writes {top} again"
    if top == "config.yaml":
        return f"restore it, or delete {run.path}{os.sep} to start the run again"
    return ""


def with_hint(run: RunDir, exc: ArtifactError) -> ArtifactError:
    hint = redo_hint(run, exc.path)
    if not hint or hint in str(exc):
        return exc
    return ArtifactError(f"{exc}; {hint}", exc.path)


def load_ticket(run: RunDir, level: int, shapes) -> Ticket:
    """A finished level's ticket, checked, and checked to fit the model's prunable set."""
    directory = run.ticket_dir(level)
    ticket = Ticket.load(directory, with_rewind=False)
    problems = ticket.problems(shapes)
    if problems:
        shown = "; ".join(p.strip() for p in problems[:4]) + (f"; and {len(problems) - 4} more"
                                                               if len(problems) > 4 else "")
        raise ArtifactError(f"{directory}: the saved ticket does not fit the model ({shown})", directory)
    return ticket


def prepare(runner: Runner, stages: list[tuple[int, str]]) -> None:
    """Main process, after the claim: check, then clean up, then recover (raises with a hint)."""
    run = runner.run
    try:
        missing_rewind = check_finished(runner, stages)
    except ArtifactError as exc:
        raise with_hint(run, exc) from None
    removed = []
    for path in run.leftovers():
        try:
            store.remove(path)
            removed.append(path)
        except OSError as exc:
            progress.message(f"tickets: warning: could not remove the leftover {path}: {exc.strerror}")
    if removed:
        progress.message(f"removed {len(removed)} temporary file(s) a killed run left in {run.path}")
    remove_stale_claims(run.path)
    if missing_rewind:
        recover_rewind(runner, stages)


def remove_stale_claims(path: Path) -> None:
    """Claims a killed process left (on a stage it may have finished, which nobody claims again),
    each taken over and released as a waiting contender would; live holders' claims stay."""
    for claim_file in sorted(path.glob("level_*/.*.claim")):
        if claims.stale(claim_file):
            claim = claims.acquire(claim_file)
            if claim is not None:
                claim.release()


def check_finished(runner: Runner, stages: list[tuple[int, str]]) -> bool:
    """Check every finished stage's files; True if rewind.safetensors is missing (after a
    finished dense stage), to be recovered."""
    run = runner.run
    done = [(lvl, c) for lvl, c in stages if run.done(lvl, c)]
    run.rows()  # every finished stage's row, checked
    read: set[tuple[int, int]] = set()
    for level in sorted({lvl for lvl, _ in stages if lvl > 0}):  # a saved mask: its level's ticket
        if (level, "ticket") in done or os.path.lexists(run.ticket_dir(level)):
            load_ticket(run, level, runner.shapes)
            _check_values(run.ticket_dir(level) / "rewind.safetensors", read)
    for level in sorted({lvl for lvl, _ in stages}):  # what a stage leaves for later ones to read
        directory = run.level_dir(level)
        searched = ["drawn.safetensors", "early_bird_mask.safetensors"]  # an Early-Bird level's search
        for name in [f"{c}.trained.safetensors" for lvl, c in stages if lvl == level] + searched:
            if os.path.lexists(directory / name):
                validate.safetensors_header(directory / name)
        if os.path.lexists(directory / "early_bird.json"):
            path = directory / "early_bird.json"
            validate.check_fields(path, validate.read_json(path), {}, "early_bird.json")
    if (0, "dense") not in done:
        return False
    _check_values(run.state_path("init"), read, required=True)
    if runner.config.rewind.optimizer:
        _check_values(run.state_path("rewind_optimizer"), read, required=True)
    try:
        _check_values(run.state_path("rewind"), read, required=True)
    except ArtifactMissingError:
        return True
    return False


def _check_values(path: Path, read: set[tuple[int, int]], *, required: bool = False) -> None:
    """Read a start-weights file whole (its values checked: no NaN), once per file however many
    hard links the run's tickets hold to it."""
    if not required and not os.path.lexists(path):
        return
    validate.safetensors_header(path)
    st = os.stat(path)
    if (st.st_dev, st.st_ino) not in read:
        validate.read_tensors(path)
        read.add((st.st_dev, st.st_ino))


def recover_rewind(runner: Runner, stages: list[tuple[int, str]]) -> None:
    """Put back a deleted rewind.safetensors: θ0 itself when the rewind step is 0 (the file was a
    link of init.safetensors), else a copy a finished ticket of this run holds (IMP and Early-Bird
    tickets hold θk: a link of the run's file), checked to have init's names, dtypes and shapes
    and, where several copies survive, to agree. Without one, say what to delete."""
    run, k = runner.run, runner.config.rewind.step
    target = run.state_path("rewind")
    init = run.state_path("init")
    layout = validate.safetensors_header(init)
    if k == 0:
        validate.read_tensors(init)  # θ0 must load in full before it stands in for θk
        store.link_or_copy(init, target)
        progress.message(f"restored {target} from init.safetensors (rewind.step 0: θk is θ0)")
        return
    copies = [p for p in _rewind_copies(runner, stages) if _same_layout(p, layout)]
    if copies:
        first = validate.read_tensors(copies[0])
        for other in copies[1:]:
            if not _same_file(copies[0], other):
                tensors = validate.read_tensors(other)
                if tensors.keys() != first.keys() or not all(torch.equal(first[n], tensors[n]) for n in first):
                    raise ArtifactError(f"{target}: missing, and the copies in {copies[0]} and {other} differ; "
                                        f"delete {run.path / 'level_00'}{os.sep} to redo the dense stage", target)
        store.link_or_copy(copies[0], target)
        progress.message(f"restored {target} from {copies[0]} (the same θk at step {k})")
        return
    unfinished = [s for s in stages if s[0] > 0 and not run.done(*s)]
    if unfinished and _reads_rewind(runner):
        raise ArtifactError(f"{target}: missing, and no ticket of this run holds a copy of θk (step {k}); "
                            f"delete {run.path / 'level_00'}{os.sep} to redo the dense stage, which writes it "
                            "again", target)


def _reads_rewind(runner: Runner) -> bool:
    """Whether the run's levels start from rewind.safetensors (IMP; Early-Bird with rewind)."""
    cfg = runner.config
    return runner.method == "imp" or (runner.method == "early_bird" and cfg.pruning.early_bird.rewind)


def _rewind_copies(runner: Runner, stages) -> list[Path]:
    run, k, digest = runner.run, runner.config.rewind.step, runner.experiment.hash()
    out = []
    for level in sorted({lvl for lvl, c in stages if c == "ticket" and run.done(lvl, c)}):
        ticket = load_ticket(run, level, runner.shapes)
        found = ticket.meta.get("found", {})
        holds_theta_k = ((found.get("method") == "imp" and found.get("rewind_step") == k)
                         or (found.get("method") == "early_bird" and found.get("rewind") is True))
        path = run.ticket_dir(level) / "rewind.safetensors"
        if holds_theta_k and ticket.meta.get("config_hash") == digest and os.path.lexists(path):
            out.append(path)
    return out


def _same_layout(path: Path, layout) -> bool:
    try:
        return validate.safetensors_header(path) == layout
    except ArtifactError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
