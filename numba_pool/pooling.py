"""Public max pooling API: :func:`max_pool2d`, :func:`max_pool2d_backward`.

Flow of every call: validate arguments -> compute geometry (cached, pure
Python) -> pick the physical memory layout -> allocate outputs -> call the
kernel.
"""

from __future__ import annotations

import functools
from typing import Sequence, Tuple, Union

import numpy as np

from . import _kernels, _threading
from ._validate import (
    as_input_array,
    check_input_shape,
    int_pair,
    normalise_bool,
    normalise_data_format,
    normalise_padding,
)
from .geometry import PoolGeometry, pool_geometry

__all__ = ["MaxPoolArgmax", "max_pool2d", "max_pool2d_backward", "offsets_dtype"]

IntOrPair = Union[int, Tuple[int, int]]
Padding = Union[str, int, Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]

CHANNELS_LAST = "channels_last"  # physical (N, H, W, C)
PLANAR = "planar"  # physical (N*C, H, W, 1), i.e. NCHW memory

_KEY = object()

# Backward for windows that do not overlap: few-channel images smaller than
# this (NCHW planes up to ~128x128 float32) use the scatter (they stay in
# cache between its zeroing and scatter passes; measured 1.6-3x faster than
# the gather there), larger ones the gather (each dx element written once).
SCATTER_MAX_IMAGE_BYTES = 64 * 1024
# ... and large windows, whose gather visits every dx element for one write in
# `taps` (measured, 2 threads: k5 s5 / k7 s7 on 1-3 channels 2.2 -> 0.5 ms,
# 1.5 -> 0.4 ms; with many channels the gather still wins up to 4x4 windows).
SCATTER_MIN_TAPS_FEW_CHANNELS = 16
SCATTER_MIN_TAPS = 25


def offsets_dtype(window_elements: int) -> np.dtype:
    """Smallest unsigned dtype that holds every tap index of a window."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if window_elements <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16 is held in float32 by the kernels: exact for max, and the
    backward rounds every sum to float16 where windows overlap (the only
    place a sum has more than one term; ``_kernels.scatter_kernels``)."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _spatial(shape: Sequence[int], data_format: str) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a logical shape."""
    if data_format == "NHWC":
        n, h, w, c = shape
    else:
        n, c, h, w = shape
    return n, c, h, w


def _logical_shape(n: int, c: int, h: int, w: int, data_format: str) -> tuple[int, ...]:
    return (n, h, w, c) if data_format == "NHWC" else (n, c, h, w)


def _memory_of(a: np.ndarray, data_format: str) -> str | None:
    """Physical layout of a logical 4-D array if it is a contiguous one."""
    if data_format == "NHWC":
        channels_last, planar = a, a.transpose(0, 3, 1, 2)
    else:
        channels_last, planar = a.transpose(0, 2, 3, 1), a
    natural = CHANNELS_LAST if data_format == "NHWC" else PLANAR
    views = {CHANNELS_LAST: channels_last, PLANAR: planar}
    if views[natural].flags.c_contiguous:
        return natural
    other = PLANAR if natural == CHANNELS_LAST else CHANNELS_LAST
    if views[other].flags.c_contiguous:
        return other
    return None


def _to_physical(a: np.ndarray, data_format: str, memory: str) -> np.ndarray:
    """Logical array -> C-contiguous physical (B, H, W, C) array (view if possible)."""
    n, c, h, w = _spatial(a.shape, data_format)
    if memory == CHANNELS_LAST:
        v = a if data_format == "NHWC" else a.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(v)
    v = a if data_format == "NCHW" else a.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(v).reshape(n * c, h, w, 1)


def _to_logical(p: np.ndarray, n: int, c: int, data_format: str, memory: str) -> np.ndarray:
    """Physical (B, H, W, C) array -> logical view in ``data_format``."""
    _, h, w, _ = p.shape
    if memory == CHANNELS_LAST:
        return p if data_format == "NHWC" else p.transpose(0, 3, 1, 2)
    v = p.reshape(n, c, h, w)
    return v if data_format == "NCHW" else v.transpose(0, 2, 3, 1)


