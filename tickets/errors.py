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
