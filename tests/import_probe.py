"""Run a snippet in a fresh interpreter and report which heavy modules it imported (for the tests
that configs are checked before torch and the domain libraries are imported)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LOAD = """
import sys
from tickets.config import load_experiment
for path in sys.argv[1:]:
    load_experiment(path)
print("heavy imported:", [m for m in HEAVY if m in sys.modules])
"""

RUN = """
import sys
from tickets.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("heavy imported:", [m for m in HEAVY if m in sys.modules], "exit:", code)
"""


def probe(heavy: tuple[str, ...], script: str, *args: str) -> tuple[str, str]:
    """The snippet's last stdout line and its stderr; ``HEAVY`` is ``heavy`` inside it."""
    code = f"HEAVY = {heavy!r}\n{script}"
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip(), done.stderr
    return done.stdout.strip().splitlines()[-1], done.stderr.strip()
