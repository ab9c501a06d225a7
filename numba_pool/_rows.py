"""Row tables: how every rank becomes the kernels' one shape.

The kernels see an image as ``P`` rows of ``W * C`` elements: the last
spatial axis (width) is the row, every axis before it (depth and height for
3-D, height for 2-D, none for 1-D) is flattened into the row number.  An
output "row" ``r`` (one of ``R``, row-major over the output's leading
spatial axes) reads input rows through its *row taps* ``rt`` (row-major over
the window's leading axes, ``KR`` of them), so the tap index the argmax
stores is ``rt * kw + j`` in every rank: the row-major position in the whole
window.  These tables, computed once per configuration from the per-axis
geometry, carry all the rank-dependence; the kernels only loop over rows,
columns and channels.

Everything here is pure NumPy on small arrays (about ``R * KR`` entries).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .geometry import PoolGeometry

__all__ = ["RowTables", "row_tables"]


class RowTables(NamedTuple):
    """Row-level geometry of one pooling configuration.

    Attributes
    ----------
    P, R, KR : int
        Input rows per image, output rows per image, row taps per window.
    first : int64 (R,)
        Input row of row tap 0 of each output row (may lie in the padding).
    rel : int64 (KR,)
        Row offset of each row tap from row tap 0.
    full : int64 (R,)
        1 if every row tap of output row ``r`` is inside x.  (int64, not
        bool: parallel kernels reading bool arrays measured 2.3x slower.)
    tap_ptr, tap_row, tap_rt : int64
        CSR list of the valid row taps of each output row, in increasing
        ``rt``: entries ``tap_ptr[r] <= k < tap_ptr[r + 1]`` read input row
        ``tap_row[k]`` as row tap ``tap_rt[k]``.
    cover_ptr, cover_out, cover_rt : int64
        CSR list, per input row ``p``, of the (output row, row tap) pairs
        that read it, in increasing output row (the backward gather's order).
    count, padded_count : int64 (R,)
        Valid row taps of each output row, and row taps inside the padded
        input (average pooling's divisor factors).
    a_lo, a_hi, i_lo, i_hi : int64 (R,)
        Valid depth taps ``a_lo <= a < a_hi`` and height taps
        ``i_lo <= i < i_hi`` of each output row (row tap ``rt = a * KH + i``;
        ``[0, 1)`` for an axis the rank does not have).
    zero_upto : int64 (R,)
        Input rows ``p < zero_upto[r]`` are read by output rows ``<= r``: the
        scatter zeroes dx rows just before the first output row that adds to
        them, while they are still in cache.
    KH, depth_step, dh : int
        The window's height, and the row distance between
        consecutive depth and height taps (specialised interior kernels:
        row tap ``(a, i)`` is ``first + a * depth_step + i * dh``).
    """

    P: int
    R: int
    KR: int
    first: np.ndarray
    rel: np.ndarray
    full: np.ndarray
    tap_ptr: np.ndarray
    tap_row: np.ndarray
    tap_rt: np.ndarray
    cover_ptr: np.ndarray
    cover_out: np.ndarray
    cover_rt: np.ndarray
    count: np.ndarray
    padded_count: np.ndarray
    a_lo: np.ndarray
    a_hi: np.ndarray
    i_lo: np.ndarray
    i_hi: np.ndarray
    zero_upto: np.ndarray
    KH: int
    depth_step: int
    dh: int


def _csr(keys: np.ndarray, n: int) -> np.ndarray:
    """Row pointers of a CSR list whose entries (sorted by key) have these keys."""
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=ptr[1:])
    return ptr


@functools.lru_cache(maxsize=256)
def row_tables(geom: PoolGeometry) -> RowTables:
    """The :class:`RowTables` of ``geom`` (cached; arrays read-only)."""
    axes = geom.axes[:-1]
    sizes = [a.size for a in axes]
    row_stride = [int(np.prod(sizes[k + 1:], dtype=np.int64)) for k in range(len(axes))]
    P = int(np.prod(sizes, dtype=np.int64))
    outs = tuple(a.out for a in axes)
    kernels = tuple(a.kernel for a in axes)
    R = int(np.prod(outs, dtype=np.int64))
    KR = int(np.prod(kernels, dtype=np.int64))
    n = len(axes)

    first = np.zeros(outs, np.int64)
    rel = np.zeros(kernels, np.int64)
    valid = np.ones(outs + kernels, bool)
    count = np.ones(outs, np.int64)
    padded = np.ones(outs, np.int64)
    for k, a in enumerate(axes):
        o_shape = [1] * n
        o_shape[k] = -1
        t_shape = [1] * n
        t_shape[k] = -1
        first = first + a.start.reshape(o_shape) * row_stride[k]
        rel = rel + (np.arange(a.kernel) * a.dilation * row_stride[k]).reshape(t_shape)
        t = np.arange(a.kernel).reshape([1] * n + t_shape)
        lo = a.lo.reshape(o_shape + [1] * n)
        hi = a.hi.reshape(o_shape + [1] * n)
        valid = valid & (t >= lo) & (t < hi)
        count = count * a.counts.reshape(o_shape)
        padded = padded * (a.counts if a.adaptive else a.padded_counts).reshape(o_shape)
    first = first.reshape(R)
    rel = rel.reshape(KR)
    valid = valid.reshape(R, KR)
    full = valid.all(axis=1)

    r_idx, rt_idx = np.nonzero(valid)  # row-major: by r, then rt
    tap_row = first[r_idx] + rel[rt_idx]
    tap_ptr = _csr(r_idx, R)
    order = np.lexsort((r_idx, tap_row))  # by input row, then output row
    cover_ptr = _csr(tap_row[order], P)

    reach = np.zeros(R, np.int64)  # 1 + the last input row each output row reads
    np.maximum.at(reach, r_idx, tap_row + 1)
    zero_upto = np.maximum.accumulate(reach) if R else reach

    depth = geom.axes[-3] if geom.rank >= 3 else None
    height = geom.axes[-2] if geom.rank >= 2 else None
    ho = height.out if height is not None else 1
    unit = np.zeros(R, np.int64), np.ones(R, np.int64)
    a_lo, a_hi = (np.repeat(depth.lo, ho), np.repeat(depth.hi, ho)) if depth is not None else unit
    i_lo, i_hi = ((np.tile(height.lo, R // ho), np.tile(height.hi, R // ho)) if height is not None
                  else unit)
    tables = RowTables(
        P=P, R=R, KR=KR, first=first, rel=rel, full=full.astype(np.int64),
        tap_ptr=tap_ptr, tap_row=tap_row, tap_rt=rt_idx.astype(np.int64),
        cover_ptr=cover_ptr, cover_out=r_idx[order].astype(np.int64),
        cover_rt=rt_idx[order].astype(np.int64),
        count=count.reshape(R), padded_count=padded.reshape(R),
        a_lo=a_lo, a_hi=a_hi, i_lo=i_lo, i_hi=i_hi, zero_upto=zero_upto,
        KH=height.kernel if height is not None else 1,
        depth_step=depth.dilation * row_stride[0] if depth is not None else 0,
        dh=height.dilation if height is not None else 0,
    )
    for arr in tables:
        if isinstance(arr, np.ndarray):
            arr.flags.writeable = False
    return tables
