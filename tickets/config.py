"""Experiment configuration: YAML file + dotted overrides -> validated, typed config.

Everything is checked (keys, types, ranges, registered names, the domain's own settings) before
any work starts. A run's directory name comes from a hash of the canonical config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import registry
from .config_yaml import parse_yaml
from .errors import ConfigError, RegistryError
from .method_spec import MethodSpec
from .nm_pattern import Pattern
from .scorer_needs import check_scorer_fits
from .typed import from_dict, non_default_dict, to_dict


Control = str  # a registered control (tickets.registry.controls)


@dataclass
class GroupRule:
    """Parameters whose names match ``pattern`` are pruned at ``fraction`` per level."""

    pattern: str
    fraction: float

    def __post_init__(self):
        if not 0.0 <= self.fraction < 1.0:
            raise ConfigError(f"fraction: must be in [0, 1), got {self.fraction}")


@dataclass
class EarlyBirdConfig:
    """Early-Bird tickets (You et al. 2020): the mask drawn while the dense network trains."""

    every: int = 100  # steps between mask draws (the paper: every epoch)
    window: int = 5  # how many successive masks must agree
    epsilon: float = 0.1  # ... each within this normalised Hamming distance of the newest
    mode: Literal["magnitude", "bn_channels"] = "magnitude"  # unstructured, or channels by BatchNorm |γ|
    slimming: float = 0.0  # L1 penalty on BatchNorm γ (network slimming; the paper uses 1e-4)
    rewind: bool = True  # train the ticket from θk (True) or on from the weights at the draw

    def __post_init__(self):
        if self.every < 1 or self.window < 2:
            raise ConfigError(f"every/window: must be >= 1 and >= 2, got {self.every}, {self.window}")
        if not 0 < self.epsilon < 1:
            raise ConfigError(f"epsilon: must be in (0, 1), got {self.epsilon}")
        if self.slimming < 0:
            raise ConfigError(f"slimming: must be >= 0, got {self.slimming}")


@dataclass
class PruningConfig:
    method: str = "imp"  # a registered method (tickets.registry.methods); what each reads: method_spec
    levels: int = 10  # pruning levels after the dense level 0
    fraction: float = 0.2  # pruned per level: of the remaining weights, or of the original ones
    fraction_of: Literal["remaining", "original"] = "remaining"  # Chen et al. 2020 prune 10% of the original
    scope: Literal["layer", "global"] = "layer"  # rank weights per layer, or across each group
    scorer: str = "magnitude"
    include: list[str] = field(default_factory=list)  # name patterns; replace the domain's default set
    exclude: list[str] = field(default_factory=list)  # name patterns removed from the prunable set
    groups: list[GroupRule] = field(default_factory=list)  # per-group rates, first match wins
    mask_grads: bool = False  # also zero pruned weights' gradients (for grad clipping, LARS/LAMB)
    # at_init and early_bird: one level per target compression (total weights / remaining weights)
    compressions: list[float] = field(default_factory=list)
    iterations: int | None = None  # at_init scoring rounds, exponential schedule (None: SynFlow 100, else 1)
    scoring_batches: int = 1  # batches for SNIP and GraSP
    samples_per_class: int = 10  # GraSP's class-balanced batches: examples of every class in each (Wang et al.: 10)
    early_bird: EarlyBirdConfig = field(default_factory=EarlyBirdConfig)
    settings: dict[str, Any] = field(default_factory=dict)  # a plugin method's own section (its registered class)
    pattern: str | None = None  # "N:M": at most N of every M consecutive input weights survive (imp, at_init)
    structure: Literal["weights", "units"] = "weights"  # units: IMP over neurons/channels (tickets.structured)
    unit_score: Literal["l1", "l2"] = "l1"  # a unit's score: the norm of its rows in every producing layer

    def __post_init__(self):
        if self.method not in registry.methods:
            raise ConfigError(f"method: {registry_message(registry.methods, self.method)}")
        spec = registry.method_spec(self.method)
        self.settings_obj = self._typed_settings(spec)
        if self.levels < 0:
            raise ConfigError(f"levels: must be >= 0, got {self.levels}")
        if not 0.0 < self.fraction < 1.0:
            raise ConfigError(f"fraction: must be in (0, 1), got {self.fraction}")
        if self.fraction_of == "original":
            if self.method != "imp":
                raise ConfigError(f"fraction_of: 'original' is an IMP schedule; method {self.method!r} prunes "
                                  "to its compressions")
            for what, f in [("fraction", self.fraction), *((f"groups[{g.pattern}].fraction", g.fraction)
                                                           for g in self.groups)]:
                if self.levels * f >= 1.0:
                    raise ConfigError(f"{what}: {self.levels} levels x {f} of the original weights prunes every "
                                      "weight; lower levels or the fraction")
        if self.scorer not in registry.scorers:
            raise ConfigError(f"scorer: {registry_message(registry.scorers, self.scorer)}")
        check_scorer_fits(self.scorer, registry.scorer_needs(self.scorer), self.method)
        if spec.compressions and not self.compressions:
            raise ConfigError(f"compressions: method {self.method!r} needs target compressions, e.g. [10, 100, 1000]")
        if any(c <= 1 for c in self.compressions) or self.compressions != sorted(self.compressions):
            raise ConfigError(f"compressions: must be increasing and above 1, got {self.compressions}")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError(f"iterations: must be >= 1, got {self.iterations}")
        if self.scoring_batches < 1:
            raise ConfigError(f"scoring_batches: must be >= 1, got {self.scoring_batches}")
        if self.samples_per_class < 1:
            raise ConfigError(f"samples_per_class: must be >= 1, got {self.samples_per_class}")
        if self.structure == "units":
            clash = [what for what, bad in (("method", self.method != "imp"), ("scorer", self.scorer != "magnitude"),
                                            ("pattern", self.pattern is not None),
                                            ("fraction_of", self.fraction_of != "remaining")) if bad]
            if clash:
                raise ConfigError(f"structure: 'units' is IMP over units scored by their norm (unit_score), with "
                                  f"fraction_of: remaining and no pattern; it cannot take {', '.join(clash)} as set")
        elif self.unit_score != "l1":
            raise ConfigError("unit_score: only read with structure: units")
        if self.pattern is not None:
            Pattern.parse(self.pattern, "pattern")
            if self.method not in PATTERN_METHODS:
                raise ConfigError(f"pattern: an N:M pattern is applied by {' and '.join(PATTERN_METHODS)}, not by "
                                  f"method {self.method!r}")

    def _typed_settings(self, spec: MethodSpec) -> Any:
        """``settings`` checked against the method's registered dataclass."""
        if spec.settings is None:
            if self.settings:
                raise ConfigError(f"settings: method {self.method!r} takes no settings, got {sorted(self.settings)}")
            return None
        return from_dict(registry.resolve(spec.settings), self.settings, "settings")


