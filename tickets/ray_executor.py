"""The stage graph on Ray (``--executor ray``): each stage a Ray Core task with ``num_cpus`` and
``num_gpus`` (fractions allowed: several stages share a GPU), on a local instance or a running
cluster (``address="auto"`` or ``"HOST:PORT"``). Scheduling, placement and retries of tasks whose
worker died are Ray's; a stage's own error is not retried but reported like the process pool's.

Every node reads and writes the run directory, so on a cluster it must be a path every node sees
(a shared file system). Without one, a stage scheduled on another node finds no inputs there and
fails naming the missing file (or writes its results where the driver never looks): keep such
runs on one machine, or use ``--executor processes``."""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .runner import Runner

INSTALL = 'pip install -c constraints.txt ".[ray]"'


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray: Ray is not installed; install the extra with {INSTALL}") from None
    return ray


class RayPool(cf.Executor):
    """Tasks on Ray as ``concurrent.futures`` futures (``ObjectRef.future()``), so the scheduler of
    :func:`tickets.executors.run_processes` drives Ray as it drives a process pool."""

    def __init__(self, *, address: str | None, cpus: float, gpus: float, retries: int = 3):
        ray = _ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = os.cpu_count() or 1
            ray.init(address=address, **kwargs)
            self._started = True
        else:
            self._started = False
        self.cpus, self.gpus, self.retries = cpus, gpus, retries
        self.threads = max(1, int(cpus))
        self._remote: dict[Any, Any] = {}

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        ray = _ray()
        if fn not in self._remote:
            self._remote[fn] = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries)(fn)
        extra = {"threads": self.threads, "cwd": os.getcwd(), "show_progress": False}  # Ray keeps workers' output
        return self._remote[fn].remote(*args, **{**extra, **kwargs}).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._started:
            _ray().shutdown()


def run_ray(runners: list[Runner], *, address: str | None = None, cpus: float = 1, gpus: float = 0,
            show_progress: bool | None = None) -> None:
    from .executors import run_processes

    if cpus <= 0 or gpus < 0:
        raise ConfigError(f"--cpus-per-stage/--gpus-per-stage: need cpus > 0 and gpus >= 0, got {cpus}, {gpus}")
    _ray()  # the install hint before any work
    run_processes(runners, 0, show_progress=show_progress,
                  pool=lambda _: RayPool(address=address, cpus=cpus, gpus=gpus))
