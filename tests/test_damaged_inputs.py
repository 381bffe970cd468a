"""Issue 10, item 1: a damaged copy of a real ticket or run directory, in each way a file can be
damaged, fed to `tickets show`, `tickets report`, a transfer and a resume, gives exit code 2 and
one `tickets: error:` line (no traceback), does not hang, and writes nothing."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from conftest import vision_config
from damaged_helpers import one_error_line, snapshot
from tickets.cli import main
from tickets.config import load_experiment
from tickets.methods import make_runner

ROOT = Path(__file__).resolve().parents[1]
LEVELS = 2


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One real run (2 levels, one control), its config file, and a transfer config template."""
    root = tmp_path_factory.mktemp("base")
    cfg = vision_config(**{"pruning.levels": LEVELS, "controls": ["reinit"], "train.steps": 20})
    cfg_path = root / "run.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = make_runner(load_experiment(cfg), root / "runs", show_progress=False).execute()
    return {"root": root, "cfg": cfg, "cfg_path": cfg_path, "run": run.path}


# ---- ways of damaging a ticket -------------------------------------------------------------------
def _json(t: Path, edit):
    info = json.loads((t / "ticket.json").read_text())
    info = edit(info)
    (t / "ticket.json").write_text(json.dumps(info))


def _first(info):
    return next(iter(info["parameters"]))


def _set(key, value):
    def edit(info):
        info[key] = value
        return info
    return edit


def _drop(key):
    def edit(info):
        del info[key]
        return info
    return edit


def _shape(value):
    def edit(info):
        info["parameters"][_first(info)] = value
        return info
    return edit


def _retensor(t: Path, file: str, edit):
    """Rewrite a safetensors file of the ticket with ``edit(tensors) -> tensors``."""
    from safetensors.torch import load_file

    tensors = edit(dict(load_file(str(t / file))))
    (t / file).unlink()
    save_file(tensors, str(t / file))


def _rename_everywhere(new_name):
    """A mask name that is not a parameter name, consistent between ticket.json and the file."""
    def damage(t):
        def edit_json(info):
            old = _first(info)
            info["parameters"] = {new_name if n == old else n: s for n, s in info["parameters"].items()}
            info["layer_sparsity"] = {new_name if n == old else n: v for n, v in info["layer_sparsity"].items()}
            return info
        old = _first(json.loads((t / "ticket.json").read_text()))
        _json(t, edit_json)
        _retensor(t, "masks.safetensors", lambda ts: {new_name if n == old else n: v for n, v in ts.items()})
    return damage


def _mask_values(make):
    def damage(t):
        _retensor(t, "masks.safetensors", lambda ts: {n: make(v) for n, v in ts.items()})
    return damage


def _header(t: Path, file: str, edit):
    """Edit the JSON header of a safetensors file in place (keeping the data)."""
    raw = (t / file).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = edit(json.loads(raw[8:8 + n]))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (t / file).write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def _bad_offsets(header):
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"] = [header[name]["data_offsets"][0] + 1, header[name]["data_offsets"][1] + 1]
    return header


def _bad_dtype(header):
    name = next(k for k in header if k != "__metadata__")
    header[name]["dtype"] = "Q99"
    return header


def _replace_with(kind):
    def damage(path: Path):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "loop":
            os.symlink(path.name, path)
        elif kind == "empty":
            path.write_bytes(b"")
    return damage


def _truncate(path: Path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])


def _bytes(data: bytes):
    return lambda path: path.write_bytes(data)


FILE_DAMAGE = {  # applicable to any safetensors file
    "truncated": _truncate,
    "empty": _replace_with("empty"),
    "header_too_small": _bytes(struct.pack("<Q", 1) + b"{"),
    "header_too_large": _bytes(struct.pack("<Q", 2**40) + b"{}      "),
    "header_beyond_file": _bytes(struct.pack("<Q", 64) + b"{}"),
    "header_not_json": _bytes(struct.pack("<Q", 8) + b"not json"),
    "seven_bytes": _bytes(b"\x00" * 7),
    "directory": _replace_with("dir"),
    "symlink_loop": _replace_with("loop"),
}

