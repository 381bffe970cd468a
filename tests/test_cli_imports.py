"""A config error and --help answer before torch is imported (torch alone takes ~2 s to import)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
from tickets.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("torch imported:", "torch" in sys.modules, "exit:", code)
"""


def probe(*args):
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    return done.stdout.strip().splitlines()[-1], done.stderr


def test_a_bad_config_key_is_refused_before_torch_is_imported():
    out, err = probe("run", "configs/vision/lenet300_mnist.yaml", "bogus.key=1")
    assert out == "torch imported: False exit: 2"
    assert err.strip() == ("tickets: error: config.bogus: unknown key (known keys: controls, domain, name, pruning, "
                           "rewind, seed, seeds, train, transfer)")


def test_help_does_not_import_torch():
    out, _ = probe("--help")
    assert out == "torch imported: False exit: 0"


@pytest.mark.parametrize("override, message", [
    ("domain.modle=x", "config.domain.modle: unknown key; did you mean 'model'?"),
    ("domain.model=lenet_301", "config.domain.model: unknown vision model 'lenet_301'; did you mean 'lenet_300_100'?"),
    ("domain.dataset.validation=2", "config.domain.dataset.validation: must be in (0, 1), got 2.0"),
    ("domain.optimizer.lr=-1", "config.domain.optimizer.lr: must be positive, got -1"),
    ("domain.schedule.gamma=0", "config.domain.schedule.gamma: must be in (0, 1], got 0"),
    ("pruning.scorer=snip", "config.pruning.scorer: 'snip' scores the initialisation, not trained weights"),
])
def test_a_bad_domain_or_pruning_value_is_refused_before_torch_is_imported(override, message):
    out, err = probe("run", "configs/vision/lenet300_mnist.yaml", override)
    assert out == "torch imported: False exit: 2"
    assert err.strip().startswith(f"tickets: error: {message}")


def test_every_shipped_vision_config_is_checked_without_torch():
    code = ("import sys, glob\nfrom tickets.config import load_experiment\n"
            "for f in sorted(glob.glob('configs/vision/*.yaml')):\n    load_experiment(f)\n"
            "print(sorted(m for m in ('torch', 'accelerate', 'numpy', 'datasets') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
