"""`tickets analyze RUN_DIR masks`: layer densities over levels, and overlap with other runs'
tickets beside the exact random-mask chance level, from the saved (checked) masks."""

import csv

import pytest

from conftest import vision_config
from tickets.artifact import Ticket
from tickets.cli import main
from tickets.config import load_experiment
from tickets.methods import make_runner
from tickets.mask_overlap import expected_random_overlap, overlap


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    paths = {}
    for seed in (0, 1):
        cfg = vision_config(seed=seed, **{"pruning.levels": 2, "train.steps": 10, "controls": []})
        paths[seed] = make_runner(load_experiment(cfg), out, show_progress=False).execute().path
    return paths


def read(path):
    return list(csv.DictReader(open(path)))


def test_layer_densities_and_overlap_across_seeds(runs, capsys):
    assert main(["analyze", str(runs[0]), "masks", "--compare", str(runs[1])]) == 0
    printed = capsys.readouterr().out
    out = runs[0] / "analysis/masks"
    densities = read(out / "layer_density.csv")
    for level in (1, 2):
        mask = Ticket.load(runs[0] / f"level_{level:02d}/ticket", with_rewind=False).mask
        assert {r["layer"]: float(r["density"]) for r in densities if r["level"] == str(level)} == \
            mask.layer_density()
    assert (out / "layer_density.png").read_bytes()[:4] == b"\x89PNG"
    rows = read(out / "overlap.csv")
    a = Ticket.load(runs[0] / "level_02/ticket", with_rewind=False).mask
    b = Ticket.load(runs[1] / "level_02/ticket", with_rewind=False).mask
    total = next(r for r in rows if r["level"] == "2" and r["layer"] == "(all layers)")
    assert float(total["jaccard"]) == overlap(a, b)["(all layers)"].jaccard
    assert float(total["chance_jaccard"]) == expected_random_overlap(a, b)["(all layers)"].jaccard
    assert {r["level"] for r in rows} == {"1", "2"}
    assert f"{overlap(a, b)['(all layers)'].jaccard:.4f}" in printed


def test_a_ticket_directory_is_compared_with_every_level(runs, tmp_path, capsys):
    assert main(["analyze", str(runs[0]), "masks", "--compare", str(runs[0] / "level_01/ticket"),
                 "--levels", "1"]) == 0
    rows = read(runs[0] / "analysis/masks/overlap.csv")
    total = next(r for r in rows if r["layer"] == "(all layers)")
    assert (total["level"], float(total["jaccard"]), float(total["excess"])) == ("1", 1.0, 1.0)  # itself


def test_bad_inputs_are_refused_before_anything_is_written(runs, tmp_path, capsys):
    fresh = tmp_path / "copy"
    assert main(["analyze", str(tmp_path / "nothing"), "masks"]) == 2
    assert "not a run directory (no config.yaml) or a ticket directory" in capsys.readouterr().err
    assert main(["analyze", str(runs[1]), "masks", "--levels", "7"]) == 2
    assert "no ticket at level(s) [7] (it has [1, 2])" in capsys.readouterr().err
    before = set(runs[1].rglob("*"))
    assert main(["analyze", str(runs[1]), "masks", "--compare", str(fresh)]) == 2
    assert "copy: not a run directory" in capsys.readouterr().err
    assert set(runs[1].rglob("*")) == before  # the other run's analysis was not (re)written
