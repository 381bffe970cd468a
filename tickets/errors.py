"""Errors the framework raises for bad input, each naming what is wrong."""

from __future__ import annotations

import difflib


class ConfigError(ValueError):
    """A configuration value or key is invalid; raised before any work starts."""


class TicketMismatchError(ValueError):
    """A ticket does not fit the model it is applied to."""


class RegistryError(KeyError):
    """A name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class ArtifactError(ValueError):
    """A file read back from disk (a ticket, a run directory's files) is missing, damaged or
    contradicts the rest of its artifact. ``path``: the file or directory at fault."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


class ArtifactMissingError(ArtifactError, FileNotFoundError):
    """An artifact's file is absent (also a ``FileNotFoundError``, as before)."""

    def __str__(self) -> str:  # FileNotFoundError would format its args as (errno, strerror)
        return str(self.args[0]) if self.args else ""


class DivergedError(RuntimeError):
    """Training diverged (a non-finite loss or weight, or an exploded loss): the stage is not
    recorded. Raised during a run, naming the stage and step; the fix is usually a lower
    learning rate."""


class StagesFailedError(RuntimeError):
    """Some stages of a run or study failed; the independent ones were still run. ``failures``:
    (stage, message) pairs."""

    def __init__(self, failures: list[tuple[str, str]], skipped: int = 0):
        self.failures = failures
        shown = "; ".join(f"{stage}: {msg}" for stage, msg in failures[:5])
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        after = f"; {skipped} stage(s) that need them were not run" if skipped else ""
        super().__init__(f"{len(failures)} stage(s) failed: {shown}{more}{after}; rerun the same command to "
                         "resume (finished stages are kept)")


class ExportCheckError(RuntimeError):
    """An exported model does not compute what the masked model computes: nothing is written."""