PATTERN_METHODS = ("imp", "at_init")  # the methods that apply pruning.pattern


@dataclass
class TrainConfig:
    steps: int  # training budget per level, in the domain's unit (iterations; environment steps)
    eval_every: int = 0  # validation interval for the early-stop iteration (0: only at the end)

    def __post_init__(self):
        if self.steps <= 0:
            raise ConfigError(f"steps: must be positive, got {self.steps}")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every: must be >= 0, got {self.eval_every}")


@dataclass
class RewindConfig:
    step: int = 0  # 0 rewinds to the initialisation θ0; k > 0 to the weights after step k
    # also restore the optimizer state captured at step k (Adam's moments and step count, SGD's
    # momentum) for the ticket and the mask controls; False: a fresh optimizer at every level, as
    # Frankle & Carbin (2019) and open_lth do. The reinit control always starts fresh.
    optimizer: bool = False

    def __post_init__(self):
        if self.step < 0:
            raise ConfigError(f"step: must be >= 0, got {self.step}")


@dataclass
class TransferConfig:
    """Train tickets found elsewhere (another dataset, task, environment or optimizer) here."""

    source: str  # a run directory, a ticket directory, or the source experiment's YAML (its run under --out)
    levels: list[int] = field(default_factory=list)  # source levels to transfer; empty: every finished level
    adapt: list[str] = field(default_factory=list)  # name patterns that may not fit (a new head): target's init
    head_policy: Literal["dense", "source_rate"] = "dense"  # adapted layers: left dense, or pruned at the source rate
    weights: Literal["source", "target_init"] = "source"  # start from the ticket's rewind weights, or the mask only

    def __post_init__(self):
        if not self.source:
            raise ConfigError("source: must name a run directory, a ticket directory or a config file")


