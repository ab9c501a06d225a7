"""Pure-NumPy max pooling with exactly the semantics of the kernels.

The yardstick for correctness: written for clarity, vectorised over the
window taps (``kh * kw`` NumPy steps), and checked against PyTorch in the
test suite.  Same signatures, argument validation and results as
:func:`numba_pool.max_pool2d` and :func:`numba_pool.max_pool2d_backward`.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_input_array
from .pooling import (
    MaxPoolArgmax,
    _KEY,
    _compute_dtype,
    _resolve,
    _spatial,
    offsets_dtype,
)

__all__ = ["max_pool2d", "max_pool2d_backward"]


def _to_nchw(a: np.ndarray, data_format: str) -> np.ndarray:
    return a if data_format == "NCHW" else a.transpose(0, 3, 1, 2)


def _from_nchw(a: np.ndarray, data_format: str) -> np.ndarray:
    return a if data_format == "NCHW" else a.transpose(0, 2, 3, 1)


def _tap_slices(geom, i: int, j: int):
    """Output positions where tap (i, j) is valid, and the input coordinates it reads."""
    r, c = geom.rows, geom.cols
    rows_ok = (r.lo <= i) & (i < r.hi)
    cols_ok = (c.lo <= j) & (j < c.hi)
    in_rows = r.start + i * r.dilation
    in_cols = c.start + j * c.dilation
    return rows_ok, cols_ok, in_rows, in_cols


def max_pool2d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               data_format="NHWC"):
    """Reference forward pass; see :func:`numba_pool.max_pool2d`.

    For each output position the taps ``t = i * kw + j`` are scanned in
    row-major order; a valid tap replaces the current winner when none is
    held yet, when it is strictly greater, or when it is NaN.
    """
    x, geom, data_format = _resolve(x, pool_size, strides, padding, dilation, ceil_mode,
                                    data_format)
    xc = _to_nchw(x, data_format).astype(_compute_dtype(x.dtype))
    n, c, h, w = xc.shape
    ho, wo = geom.output_size
    kh, kw = geom.pool_size
    y = np.zeros((n, c, ho, wo), xc.dtype)
    best = np.zeros((n, c, ho, wo), np.int64)
    have = np.zeros((ho, wo), bool)
    # taps outside [min lo, max hi) are padding for every output position
    for i in range(int(geom.rows.lo.min()), int(geom.rows.hi.max())):
        for j in range(int(geom.cols.lo.min()), int(geom.cols.hi.max())):
            rows_ok, cols_ok, in_rows, in_cols = _tap_slices(geom, i, j)
            valid = rows_ok[:, None] & cols_ok[None, :]
            if not valid.any():
                continue
            v = xc[:, :, np.clip(in_rows, 0, h - 1)[:, None], np.clip(in_cols, 0, w - 1)[None, :]]
            with np.errstate(invalid="ignore"):
                take = valid & (~have | (v > y) | (v != v))
            y = np.where(take, v, y)
            best = np.where(take, i * kw + j, best)
            have |= valid
    offsets = best.astype(offsets_dtype(kh * kw))
    y_out = _from_nchw(y.astype(x.dtype), data_format)
    offsets = np.ascontiguousarray(_from_nchw(offsets, data_format))
    memory = "channels_last" if data_format == "NHWC" else "planar"
    phys = offsets if data_format == "NHWC" else offsets.reshape(n * c, ho, wo, 1)
    return y_out, MaxPoolArgmax(_KEY, phys, geom, x.shape, data_format, x.dtype, memory)


def max_pool2d_backward(dy, argmax):
    """Reference backward pass; see :func:`numba_pool.max_pool2d_backward`.

    Contributions are added to a zero ``dx`` tap by tap in descending tap
    order, which for every input element is ascending window order (output
    row, then output column), the order the kernel and PyTorch use.
    """
    if not isinstance(argmax, MaxPoolArgmax):
        raise TypeError(
            f"argmax must be the MaxPoolArgmax returned by max_pool2d, got {type(argmax).__name__}"
        )
    dy = as_input_array(dy, "dy")
    if dy.shape != argmax.output_shape:
        raise ValueError(f"dy has shape {dy.shape}, expected {argmax.output_shape} (the shape of y)")
    dtype = argmax.dtype
    if not np.can_cast(dy.dtype, dtype, "same_kind"):
        raise TypeError(f"dy has dtype {dy.dtype}, which cannot be cast to x's dtype {dtype}")
    geom, fmt = argmax.geometry, argmax.data_format
    cdtype = _compute_dtype(dtype)
    g = _to_nchw(dy, fmt).astype(dtype).astype(cdtype)
    off = _to_nchw(argmax.offsets, fmt).astype(np.int64)
    n, c, h, w = _spatial(argmax.input_shape, fmt)
    kh, kw = geom.pool_size
    dx = np.zeros((n, c, h, w), cdtype)
    r, cg = geom.rows, geom.cols
    taps = [(i, j) for i in range(int(r.lo.min()), int(r.hi.max()))
            for j in range(int(cg.lo.min()), int(cg.hi.max()))]
    for i, j in reversed(taps):  # descending tap index t = i * kw + j
        t = i * kw + j
        rows_ok, cols_ok, in_rows, in_cols = _tap_slices(geom, i, j)
        if not (rows_ok.any() and cols_ok.any()):
            continue
        # For one tap, distinct output positions read distinct input positions,
        # so this fancy-indexed update has no repeated targets.
        sel = (off == t) & rows_ok[:, None] & cols_ok[None, :]
        contrib = np.where(sel, g, cdtype.type(0))
        ri = in_rows[rows_ok]
        ci = in_cols[cols_ok]
        dx[:, :, ri[:, None], ci[None, :]] += contrib[:, :, rows_ok][:, :, :, cols_ok]
    return _from_nchw(dx.astype(dtype), fmt)
