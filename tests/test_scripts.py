"""The scripts in scripts/ run end to end on tiny budgets."""

import csv
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import vision_config

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_compare_finders_trains_every_finder_and_marks_collapse(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(**{"train.steps": 6, "train.eval_every": 3, "pruning.groups": [],
                                                   "pruning.early_bird": {"every": 1, "window": 2,
                                                                          "epsilon": 0.5}})))
    out = run(ROOT / "scripts/compare_finders.py", cfg, "--compressions", "2", "1000", "--out", tmp_path / "cmp")
    rows = list(csv.DictReader(open(tmp_path / "cmp/compare.csv")))
    assert {r["finder"] for r in rows} == {"imp", "early_bird", "magnitude", "random", "snip", "grasp", "synflow"}
    assert all(r["value"] and r["random_mask_value"] for r in rows)
    assert (tmp_path / "cmp/compare.png").read_bytes()[:4] == b"\x89PNG"
    assert "highest compression before collapse" in out


def test_compare_finders_checks_every_finder_before_training_any(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(**{"train.steps": 6, "pruning.groups": []})))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/compare_finders.py"), str(cfg), "--compressions", "2",
                           "--set", "pruning.early_bird.every=500", "--out", str(tmp_path / "cmp")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == ("compare_finders: error: early_bird: config.pruning.early_bird.every: 500 is beyond "
                                   "train.steps (6)")
    assert not any(tmp_path.rglob("*.safetensors"))  # IMP, listed first, trained nothing


def test_compare_finders_help_documents_every_option():
    out = run(ROOT / "scripts/compare_finders.py", "--help")
    for option in ("--set", "--finders", "--compressions", "--masks-only", "--out", "--threads"):
        assert option in out
    assert "imp, early_bird, magnitude, random, snip, grasp, synflow" in " ".join(out.split())
    assert "checked before any finder trains" in " ".join(out.split())


def test_compare_finders_masks_only(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(vision_config()))
    run(ROOT / "scripts/compare_finders.py", cfg, "--masks-only", "--compressions", "10", "1000",
        "--finders", "magnitude", "synflow", "--out", tmp_path / "cmp")
    rows = list(csv.DictReader(open(tmp_path / "cmp/compare_masks.csv")))
    synflow = {r["compression"]: r for r in rows if r["finder"] == "synflow"}
    assert synflow["1000"]["path_survives"] == "True"  # SynFlow avoids layer collapse at 10^3


def test_benchmarks_run(tmp_path):
    out = run(ROOT / "scripts/bench_masking.py", "--steps", "3", "--rounds", "2")
    assert "tickets MaskEnforcer" in out and "MaskEnforcer / multiply by hand per round" in out
    assert "95% interval" in out and "the multiply inside the loop" in out
    out = run(ROOT / "scripts/bench_resnet20.py", "--steps", "1", "--rounds", "2", "--batch", "2", "--threads", "1")
    assert "masked/dense time per step, per round" in out


def test_bench_export_times_dense_against_its_exports_and_counts_what_is_kept(tmp_path):
    out = run(ROOT / "scripts/bench_export.py", "--models", "lenet", "--rounds", "1", "--seconds", "0.01",
              "--csv", tmp_path / "rows.csv")
    assert "csr/dense" in out and "dense-small/dense" in out
    with open(tmp_path / "rows.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["format"], r["removed_pct"], r["batch"]) for r in rows] == (
        [("csr", s, b) for s in ("90.0", "95.0", "99.0") for b in ("1", "1024")]
        + [("dense-small", s, b) for s in ("50.0", "75.0", "90.0") for b in ("1", "1024")])
    for r in rows:
        dense, kept, params = (int(r[k]) for k in ("macs_dense", "macs_kept", "params_kept"))
        assert dense == 266_200 and float(r["dense_ms"]) > 0 and float(r["export_ms"]) > 0
        if r["format"] == "csr":  # LeNet: each weight used once per example; biases dense
            assert abs(kept / dense - (1 - float(r["removed_pct"]) / 100)) < 0.005 and params == 410 + kept
        else:  # units removed from both sides of the hidden layers: the cost falls faster than the units
            left = 1 - float(r["removed_pct"]) / 100
            assert kept < dense * left and params < 266_610 * left


