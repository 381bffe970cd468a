"""Exact top-k selection across many tensors: the one routine behind every mask the framework draws
(:func:`tickets.scorers.prune`, :func:`tickets.at_init.prune_to_density`, the Early-Bird masks).

The rule
--------
The tensors are read in a fixed global order: the order of the names given (layer order), then
the flat (row-major) index within each tensor. Among the eligible entries (``alive``; all of them
without it) :func:`keep_top` keeps **exactly** ``k``: every entry whose score is above the
``k``-th highest score, and, among the entries whose score *equals* it, the earliest ones in the
global order. Pruning the lowest ``n - k`` is the same rule read from the other side: among tied
scores at the threshold, the latest positions are pruned first. ``-0.0`` and ``0.0`` are equal;
``±inf`` are ordinary values; a NaN among the eligible scores is refused (``ValueError`` naming
the tensor).

How
---
Scores are never sorted and never copied whole; they are read tensor by tensor in chunks. From
``BAND_MIN`` eligible entries on, a sample of ``BAND_SAMPLE`` scores places a narrow band
``[lo, hi]`` that almost surely holds the ``k``-th highest score (5 standard deviations of the
sample quantile either side); one pass writes ``score >= lo`` into the output, counts it, and keeps
the band's values and positions (about 1% of the entries, at most ``BAND_MAX``); the exact
threshold is found among them and the band's entries below it, and the excess ties (latest
first), are unset. The sample only decides the speed: when the band misses the threshold or
overflows, an exact radix selection runs instead. It maps each float to an integer key with the
same order (its IEEE bits; for a negative float minus the bits of its magnitude) and finds the
``k``-th highest key from histograms (``torch.bincount``) of 16 bits at a time: two passes for
float32, up to four for float64, then one to write the mask. Extra memory is the output mask (one
byte per entry), the band (16 bytes per band entry) and a few chunk-sized buffers, whatever the
number of entries. float16/bfloat16 scores are ranked as float32 (exactly), integer scores as
float64. On the CPU the comparisons run in NumPy (several times faster than torch's there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

CHUNK = 1 << 18  # entries per chunk: the temporaries stay in the CPU caches
_BINS = 1 << 16
BAND_MIN = 1 << 17  # from this many eligible entries on, try the one-pass band selection first
BAND_SAMPLE = 1 << 17  # scores sampled to place the band
BAND_MAX = 1 << 22  # entries the band may hold (their positions are kept); beyond, the radix selection


def keep_top(scores: Mapping[str, torch.Tensor], k: int, alive: Mapping[str, torch.Tensor] | None = None, *,
             names: Sequence[str] | None = None, absolute: bool = False,
             chunk: int | None = None) -> dict[str, torch.Tensor]:
    """Bool masks (CPU, the scores' shapes) keeping exactly ``k`` of the eligible entries of
    ``scores[n]`` for ``n`` in ``names`` (default: all, in the mapping's order): the highest, ties
    at the threshold to the earliest positions in the global order (see the module docstring).

    ``alive`` (bool tensors of the same shapes) marks the eligible entries; the others are never
    kept. ``absolute`` ranks ``|score|`` without copying the scores. ``0 <= k <=`` the eligible
    count, else ``ValueError``."""
    names = list(scores) if names is None else list(names)
    chunk = int(chunk or CHUNK)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    layers = []
    eligible = 0
    for name in names:
        s = scores[name].detach()
        a = None
        if alive is not None:
            a = alive[name]
            if a.numel() != s.numel():
                raise ValueError(f"scores for {name!r} have {s.numel()} entries, the mask has {a.numel()}")
            a = a.detach().reshape(-1).to(torch.bool)
            n_alive = int(torch.count_nonzero(a))
            if n_alive == a.numel():
                a = None  # every entry eligible: no masking work
        else:
            n_alive = s.numel()
        layers.append(_Layer(name, s, a, n_alive))
        eligible += n_alive
    if int(k) != k or not 0 <= k <= eligible:
        raise ValueError(f"keep_top: k must be an integer in [0, {eligible}] (the eligible entries), got {k!r}")
    k = int(k)
    work = _Work(chunk)
    if k == eligible:  # everything eligible is kept: only the NaN check remains
        for layer in layers:
            for _ in layer.chunks(work, absolute):
                pass
        return {layer.name: torch.ones(layer.shape, dtype=torch.bool) if layer.alive is None
                else layer.alive.cpu().reshape(layer.shape).clone() for layer in layers}
    if k == 0:
        for layer in layers:
            for _ in layer.chunks(work, absolute):
                pass
        return {layer.name: torch.zeros(layer.shape, dtype=torch.bool) for layer in layers}
    out = {layer.name: torch.empty(layer.shape, dtype=torch.bool) for layer in layers}
    flats = {name: t.reshape(-1) for name, t in out.items()}
    if eligible >= BAND_MIN and _band_select(layers, k, eligible, work, absolute, flats):
        return out
    threshold, ties_kept, all_ties = _select(layers, k, work, absolute)
    threshold = float(threshold)
    for layer in layers:
        flat = flats[layer.name]
        for start, c, a in layer.chunks(work, absolute, check=False):
            _compare("ge" if all_ties else "gt", c, threshold, flat[start:start + c.numel()], a)
    if not all_ties and ties_kept:
        for layer in layers:  # the first ``ties_kept`` entries equal to the threshold, in order
            flat = flats[layer.name]
            for start, c, a in layer.chunks(work, absolute, check=False):
                tie = work.buf("b", torch.bool, torch.device("cpu"), c.numel())
                where = _nonzero(_compare("eq", c, threshold, tie, a))[:ties_kept] + start
                flat.numpy()[where] = True
                ties_kept -= where.size
                if not ties_kept:
                    break
            if not ties_kept:
                break
    return out


# ----------------------------------------------------------------------------- internals

def _band_select(layers: list[_Layer], k: int, eligible: int, work: _Work, absolute: bool,
                 flats: dict[str, torch.Tensor]) -> bool:
    """One pass instead of the radix selection's two: a sample of the scores places a narrow band
    ``[lo, hi]`` that almost surely holds the ``k``-th highest score; the pass writes ``score >= lo``
    into the output, counts it, and keeps the band's values and positions; the exact threshold is
    then found among them and the band's entries below it (and the excess ties, latest first) are
    unset. False (output to be rewritten) when the band missed or grew beyond ``BAND_MAX``."""
    band = _sample_band(layers, k, eligible, absolute)
    if band is None:
        return False
    lo, hi = band
    n_ge, values, positions = 0, [], []
    size = 0
    for i, layer in enumerate(layers):
        flat = flats[layer.name]
        for start, c, a in layer.chunks(work, absolute):
            part = _compare("ge", c, lo, flat[start:start + c.numel()], a)
            n_ge += _count(part)
            inside = _compare("le", c, hi, work.buf("b", torch.bool, torch.device("cpu"), c.numel()), part)
            where = _nonzero(inside)
            size += where.size
            if size > BAND_MAX:
                return False
            if where.size:
                picked = (c.numpy()[where] if c.device.type == "cpu"
                          else c[torch.from_numpy(where).to(c.device)].cpu().numpy())
                values.append(picked.astype(np.float64))
                positions.append((i, where + start))
    above = n_ge - size
    if not above < k <= n_ge:
        return False  # the band missed the threshold
    vals = np.concatenate(values) if values else np.empty(0)
    rank = k - above  # 1-based, from the top, within the band
    t = np.partition(vals, vals.size - rank)[vals.size - rank]
    drop = vals < t
    ties = np.flatnonzero(vals == t)
    drop[ties[rank - int(np.count_nonzero(vals > t)):]] = True  # the latest tied entries go
    offset = 0
    for i, where in positions:
        flats[layers[i].name].numpy()[where[drop[offset:offset + where.size]]] = False
        offset += where.size
    return True


_NUMPY = {"ge": np.greater_equal, "gt": np.greater, "le": np.less_equal, "eq": np.equal}


def _compare(op: str, c: torch.Tensor, value: float, out: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
    """``out = (c op value) & alive`` into the CPU bool tensor ``out``. NumPy on the CPU: its
    comparisons are several times faster than torch's there."""
    if c.device.type == "cpu":
        o = out.numpy()
        _NUMPY[op](c.numpy(), value, out=o)
        if alive is not None:
            np.logical_and(o, alive.numpy(), out=o)
    else:
        r = getattr(torch, op)(c, value)
        if alive is not None:
            r &= alive.to(c.device)
        out.copy_(r)
    return out


def _count(t: torch.Tensor) -> int:
    return int(np.count_nonzero(t.numpy()))


def _nonzero(t: torch.Tensor) -> np.ndarray:
    return np.flatnonzero(t.numpy())


def _sample_band(layers: list[_Layer], k: int, eligible: int, absolute: bool) -> tuple[float, float] | None:
    """``(lo, hi)`` around the sample's ``k / eligible`` upper quantile, 5 standard deviations of
    the order statistic (plus a little) on either side; None when the sample is too small."""
    g = torch.Generator().manual_seed(0)  # the band only affects speed, never the result
    total = sum(layer.flat.numel() for layer in layers if layer.n_alive)
    parts = []
    for layer in layers:
        if not layer.n_alive:
            continue
        n = layer.flat.numel()
        pos = torch.randint(0, n, (max(1, round(BAND_SAMPLE * n / total)),), generator=g)
        if layer.alive is not None:
            pos = pos[layer.alive.cpu()[pos]]
        v = layer.flat[pos.to(layer.flat.device)].to("cpu", torch.float64)
        parts.append(v.abs() if absolute else v)
    v = torch.cat(parts)
    v = v[~torch.isnan(v)]
    if v.numel() < BAND_SAMPLE // 4:
        return None
    v = torch.sort(v, descending=True).values
    q = k / eligible
    centre = q * v.numel()
    margin = 5.0 * (v.numel() * q * (1.0 - q)) ** 0.5 + 16
    top, bottom = int(centre - margin), int(centre + margin)
    hi = float(v[top]) if top >= 0 else float("inf")
    lo = float(v[bottom]) if bottom < v.numel() else float("-inf")
    return lo, hi


class _Work:
    """Chunk-sized buffers, allocated once per call (fresh allocations would page-fault each chunk)."""

    def __init__(self, size: int):
        self.size = size
        self._bufs: dict[tuple, torch.Tensor] = {}

    def buf(self, what: str, dtype: torch.dtype, device: torch.device, n: int) -> torch.Tensor:
        key = (what, dtype, device)
        if key not in self._bufs:
            self._bufs[key] = torch.empty(self.size, dtype=dtype, device=device)
        return self._bufs[key][:n]


class _Layer:
    def __init__(self, name: str, scores: torch.Tensor, alive: torch.Tensor | None, n_alive: int):
        self.name, self.alive, self.n_alive = name, alive, n_alive
        self.shape = tuple(scores.shape)
        s = scores.reshape(-1)
        if s.dtype in (torch.float16, torch.bfloat16, torch.bool):
            self.cast = torch.float32
        elif s.dtype in (torch.float32, torch.float64):
            self.cast = None
        else:
            self.cast = torch.float64  # integers
        self.flat = s
        self.key_dtype = torch.int32 if (self.cast or s.dtype) == torch.float32 else torch.int64

    def chunks(self, work: _Work, absolute: bool, check: bool = True):
        """(start, float chunk, eligible-mask chunk or None) per chunk; with ``check``, NaN among
        the eligible entries is refused and the chunk's minimum is stored in ``self.low``."""
        n = self.flat.numel()
        for start in range(0, n, work.size):
            c = self.flat[start:start + work.size]
            if self.cast is not None or absolute:
                f = work.buf("f", self.cast or c.dtype, c.device, c.numel())
                c = f.copy_(c).abs_() if absolute and self.cast is not None else (
                    torch.abs(c, out=f) if absolute else f.copy_(c))
            a = None if self.alive is None else self.alive[start:start + work.size].to(c.device)
            if check:
                self.low = float(c.min()) if c.numel() else 0.0
                if self.low != self.low and (a is None or bool(torch.isnan(c[a]).any())):
                    raise ValueError(f"scores for {self.name!r} contain NaN; cannot rank weights")
            yield start, c, a

    def keys(self, work: _Work, absolute: bool, first: bool):
        """(integer keys in score order, eligible-mask chunk or None) per chunk; each chunk's
        minimum is found (and NaN refused) on the ``first`` pass only."""
        lows = self.lows if not first else []
        for i, (_, c, a) in enumerate(self.chunks(work, absolute, check=first)):
            if first:
                lows.append(self.low)
            low = lows[i]
            if low != low:  # NaN only where not eligible: any value will do there
                c = torch.nan_to_num(c, nan=0.0)
                low = float(c.min())
            if low <= 0.0:  # -0.0 -> 0.0
                c = torch.add(c, 0.0, out=work.buf("z", c.dtype, c.device, c.numel()))
            bits = c.view(self.key_dtype)
            if low < 0.0:
                mag = bits & torch.iinfo(self.key_dtype).max
                bits = torch.where(bits < 0, -mag, mag)
            yield bits, a
        self.lows = lows


def _select(layers: list[_Layer], k: int, work: _Work, absolute: bool) -> tuple[torch.Tensor, int, bool]:
    """The ``k``-th highest eligible score (as a 0-d float tensor), how many entries equal to it
    are kept, and whether they all are."""
    key_dtypes = {layer.key_dtype for layer in layers if layer.n_alive}
    key_dtype = torch.int64 if torch.int64 in key_dtypes else torch.int32
    width = 32 if key_dtype == torch.int32 else 64
    if key_dtype == torch.int64:
        for layer in layers:  # one key space: rank every tensor as float64
            if layer.key_dtype == torch.int32:
                layer.cast, layer.key_dtype = torch.float64, torch.int64
    rank = k  # the rank (1-based, from the top) of the wanted key among those matching ``prefix``
    prefix = 0
    for shift in range(width - 16, -1, -16):
        hist = None
        first = shift == width - 16
        for layer in layers:
            if not layer.n_alive:
                continue
            for key, a in layer.keys(work, absolute, first):
                idx = torch.bitwise_right_shift(key, shift, out=work.buf("i", key.dtype, key.device, key.numel()))
                if first:  # the top digit, signed: bins 0..65535; not eligible: bin 65536
                    idx.add_(_BINS // 2)
                    if a is not None:
                        idx.masked_fill_(~a, _BINS)
                    h = torch.bincount(idx, minlength=_BINS + 1)[:_BINS]
                else:  # the next digit among the keys matching the prefix: bins 1..65536
                    idx.sub_(prefix << 16).clamp_(-1, _BINS).add_(1)
                    if a is not None:
                        idx.masked_fill_(~a, 0)
                    h = torch.bincount(idx, minlength=_BINS + 2)[1:_BINS + 1]
                h = h.cpu()
                hist = h if hist is None else hist + h
        from_top = hist.flip(0).cumsum(0)
        j = int(torch.searchsorted(from_top, torch.tensor([rank], dtype=from_top.dtype)))
        digit = _BINS - 1 - j
        count = int(hist[digit])
        rank -= int(from_top[j]) - count
        prefix = (digit - _BINS // 2) if first else (prefix << 16) | digit
        if rank == count or shift == 0:
            low_key = prefix << shift  # every matching key is >= it; with shift 0 it is the key
            return _key_to_float(low_key, key_dtype), rank, rank == count
    raise AssertionError("unreachable")


def _key_to_float(key: int, key_dtype: torch.dtype) -> torch.Tensor:
    info = torch.iinfo(key_dtype)
    bits = key if key >= 0 else info.min + (-key)  # the sign bit set over the magnitude's bits
    t = torch.tensor(bits, dtype=key_dtype)
    return t.view(torch.float32 if key_dtype == torch.int32 else torch.float64)
