"""Stage graphs run by the process pool give the serial run's table; stages run once however many
processes share a run directory; a failed stage does not stop the independent ones."""

from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import vision_config
from damaged_helpers import comparable
from tickets import claims, stage_graph, store
from tickets.config import load_experiment
from tickets.errors import StagesFailedError
from tickets.executors import run_processes
from tickets.methods import make_runner
from tickets.runner import Runner
from tickets.seeds import aggregate, run_seeds

ROOT = Path(__file__).resolve().parents[1]


def tiny(**kw):
    return vision_config(**{"pruning.levels": 2, "train.steps": 20, "controls": ["reinit", "random_mask"], **kw})


def serial_rows(cfg, out):
    return comparable(make_runner(load_experiment(cfg), out, show_progress=False).execute().rows())


def test_the_serial_schedule_is_the_graph_in_order():
    runner = make_runner(load_experiment(tiny()), "/nonexistent-out", show_progress=False)
    graph = runner.graph()
    assert [str(n) for n in stage_graph.serial_order(graph)] == [
        "level 0 dense", "level 1 mask", "level 1 ticket", "level 1 reinit", "level 1 random_mask",
        "level 2 mask", "level 2 ticket", "level 2 reinit", "level 2 random_mask"]
    assert graph[stage_graph.mask(2)] == (stage_graph.train(1, "ticket"),)  # IMP prunes the trained ticket
    assert graph[stage_graph.train(2, "reinit")] == (stage_graph.mask(2),)


def test_at_init_masks_need_only_the_dense_stage():
    cfg = tiny(**{"pruning.method": "at_init", "pruning.scorer": "snip", "pruning.compressions": [2, 4]})
    graph = make_runner(load_experiment(cfg), "/nonexistent-out", show_progress=False).graph()
    assert graph[stage_graph.mask(1)] == graph[stage_graph.mask(2)] == (stage_graph.DENSE,)


