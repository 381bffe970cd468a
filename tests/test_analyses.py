"""Analyses as registered parts: the weight-change analysis as defined, analyses as stages of a
study's runs (done once, redone when their options change, in the report), a plugin analysis
found through an entry point and run from the command line, and refusals before any work."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from conftest import vision_config
from tickets import analyses
from tickets.analysis_options import LMCOptions
from tickets.artifact import Ticket
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ArtifactError, ConfigError
from tickets.masks import Mask
from tickets.methods import make_runner
from tickets.run_dir import RunDir
from tickets.store import read_tensors, write_tensors
from tickets.study import load_study
from tickets.study_report import report
from tickets.study_run import run_study
from tickets.weight_change import group_stats, weight_change


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cfg = vision_config(**{"pruning.levels": 2, "train.steps": 20, "controls": []})
    return make_runner(load_experiment(cfg), tmp_path_factory.mktemp("runs"), show_progress=False).execute().path


def test_group_stats_by_hand():
    init = torch.tensor([1.0, -2.0, 0.0, 0.5])
    trained = torch.tensor([-1.5, -1.0, 3.0, 0.25])
    s = group_stats(init, trained)
    assert s["count"] == 4
    assert s["sign_flip"] == pytest.approx(1 / 3)  # of the three non-zero at θ0, the first flipped
    assert s["grew"] == pytest.approx(2 / 4)  # 1 -> 1.5, 0 -> 3
    assert s["mean_abs_init"] == pytest.approx(3.5 / 4) and s["mean_abs_trained"] == pytest.approx(5.75 / 4)


def test_weight_change_splits_kept_from_pruned():
    init = {"w": torch.tensor([[1.0, -1.0], [2.0, -2.0]])}
    trained = {"w": torch.tensor([[3.0, 1.0], [1.0, -2.5]])}
    mask = Mask({"w": torch.tensor([[True, False], [False, True]])})
    rows = {(r["layer"], r["group"]): r for r in weight_change(init, trained, {1: mask})}
    assert rows[("w", "kept")]["sign_flip"] == 0.0 and rows[("w", "kept")]["grew"] == 1.0
    assert rows[("w", "pruned")]["sign_flip"] == 0.5 and rows[("w", "pruned")]["grew"] == 0.0
    assert rows[("all", "kept")]["count"] == 2 and rows[("all", "kept")]["weights_remaining_pct"] == 50.0


def test_the_weight_change_analysis_reads_the_runs_own_files(run_dir, capsys):
    assert main(["analyze", str(run_dir), "weight_change"]) == 0
    assert "sign flip kept" in capsys.readouterr().out
    out = run_dir / "analysis/weight_change"
    rows = list(csv.DictReader(open(out / "weight_change.csv")))
    run = RunDir(run_dir)
    init, trained = run.load_state("init"), read_tensors(run.trained_path(0, "dense"))
    mask = Ticket.load(run.ticket_dir(2), with_rewind=False).mask
    row = next(r for r in rows if r["level"] == "2" and r["layer"] == "hidden.0.weight" and r["group"] == "pruned")
    m = ~mask["hidden.0.weight"]
    a, b = init["hidden.0.weight"][m], trained["hidden.0.weight"][m]
    assert int(row["count"]) == int(m.sum())
    assert float(row["sign_flip"]) == pytest.approx(float(((a.sign() != b.sign()) & (a != 0)).sum() / (a != 0).sum()))
    assert (out / "weight_change.png").stat().st_size > 0 and analyses.is_done(
        "weight_change", run_dir, analyses.check_options("weight_change", {}))


def test_weight_change_refuses_a_damaged_trained_file(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    path = RunDir(copy).trained_path(0, "dense")
    state = read_tensors(path)
    state["hidden.0.weight"][0, 0] = float("nan")
    write_tensors(path, state)
    with pytest.raises(ArtifactError, match="hidden.0.weight holds NaN"):
        analyses.run_analysis("weight_change", copy)
    assert not (copy / "analysis/weight_change/done.json").exists()


def test_weight_change_refuses_trained_weights_that_do_not_fit_the_tickets(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    path = RunDir(copy).trained_path(0, "dense")
    state = read_tensors(path)
    state["hidden.0.weight"] = state["hidden.0.weight"][:, :3].contiguous()
    write_tensors(path, state)
    with pytest.raises(ArtifactError, match=r"trained hidden.0.weight is \("):
        analyses.run_analysis("weight_change", copy)


def test_done_is_recorded_with_the_options_and_cleared_before_a_rerun(run_dir):
    analyses.run_analysis("masks", run_dir, {"levels": [1]})
    assert analyses.is_done("masks", run_dir, analyses.check_options("masks", {"levels": [1]}))
    assert not analyses.is_done("masks", run_dir, analyses.check_options("masks", {}))
    (run_dir / "analysis/masks/done.json").write_text("{not json")
    assert not analyses.is_done("masks", run_dir, analyses.check_options("masks", {"levels": [1]}))


@pytest.mark.parametrize("args, says", [
    (["masks", "--ks", "0"], "analysis masks.ks: unknown key"),
    (["lmc", "--points", "1"], "points: at least 2"),
    (["lmcc"], "unknown analysis 'lmcc'; did you mean 'lmc'"),
    (["masks", "--set", "levels"], "--set: expected key=value")])
def test_bad_analysis_options_are_refused_before_work(run_dir, capsys, args, says):
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    assert main(["analyze", str(run_dir), *args]) == 2
    assert says in capsys.readouterr().err
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before


def study_file(tmp_path, analyses_list):
    cfg = vision_config(**{"pruning.levels": 1, "train.steps": 20, "controls": []})
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    study = {"name": "an", "experiments": [{"label": "a", "config": "exp.yaml"},
                                                          {"label": "b", "config": "exp.yaml",
                                                           "overrides": {"train.steps": 10}}],
             "analyses": analyses_list}
    (tmp_path / "an.yaml").write_text(yaml.safe_dump(study))
    return tmp_path / "an.yaml"


def test_analyses_are_stages_of_the_studys_runs_and_sections_of_its_report(tmp_path, monkeypatch):
    lmc = {"name": "lmc", "options": {"ks": [0], "points": 3, "levels": [1]}, "groups": ["a"]}
    study = load_study(study_file(tmp_path, ["weight_change", lmc]), tmp_path / "out")
    directory = run_study(study, make_runner, show_progress=False)
    a, b = (study.run_dir(label) for label in ("a", "b"))
    assert json.loads((a / "analysis/lmc/done.json").read_text())["options"]["points"] == 3
    assert not (b / "analysis/lmc").exists()  # groups: [a]
    assert (b / "analysis/weight_change/done.json").is_file()
    md = report(directory).read_text()
    section = md[md.index("## Analysis: lmc"):]
    assert "### a\n\n| level | k | weights % | instability | over the worse end |" in section and "### b" not in section
    assert "![lmc: instability.png](../" in section
    calls = []
    real = analyses.run_analysis
    monkeypatch.setattr(analyses, "run_analysis", lambda *a, **k: calls.append(a) or real(*a, **k))
    run_study(study, make_runner, show_progress=False)  # done: nothing runs again
    assert calls == []
    lmc["options"]["points"] = 4  # other options: not done, so it runs again
    again = load_study(study_file(tmp_path, ["weight_change", lmc]), tmp_path / "out")
    run_study(again, make_runner, show_progress=False)
    assert [c[0] for c in calls] == ["lmc"]


@pytest.mark.parametrize("item, says", [
    ("lmcc", r"analyses\[0\]\.name: unknown analysis 'lmcc'"),
    ({"name": "lmc", "options": {"k": [0]}}, r"analyses\[0\]\.options\.k: unknown key"),
    ({"name": "masks", "groups": ["c*"]}, r"analyses\[0\]\.groups: 'c\*' matches no entry group"),
    ({"name": "lmc", "options": {"ks": [0, 0]}}, r"ks: distinct iterations")])
def test_a_bad_analysis_in_a_study_file_is_refused_before_anything_runs(tmp_path, item, says):
    with pytest.raises(ConfigError, match=says):
        load_study(study_file(tmp_path, [item]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_analysis_is_one_file_plus_one_entry_point_line(run_dir, tmp_path):
    plugins = tmp_path / "plugins"
    info = plugins / "my_analyses-0.1.dist-info"
    info.mkdir(parents=True)
    (plugins / "my_analyses.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass

        from tickets import store
        from tickets.analyses import Analysis, out_dir
        from tickets.mask_analysis import tickets_of


        @dataclass
        class Options:
            min_density: float = 0.0


        class SparseLayers(Analysis):
            """The layers of each level's ticket at or below a density."""

            Options = Options

            def run(self, run_dir, options):
                rows = [[level, name, d] for level, mask in tickets_of(run_dir).items()
                        for name, d in mask.layer_density().items() if d >= options.min_density]
                store.write_csv(out_dir(run_dir, self.name) / "layers.csv", ["level", "layer", "density"], rows)
                return f"{len(rows)} layers"
    '''))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-analyses\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tickets.analyses]\nsparse_layers = my_analyses:SparseLayers\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tickets.cli", "analyze", str(run_dir), "sparse_layers"]
    done = subprocess.run([*command, "--set", "min_density=0.5"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(open(run_dir / "analysis/sparse_layers/layers.csv")))
    assert f"{len(rows)} layers" in done.stdout and rows and all(float(r["density"]) >= 0.5 for r in rows)
    bad = subprocess.run([*command, "--set", "min_dens=0.5"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "min_dens: unknown key" in bad.stderr


def test_lmc_options_defaults_match_the_paper():
    assert LMCOptions().points == 30 and LMCOptions().ks == [0]


@pytest.mark.parametrize("row, says", [
    ("1,0,51.2,nan,,0.0,0.9,0.9", "non-finite or out-of-range"),
    ("1,0,151.2,0.01,,0.0,0.9,0.9", "non-finite or out-of-range"),
    ("1,0,51.2,0.01,,0.02,0.9,0.9", "non-finite or out-of-range"),  # above the barrier: impossible
    ("1,0,51.2,0.01,,-0.01,0.9,0.9", "non-finite or out-of-range"),
    ("x,0,51.2,0.01,,0.0,0.9,0.9", "line 2 is not a"),
    ("1,0,51.2,0.01", "line 2 is not a")])
def test_a_damaged_lmc_csv_is_refused_not_reported(tmp_path, row, says):
    from tickets.errors import ArtifactError
    from tickets.lmc_analysis import read_lmc_csv

    path = tmp_path / "lmc.csv"
    header = "level,k,weights_remaining_pct,instability,loss_instability,over_worse_end,accuracy_a,accuracy_b\n"
    path.write_text(header + "0,0,100.0,0.01,,0.0,0.9,0.9\n")
    assert read_lmc_csv(path) == [{"level": 0, "k": 0, "weights_remaining_pct": 100.0, "instability": 0.01,
                                   "over_worse_end": 0.0}]
    path.write_text(header + row + "\n")
    with pytest.raises(ArtifactError, match=says):
        read_lmc_csv(path)
    path.write_text(header)
    with pytest.raises(ArtifactError, match="no LMC results"):
        read_lmc_csv(path)
