"""YAML as users write it: numbers read as YAML 1.2 and Python read them, and a key given twice in
one mapping refused; every error one line naming the line (configs and override values)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ConfigError


_DIGITS = r"[0-9](?:_?[0-9])*"  # Python's digit groups: 1_000, not 1__000 or 1_
_EXP = rf"(?:[eE][-+]?{_DIGITS})"
FLOAT_PATTERN = re.compile(rf"""^(?:
      [-+]?(?:{_DIGITS}\.(?:{_DIGITS})?{_EXP}?    # 1.  1.5  1.5e-3  1_000.25
             |\.{_DIGITS}{_EXP}?                   # .5  .5e3
             |{_DIGITS}{_EXP})                      # 3e-3  1E5  (YAML 1.1 reads these as strings)
    | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)  # YAML's own spellings
    | [-+]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])  # Python's: inf, Infinity, nan
    )$""", re.VERBOSE)

# YAML 1.2 / Python integers: 10, 1_000, 0x1f, 0o17, 0b101 ("010" is ten; YAML 1.1 reads it as
# octal eight, and "1:30" as the base-60 number 90: here that stays a string, which checks refuse)
INT_PATTERN = re.compile(rf"^[-+]?(?:{_DIGITS}|0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|0[oO][0-7](?:_?[0-7])*"
                         r"|0[bB][01](?:_?[01])*)$")


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with two changes for configs and override values: numbers are read as
    YAML 1.2 and Python read them (YAML 1.1, PyYAML's dialect, leaves ``3e-3`` or ``1E5`` a string,
    reads ``010`` as 8 and ``1:30`` as 90; here they are 0.003, 100000.0, 10 and a string;
    ``0o17``, ``0x1f`` and ``1_000`` are integers), and a key given twice
    in one mapping is refused (PyYAML keeps the last one silently). Non-finite values (``.inf``,
    ``nan``) are numbers here; the config's checks refuse them."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:  # the mapping's own keys; '<<' merges may be overridden
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if first is not key_node:
                    raise DuplicateKeyError(key, first.start_mark, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        value = self.construct_scalar(node).replace("_", "").lower()
        sign = -1 if value.startswith("-") else 1
        value = value.lstrip("+-")
        return sign * (int(value, 0) if value[:2] in ("0x", "0o", "0b") else int(value, 10))

    def construct_yaml_float(self, node):
        value = self.construct_scalar(node).replace("_", "").lower()
        sign = -1.0 if value.startswith("-") else 1.0
        value = value.lstrip("+-")
        return sign * float(value[1:] if value in (".inf", ".nan") else value)


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:int", INT_PATTERN, list("-+0123456789"))
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_PATTERN, list("-+0123456789.iInN"))
ConfigLoader.add_constructor("tag:yaml.org,2002:int", ConfigLoader.construct_yaml_int)
ConfigLoader.add_constructor("tag:yaml.org,2002:float", ConfigLoader.construct_yaml_float)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key, first, again):
        where = (f"lines {first.line + 1} and {again.line + 1}" if first.line != again.line else
                 f"line {first.line + 1}, columns {first.column + 1} and {again.column + 1}")
        super().__init__(f"key {key!r} is given twice in one mapping ({where}); keep one")
        self.key, self.first, self.again = key, first, again


def parse_yaml(text: str, where: str) -> Any:
    """``text`` read with :class:`ConfigLoader`; a YAML error is a one-line ``ConfigError``
    starting with ``where`` and naming the line."""
    try:
        return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}: not valid YAML: {at}{what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
