"""Every shipped config runs end to end (dense + one level with its controls) on a tiny budget."""

from pathlib import Path

import pytest

from tickets.config import load_experiment
from tickets.imp import IMPRun

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*/*.yaml"))
TINY = {
    "vision": ["train.steps=4", "train.eval_every=2", "domain.dataset.name=digits"],
    "nlp": ["train.steps=4", "train.eval_every=2", "domain.batch_size=8"],
    "rl": ["train.steps=64", "train.eval_every=32", "domain.n_steps=32", "domain.batch_size=32",
           "domain.eval_episodes=1"],
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_smoke_runs(path, tmp_path):
    domain = load_experiment(path).config.domain["name"]
    exp = load_experiment(path, ["pruning.levels=1", "rewind.step=0", *TINY[domain]])
    run = IMPRun(exp, tmp_path, show_progress=False).execute()
    rows = run.rows()
    assert [r["condition"] for r in rows] == ["dense", "ticket", *sorted(exp.config.controls)]
    assert rows[1]["weights_remaining_pct"] < 100.0
    assert (run.ticket_dir(1) / "masks.safetensors").is_file()
