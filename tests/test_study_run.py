"""A study runs its entries (sources before their targets) on an executor, and its report reads
every run back: the LTH summary per experiment, the transfer matrix with the diagonal, the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import vision_config
from tickets import store
from tickets.errors import ArtifactError
from tickets.executors import run_processes
from tickets.methods import make_runner
from tickets.study import load_study
from tickets.study_report import bootstrap, read_study, report, within
from tickets.run_dir import RunDir
from tickets.study_run import run_study


def tiny_study(tmp_path):
    base = vision_config(**{"pruning.levels": 2, "train.steps": 20, "controls": ["reinit", "random_mask"]})
    (tmp_path / "adam.yaml").write_text(yaml.safe_dump(base))
    sgd = {**base, "name": "tiny_sgd", "domain": {**base["domain"], "optimizer": {"name": "sgd", "lr": 0.05}}}
    (tmp_path / "sgd.yaml").write_text(yaml.safe_dump(sgd))
    adam = {"label": "adam", "config": "adam.yaml"}
    study = {"name": "mini", "seeds": [0, 1], "analyses": ["masks"], "transfers": [
        {"name": "optimizers", "sources": [adam, {"label": "sgd", "config": "sgd.yaml"}],
         "targets": [{"label": "adam"}, {"label": "sgd"}], "levels": [1, 2], "controls": ["reinit", "random_mask"]},
        {"name": "budgets", "sources": [adam],  # the same source run, read by a second matrix
         "targets": [{"label": "short", "config": "adam.yaml", "overrides": {"train.steps": 10}}], "levels": [2],
         "controls": ["reinit"]}]}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_a_study_runs_on_the_pool_and_its_report_holds_every_cell(tmp_path):
    study = load_study(tiny_study(tmp_path), tmp_path / "out")
    directory = run_study(study, make_runner, lambda rs: run_processes(rs, 2, threads=1, show_progress=False),
                          show_progress=False)
    info = read_study(directory)
    assert [e["role"] for e in info["entries"]].count("target") == 6  # 2 off-diagonal pairs + 1, x 2 seeds
    assert [e["role"] for e in info["entries"]].count("source") == 4  # adam once for both matrices, sgd; 2 seeds
    md = report(directory).read_text()
    assert "| adam | vision | 2 | accuracy |" in md and "| sgd | vision | 2 | accuracy |" in md
    budgets = md[md.index("## Transfer: budgets"):md.index("## Transfer: optimizers")]
    assert "Level 2" in budgets and "Level 1" not in budgets and "| adam | " in budgets
    assert "| source \\ target | adam | short |" in budgets  # the source's own run is its diagonal
    assert (directory / "transfer_budgets_level_02.png").stat().st_size > 0
    assert not (directory / "transfer_budgets_level_01.png").exists()
    matrix = md[md.index("## Transfer: optimizers"):]
    matrix = matrix[:matrix.index("## Mask overlap")]
    rows = [line.split(" |")[0] for line in matrix.splitlines() if line.startswith("| ") and "\\" not in line]
    assert sorted(rows) == ["| adam", "| adam", "| sgd", "| sgd"]  # a row per source, per level
    assert (directory / "cross_domain.png").stat().st_size > 0
    # the cell adam -> sgd at level 2 is the mean over seeds of the target runs' ticket rows
    runs = [e["run"] for e in info["entries"] if e["source"] == "adam" and e["target"] == "sgd"]
    from tickets.run_dir import RunDir
    values = [next(r["value"] for r in RunDir(run).rows() if r["level"] == 2 and r["condition"] == "ticket")
              for run in runs]
    row = next(line for line in matrix[matrix.index("Level 2"):].splitlines() if line.startswith("| adam |"))
    assert f"{sum(values) / 2:.3f} (" in row.split("|")[3]
    # the mask section: seeds against each other, and each source's ticket against the target's own
    from tickets.artifact import Ticket
    from tickets.mask_overlap import ALL, expected_random_overlap, overlap

    masks = md[md.index("## Mask overlap"):md.index("## Analysis: masks")]
    # masks is also a stage of every run: its layer-density map, linked from the report
    per_run = md[md.index("## Analysis: masks"):]
    for e in info["entries"]:
        assert (Path(e["run"]) / "analysis/masks/done.json").is_file()
        assert f"### {e['label']}\n\n![masks: layer_density.png](" in per_run, e["label"]

    def ticket(label, level):
        run = next(e["run"] for e in info["entries"] if e["label"] == label)
        return Ticket.load(f"{run}/level_{level:02d}/ticket", with_rewind=False).mask

    a, b = ticket("adam@seed0", 2), ticket("adam@seed1", 2)
    seeds_row = next(line for line in masks.splitlines() if line.startswith("| adam: seed vs seed | 2 |"))
    assert f"| 1 | {overlap(a, b)[ALL].jaccard:.4f} | {expected_random_overlap(a, b)[ALL].jaccard:.4f} |" in seeds_row
    pairs = [(ticket(f"adam@seed{k}", 1), ticket(f"sgd@seed{k}", 1)) for k in (0, 1)]
    mean = sum(overlap(x, y)[ALL].jaccard for x, y in pairs) / 2
    transfer_row = next(line for line in masks.splitlines() if line.startswith("| adam's tickets vs sgd's | 1 |"))
    assert f"| 2 | {mean:.4f} |" in transfer_row
    assert "short" not in masks and "sgd's tickets vs adam's" not in masks  # no own tickets; each pair once
    again = run_study(study, make_runner, show_progress=False)  # done: nothing trains again
    assert again == directory


def test_the_report_refuses_a_damaged_study_file(tmp_path):
    store.write_json(tmp_path / "study.json", {"name": "x", "entries": [{"label": "a"}]})
    with pytest.raises(ArtifactError, match=r"study.json: entries\[0\].group: expected a non-empty string"):
        report(tmp_path)
    good = {"label": "a", "group": "a", "role": "experiment", "run": "r", "domain": "vision"}
    store.write_json(tmp_path / "study.json", {"name": "x", "entries": [good], "analyses": ["lmcc"]})
    with pytest.raises(ArtifactError, match=r"analyses\[0\]: unknown analysis 'lmcc'"):
        report(tmp_path)
    (tmp_path / "study.json").write_text(json.dumps({"name": "x", "entries": []}))
    with pytest.raises(ArtifactError, match="entries"):
        report(tmp_path)


def test_the_tolerance_and_the_interval():
    assert within(0.991, 1.0, "accuracy", 0.01) and not within(0.989, 1.0, "accuracy", 0.01)
    assert within(101.0, 100.0, "perplexity", 0.01) and not within(101.5, 100.0, "perplexity", 0.01)
    lo, hi = bootstrap([1.0, 2.0, 3.0])
    assert 1.0 <= lo < 2.0 < hi <= 3.0
    assert bootstrap([0.5, 0.5]) == (0.5, 0.5)


def _study_cmd(path, out, *extra):
    import sys

    return [sys.executable, "-m", "tickets.cli", "study", str(path), "--out", str(out), "--quiet", "--threads", "1",
            *extra]


def test_a_killed_study_resumes_and_two_study_processes_train_each_remaining_stage_once(tmp_path):
    """SIGKILL of the driver and its workers mid-way; then two `tickets study` started together on the
    same directory finish it between them, each stage once, with the serial study's tables."""
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    from damaged_helpers import comparable

    root = Path(__file__).resolve().parents[1]
    base = vision_config(**{"pruning.levels": 2, "train.steps": 40, "controls": ["reinit"]})
    (tmp_path / "adam.yaml").write_text(yaml.safe_dump(base))
    sgd = {**base, "name": "tiny_sgd", "domain": {**base["domain"], "optimizer": {"name": "sgd", "lr": 0.05}}}
    (tmp_path / "sgd.yaml").write_text(yaml.safe_dump(sgd))
    path = tmp_path / "race.yaml"
    path.write_text(yaml.safe_dump({"name": "race", "transfer": {
        "sources": [{"label": "adam", "config": "adam.yaml"}, {"label": "sgd", "config": "sgd.yaml"}],
        "targets": [{"label": "adam"}, {"label": "sgd"}], "levels": [1, 2]}}))
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    first = subprocess.Popen(_study_cmd(path, out, "--executor", "processes", "--workers", "2"), cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(list(out.rglob("*.result.json"))) < 3:
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    first.communicate()

    study = load_study(path, out)
    runners = {e.label: make_runner(e.experiment, out, show_progress=False) for e in study.entries
               if e.role != "target"}  # targets' runners read their sources' tickets: built after
    left = [(lvl, c) for r in runners.values() for lvl, c in r.stages() if not r.run.done(lvl, c)]
    assert left, "killed before the end"

    racing = [subprocess.Popen(_study_cmd(path, out), cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in racing]
    assert [p.returncode for p in racing] == [0, 0], [o[1][-2000:] for o in outs]
    trained = sorted((int(line.split()[1]), line.split()[2]) for _, err in outs for line in err.splitlines()
                     if line.startswith("level "))
    targets = [make_runner(e.experiment, out, show_progress=False) for e in study.entries if e.role == "target"]
    assert trained == sorted(left + [s for r in targets for s in r.stages()]), "each remaining stage once"
    assert not list(out.rglob("*.claim"))

    serial = load_study(path, tmp_path / "serial")
    run_study(serial, make_runner, show_progress=False)
    for entry in study.entries:
        assert comparable(RunDir(study.run_dir(entry.label)).rows()) == \
            comparable(RunDir(serial.run_dir(entry.label)).rows()), entry.label
