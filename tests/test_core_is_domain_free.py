import subprocess
import sys

DOMAIN_LIBS = ["transformers", "datasets", "gymnasium", "stable_baselines3", "accelerate", "domains"]


def test_importing_the_core_loads_no_domain_library():
    code = (
        "import sys, tickets, tickets.imp, tickets.cli, tickets.report, tickets.config, tickets.registry;"
        "tickets.registry.domains.names();"
        f"print([m for m in {DOMAIN_LIBS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_choosing_one_domain_does_not_import_the_others():
    code = (
        "import sys; from tickets.registry import domains; domains.get('vision');"
        "print([m for m in ['transformers', 'gymnasium', 'stable_baselines3'] if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