TICKET_DAMAGE = {
    "json_not_json": lambda t: (t / "ticket.json").write_text("{not json"),
    "json_not_object": lambda t: (t / "ticket.json").write_text("[1, 2]"),
    "json_not_utf8": lambda t: (t / "ticket.json").write_bytes(b"\xff\xfe{}"),
    "json_no_format": lambda t: _json(t, _drop("format")),
    "json_other_format": lambda t: _json(t, _set("format", "peft/adapter")),
    "json_no_parameters": lambda t: _json(t, _drop("parameters")),
    "json_parameters_list": lambda t: _json(t, _set("parameters", [[16, 64]])),
    "json_shape_string": lambda t: _json(t, _shape(["100", 64])),
    "json_shape_negative": lambda t: _json(t, _shape([-100, 64])),
    "json_shape_float": lambda t: _json(t, _shape([100.0, 64])),
    "json_shape_not_list": lambda t: _json(t, _shape("100x64")),
    "json_newer_version": lambda t: _json(t, _set("format_version", 99)),
    "json_version_string": lambda t: _json(t, _set("format_version", "1")),
    "json_sparsity_string": lambda t: _json(t, _set("sparsity", "0.2")),
    "json_sparsity_contradicts": lambda t: _json(t, _set("sparsity", 0.5)),
    "json_layer_sparsity_contradicts": lambda t: _json(t, lambda i: {**i, "layer_sparsity": {
        n: 0.0 for n in i["layer_sparsity"]}}),
    "json_level_string": lambda t: _json(t, lambda i: {**i, "found": {**i["found"], "level": "1"}}),
    "json_shape_contradicts_file": lambda t: _json(t, _shape([17, 64])),
    "json_extra_parameter": lambda t: _json(t, lambda i: {**i, "parameters": {**i["parameters"], "extra.weight": [2]}}),
    **{f"masks_{k}": (lambda d: lambda t: d(t / "masks.safetensors"))(d) for k, d in FILE_DAMAGE.items()},
    "masks_fifo": lambda t: _replace_with("fifo")(t / "masks.safetensors"),
    "masks_bad_offsets": lambda t: _header(t, "masks.safetensors", _bad_offsets),
    "masks_bad_dtype": lambda t: _header(t, "masks.safetensors", _bad_dtype),
    "masks_minus_one": _mask_values(lambda v: v.to(torch.int8) * 2 - 1),
    "masks_float_nan": _mask_values(lambda v: torch.where(v, torch.tensor(float("nan")), torch.tensor(0.0))),
    "masks_uint8_two": _mask_values(lambda v: v.to(torch.uint8) * 2),
    "masks_uint8_all_ones": _mask_values(lambda v: torch.ones_like(v, dtype=torch.uint8)),  # contradicts sparsity
    "masks_name_mismatch": lambda t: _retensor(t, "masks.safetensors",
                                               lambda ts: {("x" + n if i == 0 else n): v for i, (n, v) in enumerate(ts.items())}),
    "masks_shape_mismatch": lambda t: _retensor(t, "masks.safetensors",
                                                lambda ts: {n: (v[:-1] if i == 0 else v) for i, (n, v) in enumerate(ts.items())}),
    "name_dotdot": _rename_everywhere(".."),
    "name_path": _rename_everywhere("../../x"),
    "name_empty": _rename_everywhere(""),
    "name_slash_segment": _rename_everywhere("hidden/../0.weight"),
    "rewind_truncated": lambda t: _truncate(t / "rewind.safetensors"),
    "rewind_fifo": lambda t: _replace_with("fifo")(t / "rewind.safetensors"),
    "rewind_shape_mismatch": lambda t: _retensor(t, "rewind.safetensors",
                                                 lambda ts: {n: (v[:-1] if n == "hidden.0.weight" else v) for n, v in ts.items()}),
    "rewind_missing_but_recorded": lambda t: (t / "rewind.safetensors").unlink(),
    "rewind_nan": lambda t: _retensor(t, "rewind.safetensors",
                                      lambda ts: {n: (torch.full_like(v, float("nan")) if n == "hidden.0.weight" else v)
                                                  for n, v in ts.items()}),
    "ticket_json_fifo": lambda t: _replace_with("fifo")(t / "ticket.json"),
    "ticket_json_directory": lambda t: _replace_with("dir")(t / "ticket.json"),
}
FIFO_CASES = {k for k in TICKET_DAMAGE if "fifo" in k}


def damaged_ticket(base, tmp_path, how) -> Path:
    t = tmp_path / "ticket"
    shutil.copytree(base["run"] / "level_01" / "ticket", t)
    TICKET_DAMAGE[how](t)
    return t