def test_bench_stage_times_the_stage_beside_a_bare_loop_with_identical_weights(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(vision_config()))
    for density, implementation in (("1.0", "default"), ("0.3", "fused")):  # a ticket's: the mask hook on both sides
        out = run(ROOT / "scripts/bench_stage.py", "--config", cfg, "--steps", "12", "--rounds", "2",
                  "--eval-every", "5", "--density", density, "--set", f"domain.optimizer.implementation={implementation}")
        assert "final weights bit-identical: yes" in out and f"adam ({implementation})" in out
        assert "stage/bare:" in out and "torch.manual_seed" in out


def test_bench_optimizers_times_each_implementation_and_checks_which_give_the_same_weights(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(vision_config()))
    out = run(ROOT / "scripts/bench_optimizers.py", "--config", cfg, "--steps", "8", "--rounds", "1",
              "--eval-every", "4", "--density", "0.5")
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert set(rows) == {"default", "for_loop", "foreach", "fused"}
    assert all(rows[k].endswith("bit for bit") for k in ("for_loop", "foreach"))
    assert rows["fused"].endswith(("bit for bit", "no (rounds differently)"))  # the rounding is torch's and the CPU's


def test_transfer_matrix_fills_every_cell_from_the_right_run(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(name="m", **{"train.steps": 10, "train.eval_every": 5})))
    out = run(ROOT / "scripts/transfer_matrix.py", cfg, "--variant", "adam", "--variant", "sgd",
              "domain.optimizer={name: sgd, lr: 0.05}", "--set", "pruning.levels=2", "--levels", "2",
              "--controls", "reinit", "--workers", "1", "--out", tmp_path / "runs")
    rows = list(csv.DictReader(open(tmp_path / "runs/m/matrix.csv")))
    cells = {(int(r["level"]), r["source"], r["target"], r["condition"]): float(r["value"]) for r in rows}
    assert set(cells) == {(2, s, t, c) for s in ("adam", "sgd") for t in ("adam", "sgd")
                          for c in ("ticket", "reinit")}
    from tickets.run_dir import RunDir

    runs = {p.name.rsplit("-", 1)[0]: RunDir(p) for p in (tmp_path / "runs").iterdir() if p.name.startswith("m-")}
    assert set(runs) == {"m-adam", "m-sgd", "m-adam-to-sgd", "m-sgd-to-adam"}
    for (level, s, t, condition), value in cells.items():
        run_dir = runs[f"m-{s}"] if s == t else runs[f"m-{s}-to-{t}"]  # the diagonal: the source's own run
        assert value == next(r["value"] for r in run_dir.rows() if (r["level"], r["condition"]) == (level, condition))
    assert (tmp_path / "runs/m/level_02.png").read_bytes()[:4] == b"\x89PNG"
    assert "level 2: the ticket's accuracy (its advantage over reinit" in out


def test_transfer_matrix_refuses_a_bad_variant_before_training(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(vision_config(name="m")))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/transfer_matrix.py"), str(cfg), "--variant", "a",
                           "--variant", "b", "domain.optimizer.lrr=0.1", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("transfer_matrix: error: ") and "lrr" in proc.stderr
    assert not any(tmp_path.rglob("*.safetensors"))


def test_cross_domain_puts_the_domains_side_by_side(tmp_path):
    out = run(ROOT / "scripts/cross_domain.py", "--domains", "vision", "rl", "--seeds", "0", "--controls", "reinit",
              "--set", "pruning.levels=1", "train.steps=256", "train.eval_every=256", "--executor", "serial",
              "--out", tmp_path / "runs")
    assert "vision: accuracy relative to dense" in out and "rl: mean_return relative to dense" in out
    assert (tmp_path / "runs/cross_domain_small.png").read_bytes()[:4] == b"\x89PNG"
    from tickets.run_dir import RunDir

    for prefix in ("lenet300_mnist-", "ppo_cartpole-"):
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(prefix)]
        assert [(r["level"], r["condition"]) for r in RunDir(run_dir).rows()] == [(0, "dense"), (1, "ticket"),
                                                                                   (1, "reinit")]
