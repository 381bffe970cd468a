"""A config error and --help answer before torch is imported (torch alone takes ~2 s to import)."""

import subprocess
import sys
from pathlib import Path

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