class MaxPoolArgmax:
    """Where each max came from; made by :func:`max_pool2d`, consumed by backward.

    Attributes
    ----------
    offsets : ndarray
        Shape of ``y``.  Row-major position of the winner inside its
        (dilated) window, ``i * kw + j``; ``uint8`` for windows of at most
        256 elements, a wider unsigned type otherwise.  A writable view.
    input_shape, output_shape : tuple of int
        Logical shapes of ``x`` and ``y``.
    data_format : str
        "NHWC" or "NCHW".
    dtype : numpy.dtype
        dtype of ``x`` (and of ``dx``).
    geometry : PoolGeometry
        Resolved pool size, strides, dilation and padding.
    """

    __slots__ = ("_offsets", "_geometry", "_input_shape", "_data_format", "_dtype", "_memory",
                 "_plan")

    def __init__(self, *args, **kwargs):
        if not args or args[0] is not _KEY:
            raise TypeError("MaxPoolArgmax is created by numba_pool.max_pool2d, not directly")
        _, offsets, geometry, input_shape, data_format, dtype, memory = args[:7]
        self._offsets = offsets  # physical (B, Ho, Wo, C), C-contiguous
        self._geometry = geometry
        self._input_shape = tuple(input_shape)
        self._data_format = data_format
        self._dtype = np.dtype(dtype)
        self._memory = memory
        self._plan = args[7] if len(args) > 7 else None  # kernels/arguments for backward

    def __getstate__(self):
        # The plan (compiled kernels) is rebuilt where the argmax is used.
        return {k: getattr(self, k) for k in self.__slots__ if k != "_plan"}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self._plan = None

    @property
    def offsets(self) -> np.ndarray:
        n, c, _, _ = _spatial(self._input_shape, self._data_format)
        return _to_logical(self._offsets, n, c, self._data_format, self._memory)

    @property
    def geometry(self) -> PoolGeometry:
        return self._geometry

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        n, c, _, _ = _spatial(self._input_shape, self._data_format)
        ho, wo = self._geometry.output_size
        return _logical_shape(n, c, ho, wo, self._data_format)

    @property
    def data_format(self) -> str:
        return self._data_format

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def flat_indices(self) -> np.ndarray:
        """PyTorch-style indices: ``h * W + w`` of each winner in its input plane (int64)."""
        g = self._geometry
        off = self.offsets.astype(np.int64)
        kw = g.cols.kernel
        i, j = np.divmod(off, kw)
        h_ax, w_ax = (1, 2) if self._data_format == "NHWC" else (2, 3)
        shape = [1, 1, 1, 1]
        shape[h_ax] = -1
        rstart = g.rows.start.reshape(shape)
        shape = [1, 1, 1, 1]
        shape[w_ax] = -1
        cstart = g.cols.start.reshape(shape)
        h = rstart + i * g.rows.dilation
        w = cstart + j * g.cols.dilation
        return h * g.cols.size + w

    def __repr__(self) -> str:
        g = self._geometry
        return (
            f"MaxPoolArgmax(input_shape={self._input_shape}, output_shape={self.output_shape}, "
            f"data_format={self._data_format!r}, pool_size={g.pool_size}, strides={g.strides}, "
            f"padding={g.padding}, dilation={g.dilation}, dtype={self._dtype})"
        )


_SPECIAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: kernels then see one array type whatever the caller's
    flags, so each kernel compiles once per dtype, not once per flag combination."""
    if a.flags.writeable:
        a = a.view()  # never change the flags of the caller's array itself
        a.flags.writeable = False
    return a


class _Plan:
    """Everything a call needs that depends only on shapes, dtype and parameters.

    Built once per configuration (cached), so repeated calls skip geometry,
    kernel selection and argument packing.
    """

    def __init__(self, in_shape, dtype, geom, data_format, memory):
        n, c, h, w = _spatial(in_shape, data_format)
        ho, wo = geom.output_size
        B, C = (n, c) if memory == CHANNELS_LAST else (n * c, 1)
        self.geom, self.data_format, self.memory = geom, data_format, memory
        self.in_shape, self.dtype = tuple(in_shape), np.dtype(dtype)
        self.cdtype = _compute_dtype(self.dtype)
        self.odtype = offsets_dtype(geom.window_elements)
        self.n, self.c, self.B, self.C = n, c, B, C
        self.phys_in, self.phys_out = (B, h, w, C), (B, ho, wo, C)
        self.out_shape = _logical_shape(n, c, ho, wo, data_format)
        self.empty = B * h * w * C == 0 or B * ho * wo * C == 0
        r, cl = geom.rows, geom.cols
        fkey = _forward_key(geom, C, self.cdtype)
        self.fwd = _kernels.forward_kernels(*fkey)
        self.fwd_const = (h, w, ho, wo, C, r.start, r.lo, r.hi, cl.start, cl.lo, cl.hi,
                          r.dilation, cl.dilation, cl.kernel, cl.interior[0], cl.interior[1],
                          B * ho)
        # Elements touched, weighted by the kernel's cost per element, decide
        # serial or parallel (bench/threshold.py measured the weights).
        touched = B * (h * w + 2 * ho * wo) * C
        self.fwd_work = touched * (1 if fkey[0] else 8)
        few_channels = C < _kernels.VECTOR_MIN_CHANNELS
        small_image = h * w * C * self.cdtype.itemsize < SCATTER_MAX_IMAGE_BYTES
        taps = geom.window_elements
        if (r.overlapping or cl.overlapping or taps >= SCATTER_MIN_TAPS
                or (few_channels and (small_image or taps >= SCATTER_MIN_TAPS_FEW_CHANNELS))):
            # Scatter in window order: the work is one pass over dy (and a
            # zeroing pass over dx), whatever the window size.
            self.backward_kind = "scatter"
            tap_i, tap_j = np.divmod(np.arange(taps, dtype=np.int64), cl.kernel)
            self.bwd = _kernels.scatter_kernels(int(self.dtype == np.float16))
            self.bwd_const = (B, h, w, ho, wo, C, r.start, r.lo, r.hi, cl.start, cl.lo, cl.hi,
                              tap_i, tap_j, tap_i * r.dilation * w + tap_j * cl.dilation,
                              r.dilation, cl.dilation, taps, r.kernel,
                              cl.interior[0], cl.interior[1])
            self.bwd_work = touched * 4
        else:
            # Gather over dx rows: vectorised, each element written once.
            self.backward_kind = "gather"
            bkey = _backward_key(geom, C, self.cdtype)
            narrow_cost = 4 if bkey[0] else 8
            self.bwd_work = touched * (1 if C >= _kernels.VECTOR_MIN_CHANNELS else narrow_cost)
            self.bwd = _kernels.backward_kernels(*bkey)
            self.bwd_const = (h, w, ho, wo, C, r.start, r.cover_lo, r.cover_hi, cl.start, cl.lo,
                              cl.hi, r.dilation, cl.dilation, cl.kernel, self.cdtype.type(0),
                              cl.interior[0], cl.interior[1], cl.tiles_exactly, B * h)
        # permutation taking a logical array to its physical (C-contiguous) order
        if memory == CHANNELS_LAST:
            self.perm = None if data_format == "NHWC" else (0, 2, 3, 1)
        else:
            self.perm = None if data_format == "NCHW" else (0, 3, 1, 2)

    def forward(self, xf, yp, offp):
        """Run the forward kernel: ``xf`` is x flattened in physical order."""
        if not self.empty:
            args = (_readonly(xf), yp.reshape(-1), offp.reshape(-1)) + self.fwd_const
            if self.fwd_work < _threading.PARALLEL_MIN_WORK:  # skip a call layer
                self.fwd[0](*args, 1)
            else:
                _threading.run(*self.fwd, args, self.fwd_work)

    def backward(self, dyf, offp, dxp):
        """Run the backward kernel: ``dyf`` is dy flattened in physical order."""
        if not self.empty:
            args = (_readonly(dyf), _readonly(offp.reshape(-1)), dxp.reshape(-1)) + self.bwd_const
            if self.bwd_work < _threading.PARALLEL_MIN_WORK:
                self.bwd[0](*args, 1)
            else:
                _threading.run(*self.bwd, args, self.bwd_work)

    def run_forward(self, x):
        """Fast path: x has this plan's shape, dtype and memory layout.

        Kept lean: it is most of the cost of a call on a small input."""
        yp = np.empty(self.phys_out, self.dtype)
        offp = np.empty(self.phys_out, self.odtype)
        self.forward((x if self.perm is None else x.transpose(self.perm)).reshape(-1), yp, offp)
        argmax = MaxPoolArgmax.__new__(MaxPoolArgmax)
        argmax._offsets, argmax._geometry, argmax._input_shape = offp, self.geom, self.in_shape
        argmax._data_format, argmax._dtype, argmax._memory = self.data_format, self.dtype, self.memory
        argmax._plan = self
        if self.perm is None:  # logical layout is the physical one
            return (yp if self.memory == CHANNELS_LAST else yp.reshape(self.out_shape)), argmax
        return _to_logical(yp, self.n, self.c, self.data_format, self.memory), argmax


@functools.lru_cache(maxsize=256)
def _plan(in_shape, dtype, geom, data_format, memory) -> _Plan:
    return _Plan(in_shape, dtype, geom, data_format, memory)


# Fast-path cache: (shape, dtype, strides, parameters) -> plan, for calls whose
# parameters are exact ints/strs/None/bools (so equal keys mean equal validation).
_FAST: dict = {}
_FAST_MAX = 512


def _plain(v, allow_str: bool = True) -> bool:
    t = type(v)
    if t is int or v is None or (allow_str and t is str):
        return True
    if t is tuple:
        return all(_plain(e, False) for e in v)
    return False


def _forward_key(geom: PoolGeometry, channels: int, dtype: np.dtype) -> tuple[int, ...]:
    """Which specialised forward kernel fits (see ``_kernels.forward_kernels``).

    Each key is compiled (and cached) separately, so only the common square
    windows on float32/float64 data are specialised: with many channels for
    any stride/dilation, with 1-4 channels (NCHW data, RGB images) for unit
    dilation and strides 1, 2 or k.
    """
    r, c = geom.rows, geom.cols
    k = r.kernel
    if dtype not in _SPECIAL_DTYPES or k != c.kernel or k not in _kernels.SPECIAL_WINDOWS:
        return (0, 0, 0, 0, 0)
    if channels >= _kernels.VECTOR_MIN_CHANNELS:
        return (k, k, 0, 0, 0)
    if c.dilation == 1 and c.stride in (1, 2, k):  # 1 to 4 channels
        return (k, k, c.stride, 1, channels)
    return (0, 0, 0, 0, 0)


def _backward_key(geom: PoolGeometry, channels: int, dtype: np.dtype) -> tuple[int, ...]:
    """Which specialised backward kernel fits (see ``_kernels.backward_kernels``):
    few channels (1 to 4: NCHW data, RGB images), a common window tiling the
    width (stride = width, no dilation).  Only for windows that do not
    overlap: overlapping windows use the scatter kernels."""
    c = geom.cols
    if (channels < _kernels.VECTOR_MIN_CHANNELS and dtype in _SPECIAL_DTYPES and c.kernel in _kernels.SPECIAL_WINDOWS and c.stride == c.kernel
            and c.dilation == 1):
        return (c.kernel, c.stride, 1, channels)
    return (0, 0, 0, 0)


def resolve_parameters(pool_size, strides, padding, dilation, ceil_mode, data_format):
    """Validate and normalise the pooling parameters (everything but ``x``).

    Returns (pool, stride, dilation, padding, ceil_mode, data_format) with
    int pairs, "valid"/"same" or ((top, bottom), (left, right)), a bool and
    "NHWC"/"NCHW".
    """
    data_format = normalise_data_format(data_format)
    pool = int_pair(pool_size, "pool_size")
    stride = pool if strides is None else int_pair(strides, "strides")
    dil = int_pair(dilation, "dilation")
    pad = normalise_padding(padding, pool)
    ceil_mode = normalise_bool(ceil_mode, "ceil_mode")
    return pool, stride, dil, pad, ceil_mode, data_format


def _resolve(x, pool_size, strides, padding, dilation, ceil_mode, data_format):
    """Validate the forward arguments; return (x, geometry, data_format)."""
    pool, stride, dil, pad, ceil_mode, data_format = resolve_parameters(
        pool_size, strides, padding, dilation, ceil_mode, data_format)
    x = as_input_array(x, "x")
    check_input_shape(x, data_format)
    _, _, h, w = _spatial(x.shape, data_format)
    geom = pool_geometry((h, w), pool, stride, dil, pad, ceil_mode)
    return x, geom, data_format


def _check_out(buf, name: str, shape, dtype, data_format: str, memory: str) -> np.ndarray:
    """Physical view of a caller-provided output buffer, or a ValueError/TypeError."""
    if not isinstance(buf, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(buf).__name__}")
    if buf.shape != tuple(shape):
        raise ValueError(f"{name} has shape {buf.shape}, expected {tuple(shape)}")
    if buf.dtype != dtype:
        raise TypeError(f"{name} has dtype {buf.dtype}, expected {dtype}")
    if not buf.flags.writeable:
        raise ValueError(f"{name} is read-only")
    if _memory_of(buf, data_format) != memory:
        raise ValueError(
            f"{name} must be contiguous in the same memory layout as the input "
            f"({'NHWC' if memory == CHANNELS_LAST else 'NCHW'} memory)"
        )
    return _to_physical(buf, data_format, memory)


def _intact_offsets(argmax: MaxPoolArgmax, plan: _Plan, name: str) -> np.ndarray:
    """The argmax's physical offsets, or a ValueError if they no longer fit ``plan``
    (kernels trust their shape, dtype and contiguity)."""
    offp = argmax._offsets
    if (type(offp) is not np.ndarray or offp.shape != plan.phys_out
            or offp.dtype != plan.odtype or not offp.flags.c_contiguous):
        raise ValueError(f"{name} is corrupted: its offsets no longer match its geometry")
    return offp


_TooHard = getattr(getattr(np, "exceptions", np), "TooHardError", Exception)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share memory (conservatively True when NumPy cannot tell)."""
    try:
        return bool(np.shares_memory(a, b, max_work=10_000))
    except _TooHard:
        return True