@pytest.mark.parametrize("how", sorted(set(TICKET_DAMAGE) - FIFO_CASES))
def test_show_and_transfer_of_a_damaged_ticket_are_one_line_and_write_nothing(base, tmp_path, capsys, how):
    t = damaged_ticket(base, tmp_path, how)
    target = tmp_path / "target.yaml"
    target.write_text(yaml.safe_dump(vision_config(name="to", controls=[], transfer={"source": str(t)})))
    before = snapshot(tmp_path)
    assert main(["show", str(t)]) == 2
    one_error_line(capsys)
    assert main(["run", str(target), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    one_error_line(capsys)
    assert snapshot(tmp_path) == before


def resumable_copy(base, tmp_path) -> Path:
    """A copy of the run, its last stage undone (so a resume has work to do)."""
    out = tmp_path / "runs"
    run = out / base["run"].name
    shutil.copytree(base["run"], run)
    (run / f"level_{LEVELS:02d}" / "reinit.result.json").unlink()
    return run


def resume(base, tmp_path) -> list[str]:
    return ["run", str(base["cfg_path"]), "--out", str(tmp_path / "runs"), "--quiet"]


@pytest.mark.parametrize("how", sorted(set(TICKET_DAMAGE) - FIFO_CASES))
def test_resume_over_a_damaged_ticket_names_the_level_to_redo_and_trains_nothing(base, tmp_path, capsys, how):
    run = resumable_copy(base, tmp_path)
    TICKET_DAMAGE[how](run / "level_01" / "ticket")
    before = snapshot(tmp_path)
    assert main(resume(base, tmp_path)) == 2
    line = one_error_line(capsys)
    assert f"delete {run / 'level_01'}{os.sep} to redo level 1" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how", sorted(set(TICKET_DAMAGE) - FIFO_CASES - {"rewind_nan"}))
def test_report_of_a_run_holding_a_damaged_ticket_is_one_line_and_writes_nothing(base, tmp_path, capsys, how):
    run = tmp_path / "runs" / base["run"].name
    shutil.copytree(base["run"], run)
    (run / "plot.png").unlink(missing_ok=True)
    TICKET_DAMAGE[how](run / "level_01" / "ticket")
    before = snapshot(tmp_path)
    assert main(["report", str(run)]) == 2
    assert f"delete {run / 'level_01'}{os.sep} to redo level 1" in one_error_line(capsys)
    assert snapshot(tmp_path) == before


# ---- ways of damaging a run directory ------------------------------------------------------------
def _row(rel, edit):
    def damage(run: Path):
        p = run / rel
        row = json.loads(p.read_text())
        p.write_text(json.dumps(edit(row)))
    return damage


ROW = "level_01/ticket.result.json"
RUN_DAMAGE = {  # name -> (damage, the stage directory a resume names, or None)
    "row_not_json": (lambda r: (r / ROW).write_text("{"), "level_01"),
    "row_not_object": (lambda r: (r / ROW).write_text("3"), "level_01"),
    "row_level_string": (_row(ROW, lambda x: {**x, "level": "1"}), "level_01"),
    "row_value_nan": (_row(ROW, lambda x: {**x, "value": float("nan")}), "level_01"),
    "row_value_string": (_row(ROW, lambda x: {**x, "value": "0.9"}), "level_01"),
    "row_loss_infinite": (_row(ROW, lambda x: {**x, "loss": float("inf")}), "level_01"),
    "row_condition_number": (_row(ROW, lambda x: {**x, "condition": 3}), "level_01"),
    "row_no_value": (_row(ROW, lambda x: {k: v for k, v in x.items() if k != "value"}), "level_01"),
    "row_pct_out_of_range": (_row(ROW, lambda x: {**x, "weights_remaining_pct": 180.0}), "level_01"),
    "row_early_stop_float": (_row(ROW, lambda x: {**x, "early_stop_step": 1.5}), "level_01"),
    "row_of_another_stage": (lambda r: shutil.copyfile(r / "level_01/reinit.result.json", r / ROW), "level_01"),
    "row_directory": (lambda r: _replace_with("dir")(r / ROW), "level_01"),
    "row_symlink_loop": (lambda r: _replace_with("loop")(r / ROW), "level_01"),
    "config_not_yaml": (lambda r: (r / "config.yaml").write_text("a: [1,\n"), None),
    "config_not_mapping": (lambda r: (r / "config.yaml").write_text("- 1\n- 2\n"), None),
    "config_directory": (lambda r: _replace_with("dir")(r / "config.yaml"), None),
    "config_levels_string": (lambda r: (r / "config.yaml").write_text(
        (r / "config.yaml").read_text().replace(f"levels: {LEVELS}", "levels: two")), None),
    **{f"init_{k}": ((lambda d: lambda r: d(r / "init.safetensors"))(d), "level_00") for k, d in FILE_DAMAGE.items()},
    "rewind_truncated": (lambda r: _truncate(r / "rewind.safetensors"), "level_00"),
    "rewind_nan": (lambda r: _retensor(r, "rewind.safetensors", lambda ts: {
        n: (torch.full_like(v, float("nan")) if n == "hidden.0.weight" else v) for n, v in ts.items()}), "level_00"),
    "dense_trained_truncated": (lambda r: _truncate(r / "level_00/dense.trained.safetensors"), "level_00"),
    "ticket_trained_bad_offsets": (lambda r: _header(r / "level_01", "ticket.trained.safetensors", _bad_offsets),
                                   "level_01"),
}
REPORT_CASES = {k for k in RUN_DAMAGE if k.startswith(("row_", "config_"))}


@pytest.mark.parametrize("how", sorted(REPORT_CASES))
def test_report_of_a_damaged_run_is_one_line_and_writes_nothing(base, tmp_path, capsys, how):
    run = tmp_path / base["run"].name
    shutil.copytree(base["run"], run)
    (run / "plot.png").unlink(missing_ok=True)
    RUN_DAMAGE[how][0](run)
    before = snapshot(tmp_path)
    assert main(["report", str(run)]) == 2
    one_error_line(capsys)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how", sorted(RUN_DAMAGE))
def test_resume_of_a_damaged_run_says_what_to_redo_and_trains_nothing(base, tmp_path, capsys, how):
    run = resumable_copy(base, tmp_path)
    damage, stage = RUN_DAMAGE[how]
    damage(run)
    before = snapshot(tmp_path)
    assert main(resume(base, tmp_path)) == 2
    line = one_error_line(capsys)
    if stage is not None:
        assert f"delete {run / stage}{os.sep}" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how", ["row_not_json", "row_of_another_stage"])
def test_transfer_from_a_damaged_run_is_one_line(base, tmp_path, capsys, how):
    run = tmp_path / base["run"].name
    shutil.copytree(base["run"], run)
    RUN_DAMAGE[how][0](run)
    target = tmp_path / "target.yaml"
    target.write_text(yaml.safe_dump(vision_config(name="to", controls=[], transfer={"source": str(run)})))
    before = snapshot(tmp_path)
    assert main(["run", str(target), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    one_error_line(capsys)
    assert snapshot(tmp_path) == before


SEEDS_DAMAGE = {
    "not_json": lambda d, run: (d / "seeds.json").write_text("{"),
    "runs_not_a_list": lambda d, run: (d / "seeds.json").write_text(json.dumps({"seeds": [0], "runs": str(run)})),
    "seeds_strings": lambda d, run: (d / "seeds.json").write_text(json.dumps({"seeds": ["0"], "runs": [str(run)]})),
    "run_damaged": lambda d, run: ((d / "seeds.json").write_text(json.dumps({"seeds": [0], "runs": [str(run)]})),
                                   RUN_DAMAGE["row_value_nan"][0](run)),
    "run_missing": lambda d, run: (d / "seeds.json").write_text(json.dumps({"seeds": [0], "runs": [str(d / "gone")]})),
}


@pytest.mark.parametrize("how", sorted(SEEDS_DAMAGE))
def test_report_of_a_damaged_seeds_summary_is_one_line_and_writes_nothing(base, tmp_path, capsys, how):
    run = tmp_path / base["run"].name
    shutil.copytree(base["run"], run)
    summary = tmp_path / "summary"
    summary.mkdir()
    SEEDS_DAMAGE[how](summary, run)
    before = snapshot(tmp_path)
    assert main(["report", str(summary)]) == 2
    one_error_line(capsys)
    assert snapshot(tmp_path) == before


# ---- FIFOs: in a subprocess, so that a hang fails the test instead of blocking the suite -----------
def cli(*args, timeout=90):
    env = {**os.environ, "TICKETS_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "tickets.cli", *args, *(["--threads", "1"] if args[0] == "run" else [])],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_fifos_in_a_ticket_or_run_fail_at_once_instead_of_hanging(base, tmp_path):
    t = damaged_ticket(base, tmp_path, "masks_fifo")
    proc = cli("show", str(t))
    assert proc.returncode == 2 and "not a regular file" in one_error_line(proc.stderr)

    run = resumable_copy(base, tmp_path)
    TICKET_DAMAGE["rewind_fifo"](run / "level_01" / "ticket")
    _replace_with("fifo")(run / "level_00" / "dense.result.json")
    before = snapshot(tmp_path)
    proc = cli("report", str(run))
    assert proc.returncode == 2 and "dense.result.json" in one_error_line(proc.stderr)
    proc = cli(*resume(base, tmp_path))
    assert proc.returncode == 2 and "not a regular file" in one_error_line(proc.stderr)
    assert snapshot(tmp_path) == before
