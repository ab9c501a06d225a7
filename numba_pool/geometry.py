"""Pooling geometry: output sizes, padding and per-window tap ranges.

Everything here is pure Python/NumPy on small arrays (one entry per output
row or column, or per input row), computed once per distinct configuration
and cached.  The kernels receive these arrays and never compute a bound
themselves, so the correctness of every index they touch rests on this
module, which is tested on its own.

Notation for one spatial axis: input size ``n``, window ``k``, stride ``s``,
dilation ``d``, padding ``pad_before``/``pad_after``.  Output position ``o``
has its tap 0 at input coordinate ``start[o] = o * s - pad_before`` and tap
``i`` at ``start[o] + i * d``.  The taps of ``o`` that fall inside the input
form the contiguous range ``lo[o] <= i < hi[o]``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AxisGeometry", "PoolGeometry", "axis_geometry", "pool_geometry"]


@dataclass(frozen=True)
class AxisGeometry:
    """Geometry of pooling along one spatial axis.

    Attributes
    ----------
    size, kernel, stride, dilation : int
        Input size, window size, stride and dilation along this axis.
    pad_before, pad_after : int
        Implicit padding on each side (padded positions never win).
    out : int
        Output size.
    start : ndarray of int64, shape (out,)
        Input coordinate of tap 0 of each output position (may be negative).
    lo, hi : ndarray of int64, shape (out,)
        Valid taps of output ``o`` are ``lo[o] <= i < hi[o]``.
    cover_lo, cover_hi : ndarray of int64, shape (size,)
        Output positions whose window span contains input coordinate ``p``
        are ``cover_lo[p] <= o < cover_hi[p]`` (used by the backward gather).
    interior : (int, int)
        Output positions ``interior[0] <= o < interior[1]`` have every tap
        inside the input (a contiguous range; empty as (0, 0)).
    """

    size: int
    kernel: int
    stride: int
    dilation: int
    pad_before: int
    pad_after: int
    out: int
    start: np.ndarray = field(repr=False, compare=False)
    lo: np.ndarray = field(repr=False, compare=False)
    hi: np.ndarray = field(repr=False, compare=False)
    cover_lo: np.ndarray = field(repr=False, compare=False)
    cover_hi: np.ndarray = field(repr=False, compare=False)
    interior: tuple = field(repr=False, compare=False, default=(0, 0))

    @property
    def overlapping(self) -> bool:
        """Neighbouring windows' spans overlap (stride < dilated window), so an
        input element can be the winner of several windows."""
        return self.stride < (self.kernel - 1) * self.dilation + 1

    @property
    def tiles_exactly(self) -> bool:
        """Windows cover every input position exactly once (stride = window, no
        dilation gaps, no padding, no remainder)."""
        return (self.stride == self.kernel and self.dilation == 1 and self.pad_before == 0
                and self.pad_after == 0 and self.out * self.kernel == self.size)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@functools.lru_cache(maxsize=512)
def axis_geometry(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding: str | tuple[int, int],
    ceil_mode: bool,
    axis_name: str = "axis",
) -> AxisGeometry:
    """Compute the geometry of one spatial axis.

    Parameters
    ----------
    size, kernel, stride, dilation : int
        Positive ints (already validated).
    padding : "valid", "same" or (before, after)
        "same" follows TensorFlow: ``out = ceil(size / stride)`` and the odd
        unit of padding goes after.
    ceil_mode : bool
        PyTorch's rule: round the output size up, but drop a last window that
        would start in the right padding.
    axis_name : str
        Used in error messages ("height" or "width").

    Raises
    ------
    ValueError
        If the output would be empty or some window holds no input element.
    """
    eff = (kernel - 1) * dilation + 1
    if padding == "same":
        out = _ceil_div(size, stride)
        total = max((out - 1) * stride + eff - size, 0)
        pad_before, pad_after = total // 2, total - total // 2
    elif padding == "valid":
        pad_before = pad_after = 0
    else:
        pad_before, pad_after = padding
    if pad_before + pad_after > eff:
        # Also what keeps the output (and every array here) no larger than the input.
        raise ValueError(
            f"padding: total {axis_name} padding {pad_before}+{pad_after} exceeds the "
            f"window's extent {eff} (pool_size {kernel}, dilation {dilation})"
        )
    span = size + pad_before + pad_after - eff
    if ceil_mode:
        out_calc = (span + stride - 1) // stride + 1
        if out_calc > 0 and (out_calc - 1) * stride >= size + pad_before:
            out_calc -= 1
    else:
        out_calc = span // stride + 1
    if out_calc < 1:
        raise ValueError(
            f"pool_size: the {axis_name} window spans {eff} elements (pool_size "
            f"{kernel}, dilation {dilation}) but the padded input has only "
            f"{size + pad_before + pad_after} ({size} + padding {pad_before}+{pad_after})"
        )
    if padding == "same" and out_calc != out:  # pragma: no cover - algebraic identity
        raise AssertionError("'same' padding geometry is inconsistent")
    out = out_calc

    o = np.arange(out, dtype=np.int64)
    start = o * stride - pad_before
    # first tap i with start + i*d >= 0, last with start + i*d <= size - 1
    lo = np.maximum(0, -(start // dilation))
    hi = np.minimum(kernel, (size - 1 - start) // dilation + 1)
    empty = np.flatnonzero(lo >= hi)
    if empty.size:
        raise ValueError(
            f"padding/dilation: {axis_name} output position {int(empty[0])} has a window "
            f"that holds no element of x (pool_size {kernel}, strides {stride}, "
            f"dilation {dilation}, padding ({pad_before}, {pad_after}), "
            f"input size {size}); reduce padding or dilation"
        )
    p = np.arange(size, dtype=np.int64)
    cover_lo = np.clip(-((eff - 1 - p - pad_before) // stride), 0, out)
    cover_hi = np.clip((p + pad_before) // stride + 1, 0, out)
    full = np.flatnonzero((lo == 0) & (hi == kernel))
    interior = (int(full[0]), int(full[-1]) + 1) if full.size else (0, 0)
    for arr in (start, lo, hi, cover_lo, cover_hi):
        arr.flags.writeable = False
    return AxisGeometry(
        size, kernel, stride, dilation, pad_before, pad_after, out,
        start, lo, hi, cover_lo, cover_hi, interior,
    )


@dataclass(frozen=True)
class PoolGeometry:
    """Geometry of a 2-D pooling: one :class:`AxisGeometry` per spatial axis."""

    rows: AxisGeometry
    cols: AxisGeometry

    @property
    def pool_size(self) -> tuple[int, int]:
        return (self.rows.kernel, self.cols.kernel)

    @property
    def strides(self) -> tuple[int, int]:
        return (self.rows.stride, self.cols.stride)

    @property
    def dilation(self) -> tuple[int, int]:
        return (self.rows.dilation, self.cols.dilation)

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Resolved padding ``((top, bottom), (left, right))``."""
        return (
            (self.rows.pad_before, self.rows.pad_after),
            (self.cols.pad_before, self.cols.pad_after),
        )

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.rows.size, self.cols.size)

    @property
    def output_size(self) -> tuple[int, int]:
        return (self.rows.out, self.cols.out)

    @property
    def window_elements(self) -> int:
        return self.rows.kernel * self.cols.kernel


def pool_geometry(
    input_size: tuple[int, int],
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    padding: str | tuple[tuple[int, int], tuple[int, int]],
    ceil_mode: bool,
) -> PoolGeometry:
    """Geometry of a 2-D pooling from normalised parameters (see ``_validate``)."""
    pads = (padding, padding) if isinstance(padding, str) else padding
    names = ("height", "width")
    rows, cols = (
        axis_geometry(
            int(input_size[a]), int(pool_size[a]), int(strides[a]), int(dilation[a]),
            pads[a], bool(ceil_mode), names[a],
        )
        for a in range(2)
    )
    return PoolGeometry(rows, cols)
