"""A disk that fills up while a run writes its tensors is one error line, not a traceback: the
limit is real (RLIMIT_FSIZE in a child process, so the safetensors writer itself fails)."""

import subprocess
import sys
import textwrap

import yaml

from conftest import vision_config


def test_a_full_disk_while_writing_tensors_is_one_line(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(**{"pruning.levels": 1, "controls": []})))
    child = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))  # config.yaml fits, θ0 does not
        from tickets.cli import main
        sys.exit(main(["run", {str(cfg)!r}, "--out", {str(tmp_path / "runs")!r}, "--quiet"]))
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300,
                          cwd=str(tmp_path), env={**__import__("os").environ, "TICKETS_PROGRESS": "0"})
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith("tickets: error: ") and "init.safetensors" in lines[-1], lines[-1]
    assert sum(line.startswith("tickets: error:") for line in lines) == 1
    run_dir = next((tmp_path / "runs").iterdir())
    assert not (run_dir / "init.safetensors").exists() and not list(run_dir.glob(".init.safetensors.*"))
