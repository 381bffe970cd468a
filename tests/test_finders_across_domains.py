"""Every finder runs on a tiny transformer and on an RL policy network."""

import pytest

from tickets.config import load_experiment
from tickets.methods import make_runner

DOMAINS = {
    "nlp": {"name": "nlp", "batch_size": 8, "model": {"hidden_size": 16, "num_hidden_layers": 1,
                                                      "num_attention_heads": 2, "intermediate_size": 32}},
    "rl": {"name": "rl", "n_steps": 32, "batch_size": 32, "net_arch": [16], "eval_episodes": 1},
}
STEPS = {"nlp": 4, "rl": 64}
FINDERS = {
    "imp": {"method": "imp", "levels": 1},
    "early_bird": {"method": "early_bird", "compressions": [4], "early_bird": {"every": 1, "window": 2,
                                                                            "epsilon": 0.5}},
    **{s: {"method": "at_init", "scorer": s, "compressions": [4], "iterations": 2}
       for s in ["magnitude", "random", "snip", "grasp", "synflow"]},
}


@pytest.mark.parametrize("finder", list(FINDERS))
@pytest.mark.parametrize("domain", list(DOMAINS))
def test_finder_runs(domain, finder, tmp_path):
    cfg = {"name": f"{domain}_{finder}", "domain": DOMAINS[domain], "train": {"steps": STEPS[domain]},
           "pruning": FINDERS[finder], "controls": ["random_mask"]}
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    rows = run.rows()
    assert [r["condition"] for r in rows] == ["dense", "ticket", "random_mask"]
    ticket = rows[1]
    assert ticket["weights_remaining_pct"] < 100.0
    assert isinstance(ticket["path_survives"], bool)  # both domains give an all-ones input
