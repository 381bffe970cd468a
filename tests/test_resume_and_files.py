"""Issue 10: masks hold 0/1 only, a resumed ticket must fit, a deleted rewind.safetensors is
recovered, a killed run's temporaries are cleaned up, files follow the umask, read-only or full
storage and Ctrl-C are one line, stray result files are not rows, report and seeds do not import
each other."""

from __future__ import annotations

import ast
import errno
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
import yaml

from conftest import vision_config
from damaged_helpers import comparable, one_error_line, snapshot
from tickets import store
from tickets.artifact import Ticket
from tickets.cli import main
from tickets.config import load_experiment
from tickets.methods import make_runner
from tickets.masks import Mask
from tickets.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def make_run(root: Path, **overrides):
    cfg = vision_config(**{"pruning.levels": 2, "controls": ["reinit"], "train.steps": 20, **overrides})
    cfg_path = root / "run.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = make_runner(load_experiment(cfg), root / "runs", show_progress=False).execute()
    return {"cfg": cfg, "cfg_path": cfg_path, "run": run.path, "rows": run.rows()}


@pytest.fixture(scope="module")
def k0(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("k0"))


@pytest.fixture(scope="module")
def k10(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("k10"), **{"rewind.step": 10})


def copy_run(base, tmp_path) -> Path:
    run = tmp_path / "runs" / base["run"].name
    shutil.copytree(base["run"], run)
    return run


def rerun(base, tmp_path) -> list[str]:
    return ["run", str(base["cfg_path"]), "--out", str(tmp_path / "runs"), "--quiet"]


# ---- item 0: mask values ---------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[-1.0, 1.0], [float("nan"), 1.0], [2, 0], [0.5, 1.0]])
def test_a_mask_refuses_values_other_than_0_and_1(values):
    dtype = torch.uint8 if values == [2, 0] else torch.float32
    with pytest.raises(ValueError, match="other than 0 and 1"):
        Mask({"w": torch.tensor(values, dtype=dtype)})


def test_a_mask_of_0_and_1_in_any_dtype_is_accepted():
    m = Mask({"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([1, 0], dtype=torch.uint8), "c": torch.tensor([True])})
    assert m.kept() == {"a": 1, "b": 1, "c": 1} and all(t.dtype == torch.bool for t in m.values())


def test_a_resumed_ticket_that_does_not_fit_the_model_is_refused(k0, tmp_path, capsys):
    run = copy_run(k0, tmp_path)
    (run / "level_02" / "reinit.result.json").unlink()
    ticket_dir = run / "level_01" / "ticket"
    other = Ticket(Mask({"hidden.0.weight": torch.ones(5, 64, dtype=torch.bool)}), None, {"found": {"level": 1}})
    other.save(ticket_dir)  # a sound ticket, of another model
    before = snapshot(tmp_path)
    assert main(rerun(k0, tmp_path)) == 2
    line = one_error_line(capsys)
    assert "does not fit the model" in line and f"delete {run / 'level_01'}{os.sep}" in line
    assert snapshot(tmp_path) == before


# ---- resumption: a deleted rewind.safetensors --------------------------------------------------------
def test_a_deleted_rewind_file_is_recovered_from_init_when_k_is_0(k0, tmp_path, capsys):
    run = copy_run(k0, tmp_path)
    (run / "rewind.safetensors").unlink()
    (run / "level_02" / "ticket.result.json").unlink()
    (run / "level_02" / "reinit.result.json").unlink()
    assert main(rerun(k0, tmp_path)) == 0
    assert "restored" in capsys.readouterr().err
    assert (run / "rewind.safetensors").read_bytes() == (run / "init.safetensors").read_bytes()
    assert comparable(RunDir(run).rows()) == comparable(k0["rows"])


def test_a_deleted_rewind_file_is_recovered_from_a_ticket_when_k_is_late(k10, tmp_path, capsys):
    run = copy_run(k10, tmp_path)
    original = (run / "rewind.safetensors").read_bytes()
    assert original != (run / "init.safetensors").read_bytes()
    (run / "rewind.safetensors").unlink()
    shutil.rmtree(run / "level_02")
    assert main(rerun(k10, tmp_path)) == 0
    assert "level_01" in capsys.readouterr().err  # where the copy came from
    assert (run / "rewind.safetensors").read_bytes() == original
    assert comparable(RunDir(run).rows()) == comparable(k10["rows"])


def test_a_deleted_rewind_file_without_a_copy_says_what_to_delete(k10, tmp_path, capsys):
    run = copy_run(k10, tmp_path)
    (run / "rewind.safetensors").unlink()
    shutil.rmtree(run / "level_01")
    shutil.rmtree(run / "level_02")
    before = snapshot(tmp_path)
    assert main(rerun(k10, tmp_path)) == 2
    assert f"delete {run / 'level_00'}{os.sep} to redo the dense stage" in one_error_line(capsys)
    assert snapshot(tmp_path) == before


# ---- resumption: a killed run's temporaries ------------------------------------------------------------
def test_a_resume_removes_exactly_this_runs_leftover_temporaries(k0, tmp_path):
    run = copy_run(k0, tmp_path)
    (run / "level_02" / "reinit.result.json").unlink()
    ours = [run / ".results.csv.k2j_9xq1.tmp", run / ".rewind.safetensors.a1b2c3d4.tmp",
            run / "level_02" / ".reinit.result.json.zz00yy11.tmp", run / "level_01" / ".ticket.old"]
    staging = run / "level_02" / ".ticket.q1w2e3r4.tmp"
    for p in ours:
        p.mkdir() if p.name.endswith(".old") else p.write_bytes(b"half")
    staging.mkdir()
    (staging / "ticket.json").write_text("{")
    theirs = [run / ".notes.tmp", run / ".results.csv.tmp", run / "level_01" / ".mine.abcdefgh.tmp",
              run / ".results.csv.TOOLONG123.tmp"]
    for p in theirs:
        p.write_text("keep me")
    outside = tmp_path / "runs" / ".config.yaml.abcdefgh.tmp"  # not in the run directory
    outside.write_text("keep me")
    assert main(rerun(k0, tmp_path)) == 0
    assert not any(os.path.lexists(p) for p in [*ours, staging])
    assert all(p.read_text() == "keep me" for p in [*theirs, outside])
    assert comparable(RunDir(run).rows()) == comparable(k0["rows"])


# ---- files follow the umask --------------------------------------------------------------------------------
@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o002, 0o664, 0o775), (0o027, 0o640, 0o750),
                                                       (0o077, 0o600, 0o700)])
