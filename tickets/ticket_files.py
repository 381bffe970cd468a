"""Reading a ticket directory back, every file checked against ticket.json and ticket.json
against itself; any fault is one :class:`ArtifactError` naming the file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from . import validate
from .errors import ArtifactError, ArtifactMissingError

MASK_DTYPES = {"BOOL": torch.bool, "U8": torch.uint8}
TOLERANCE = 1e-9  # JSON keeps a float exactly; this only absorbs a different summation order


def read_info(directory: Path, format_name: str, format_version: int) -> dict[str, Any]:
    path = directory / "ticket.json"
    try:
        validate.check_regular(path, "ticket.json")
    except ArtifactMissingError:
        raise ArtifactMissingError(f"{directory}: not a ticket (no ticket.json)", directory) from None
    info = validate.read_json(path, "ticket.json")
    if not isinstance(info, dict):
        raise ArtifactError(f"{path}: not a JSON object", path)
    if "format" not in info:
        raise ArtifactError(f"{path}: has no 'format' (expected {format_name!r}); not a ticket", path)
    if info["format"] != format_name:
        raise ArtifactError(f"{path}: format is {info['format']!r:.80}, expected {format_name!r}", path)
    version = info.get("format_version", 0)
    if not validate.is_count(version):
        raise ArtifactError(f"{path}: format_version must be a non-negative integer, got {version!r:.80}", path)
    if version > format_version:
        raise ArtifactError(f"{path}: format_version {version} is newer than this framework reads "
                            f"({format_version}); upgrade tickets", path)
    params = info.get("parameters")
    if params is None:
        raise ArtifactError(f"{path}: has no 'parameters' (name -> shape)", path)
    if not isinstance(params, dict):
        raise ArtifactError(f"{path}: 'parameters' must map names to shapes, got {params!r:.80}", path)
    for name, shape in params.items():
        if not validate.is_param_name(name):
            raise ArtifactError(f"{path}: parameters: {name!r:.80} is not a parameter name", path)
        if not (isinstance(shape, list) and all(validate.is_count(d) for d in shape)):
            raise ArtifactError(f"{path}: parameters: {name}: shape must be a list of non-negative integers, "
                                f"got {shape!r:.80}", path)
    checks = {
        "sparsity": (lambda v: validate.is_number(v) and 0.0 <= v <= 1.0, "a number in [0, 1]"),
        "layer_sparsity": (lambda v: isinstance(v, dict) and v.keys() == params.keys()
                           and all(validate.is_number(x) and 0.0 <= x <= 1.0 for x in v.values()),
                           "a number in [0, 1] for each of the parameters"),
        "has_rewind": (lambda v: isinstance(v, bool), "true or false"),
        "found": (lambda v: isinstance(v, dict), "an object"),
        "domain": (lambda v: isinstance(v, str), "a string"),
        "config_hash": (lambda v: isinstance(v, str), "a string"),
    }
    validate.check_fields(path, info, {k: c for k, c in checks.items() if k in info}, "ticket.json")
    found = info.get("found", {})
    found_checks = {"level": (validate.is_count, "a non-negative integer"),
                    "mask_seconds": (lambda v: v is None or validate.is_number(v), "a number or null")}
    validate.check_fields(path, found, {k: c for k, c in found_checks.items() if k in found}, "found",
                          prefix="found.")
    return info


def read_masks(directory: Path, info: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The masks as bool tensors: bool or uint8 on disk, values 0/1 only, names and shapes those
    of ticket.json, and the sparsity ticket.json records."""
    path = directory / "masks.safetensors"
    header = validate.safetensors_header(path, "masks.safetensors")
    _same_names_and_shapes(path, header, info["parameters"], exact=True)
    for name, (dtype, _) in header.items():
        if dtype not in MASK_DTYPES:
            raise ArtifactError(f"{path}: mask {name} has dtype {dtype}; masks are BOOL or U8 (0/1)", path)
    tensors = validate.read_tensors(path, "masks.safetensors")
    masks = {}
    for name, t in tensors.items():
        if t.dtype != torch.bool:
            if bool((t > 1).any()):
                bad = sorted({int(v) for v in t[t > 1].unique()[:5]})
                raise ArtifactError(f"{path}: mask {name} holds values {bad}, not only 0 and 1", path)
            t = t.to(torch.bool)
        masks[name] = t
    _check_sparsity(directory / "ticket.json", info, masks)
    return masks


def check_rewind(directory: Path, info: dict[str, Any], *, load: bool) -> dict[str, torch.Tensor] | None:
    """The rewind weights (``load``) or None, after checking that the file, if any, is sound and
    holds every masked parameter in its ticket.json shape."""
    path = directory / "rewind.safetensors"
    try:
        header = validate.safetensors_header(path, "rewind.safetensors")
    except ArtifactMissingError:
        if info.get("has_rewind"):
            raise ArtifactError(f"{path}: missing, though ticket.json says the ticket has rewind weights",
                                path) from None
        return None
    _same_names_and_shapes(path, header, info["parameters"], exact=False)
    return validate.read_tensors(path, "rewind.safetensors") if load else None


def _same_names_and_shapes(path: Path, header, params, *, exact: bool) -> None:
    problems = []
    for name, shape in params.items():
        if name not in header:
            problems.append(f"{name}: in ticket.json, not in the file")
        elif header[name][1] != tuple(shape):
            problems.append(f"{name}: ticket.json {tuple(shape)}, file {header[name][1]}")
    if exact:
        problems += [f"{name}: in the file, not in ticket.json" for name in header if name not in params]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise ArtifactError(f"{path}: does not match ticket.json ({shown})", path)


def _check_sparsity(path: Path, info: dict[str, Any], masks: dict[str, torch.Tensor]) -> None:
    kept = {n: int(t.sum()) for n, t in masks.items()}
    sizes = {n: t.numel() for n, t in masks.items()}
    total = sum(sizes.values())
    if "sparsity" in info:
        actual = 1.0 - (sum(kept.values()) / total if total else 1.0)
        if not math.isclose(actual, info["sparsity"], rel_tol=0, abs_tol=TOLERANCE):
            raise ArtifactError(f"{path}: records sparsity {info['sparsity']:.6g}, the masks have {actual:.6g}", path)
    for name, recorded in info.get("layer_sparsity", {}).items():
        actual = 1.0 - (kept[name] / sizes[name] if sizes[name] else 1.0)
        if not math.isclose(actual, recorded, rel_tol=0, abs_tol=TOLERANCE):
            raise ArtifactError(f"{path}: records sparsity {recorded:.6g} for {name}, its mask has "
                                f"{actual:.6g}", path)
