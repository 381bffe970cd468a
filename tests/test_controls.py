"""Controls as registered parts: the layer-density allocations (uniform, ERK as in RigL), the
controls drawn with them, a plugin control found through an entry point, and refusals."""

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import vision_config
from tickets import registry
from tickets.artifact import Ticket
from tickets.config import load_experiment
from tickets.controls import Control, ERKRandomMask, UniformRandomMask
from tickets.density_allocation import allocate, erk_raw
from tickets.errors import ConfigError
from tickets.masks import Mask
from tickets.methods import make_runner

LENET = {"fc1": (300, 784), "fc2": (100, 300), "out": (10, 100)}
CONV = {"conv1": (16, 3, 3, 3), "conv2": (32, 16, 3, 3), "fc": (10, 512)}


@pytest.mark.parametrize("shapes", [LENET, CONV])
@pytest.mark.parametrize("density", [0.5, 0.1, 0.01])
def test_erk_densities_follow_the_rigl_rule(shapes, density):
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    budget = int(density * sum(sizes.values()))
    counts = allocate(shapes, budget, "erk")
    assert sum(counts.values()) == budget
    dense = [n for n in shapes if counts[n] == sizes[n]]
    free = [n for n in shapes if n not in dense]
    # a layer left sparse has density eps * (sum of dims / product of dims), one eps for all of them
    eps = (budget - sum(sizes[n] for n in dense)) / sum(erk_raw(shapes[n]) * sizes[n] for n in free)
    for n in free:
        assert abs(counts[n] - eps * erk_raw(shapes[n]) * sizes[n]) <= 1.0, n
        assert eps * erk_raw(shapes[n]) <= 1.0
    # a dense layer is one whose ERK density would have exceeded 1 (never one that fits)
    for n in dense:
        assert eps * erk_raw(shapes[n]) >= 1.0 - 1.0 / sizes[n], n


def test_erk_keeps_small_layers_denser_than_large_ones():
    counts = allocate(LENET, int(0.1 * (300 * 784 + 100 * 300 + 1000)), "erk")
    density = {n: counts[n] / math.prod(s) for n, s in LENET.items()}
    assert density["out"] > density["fc2"] > density["fc1"]


def test_an_overfull_small_layer_is_kept_dense_and_the_rest_rescaled():
    shapes = {"big": (1000, 1000), "tiny": (2, 3)}
    counts = allocate(shapes, 500_000, "erk")  # tiny's ERK density would be ~ 0.83 / 0.002 >> 1
    assert counts["tiny"] == 6 and counts["big"] == 500_000 - 6


def test_uniform_gives_every_layer_the_same_density():
    total = sum(math.prod(s) for s in LENET.values())
    counts = allocate(LENET, int(0.2 * total), "uniform")
    assert sum(counts.values()) == int(0.2 * total)
    for n, s in LENET.items():
        assert abs(counts[n] - 0.2 * math.prod(s)) <= 1.0


@pytest.mark.parametrize("control", [UniformRandomMask(), ERKRandomMask()])
def test_allocated_random_masks_keep_the_tickets_total_and_draw_from_the_generator(control):
    g = torch.Generator().manual_seed(0)
    ticket = Mask({n: torch.rand(s, generator=g) < torch.tensor([0.05, 0.3, 0.9][i]) for i, (n, s) in
                   enumerate(LENET.items())})
    a = control.mask(ticket, torch.Generator().manual_seed(1), {})
    b = control.mask(ticket, torch.Generator().manual_seed(1), {})
    c = control.mask(ticket, torch.Generator().manual_seed(2), {})
    assert a == b and a != c
    assert sum(a.kept().values()) == sum(ticket.kept().values())
    expected = allocate(ticket.shapes(), sum(ticket.kept().values()), control.allocation)
    assert a.kept() == expected


def test_erk_and_uniform_controls_train_under_imp(tmp_path):
    cfg = vision_config(**{"pruning.levels": 2, "controls": ["random_mask_erk", "random_mask_uniform"]})
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    rows = {(r["level"], r["condition"]): r for r in run.rows()}
    for level in (1, 2):
        ticket = Ticket.load(run.ticket_dir(level)).mask
        total = sum(ticket.kept().values())
        for name, kind in [("random_mask_erk", "erk"), ("random_mask_uniform", "uniform")]:
            row = rows[(level, name)]
            assert row["weights_remaining_pct"] == pytest.approx(rows[(level, "ticket")]["weights_remaining_pct"])
            counts = allocate(ticket.shapes(), total, kind)
            for layer, density in row["layer_density"].items():
                assert density == pytest.approx(counts[layer] / ticket[layer].numel())


class WrongShape(Control):
    def mask(self, ticket, generator, output_axes):
        return Mask({n: torch.ones(3, dtype=torch.bool) for n in ticket})


def test_a_control_whose_mask_does_not_fit_is_refused_before_it_trains(tmp_path):
    registry.controls.register("test_wrong_shape", WrongShape)
    cfg = vision_config(**{"pruning.levels": 1, "controls": ["test_wrong_shape"]})
    with pytest.raises(RuntimeError, match="control 'test_wrong_shape' gave a torch.bool mask of shape"):
        make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()


@pytest.mark.parametrize("names, says", [(["randm_mask"], "unknown control 'randm_mask'.*random_mask"),
                                         (["ticket"], "'ticket' is a stage of every run")])
def test_an_unknown_control_is_refused_naming_the_key(names, says):
    with pytest.raises(ConfigError, match=f"controls.0: {says}"):
        load_experiment(vision_config(**{"controls": names}))


def test_a_control_is_one_file_plus_one_entry_point_line(tmp_path):
    """The README's worked example, end to end in a fresh process: a module defining the
    control, and its entry point in a dist-info directory (what `pip install` of a package
    declaring ``[project.entry-points."tickets.controls"]`` writes)."""
    plugins = tmp_path / "plugins"
    (plugins / "my_controls-0.1.dist-info").mkdir(parents=True)
    (plugins / "my_controls.py").write_text(textwrap.dedent('''
        import torch
        from tickets.controls import Control
        from tickets.masks import Mask

        class LayerFlip(Control):
            """The ticket's mask reversed in each layer: same per-layer sparsity, other weights."""

            def mask(self, ticket, generator, output_axes):
                return Mask({n: m.flatten().flip(0).reshape(m.shape) for n, m in ticket.items()})
    '''))
    (plugins / "my_controls-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my-controls\n"
                                                                    "Version: 0.1\n")
    (plugins / "my_controls-0.1.dist-info" / "entry_points.txt").write_text(
        "[tickets.controls]\nlayer_flip = my_controls:LayerFlip\n")
    import yaml

    cfg = vision_config(**{"pruning.levels": 1, "train.steps": 10, "controls": ["layer_flip"]})
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "tickets.cli", "run", str(tmp_path / "exp.yaml"), "--out",
                          str(tmp_path / "runs"), "--quiet", "--threads", "1"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "layer_flip" in out.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    rows = [r for r in (run_dir / "results.csv").read_text().splitlines() if ",layer_flip," in r]
    assert len(rows) == 1
