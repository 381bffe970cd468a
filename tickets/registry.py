"""Lazy registries: entries are ``"package.module:Name"`` strings imported on first use, so
choosing one domain never imports another domain's libraries."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError, RegistryError, did_you_mean
from .method_spec import MethodSpec
from .scorer_needs import ScorerNeeds


def resolve(target: Any) -> Any:
    """A ``"package.module:Name"`` string imported (dotted names inside the module followed);
    anything else as it is."""
    if not isinstance(target, str):
        return target
    module_name, attr = target.split(":", 1)
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._meta: dict[str, Any] = {}
        self._group = entry_point_group
        self._scanned = entry_point_group is None

    def register(self, name: str, target: Any, meta: Any = None) -> None:
        """Register ``target``: an object, or a ``"module:attr"`` string imported lazily; ``meta``:
        what is known of it without importing it (a scorer's needs), read by :meth:`meta`."""
        if isinstance(target, str) and ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: lazy target must look like 'module:attr', got {target!r}")
        self._entries[name] = target
        if meta is not None:
            self._meta[name] = meta
        else:
            self._meta.pop(name, None)

    def meta(self, name: str, attribute: str, default: Any = None) -> Any:
        """The metadata registered with ``name``; else the imported entry's ``attribute``; else
        ``default`` (an unknown name raises, as :meth:`get`)."""
        self._scan()
        if name in self._meta:
            return self._meta[name]
        return getattr(self.get(name), attribute, default)

    def names(self) -> list[str]:
        self._scan()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._scan()
        return name in self._entries

    def get(self, name: str) -> Any:
        self._scan()
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)} "
                                f"(registered: {', '.join(sorted(self._entries))})")
        target = self._entries[name]
        if isinstance(target, str):
            self._entries[name] = target = resolve(target)
        return target

    def _scan(self) -> None:
        """Pick up third-party entries declared under the entry-point group (never overriding
        a built-in)."""
        if self._scanned:
            return
        self._scanned = True
        for ep in entry_points(group=self._group):
            self._entries.setdefault(ep.name, ep.value)


domains = Registry("domain", entry_point_group="tickets.domains")
domains.register("vision", "domains.vision:VisionDomain")
domains.register("nlp", "domains.nlp:NLPDomain")
domains.register("rl", "domains.rl:RLDomain")

# A domain's settings class, where it lives in a module that imports no heavy library, so that a
# config is checked before torch is imported. A domain without an entry here (a third-party one
# may register under the entry-point group) is checked with its adapter's ``Config``.
domain_configs = Registry("domain config", entry_point_group="tickets.domain_configs")
domain_configs.register("vision", "domains.vision.config:VisionConfig")
domain_configs.register("rl", "domains.rl.config:RLConfig")
domain_configs.register("nlp", "domains.nlp.config:NLPConfig")


def domain_config(name: str) -> type:
    """The settings class of the domain ``name`` (a ``RegistryError`` naming the known domains)."""
    if name in domain_configs:
        return domain_configs.get(name)
    return domains.get(name).Config

# A scorer's needs are registered with it (tickets.scorer_needs), so a config is checked without
# importing torch; a plugin's are read from its ``needs`` attribute.
scorers = Registry("scorer", entry_point_group="tickets.scorers")
scorers.register("magnitude", "tickets.scorers:magnitude", ScorerNeeds())
scorers.register("random", "tickets.scorers:random", ScorerNeeds())
scorers.register("snip", "tickets.snip:snip", ScorerNeeds(weights=("init",), model=True, data="batches"))
scorers.register("grasp", "tickets.grasp:grasp", ScorerNeeds(weights=("init",), model=True, data="class_balanced",
                                                             temperature=200.0))  # Wang et al. 2020: T = 200
scorers.register("synflow", "tickets.synflow:synflow", ScorerNeeds(weights=("init",), model=True, forward_ones=True,
                                                                   iterations=100))  # Tanaka et al. 2020


def scorer_needs(name: str) -> ScorerNeeds:
    """What the scorer ``name`` needs (a ``RegistryError`` for an unknown name; a ``ConfigError``
    for a plugin whose ``needs`` attribute is not a :class:`ScorerNeeds`)."""
    needs = scorers.meta(name, "needs", ScorerNeeds())
    if not isinstance(needs, ScorerNeeds):
        raise ConfigError(f"scorer: {name!r} declares needs of type {type(needs).__name__}, not "
                          "tickets.scorer_needs.ScorerNeeds")
    return needs


# Controls trained beside every ticket (tickets.controls): a Control subclass each. The built-ins'
# meta is their Control.needs_units, so that configs are checked without importing torch.
controls = Registry("control", entry_point_group="tickets.controls")
controls.register("reinit", "tickets.controls:Reinit", meta=False)
controls.register("random_mask", "tickets.controls:RandomMask", meta=False)
controls.register("shuffled_mask", "tickets.controls:ShuffledMask", meta=False)
controls.register("random_mask_uniform", "tickets.controls:UniformRandomMask", meta=False)
controls.register("random_mask_erk", "tickets.controls:ERKRandomMask", meta=False)
controls.register("random_units", "tickets.controls:RandomUnits", meta=True)


def control_needs_units(name: str) -> bool:
    """Whether control ``name`` draws over a structured run's units (``Control.needs_units``)."""
    return bool(controls.meta(name, "needs_units", False))


def control(name: str):
    """An instance of the registered control ``name`` (a ``ConfigError`` if it is not a Control)."""
    from .controls import Control

    cls = controls.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Control)):
        raise ConfigError(f"controls: {name!r} is registered as {cls!r}, not a tickets.controls.Control subclass")
    return cls()


# Analyses of finished runs (tickets.analyses): an Analysis subclass each, with its options class.
analyses = Registry("analysis", entry_point_group="tickets.analyses")
analyses.register("masks", "tickets.mask_analysis:MaskAnalysis", "tickets.analysis_options:MaskOptions")
analyses.register("lmc", "tickets.lmc_analysis:LMCAnalysis", "tickets.analysis_options:LMCOptions")
analyses.register("weight_change", "tickets.weight_change:WeightChangeAnalysis",
                  "tickets.analysis_options:WeightChangeOptions")


# Ticket-finding methods (``pruning.method``): a Runner subclass each (tickets.runner).
methods = Registry("method", entry_point_group="tickets.methods")
methods.register("imp", "tickets.imp:IMPRun", MethodSpec(
    summary="iterative magnitude pruning with rewinding (Frankle & Carbin 2019)"))
methods.register("at_init", "tickets.prune_at_init:AtInitRun", MethodSpec(
    compressions=True, summary="one mask per compression, scored at θ0 (SNIP, GraSP, SynFlow)"))
methods.register("early_bird", "tickets.early_bird_run:EarlyBirdRun", MethodSpec(
    compressions=True, summary="the mask drawn during early dense training (You et al. 2020)"))


def method_spec(name: str) -> MethodSpec:
    """What is known of the method ``name``: registered with it, or a plugin runner class's
    ``spec`` attribute (none: a method that takes no settings)."""
    spec = methods.meta(name, "spec", MethodSpec())
    if not isinstance(spec, MethodSpec):
        raise ConfigError(f"pruning.method: {name!r} declares a spec of type {type(spec).__name__}, not "
                          "tickets.method_spec.MethodSpec")
    return spec
