"""Running stage graphs (:mod:`tickets.stage_graph`): one after another in this process
(``serial``, the default), or on a local pool of worker processes (``processes``) that take every
stage whose inputs are done.

Every stage runs under a claim (:mod:`tickets.claims`), so two commands or workers that share a
run directory never train a stage twice: the second waits for the first, or takes over a claim
whose holder died. A failed stage is reported with its error and does not stop the stages that
do not need it; a rerun resumes."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import claims, distributed, progress
from .errors import StagesFailedError
from .stage_graph import Node, dependents

if TYPE_CHECKING:
    from .runner import Runner

POLL = 1.0  # seconds between looks at a stage another process holds
EXECUTORS = ("serial", "processes", "ray")


def claim_path(runner: Runner, node: Node) -> Path:
    name = node.kind if node.kind in ("dense", "mask") else f"{node.kind}-{node.condition}"
    return runner.run.level_dir(node.level) / f".{name}.claim"


def run_claimed(runner: Runner, node: Node, *, wait: bool = True) -> bool:
    """Run ``node`` unless it is done; False (without ``wait``) while another process holds it."""
    if distributed.active():  # data-parallel processes run every stage together
        if not runner.node_done(node):
            runner.run_node(node)
        return True
    while not runner.node_done(node):
        claim = claims.acquire(claim_path(runner, node))
        if claim is None:
            if not wait:
                return False
            time.sleep(POLL)
            continue
        with claim:
            if not runner.node_done(node):  # finished by the previous holder just before we claimed
                runner.run_node(node)
    return True


def run_serial(runners: list[Runner]) -> None:
    for runner in runners:
        runner.execute()


# ---- the process pool ---------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (none without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = [e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def _init_worker(threads: int, counter: Any, gpus: list[str], show: bool, lock: Any = None) -> None:
    """A pool worker's set-up: the ``counter``-th worker started uses GPU ``gpus[i % len(gpus)]`` (more
    workers than GPUs share them), ``threads`` torch threads, and its training bar on line i + 1."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:  # before anything initialises CUDA in this process: the domain's "auto" device is this GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    import torch

    torch.set_num_threads(threads)
    os.environ["TICKETS_PROGRESS"] = "1" if show else "0"
    progress.set_slot(index)
    if lock is not None:
        from tqdm.auto import tqdm

        tqdm.set_lock(lock)  # the driver's lock: bars of several processes do not write over each other


def _work(resolved: dict, out: str, node: Node, threads: int | None = None, cwd: str | None = None,
          show_progress: bool | None = None) -> bool:
    """In a worker: the node of the experiment ``resolved`` under ``out``; the runner is built once
    per worker and experiment. ``threads``/``cwd``/``show_progress``: set for workers the pool did not
    start (Ray's); a pool worker's initializer has set them."""
    from .config import load_experiment
    from .methods import make_runner

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if cwd is not None and os.path.isdir(cwd):
        os.chdir(cwd)  # config paths in the experiment (a transfer's source YAML) are the driver's

    key = repr((sorted(resolved.items(), key=str), out))
    runner = _WORKER.get(key)
    if runner is None:
        runner = make_runner(load_experiment(resolved), out, show_progress=show_progress)
        runner.run.stages = runner.stages()
        _WORKER[key] = runner
    return run_claimed(runner, node, wait=False)


def run_processes(runners: list[Runner], workers: int, *, threads: int | None = None,
                  show_progress: bool | None = None, on_done: Callable[[Runner], None] | None = None,
                  pool: Callable[[int], cf.Executor] | None = None, gpus: list[str] | None = None) -> None:
    """Every runner's graph on ``workers`` processes, each with ``threads`` torch threads (default:
    its share of the CPUs) and, where there are GPUs (``gpus``, default :func:`visible_gpus`), one of
    them: worker i uses ``gpus[i % len(gpus)]``, so more workers than GPUs share them. Raises
    :class:`StagesFailedError` after the rest ran if stages failed. ``pool(workers)``: another
    executor to run the stages on (tests use threads)."""
    if distributed.active():
        raise RuntimeError("--executor processes: not under a data-parallel launch (accelerate launch); "
                           "use the serial executor there")
    threads = threads or max(1, (os.cpu_count() or 1) // max(workers, 1))
    graphs = {i: r.graph() for i, r in enumerate(runners)}
    for r in runners:
        r.prepare()
    pending = {(i, n) for i, g in graphs.items() for n in g if not runners[i].node_done(n)}
    done = {(i, n) for i, g in graphs.items() for n in g} - pending
    total = sum(1 for i, g in graphs.items() for n in g if n.is_stage)
    failures: list[tuple[str, str]] = []
    blocked: set[tuple[int, Node]] = set()
    running: dict[cf.Future, tuple[int, Node]] = {}
    retry_at: dict[tuple[int, Node], float] = {}
    jobs = {i: (r.experiment.resolved(), str(r.run.path.parent.resolve())) for i, r in enumerate(runners)}
    if pool is None:
        context = multiprocessing.get_context("spawn")  # torch's threads do not survive a fork
        gpus = visible_gpus() if gpus is None else gpus
        show = bool(progress.enabled(show_progress))
        lock = None
        if show:
            from tqdm.auto import tqdm

            lock = context.RLock()
            tqdm.set_lock(lock)
        executor = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                          initargs=(threads, context.Value("i", 0), gpus, show, lock))
    else:
        executor = pool(workers)
    with executor, progress.bar(total, "stages", leave=True, force=show_progress) as bar:
        bar.update(sum(1 for _, n in done if n.is_stage))
        while pending or running:
            now = time.monotonic()
            for key in sorted(pending, key=lambda k: (k[1].level, k[0], k[1])):
                i, node = key
                if all((i, d) in done for d in graphs[i][node]) and retry_at.get(key, 0) <= now:
                    pending.discard(key)
                    running[executor.submit(_work, *jobs[i], node)] = key
            if not running:
                time.sleep(POLL)  # every ready stage is held by another process
                continue
            finished, _ = cf.wait(running, timeout=POLL, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                i, node = key
                try:
                    ran = future.result()
                except Exception as exc:  # the stage's own error, as the worker raised it
                    failures.append((f"{runners[i].config.name} {node}", str(exc).strip().splitlines()[0]
                                     if str(exc).strip() else type(exc).__name__))
                    lost = {(i, n) for n in dependents(graphs[i], [node])} & pending
                    blocked |= lost
                    pending -= lost
                    continue
                if not ran:  # another process holds it: look again shortly
                    pending.add(key)
                    retry_at[key] = time.monotonic() + POLL
                    continue
                done.add(key)
                bar.update(node.is_stage)
                bar.set_postfix_str(f"running {len(running)}, failed {len(failures)}")
    for r in runners:
        r.write_table()
        if on_done is not None:
            on_done(r)
    if failures:
        raise StagesFailedError(failures, skipped=len(blocked))
