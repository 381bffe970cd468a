"""tickets: lottery-ticket experiments across domains.

The core knows torch, numpy and safetensors only; domains (vision, NLP, RL) live in ``domains``.
"""

__version__ = "0.1.0"

from .artifact import Ticket  # noqa: E402
from .config import Experiment, ExperimentConfig, load_experiment  # noqa: E402
from .domain import Domain, TrainResult, check_domain  # noqa: E402
from .enforce import MaskEnforcer  # noqa: E402
from .errors import ConfigError, TicketMismatchError  # noqa: E402
from .masks import Mask  # noqa: E402
from .rewind import apply_mask, capture, random_mask, rewind, shuffled_mask  # noqa: E402
from .selection import default_prunable, select_prunable  # noqa: E402

__all__ = [
    "__version__", "Ticket", "Experiment", "ExperimentConfig", "load_experiment", "Domain",
    "TrainResult", "check_domain", "MaskEnforcer", "ConfigError", "TicketMismatchError", "Mask",
    "apply_mask", "capture", "random_mask", "rewind", "shuffled_mask", "default_prunable",
    "select_prunable",
]