def test_files_and_directories_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    old = os.umask(mask)
    store.umask.cache_clear()
    try:
        store.write_text(tmp_path / "a.txt", "x")
        store.write_tensors(tmp_path / "s.safetensors", {"w": torch.ones(2)})
        Ticket(Mask({"w": torch.tensor([True, False])}), {"w": torch.ones(2)}, {}).save(tmp_path / "ticket")
    finally:
        os.umask(old)
        store.umask.cache_clear()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "a.txt", tmp_path / "s.safetensors",
                                                                *(tmp_path / "ticket").iterdir()]}
    assert set(modes.values()) == {file_mode}, modes
    assert stat.S_IMODE((tmp_path / "ticket").stat().st_mode) == dir_mode


# ---- read-only or full storage ---------------------------------------------------------------------------
def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system", str(args[1] if len(args) > 1 else args[0]))


def test_report_on_read_only_storage_prints_the_table_and_says_what_was_not_written(k0, tmp_path, capsys,
                                                                                   monkeypatch):
    import matplotlib.figure

    run = copy_run(k0, tmp_path)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", read_only)
    assert main(["report", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "reinit" in out and "accuracy" in out
    assert err.strip().splitlines() == [f"tickets: warning: could not write {run / 'plot.png'}: Read-only file system"]


def test_rerunning_a_finished_run_on_read_only_storage_writes_nothing(k0, tmp_path, capsys, monkeypatch):
    import matplotlib.figure

    copy_run(k0, tmp_path)
    monkeypatch.setattr(store, "_atomic", read_only)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", read_only)
    before = snapshot(tmp_path)
    assert main(rerun(k0, tmp_path)) == 0
    out, err = capsys.readouterr()
    assert "reinit" in out and "Traceback" not in err
    assert [line for line in err.splitlines() if "could not write" in line] == [
        f"tickets: warning: could not write {next((tmp_path / 'runs').iterdir()) / 'plot.png'}: Read-only file system"]
    assert snapshot(tmp_path) == before


def test_a_full_or_unwritable_out_is_one_line(k0, tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[1]))

    monkeypatch.setattr(store, "save_file", full)
    assert main(["run", str(k0["cfg_path"]), "--out", str(tmp_path / "full"), "--quiet"]) == 2
    assert "No space left on device" in one_error_line(capsys)
    monkeypatch.undo()
    (tmp_path / "a_file").write_text("")
    assert main(["run", str(k0["cfg_path"]), "--out", str(tmp_path / "a_file" / "runs"), "--quiet"]) == 2
    assert "Not a directory" in one_error_line(capsys)


# ---- Ctrl-C --------------------------------------------------------------------------------------------------
def test_ctrl_c_is_one_line_saying_a_rerun_resumes(k0, tmp_path, capsys, monkeypatch):
    from domains.vision import VisionDomain

    def interrupted(self, model, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(VisionDomain, "train", interrupted)
    try:
        code = main(rerun(k0, tmp_path))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped tickets.cli.main")
    assert code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == ("tickets: interrupted; rerun the same command to resume where it "
                                            "stopped")


# ---- stray result files ----------------------------------------------------------------------------------------
def test_result_files_of_other_stages_are_not_rows(k0, tmp_path, capsys):
    run = copy_run(k0, tmp_path)
    row = run / "level_01" / "ticket.result.json"
    for stray in [run / "level_09" / "ticket.result.json", run / "level_01" / "ghost.result.json",
                  run / "level_1" / "ticket.result.json", run / "elsewhere" / "ticket.result.json"]:
        stray.parent.mkdir(exist_ok=True)
        shutil.copyfile(row, stray)
    assert comparable(RunDir(run).rows()) == comparable(k0["rows"])
    assert main(["report", str(run)]) == 0
    table = capsys.readouterr().out
    assert sum(line.split()[:2] == ["1", "ticket"] for line in table.splitlines()) == 1
    assert main(rerun(k0, tmp_path)) == 0  # and a rerun neither trains nor reads them
    assert (run / "results.csv").read_text() == (k0["run"] / "results.csv").read_text()


# ---- item 13: no import cycle -------------------------------------------------------------------------------------
def imported(module: str) -> set[str]:
    tree = ast.parse((ROOT / "tickets" / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names |= {node.module or ""} if node.level == 0 else {(node.module or "").split(".")[0]}
            if node.level and not node.module:
                names |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name.removeprefix("tickets.") for a in node.names}
    return names


def test_report_and_seeds_do_not_import_each_other():
    assert "seeds" not in imported("report") or "report" not in imported("seeds")
    assert "report" not in imported("seeds")