def test_two_worker_processes_give_the_serial_table_for_seeds_and_a_transfer(tmp_path):
    seeds = tiny(seeds=[0, 1])
    serial = aggregate(run_seeds(load_experiment(seeds), tmp_path / "serial", make_runner, show_progress=False))
    pooled = aggregate(run_seeds(load_experiment(seeds), tmp_path / "pool", make_runner, show_progress=False,
                                 execute=lambda runners: run_processes(runners, 2, threads=1, show_progress=False)))
    assert [{k: v for k, v in r.items()} for r in pooled] == serial
    for out in ("serial", "pool"):  # the transfer's source: seed 0's run under the same --out
        source = tmp_path / out / f"tiny-{load_experiment(tiny()).hash()}"
        transfer = tiny(name="moved", transfer={"source": str(source)},
                        **{"domain.optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}})
        runner = make_runner(load_experiment(transfer), tmp_path / out, show_progress=False)
        if out == "serial":
            expected = comparable(runner.execute().rows())
        else:
            run_processes([runner], 2, threads=1, show_progress=False)
            assert comparable(runner.run.rows()) == expected
    assert not list((tmp_path / "pool").rglob("*.claim")), "claims are released"


def test_a_failed_stage_is_reported_and_the_independent_ones_still_run(tmp_path, monkeypatch):
    original = Runner._stage

    def stage(self, level, condition, mask):
        if (level, condition) == (1, "reinit"):
            raise RuntimeError("the reinit control broke")
        return original(self, level, condition, mask)

    monkeypatch.setattr(Runner, "_stage", stage)
    runner = make_runner(load_experiment(tiny()), tmp_path, show_progress=False)
    with pytest.raises(StagesFailedError, match=r"1 stage\(s\) failed: tiny level 1 reinit: the reinit control "
                                                r"broke; rerun the same command to resume"):
        # one thread: stages in threads of one process would share torch's global generator
        run_processes([runner], 1, show_progress=False, pool=cf.ThreadPoolExecutor)
    done = {(r["level"], r["condition"]) for r in runner.run.rows()}
    assert done == {(0, "dense"), (1, "ticket"), (1, "random_mask"), (2, "ticket"), (2, "reinit"),
                    (2, "random_mask")}
    monkeypatch.setattr(Runner, "_stage", original)
    assert comparable(make_runner(load_experiment(tiny()), tmp_path, show_progress=False).execute().rows()) == \
        serial_rows(tiny(), tmp_path / "clean")  # a rerun resumes with the missing stage alone


def test_two_commands_on_one_directory_train_each_stage_once(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny(**{"train.steps": 30})))
    cmd = [sys.executable, "-m", "tickets.cli", "run", str(cfg), "--out", str(tmp_path / "out"), "--quiet",
           "--threads", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    trained = [line.split()[:3] for _, err in outs for line in err.splitlines() if line.startswith("level ")]
    stages = [("level", str(lvl), c) for lvl, c in [(0, "dense"), *[(lv, c) for lv in (1, 2)
                                                                       for c in ("ticket", "reinit", "random_mask")]]]
    assert sorted(map(tuple, trained)) == sorted(stages), "every stage trained exactly once between the two"
    run = next((tmp_path / "out").iterdir())
    assert comparable(make_runner(load_experiment(tiny(**{"train.steps": 30})), tmp_path / "out",
                                  show_progress=False).run.rows()) == \
        serial_rows(tiny(**{"train.steps": 30}), tmp_path / "alone")
    assert not list(run.rglob("*.claim"))


def test_a_claim_blocks_while_its_holder_lives_and_not_after(tmp_path):
    path = tmp_path / "level_01" / ".mask.claim"
    held = claims.acquire(path)
    assert held is not None and claims.acquire(path) is None  # this process holds it
    held.release()
    assert not path.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    path.write_text(f'{{"host_digest": "{store.HOST}", "pid": {dead}}}')  # a killed worker's leftover
    taken = claims.acquire(path)
    assert taken is not None
    taken.release()
    path.write_text('{"host_digest": "0000abcd", "pid": 1}')  # another host's: its heartbeat decides
    assert claims.acquire(path) is None
    old = time.time() - claims.STALE - 5
    os.utime(path, (old, old))
    taken = claims.acquire(path)
    assert taken is not None
    taken.release()


def test_a_live_writers_temporaries_are_not_leftovers(tmp_path):
    mine = tmp_path / f".results.csv.p{os.getpid()}h{store.HOST}.abcdefgh.tmp"
    mine.write_text("in the making")
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    dead = tmp_path / f".results.csv.p{dead_pid}h{store.HOST}.abcdefgh.tmp"
    dead.write_text("killed")
    legacy = tmp_path / ".results.csv.abcdefgh.tmp"
    legacy.write_text("an older version's")
    assert store.leftovers(tmp_path) == sorted([dead, legacy])


@pytest.mark.slow  # ~45 s (a Ray instance starts); `pytest -m slow`
def test_ray_on_a_local_instance_gives_the_serial_table_for_seeds_and_a_transfer(tmp_path):
    pytest.importorskip("ray")
    from tickets.ray_executor import run_ray

    seeds = tiny(seeds=[0, 1])
    serial = aggregate(run_seeds(load_experiment(seeds), tmp_path / "serial", make_runner, show_progress=False))
    on_ray = aggregate(run_seeds(load_experiment(seeds), tmp_path / "ray", make_runner, show_progress=False,
                                 execute=lambda runners: run_ray(runners, cpus=1, show_progress=False)))
    assert on_ray == serial
    rows = {}
    for out in ("serial", "ray"):
        source = tmp_path / out / f"tiny-{load_experiment(tiny()).hash()}"
        transfer = tiny(name="moved", transfer={"source": str(source)})
        runner = make_runner(load_experiment(transfer), tmp_path / out, show_progress=False)
        if out == "serial":
            runner.execute()
        else:
            run_ray([runner], cpus=1, show_progress=False)
        rows[out] = comparable(runner.run.rows())
    assert rows["ray"] == rows["serial"] and len(rows["ray"]) == 7


def test_without_ray_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    from tickets.errors import ConfigError
    from tickets.ray_executor import run_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    runner = make_runner(load_experiment(tiny()), tmp_path, show_progress=False)
    with pytest.raises(ConfigError, match=r"Ray is not installed; install the extra with pip install -c "
                                          r"constraints.txt \"\.\[ray\]\""):
        run_ray([runner])
    assert not any(tmp_path.iterdir())


def _start(cfg: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tickets.cli", "run", str(cfg), "--out", str(out), "--quiet",
           "--executor", "processes", "--workers", "2"]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_results(out: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while len(list(out.rglob("*.result.json"))) < n:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _workers_of(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(c) for c in children
            if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]


# ~25 s each, so both slow: a killed pool's resume is also covered by the default suite's
# test_study_run.py::test_a_killed_study_resumes_and_two_study_processes_train_each_remaining_stage_once
@pytest.mark.parametrize("kill", [pytest.param("driver and workers", marks=pytest.mark.slow),
                                  pytest.param("one worker", marks=pytest.mark.slow)])
def test_a_pool_killed_mid_way_resumes_to_the_same_table(tmp_path, kill):
    import signal

    cfg_dict = tiny(**{"train.steps": 60, "pruning.levels": 3})
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(cfg_dict))
    out = tmp_path / "out"
    proc = _start(cfg, out)
    _wait_for_results(out, 3, proc)
    if kill == "driver and workers":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(_workers_of(proc.pid)[0], signal.SIGKILL)
    code = proc.wait(timeout=120)
    proc.communicate()
    assert code != 0  # killed, or a stage reported lost with its worker
    done = len(list(out.rglob("*.result.json")))
    assert done < 10, "killed before the end (10 stages in all)"
    again = _start(cfg, out)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-2000:]
    assert comparable(make_runner(load_experiment(cfg_dict), out, show_progress=False).run.rows()) == \
        serial_rows(cfg_dict, tmp_path / "alone")
    assert not list(out.rglob("*.claim"))


def test_each_pool_worker_takes_the_next_gpu_and_bar_line(monkeypatch):
    import multiprocessing

    import torch

    from tickets import executors, progress

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("TICKETS_PROGRESS", "1")
    counter = multiprocessing.get_context("spawn").Value("i", 0)
    threads, seen = torch.get_num_threads(), []
    try:
        for _ in range(3):  # three workers, two GPUs: the third shares the first's
            executors._init_worker(1, counter, ["3", "5"], False)
            seen.append((os.environ["CUDA_VISIBLE_DEVICES"], progress._SLOT[0], torch.get_num_threads()))
    finally:
        progress.set_slot(0)
        torch.set_num_threads(threads)
    assert seen == [("3", 0, 1), ("5", 1, 1), ("3", 2, 1)]
    assert os.environ["TICKETS_PROGRESS"] == "0"  # the driver said no bars


def test_the_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    import torch

    from tickets.executors import visible_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert visible_gpus() == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4, 7")
    assert visible_gpus() == ["4", "7"]
