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

__all__ = ["AxisGeometry", "PoolGeometry", "adaptive_axis_geometry", "adaptive_geometry",
           "axis_geometry", "pool_geometry", "AXIS_NAMES"]

# Names of the spatial axes in error messages, by rank.
AXIS_NAMES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}


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
    adaptive : bool
        Windows of PyTorch's adaptive pooling: output ``o`` covers
        ``floor(o * size / out) <= p < ceil((o + 1) * size / out)``; ``kernel``
        is the widest window, ``stride`` 0 (windows are not evenly spaced).
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
    adaptive: bool = False

    @property
    def counts(self) -> np.ndarray:
        """Number of taps of each output position that fall inside the input."""
        return self.hi - self.lo

    @property
    def padded_counts(self) -> np.ndarray:
        """Taps of each output position inside the padded input (PyTorch's
        ``count_include_pad`` divisor factor: padding counts, the ceil_mode
        overhang beyond it does not)."""
        end = np.minimum(self.start + (self.kernel - 1) * self.dilation + 1,
                         self.size + self.pad_after)
        first = np.maximum(self.start, -self.pad_before)
        # taps i with first <= start + i*d < end
        lo = -((self.start - first) // self.dilation)
        hi = -((self.start - end) // self.dilation)
        return np.minimum(hi, self.kernel) - lo

    @property
    def overlapping(self) -> bool:
        """Neighbouring windows' spans overlap (stride < dilated window), so an
        input element can be the winner of several windows."""
        if self.adaptive:
            return bool(np.any(self.start[1:] < self.start[:-1] + self.hi[:-1]))
        return self.stride < (self.kernel - 1) * self.dilation + 1

    @property
    def tiles_exactly(self) -> bool:
        """Windows cover every input position exactly once (stride = window, no
        dilation gaps, no padding, no remainder)."""
        return (self.stride == self.kernel and self.dilation == 1 and self.pad_before == 0
                and self.pad_after == 0 and self.out * self.kernel == self.size
                and not self.adaptive)


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
    geom = _regular_axis(size, kernel, stride, dilation, pad_before, pad_after, out_calc)
    empty = np.flatnonzero(geom.lo >= geom.hi)
    if empty.size:
        raise ValueError(
            f"padding/dilation: {axis_name} output position {int(empty[0])} has a window "
            f"that holds no element of x (pool_size {kernel}, strides {stride}, "
            f"dilation {dilation}, padding ({pad_before}, {pad_after}), "
            f"input size {size}); reduce padding or dilation"
        )
    return geom


def _regular_axis(size: int, kernel: int, stride: int, dilation: int, pad_before: int,
                  pad_after: int, out: int) -> AxisGeometry:
    """The arrays of a regular axis; ``out`` windows, tap 0 of the first at
    ``-pad_before``.  Every field is a function of the scalar ones, so equal
    geometries (which compare by their scalars) have equal arrays."""
    eff = (kernel - 1) * dilation + 1
    o = np.arange(out, dtype=np.int64)
    start = o * stride - pad_before
    # first tap i with start + i*d >= 0, last with start + i*d <= size - 1
    lo = np.maximum(0, -(start // dilation))
    hi = np.minimum(kernel, (size - 1 - start) // dilation + 1)
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


@functools.lru_cache(maxsize=512)
def adaptive_axis_geometry(size: int, out: int, axis_name: str = "axis") -> AxisGeometry:
    """Geometry of adaptive pooling along one axis (PyTorch's windows).

    Output ``o`` covers input ``floor(o * size / out) <= p < ceil((o + 1) * size / out)``.
    """
    if out < 1:
        raise ValueError(f"output_size: the {axis_name} output size must be >= 1, got {out}")
    o = np.arange(out, dtype=np.int64)
    start = (o * size) // out
    end = -((-(o + 1) * size) // out)
    length = end - start
    kernel = int(length.max())
    lo = np.zeros(out, np.int64)
    hi = length
    p = np.arange(size, dtype=np.int64)
    # windows containing p: start[o] <= p < end[o]; both are non-decreasing in o
    cover_lo = np.searchsorted(end, p, side="right")
    cover_hi = np.searchsorted(start, p, side="right")
    interior = (0, 0)  # windows differ in size: kernels check every tap
    for arr in (start, lo, hi, cover_lo, cover_hi):
        arr.flags.writeable = False
    return AxisGeometry(size, kernel, 0, 1, 0, 0, out, start, lo, hi, cover_lo, cover_hi,
                        interior, True)


@dataclass(frozen=True)
class PoolGeometry:
    """Geometry of a pooling: one :class:`AxisGeometry` per spatial axis
    (depth, height, width; as many as the rank)."""

    axes: tuple

    @property
    def rank(self) -> int:
        return len(self.axes)

    @property
    def rows(self) -> AxisGeometry:
        """The height axis (2-D and 3-D)."""
        return self.axes[-2]

    @property
    def cols(self) -> AxisGeometry:
        """The width axis (the last spatial axis)."""
        return self.axes[-1]

    @property
    def adaptive(self) -> bool:
        return self.axes[0].adaptive

    @property
    def pool_size(self) -> tuple:
        return tuple(a.kernel for a in self.axes)

    @property
    def strides(self) -> tuple:
        return tuple(a.stride for a in self.axes)

    @property
    def dilation(self) -> tuple:
        return tuple(a.dilation for a in self.axes)

    @property
    def padding(self) -> tuple:
        """Resolved padding, one ``(before, after)`` pair per axis."""
        return tuple((a.pad_before, a.pad_after) for a in self.axes)

    @property
    def input_size(self) -> tuple:
        return tuple(a.size for a in self.axes)

    @property
    def output_size(self) -> tuple:
        return tuple(a.out for a in self.axes)

    @property
    def window_elements(self) -> int:
        return int(np.prod([a.kernel for a in self.axes]))


def pool_geometry(
    input_size: tuple,
    pool_size: tuple,
    strides: tuple,
    dilation: tuple,
    padding,
    ceil_mode: bool,
) -> PoolGeometry:
    """Geometry of a pooling from normalised parameters (see ``_validate``):
    one entry per spatial axis; ``padding`` "valid", "same" or one
    ``(before, after)`` pair per axis."""
    rank = len(input_size)
    pads = (padding,) * rank if isinstance(padding, str) else padding
    names = AXIS_NAMES[rank]
    return PoolGeometry(tuple(
        axis_geometry(
            int(input_size[a]), int(pool_size[a]), int(strides[a]), int(dilation[a]),
            pads[a], bool(ceil_mode), names[a],
        )
        for a in range(rank)
    ))


def adaptive_geometry(input_size: tuple, output_size: tuple) -> PoolGeometry:
    """Geometry of adaptive pooling: PyTorch's windows on every axis."""
    names = AXIS_NAMES[len(input_size)]
    return PoolGeometry(tuple(
        adaptive_axis_geometry(int(n), int(o), names[a])
        for a, (n, o) in enumerate(zip(input_size, output_size))
    ))


def window_block(axis: AxisGeometry, o0: int, o1: int,
                 stop: int | None = None) -> tuple[int, int, AxisGeometry]:
    """Output positions ``o0 <= o < o1`` of a regular axis computed on the
    input slice they read: returns ``(a, b, block)``, where ``x[a:b]`` holds
    every input element of those windows and ``block`` is their geometry on
    that slice.  Pooling the slice with ``block`` gives exactly (bit for bit)
    those outputs of the whole axis: the same taps in the same order, and the
    same divisors (``counts`` and ``padded_counts`` are unchanged: the
    slice's padding is the part of the real padding its windows reach).
    ``stop`` extends the slice to ``x[a:stop]`` (elements no window reads:
    e.g. to a chunk's end).  Used by :mod:`numba_pool.dask` to pool a chunked
    array block by block.
    """
    if axis.adaptive:
        raise ValueError("window_block: regular (non-adaptive) axes only")
    if not 0 <= o0 < o1 <= axis.out:
        raise ValueError(f"window_block: need 0 <= o0 < o1 <= {axis.out}, got {o0}, {o1}")
    eff = (axis.kernel - 1) * axis.dilation + 1
    first = int(axis.start[o0])
    a = max(0, first)
    b = min(axis.size, int(axis.start[o1 - 1]) + eff)
    if stop is not None:
        if not b <= stop <= axis.size:
            raise ValueError(f"window_block: stop must lie in [{b}, {axis.size}], got {stop}")
        b = stop
    pad_after = axis.pad_after if b == axis.size else 0
    return a, b, _regular_axis(b - a, axis.kernel, axis.stride, axis.dilation, a - first,
                               pad_after, o1 - o0)