MAX_SEED = 2**32 - 1  # numpy's np.random.seed (stable-baselines3 seeds it with the experiment seed)


@dataclass
class ExperimentConfig:
    name: str
    domain: dict[str, Any]  # {"name": <registered domain>, ...that domain's own settings}
    train: TrainConfig
    seed: int = 0
    seeds: list[int] = field(default_factory=list)  # several: one run per seed, plus their mean ± std
    pruning: PruningConfig = field(default_factory=PruningConfig)
    rewind: RewindConfig = field(default_factory=RewindConfig)
    controls: list[Control] = field(default_factory=lambda: ["reinit"])
    transfer: TransferConfig | None = None  # set: train the source's tickets instead of pruning

    def __post_init__(self):
        for key, seed in [("seed", self.seed), *((f"seeds.{i}", s) for i, s in enumerate(self.seeds))]:
            if not 0 <= seed <= MAX_SEED:
                raise ConfigError(f"{key}: must be in [0, 2^32 - 1] (the seeds numpy and the RL libraries "
                                  f"accept), got {seed}")
        if self.pruning.method == "imp" and self.transfer is None and self.pruning.levels < 1:
            raise ConfigError(f"pruning.levels: {self.pruning.levels} levels of IMP trains the dense network only and "
                              "finds no ticket; set pruning.levels to 1 or more (e.g. 10)")
        if self.rewind.step >= self.train.steps:
            raise ConfigError(f"rewind.step: {self.rewind.step} must be below train.steps ({self.train.steps})")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: listed twice in {self.seeds}")
        if len(set(self.controls)) != len(self.controls):
            raise ConfigError(f"controls: listed twice in {self.controls}")
        check_controls(self.controls)
        self._check_unit_controls()
        if self.pruning.method == "at_init" and self.rewind.step:
            raise ConfigError("rewind.step: pruning at initialisation trains from θ0; leave rewind.step at 0")
        every = self.pruning.early_bird.every
        if self.pruning.method == "early_bird" and every > self.train.steps:
            raise ConfigError(f"pruning.early_bird.every: {every} is beyond train.steps ({self.train.steps})")
        if self.rewind.optimizer:
            self._check_rewind_optimizer()
        if self.transfer is not None and self.pruning.method != "imp":
            raise ConfigError("transfer: takes tickets from its source; leave pruning.method at imp")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name: must be a non-empty name without '/', got {self.name!r}")

    def _check_unit_controls(self) -> None:
        unit = next((c for c in self.controls if registry.control_needs_units(c)), None)
        if unit is None:
            return
        if self.transfer is not None:
            raise ConfigError(f"controls: {unit} draws whole units at random over a structured IMP run's units; a "
                              "transfer takes its masks from the source and has none (drop it from controls)")
        if self.pruning.structure != "units":
            raise ConfigError(f"controls: {unit} draws whole units at random, so it needs a structured ticket "
                              f"(pruning.structure: units, IMP); this run prunes single weights")

    def _check_rewind_optimizer(self) -> None:
        """rewind.optimizer needs an optimizer state at the step every level starts from."""
        if self.rewind.step == 0:
            raise ConfigError("rewind.optimizer: at step 0 the optimizer has no state yet; "
                              "set rewind.step > 0 or leave rewind.optimizer false")
        if self.transfer is not None:
            raise ConfigError("rewind.optimizer: a transfer starts from the source tickets' weights, "
                              "which carry no optimizer state; leave rewind.optimizer false")
        if self.pruning.method == "early_bird" and not self.pruning.early_bird.rewind:
            raise ConfigError("rewind.optimizer: with pruning.early_bird.rewind false training goes on from "
                              "the draw, where no optimizer state is kept; leave rewind.optimizer false")


