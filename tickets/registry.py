"""Lazy registries: entries are ``"package.module:Name"`` strings imported on first use, so
choosing one domain never imports another domain's libraries."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from .errors import RegistryError, did_you_mean


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._group = entry_point_group
        self._scanned = entry_point_group is None

    def register(self, name: str, target: Any) -> None:
        """Register ``target``: an object, or a ``"module:attr"`` string imported lazily."""
        if isinstance(target, str) and ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: lazy target must look like 'module:attr', got {target!r}")
        self._entries[name] = target

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
            module_name, attr = target.split(":", 1)
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._entries[name] = target = obj
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

scorers = Registry("scorer", entry_point_group="tickets.scorers")
scorers.register("magnitude", "tickets.scorers:magnitude")
scorers.register("random", "tickets.scorers:random")
scorers.register("snip", "tickets.snip:snip")
scorers.register("grasp", "tickets.grasp:grasp")
scorers.register("synflow", "tickets.synflow:synflow")
