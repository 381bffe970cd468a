"""Several seeds: one ordinary run per seed and a mean ± std summary."""

import statistics

import pytest

from conftest import vision_config
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.run_dir import RunDir
from tickets.seeds import aggregate


def test_seeds_run_each_seed_and_summarise(tmp_path, capsys):
    import yaml

    cfg = vision_config(**{"seeds": [0, 1, 2], "pruning.levels": 1, "controls": ["random_mask"]})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "accuracy mean ± std" in out and "summary.csv" in out
    summary = load_experiment(cfg)
    runs = {s: RunDir(tmp_path / "runs" / f"tiny-{summary.with_seed(s).hash()}") for s in (0, 1, 2)}
    single = load_experiment(vision_config(**{"seed": 1, "pruning.levels": 1, "controls": ["random_mask"]}))
    assert runs[1].path.name == f"tiny-{single.hash()}"  # a seed's run is the plain run with that seed
    rows = aggregate(tmp_path / "runs" / f"tiny-{summary.hash()}")
    assert [(r["level"], r["condition"], r["n"]) for r in rows] == [(0, "dense", 3), (1, "ticket", 3),
                                                                    (1, "random_mask", 3)]
    for r in rows:
        values = [next(x["value"] for x in runs[s].rows() if (x["level"], x["condition"]) == (r["level"], r["condition"]))
                  for s in (0, 1, 2)]
        assert r["value"] == pytest.approx(statistics.fmean(values))
        assert r["std"] == pytest.approx(statistics.stdev(values))
    assert len({r["value"] for r in RunDir(runs[0].path).rows()} ^ {r["value"] for r in RunDir(runs[2].path).rows()}) > 0


def test_repeated_seeds_are_refused():
    with pytest.raises(ConfigError, match=r"seeds: listed twice in \[1, 1\]"):
        load_experiment(vision_config(seeds=[1, 1]))
