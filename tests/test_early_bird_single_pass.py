"""Early-Bird's one dense run for every compression: the same tickets (masks, drawn steps, drawn
weights, search records) as a run per compression from θ0 stopped at its own draw, in a fraction
of the steps; a resumed run takes later levels' searches from their files, checked."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from conftest import vision_config
from damaged_helpers import comparable
from tickets import store
from tickets.early_bird import EarlyBirdMonitor, TicketDrawn, channel_to_weight_mask, slimming_penalty
from tickets.early_bird_run import MASK_FILE, EarlyBirdRun
from tickets.config import load_experiment
from tickets.errors import ArtifactError, DivergedError
from tickets.rewind import capture, load_state
from tickets.run_dir import RunDir


def vision(epsilon=0.04, **kw):
    # digits, LeNet-300-100, Adam 0.01: compressions 2, 5, 10 draw at steps 40, 25, 15 (epsilon 0.04)
    return vision_config(**{"pruning.method": "early_bird", "pruning.compressions": [2, 5, 10], "pruning.groups": [],
                            "pruning.early_bird": {"every": 5, "window": 3, "epsilon": epsilon},
                            "train.steps": 150, "train.eval_every": 50,
                            "domain.optimizer": {"name": "adam", "lr": 0.01}, "controls": [], **kw})


CONFIGS = {
    # level 1 (compression 2) never draws within the budget, levels 2 and 3 at 70 and 30
    "magnitude": vision(0.02),
    # draws at 40, 70, 45: not in the order of the densities
    "bn_channels": vision(**{"domain.model": "resnet_20", "domain.width": 4, "train.steps": 100,
                             "pruning.compressions": [1.43, 2, 3.33],
                             "pruning.early_bird": {"every": 5, "window": 3, "epsilon": 0.06, "mode": "bn_channels",
                                                    "slimming": 1e-4, "rewind": False}}),
    # PPO on CartPole: draws at 544, 416, 128 environment steps
    "rl": {"name": "rl_eb", "domain": {"name": "rl", "n_steps": 32, "batch_size": 32, "net_arch": [16],
                                       "eval_episodes": 1, "optimizer": {"name": "adam", "lr": 0.02}},
           "train": {"steps": 640}, "controls": [],
           "pruning": {"method": "early_bird", "compressions": [2, 4, 8],
                       "early_bird": {"every": 32, "window": 3, "epsilon": 0.04}}},
}


def dense_runner(cfg, out) -> EarlyBirdRun:
    runner = EarlyBirdRun(load_experiment(cfg), out, show_progress=False)
    runner.run.claim(runner.experiment.resolved())
    runner._dense()
    return runner


def count_search_training(runner):
    """Record the domain's train calls made by the search (in ``level_mask``): one list of the
    reported steps per call."""
    calls, train, level_mask, inside = [], runner.domain.train, runner.level_mask, [False]

    def counting(model, **kw):
        if not inside[0]:
            return train(model, **kw)
        seen, user = [], kw["on_step"]
        calls.append(seen)

        def on_step(step):
            seen.append(step)
            user(step)

        return train(model, **{**kw, "on_step": on_step})

    def flagged(level, previous):
        inside[0] = True
        try:
            return level_mask(level, previous)
        finally:
            inside[0] = False

    runner.domain.train, runner.level_mask = counting, flagged
    return calls


def draws(run, levels):
    return [store.read_json(run.level_dir(lvl) / "early_bird.json")["drawn_step"] for lvl in levels]


def search_alone(runner, level):
    """The search as a run of its own from θ0, stopped at its draw (what a level did before)."""
    cfg, eb = runner.config, runner.config.pruning.early_bird
    torch.manual_seed(1000 + level)  # any global seed: training reseeds its generators by step
    model = runner.domain.build_model(seed=cfg.seed)
    load_state(model, runner.run.load_state("init"))
    prunable = runner.prunable(model)
    monitor = EarlyBirdMonitor(model, prunable, 1 / cfg.pruning.compressions[level - 1], eb.every, mode=eb.mode,
                               window=eb.window, epsilon=eb.epsilon)
    handles = slimming_penalty(model, eb.slimming) if eb.slimming else None
    try:
        runner.domain.train(model, steps=cfg.train.steps, seed=cfg.seed, on_step=monitor)
        mask, step = monitor.current_mask(), None
    except TicketDrawn as drawn:
        mask, step = drawn.mask, drawn.step
    finally:
        if handles is not None:
            handles.remove()
    if eb.mode == "bn_channels":
        mask = channel_to_weight_mask(model, mask, prunable=prunable)
    return mask, step, capture(model), {**monitor.summary(), "drawn_step": step}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_one_search_draws_the_tickets_of_a_search_per_compression(case, tmp_path, capsys):
    runner = dense_runner(CONFIGS[case], tmp_path)
    calls = count_search_training(runner)
    masks = {lvl: runner.level_mask(lvl, None) for lvl in runner.levels()}
    shared_steps = calls[0]
    assert len(calls) == 1  # the levels after the first train nothing more
    steps = []
    for level in runner.levels():
        mask, step, state, record = search_alone(runner, level)
        steps.append(step)
        assert masks[level] == mask, level
        written = store.read_json(runner.run.level_dir(level) / "early_bird.json")
        assert written.pop("search_seconds") > 0 and written == record, level
        drawn = runner.run.load_state(f"level_{level:02d}/drawn")
        assert drawn.keys() == state.keys() and all(torch.equal(drawn[n], state[n]) for n in state), level
        saved = store.read_tensors(runner.run.level_dir(level) / MASK_FILE)
        assert saved.keys() == mask.keys() and all(torch.equal(saved[n], mask[n]) for n in mask)
    assert len(set(steps)) == 3, steps  # the levels draw at different steps
    budget = runner.config.train.steps
    assert shared_steps[-1] == (budget if None in steps else max(steps))
    undrawn = [lvl for lvl, s in zip(runner.levels(), steps) if s is None]
    err = capsys.readouterr().err
    for level in runner.levels():
        assert (f"warning: level {level}: no Early-Bird ticket was drawn" in err) == (level in undrawn)


def test_the_search_trains_as_long_as_the_latest_draw_not_the_sum(tmp_path):
    runner = dense_runner(vision(), tmp_path)
    calls = count_search_training(runner)
    for level in runner.levels():
        runner.level_mask(level, None)
    assert draws(runner.run, runner.levels()) == [40, 25, 15]
    assert len(calls) == 1 and len(calls[0]) == calls[0][-1] == 40  # a run per level: 15 + 25 + 40 = 80 steps


# ---------------------------------------------------------------------------------- resuming

def resume_config():
    return vision(**{"pruning.early_bird": {"every": 5, "window": 3, "epsilon": 0.04, "rewind": False},
                     "train.steps": 60, "train.eval_every": 20, "controls": ["random_mask"]})


class Interrupt(BaseException):
    pass


def interrupted_run(out, monkeypatch, at=(1, "random_mask")):
    """A run killed as it starts stage ``at`` (level 1's ticket done, its search of every level too)."""
    original = EarlyBirdRun._stage

    def stage(self, level, condition, mask):
        if (level, condition) == at:
            raise Interrupt
        return original(self, level, condition, mask)

    with monkeypatch.context() as m:
        m.setattr(EarlyBirdRun, "_stage", stage)
        with pytest.raises(Interrupt):
            EarlyBirdRun(load_experiment(resume_config()), out, show_progress=False).execute()


def resumed(out):
    runner = EarlyBirdRun(load_experiment(resume_config()), out, show_progress=False)
    calls = count_search_training(runner)
    return runner.execute(), calls


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    return EarlyBirdRun(load_experiment(resume_config()), out, show_progress=False).execute()


def same_run(a, b):
    assert comparable(a.rows()) == comparable(b.rows())
    for level in (1, 2, 3):
        for name in ("ticket/masks.safetensors", "drawn.safetensors", MASK_FILE):
            x, y = (store.read_tensors(r.level_dir(level) / name) for r in (a, b))
            assert x.keys() == y.keys() and all(torch.equal(x[n], y[n]) for n in x), (level, name)
        x, y = (store.read_json(r.level_dir(level) / "early_bird.json") for r in (a, b))
        assert x.pop("search_seconds") > 0 and y.pop("search_seconds") > 0 and x == y


def test_each_level_records_the_search_time_up_to_its_own_draw(uninterrupted):
    rows = {r["level"]: r for r in uninterrupted.rows() if r["condition"] == "ticket"}
    draw = {lvl: store.read_json(uninterrupted.level_dir(lvl) / "early_bird.json") for lvl in (1, 2, 3)}
    for level in (1, 2, 3):  # one pass found all three, yet none records ~0 s: each its time to ticket
        assert rows[level]["mask_seconds"] == pytest.approx(draw[level]["search_seconds"])
        assert draw[level]["search_seconds"] > 0
    order = sorted((1, 2, 3), key=lambda lvl: draw[lvl]["drawn_step"] or math.inf)
    seconds = [draw[lvl]["search_seconds"] for lvl in order]
    assert seconds == sorted(seconds)  # a later draw took longer


def test_a_run_interrupted_after_level_1s_ticket_resumes_without_searching_again(tmp_path, monkeypatch,
                                                                                 uninterrupted):
    interrupted_run(tmp_path, monkeypatch)
    run, calls = resumed(tmp_path)
    assert calls == []  # levels 2 and 3 take their masks from the files of level 1's search
    same_run(run, uninterrupted)


def test_a_level_whose_search_files_are_missing_is_searched_again(tmp_path, monkeypatch, uninterrupted):
    interrupted_run(tmp_path, monkeypatch)
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    (run_dir / "level_02" / "early_bird.json").unlink()  # as if killed between level 2's draw and its record
    (run_dir / "level_03" / MASK_FILE).unlink()
    run, calls = resumed(tmp_path)
    assert [c[-1] for c in calls] == [max(draws(run, (2, 3)))]  # one search, for levels 2 and 3
    same_run(run, uninterrupted)


def test_a_damaged_mask_is_refused_naming_the_file(tmp_path, monkeypatch):
    interrupted_run(tmp_path, monkeypatch)
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    path = run_dir / "level_02" / MASK_FILE
    tensors = store.read_tensors(path)
    name = next(iter(tensors))
    flat = tensors[name].reshape(-1)
    flat[0] = ~flat[0]  # a valid file holding another mask
    save_file(tensors, str(path))
    with pytest.raises(ArtifactError, match=re.escape(f"{path}: is not the level's mask") + ".*"
                       + re.escape(f"delete {run_dir / 'level_02'}")):
        EarlyBirdRun(load_experiment(resume_config()), tmp_path, show_progress=False).execute()
    assert not (run_dir / "level_02" / "ticket").exists()


def test_a_shared_search_that_diverges_falls_back_to_a_search_per_level(tmp_path):
    """Loss NaN from level 2's draw step on, in every training run: a run per level draws level 1
    before it and fails at level 2. The shared search does the same. (The draw steps follow the
    float sums, so they are found first: 40 and 70 on one machine, 35 and 40 on another.)"""
    cfg = {**CONFIGS["bn_channels"], "train": {"steps": 100, "eval_every": 5}}  # the guard checks every 5 steps
    runner = dense_runner(cfg, tmp_path)
    first, second = search_alone(runner, 1)[1], search_alone(runner, 2)[1]
    assert first is not None and second is not None and first < second, f"the premise: draws at {first}, {second}"
    original, train = runner.domain.loss, runner.domain.train
    count = {"n": 0}

    def loss(model, batch, *, train):
        value, logits = original(model, batch, train=train)
        if train:
            count["n"] += 1
            if count["n"] >= second:
                return value * math.nan, logits
        return value, logits

    def fresh_count(model, **kw):
        count["n"] = 0
        return train(model, **kw)

    runner.domain.loss, runner.domain.train = loss, fresh_count
    calls = count_search_training(runner)
    mask = runner.level_mask(1, None)
    assert [c[-1] for c in calls] == [second, first]  # the shared search, then level 1's own
    assert store.read_json(runner.run.level_dir(1) / "early_bird.json")["drawn_step"] == first
    assert mask == search_alone(runner, 1)[0]
    for level in (2, 3):
        assert not any((runner.run.level_dir(level) / name).exists()
                       for name in ("early_bird.json", "drawn.safetensors", MASK_FILE))
    with pytest.raises(DivergedError, match=rf"^level 2 early-bird search: .*training loss is nan at step {second}"):
        runner.level_mask(2, mask)
    assert not (runner.run.level_dir(2) / "drawn.safetensors").exists()


def test_a_truncated_mask_is_refused_before_anything_trains(tmp_path, monkeypatch):
    interrupted_run(tmp_path, monkeypatch)
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    path = run_dir / "level_03" / MASK_FILE
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ArtifactError, match=re.escape(str(path)) + ".*" + re.escape(f"delete {run_dir / 'level_03'}")):
        EarlyBirdRun(load_experiment(resume_config()), tmp_path, show_progress=False).execute()
    assert not (run_dir / "level_01" / "random_mask.result.json").exists()


def test_two_processes_draw_the_same_tickets_and_write_them_once(tmp_path):
    cfg = vision(**{"domain.name": "recording_vision", "train.steps": 60, "pruning.compressions": [2, 5]})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    here = Path(__file__).resolve().parent
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(here / "distributed_worker.py"), str(path), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=here.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [(tmp_path / f"rank{r}.jsonl").read_text() for r in range(2)]
    assert records[0] == records[1] and len(records[0].splitlines()) == 3  # dense, two tickets
    run_dir = next((tmp_path / "runs").iterdir())
    for level in (1, 2):
        assert {p.name for p in (run_dir / f"level_{level:02d}").iterdir()} >= {
            "drawn.safetensors", MASK_FILE, "early_bird.json"}
    assert draws(RunDir(run_dir), (1, 2)) == [40, 25]
    assert not list(run_dir.rglob("*.tmp"))