def check_no_overlap(outputs: dict, inputs: dict) -> None:
    """ValueError if an output buffer shares memory with an input or with
    another output; keys are the parameter names used in the message."""
    named = list(outputs.items())
    for i, (oname, obuf) in enumerate(named):
        for iname, ibuf in list(inputs.items()) + named[i + 1:]:
            if _overlap(obuf, ibuf):
                raise ValueError(f"{oname} must not share memory with {iname}")


def max_pool2d(
    x: np.ndarray,
    pool_size: IntOrPair,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    *,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    data_format: str = "NHWC",
    out: np.ndarray | tuple[np.ndarray, MaxPoolArgmax] | None = None,
) -> tuple[np.ndarray, MaxPoolArgmax]:
    """2-D max pooling, returning the pooled array and the argmax for backward.

    Parameters
    ----------
    x : array_like, 4-D
        Input in ``data_format`` layout; float or integer dtype.  Any memory
        layout is accepted; NHWC- or NCHW-contiguous memory is used in place.
    pool_size : int or (int, int)
        Window height and width.
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (int, int) or ((int, int), (int, int))
        "same" as TensorFlow; ints are symmetric as PyTorch (at most half the
        pool size); pairs of pairs are explicit (top, bottom), (left, right).
        Padded positions never win and never receive gradient.
    dilation : int or (int, int), default 1
        Spacing between window taps.
    ceil_mode : bool, default False
        Round the output size up (PyTorch).
    data_format : {"NHWC", "NCHW"}, default "NHWC"
        Also accepted: "channels_last", "channels_first".
    out : ndarray or (ndarray, MaxPoolArgmax), optional
        Buffers to write ``y`` (and the offsets of an earlier argmax of the
        same configuration) into, so that a training loop allocates nothing.

    Returns
    -------
    y : ndarray
        Pooled values, dtype of ``x``, same memory layout as ``x``.
    argmax : MaxPoolArgmax
        Window offsets of the maxima; pass to :func:`max_pool2d_backward`.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments; the message names the parameter.
    """
    key, x_in = None, x
    if (out is None and type(x) is np.ndarray and type(ceil_mode) is bool
            and type(data_format) is str and _plain(pool_size) and _plain(strides)
            and _plain(padding) and _plain(dilation)):
        key = (x.shape, x.dtype, x.strides, pool_size, strides, padding, dilation, ceil_mode,
               data_format)
        plan = _FAST.get(key)
        if plan is not None:
            return plan.run_forward(x)

    x, geom, data_format = _resolve(x, pool_size, strides, padding, dilation, ceil_mode,
                                    data_format)
    n, c, h, w = _spatial(x.shape, data_format)
    ho, wo = geom.output_size
    y_shape = _logical_shape(n, c, ho, wo, data_format)
    in_place = _memory_of(x, data_format)
    memory = in_place or (CHANNELS_LAST if data_format == "NHWC" else PLANAR)
    plan = _plan(x.shape, x.dtype, geom, data_format, memory)
    if key is not None and x is x_in and in_place and plan.cdtype == x.dtype:
        if len(_FAST) >= _FAST_MAX:
            _FAST.clear()
        _FAST[key] = plan
        return plan.run_forward(x)
    cdtype, odtype = plan.cdtype, plan.odtype
    xp = _to_physical(x, data_format, memory).astype(cdtype, copy=False)
    phys_out_shape = plan.phys_out

    y_buf = arg_buf = None
    if isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError("out must be y or a (y, argmax) pair")
        y_buf, arg_buf = out
    elif out is not None:
        y_buf = out
    written = {}  # output buffers the caller gave, which must not overlap x or each other
    if y_buf is not None:
        yp_user = _check_out(y_buf, "out", y_shape, x.dtype, data_format, memory)
        written["out[0]" if isinstance(out, tuple) else "out"] = y_buf
    if arg_buf is not None:
        if not isinstance(arg_buf, MaxPoolArgmax):
            raise TypeError("out[1] must be a MaxPoolArgmax returned by max_pool2d")
        if (arg_buf._geometry != geom or arg_buf._input_shape != x.shape
                or arg_buf._data_format != data_format or arg_buf._memory != memory):
            raise ValueError("out[1] was made for a different input shape or pooling configuration")
        written["out[1] (the argmax offsets)"] = _intact_offsets(arg_buf, plan, "out[1]")
    check_no_overlap(written, {"x": x})
    if arg_buf is not None:
        offp = arg_buf._offsets
        argmax = arg_buf
        argmax._dtype = x.dtype
        argmax._plan = plan
    else:
        offp = np.empty(phys_out_shape, odtype)
        argmax = MaxPoolArgmax(_KEY, offp, geom, x.shape, data_format, x.dtype, memory, plan)

    if y_buf is not None and cdtype == x.dtype:
        yp = yp_user
    else:
        yp = np.empty(phys_out_shape, cdtype)

    plan.forward(xp.reshape(-1), yp, offp)

    if yp.dtype != x.dtype:
        if y_buf is not None:
            yp_user[...] = yp
            yp = yp_user
        else:
            yp = yp.astype(x.dtype)
    y = y_buf if y_buf is not None else _to_logical(yp, n, c, data_format, memory)
    return y, argmax


