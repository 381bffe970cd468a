"""Command-line arguments are checked by the parser: one usage line, no traceback, nothing run."""

import pytest

from tickets.cli import main


@pytest.mark.parametrize("threads", ["-1", "0", "two"])
def test_threads_must_be_a_positive_integer(threads, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "configs/vision/lenet300_mnist.yaml", "--threads", threads, "--out", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--threads: expected a positive number of threads" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