def check_controls(names: list[str], key: str = "controls") -> None:
    """Every name a registered control, and none of the names the runner keeps for its own stages."""
    for i, name in enumerate(names):
        if name in ("ticket", "dense"):
            raise ConfigError(f"{key}.{i}: {name!r} is a stage of every run, not a control")
        if name not in registry.controls:
            raise ConfigError(f"{key}.{i}: {registry_message(registry.controls, name)}")


def registry_message(reg: registry.Registry, name: str) -> str:
    try:
        reg.get(name)
    except RegistryError as exc:
        return str(exc)
    return ""


@dataclass
class Experiment:
    """A validated experiment: the core config plus the domain class and its typed settings."""

    config: ExperimentConfig
    domain_config: Any

    @property
    def domain_cls(self) -> type:
        """The domain adapter, imported on first use (with its libraries: torch, ...)."""
        return registry.domains.get(self.config.domain["name"])

    def make_domain(self):
        return self.domain_cls(self.domain_config)

    def with_seed(self, seed: int) -> Experiment:
        """The single-seed experiment of one of ``seeds``: the same as running with ``seed``."""
        return Experiment(dataclasses.replace(self.config, seed=seed, seeds=[]), self.domain_config)

    def canonical(self) -> dict[str, Any]:
        """The settings that define the experiment (defaults left out, the name excluded)."""
        core = non_default_dict(self.config)
        core.pop("name", None)
        core["domain"] = {"name": self.config.domain["name"], **non_default_dict(self.domain_config)}
        core["train"] = to_dict(self.config.train)
        return core

    def run_dir(self, out: str | Path) -> Path:
        """The run directory under ``out``: ``<name>-<config hash>`` (content-addressed)."""
        return Path(out) / f"{self.config.name}-{self.hash()}"

    def hash(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def resolved(self) -> dict[str, Any]:
        """The full config with every default written out (saved in the run directory)."""
        out = to_dict(self.config)
        out["domain"] = {"name": self.config.domain["name"], **to_dict(self.domain_config)}
        return out


def parse_overrides(items: list[str]) -> list[tuple[list[str], Any]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: bad key {key!r}")
        value = parse_yaml(raw, f"override {item!r}: value") if raw else ""
        out.append((key.split("."), value))
    return out


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for path, value in parse_overrides(overrides):
        node: Any = data
        for i, part in enumerate(path[:-1]):
            where = ".".join(path[: i + 1])
            if isinstance(node, list):
                node = node[_index(part, node, where)]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"override {'.'.join(path)}: {where} is not a mapping")
                node = node.setdefault(part, {})
        last = path[-1]
        if isinstance(node, list):
            node[_index(last, node, ".".join(path))] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"override {'.'.join(path)}: {'.'.join(path[:-1])} is not a mapping")
    return data


def _index(part: str, node: list, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {where}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


def read_config_text(path: Path) -> str:
    """The text of a config file; a ``ConfigError`` for a missing, non-regular, unreadable or
    non-UTF-8 (binary) file."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise ConfigError(f"{path}: not a regular file; give a YAML config file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text (UTF-8) config file: byte {exc.start} is "
                          f"0x{raw[exc.start]:02x}") from None


def load_experiment(source: str | Path | dict, overrides: list[str] | None = None) -> Experiment:
    """Read, override and validate an experiment config (a YAML path or a mapping)."""
    if isinstance(source, dict):
        data = json.loads(json.dumps(source))
    else:
        path = Path(source)
        data = parse_yaml(read_config_text(path), str(path))
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    data = apply_overrides(data, overrides or [])
    config = from_dict(ExperimentConfig, data)
    options = dict(config.domain)
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"config.domain.name: required; one of {', '.join(registry.domains.names())}")
    try:
        config_cls = registry.domain_config(name)
    except RegistryError as exc:
        raise ConfigError(f"config.domain.name: {exc}") from None
    domain_config = from_dict(config_cls, options, "config.domain")
    return Experiment(config, domain_config)
