"""The runner for an experiment: a transfer study when the config has a ``transfer`` section,
else the registered method ``pruning.method`` names (see :data:`tickets.registry.methods`)."""

from __future__ import annotations

from pathlib import Path

from . import registry
from .config import Experiment
from .errors import ConfigError
from .runner import Runner


def make_runner(experiment: Experiment, out: str | Path = "runs", *, show_progress: bool | None = None) -> Runner:
    """Everything is checked here, before any training."""
    if experiment.config.transfer is not None:
        from .transfer import TransferRun

        return TransferRun(experiment, out, show_progress=show_progress)
    method = experiment.config.pruning.method
    cls = registry.methods.get(method)
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise ConfigError(f"pruning.method: {method!r} is registered as {cls!r}, not a tickets.runner.Runner "
                          "subclass")
    return cls(experiment, out, show_progress=show_progress)
