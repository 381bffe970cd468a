"""Images from a ``datasets`` split to uint8 ``N x C x H x W`` arrays."""

from __future__ import annotations

import io

import numpy as np

from tickets.errors import ConfigError

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_CHUNK = 2048


def decode_images(ds, column: str, indices: np.ndarray, what: str) -> np.ndarray:
    """Images ``indices`` of ``ds`` as uint8 ``N x C x H x W``. Image features are decoded from
    their stored bytes with PIL (about 3x faster than ``with_format("numpy")``); a column of
    paths is read as images; array columns are taken as they are."""
    import datasets
    import PIL.Image

    feature = ds.features[column]
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        ds = ds.cast_column(column, datasets.Image())
        feature = ds.features[column]
    if not isinstance(feature, datasets.Image):
        rows = ds.select_columns([column]).with_format("numpy")[indices.tolist()]
        return _array_images(np.asarray(rows[column]), column, what)
    n = len(indices)
    out: np.ndarray | None = None
    shape = None
    arrow = ds.select_columns([column]).with_format("arrow")
    for start in range(0, n, _CHUNK):
        chunk = arrow[indices[start:start + _CHUNK].tolist()].column(column).combine_chunks()
        for offset, (data, path) in enumerate(zip(chunk.field("bytes").to_pylist(), chunk.field("path").to_pylist())):
            i = start + offset
            with PIL.Image.open(io.BytesIO(data) if data is not None else path) as im:
                gray = im.mode in _GRAY_MODES
                if out is None:
                    shape = (im.height, im.width)
                    out = np.empty((n, 1 if gray else 3, *shape), dtype=np.uint8)
                elif (im.height, im.width) != shape:
                    raise ConfigError(f"image_column: the images of {what} differ in size: {shape[1]}x{shape[0]} and "
                                      f"{im.width}x{im.height} (row {int(indices[i])}); this loader does not resize")
                if not gray and out.shape[1] == 1:  # a colour image among grayscale ones: all RGB
                    out = np.repeat(out, 3, axis=1)
                target = "L" if out.shape[1] == 1 else "RGB"
                arr = np.asarray(im if im.mode == target else im.convert(target))
            if arr.ndim == 2:
                out[i, 0] = arr
            else:
                out[i] = arr.transpose(2, 0, 1)
    if out is None:
        raise ConfigError(f"image_column: no images in {what}")
    return out


def _array_images(arr: np.ndarray, column: str, what: str) -> np.ndarray:
    """N x H x W, N x H x W x C or N x C x H x W (C of 1 or 3) arrays of 0..255 (or 0..1 floats) to uint8 NCHW."""
    if arr.dtype == object or arr.ndim not in (3, 4):
        raise ConfigError(f"image_column: {column!r} of {what} is neither an Image feature nor an array of "
                          f"equal-sized images (got {arr.dtype} of shape {arr.shape})")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    elif arr.shape[1] not in (1, 3):
        raise ConfigError(f"image_column: {column!r} of {what} has shape {arr.shape}: expected 1 or 3 channels")
    if arr.dtype.kind == "f":
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        arr = np.rint(arr * scale)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8) * 255
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ConfigError(f"image_column: {column!r} of {what} has values outside 0..255")
    return np.ascontiguousarray(arr, dtype=np.uint8)