def max_pool2d_backward(
    dy: np.ndarray,
    argmax: MaxPoolArgmax,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to ``x``.

    Each ``dy`` element is added to the input element that won its window;
    overlapping windows accumulate in window order (output row, then
    column), so results are identical for any thread count.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to ``y``: shape of ``y``; cast to ``x``'s
        dtype (same-kind casts only).
    argmax : MaxPoolArgmax
        The second result of :func:`max_pool2d`.
    out : ndarray, optional
        Buffer for ``dx`` (shape and dtype of ``x``).

    Returns
    -------
    dx : ndarray
        Shape and dtype of ``x``, in the memory layout ``x`` had.
    """
    if not isinstance(argmax, MaxPoolArgmax):
        raise TypeError(
            f"argmax must be the MaxPoolArgmax returned by max_pool2d, got {type(argmax).__name__}"
        )
    data_format, memory, dtype = argmax._data_format, argmax._memory, argmax._dtype
    geom = argmax._geometry
    offp = argmax._offsets
    plan = argmax._plan or _plan(argmax._input_shape, dtype, geom, data_format, memory)
    _intact_offsets(argmax, plan, "argmax")

    if (out is None and plan is not None and type(dy) is np.ndarray and dy.dtype == plan.cdtype
            and dy.dtype == dtype and dy.shape == plan.out_shape):
        dyv = dy if plan.perm is None else dy.transpose(plan.perm)
        if dyv.flags.c_contiguous:  # fast path: dy already in the kernel's layout
            dxp = np.empty(plan.phys_in, dtype)
            plan.backward(dyv.reshape(-1), offp, dxp)
            if plan.perm is None:
                return dxp if memory == CHANNELS_LAST else dxp.reshape(plan.in_shape)
            return _to_logical(dxp, plan.n, plan.c, data_format, memory)

    dy_in = dy
    dy = as_input_array(dy, "dy")
    if dy.shape != argmax.output_shape:
        raise ValueError(f"dy has shape {dy.shape}, expected {argmax.output_shape} (the shape of y)")
    cdtype = _compute_dtype(dtype)
    if not np.can_cast(dy.dtype, dtype, "same_kind"):
        raise TypeError(f"dy has dtype {dy.dtype}, which cannot be cast to x's dtype {dtype}")
    dyp = _to_physical(dy, data_format, memory).astype(dtype, copy=False).astype(cdtype, copy=False)

    dx_shape = argmax._input_shape
    if out is not None:
        dxp_user = _check_out(out, "out", dx_shape, dtype, data_format, memory)
        check_no_overlap({"out": out}, {"dy": dy_in if isinstance(dy_in, np.ndarray) else dy,
                                        "argmax (its offsets)": offp})
    dxp = dxp_user if out is not None and cdtype == dtype else np.empty(plan.phys_in, cdtype)

    plan.backward(dyp.reshape(-1), offp, dxp)

    if out is not None:
        if dxp is not dxp_user:
            dxp_user[...] = dxp
        return out
    if dxp.dtype != dtype:
        dxp = dxp.astype(dtype)
    return _to_logical(dxp, plan.n, plan.c, data_format, memory)
