"""Reading files back from disk, checked: every damaged, missing or odd file becomes one
:class:`ArtifactError` naming the file and what is wrong, before any library parses it.

Only regular files are opened (a FIFO would block, a directory or a symlink loop would raise).
A safetensors file's header (8-byte little-endian length, then JSON) is parsed and checked here
first: its length against the file's size, dtype names, shapes, and offsets that tile the data
exactly. Tensor names must be parameter names (dotted, no empty or path-like segments).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import ArtifactError, ArtifactMissingError

MAX_JSON_BYTES = 64 * 2**20
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_SEGMENT = re.compile(r"[^\s/\\\x00]+")


def is_param_name(name: Any) -> bool:
    """A parameter/state name: non-empty segments separated by ``.`` (parameters) or ``/``
    (optimizer state: ``adam/fc1.weight/exp_avg``), none of them holding whitespace, a backslash
    or NUL (``layers.0.weight``; not ``../../x``, ``/etc``, ``a..b`` or ``a//b``)."""
    return (isinstance(name, str) and bool(name) and len(name) <= 1000
            and all(_SEGMENT.fullmatch(s) for s in re.split(r"[./]", name)))


def check_regular(path: Path, what: str = "") -> os.stat_result:
    """The ``stat`` of ``path`` if it is a regular file (symlinks followed); else ArtifactError."""
    path = Path(path)
    label = what or path.name
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArtifactMissingError(f"{path}: {label} is missing", path) from None
    except OSError as exc:  # a symlink loop, a file where a directory belongs, no permission
        raise ArtifactError(f"{path}: cannot read {label}: {exc.strerror}", path) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ArtifactError(f"{path}: {label} is {kind}", path)
    return st


def read_bytes(path: Path, what: str = "", limit: int | None = None) -> bytes:
    st = check_regular(path, what)
    if limit is not None and st.st_size > limit:
        raise ArtifactError(f"{path}: {what or Path(path).name} is {st.st_size} bytes, more than the "
                            f"{limit} such a file can be", path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never block, even if swapped
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ArtifactError(f"{path}: not a regular file", path)
            return f.read()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}", path) from None


def read_json(path: Path, what: str = "") -> Any:
    """Parsed JSON of a regular file; not JSON (or not UTF-8) is an ArtifactError."""
    data = read_bytes(path, what, MAX_JSON_BYTES)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})", path) from None


def read_text(path: Path, what: str = "") -> str:
    try:
        return read_bytes(path, what, MAX_JSON_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: {what or Path(path).name} is not UTF-8 text", path) from None


# ---- safetensors ----------------------------------------------------------------------------------
def safetensors_header(path: Path, what: str = "") -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of a safetensors file, after checking its header in full."""
    path = Path(path)
    size = check_regular(path, what).st_size

    def bad(why: str) -> ArtifactError:
        return ArtifactError(f"{path}: damaged safetensors file: {why}", path)

    if size < 8:
        raise bad(f"{size} bytes, too short for a header" if size else "empty")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise bad(f"header length {n} does not fit a {size}-byte file")
            raw = f.read(n)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}", path) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise bad("__metadata__ is not a mapping of strings")
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans = []
    for name, entry in header.items():
        if not is_param_name(name):
            raise bad(f"{name!r} is not a parameter name")
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {name!r} is not {{dtype, shape, data_offsets}}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise bad(f"{name}: unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(_count(d) for d in shape)):
            raise bad(f"{name}: shape {shape!r} is not a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_count(o) for o in offsets)
                and offsets[0] <= offsets[1]):
            raise bad(f"{name}: data_offsets {offsets!r} are not [begin, end]")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_SIZES[dtype]:
            raise bad(f"{name}: data_offsets {offsets} do not hold a {dtype} tensor of shape {shape}")
        spans.append((offsets[0], offsets[1], name))
        out[name] = (dtype, tuple(shape))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise bad(f"{name}: data_offsets {[begin, stop]} leave a gap or overlap")
        end = stop
    if 8 + n + end != size:
        raise bad(f"the tensors need {8 + n + end} bytes, the file has {size} (truncated or padded)")
    return out


def read_tensors(path: Path, what: str = "") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors (no unpickling), its header checked first."""
    from safetensors.torch import load_file

    safetensors_header(path, what)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # anything the check above did not foresee is still the file's fault
        raise ArtifactError(f"{path}: damaged safetensors file: {exc}", path) from None
    for name, t in tensors.items():  # no stored weight, state or score is NaN by design (±inf can be: masks)
        if t.is_floating_point() and bool(torch.isnan(t).any()):
            raise ArtifactError(f"{path}: {name} holds NaN values ({int(torch.isnan(t).sum())} of {t.numel()}); "
                                "the file is damaged or was written by a diverged run", path)
    return tensors


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# ---- field checks ---------------------------------------------------------------------------------
def is_count(v: Any) -> bool:
    return _count(v)


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_fields(path: Path, data: Any, fields: Mapping[str, tuple[Any, str]], what: str, prefix: str = "") -> None:
    """``fields``: key -> (predicate, description); raises on the first key that is missing or
    of the wrong kind (``what`` names the object in the file, ``prefix`` its keys' parent)."""
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: {what} is not a JSON object", path)
    for key, (ok, description) in fields.items():
        if key not in data:
            raise ArtifactError(f"{path}: {what} has no {prefix + key!r}", path)
        if not ok(data[key]):
            raise ArtifactError(f"{path}: {prefix + key!r} must be {description}, got {data[key]!r:.80}", path)
