"""`tickets report` of an unfinished run says how many stages are done."""

import shutil

from conftest import vision_config
from tickets.cli import main
from tickets.config import load_experiment
from tickets.methods import make_runner


def test_report_of_an_unfinished_run_says_so(tmp_path, capsys):
    exp = load_experiment(vision_config(**{"pruning.levels": 2, "controls": ["reinit"]}))
    run = make_runner(exp, tmp_path, show_progress=False).execute()
    assert main(["report", str(run.path)]) == 0
    assert "stages done" not in capsys.readouterr().out  # finished: 5 of 5
    shutil.rmtree(run.level_dir(2))
    assert main(["report", str(run.path)]) == 0
    assert "3 of 5 stages done: the run is unfinished" in capsys.readouterr().out
