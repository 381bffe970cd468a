"""tickets: lottery-ticket experiments across domains.

The core knows torch, numpy and safetensors only; domains (vision, NLP, RL) live in ``domains``.
The names below load on first use, so reading and checking a config (``tickets run`` with a bad
key, ``tickets --help``) answers before torch is imported.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Ticket": "artifact", "Experiment": "config", "ExperimentConfig": "config", "load_experiment": "config",
    "Domain": "domain", "TrainResult": "domain", "check_domain": "domain", "MaskEnforcer": "enforce",
    "ConfigError": "errors", "TicketMismatchError": "errors", "Mask": "masks", "apply_mask": "rewind",
    "capture": "rewind", "random_mask": "rewind", "rewind": "rewind", "shuffled_mask": "rewind",
    "default_prunable": "selection", "select_prunable": "selection", "make_runner": "methods",
    "ScorerNeeds": "scorer_needs", "MethodSpec": "method_spec",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tickets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
