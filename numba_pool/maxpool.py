"""Max pooling of every rank: :func:`max_pool1d`, :func:`max_pool2d`,
:func:`max_pool3d`, their backward passes and adaptive max pooling.

Flow of every call: validate arguments -> geometry (cached, pure Python) ->
plan (cached per configuration, :mod:`numba_pool._plan`) -> allocate
outputs -> kernel.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

from . import _buffers
from ._fastpath import FastPlans
from ._layout import check_no_overlap, check_out, deliver, kernel_buffer, layout
from ._plan import MaxPlan, compute_dtype, max_plan, offsets_dtype
from ._validate import (
    as_input_array,
    check_input_shape,
    int_tuple,
    normalise_bool,
    normalise_data_format,
    normalise_padding,
)
from .geometry import PoolGeometry, adaptive_geometry, pool_geometry

__all__ = [
    "MaxPoolArgmax", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_backward",
    "max_pool2d_backward", "max_pool3d_backward", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "offsets_dtype", "resolve_parameters",
]

IntOrTuple = Union[int, Tuple[int, ...]]
IntOrPair = IntOrTuple
Padding = Union[str, int, Tuple[int, ...], Tuple[Tuple[int, int], ...]]

_KEY = object()
_NAMES = {1: "max_pool1d", 2: "max_pool2d", 3: "max_pool3d"}


class MaxPoolArgmax:
    """Where each max came from; made by the max pooling functions, consumed
    by their backward passes and by :func:`numba_pool.max_unpool2d` & co.

    Attributes
    ----------
    offsets : ndarray
        Shape of ``y``.  Row-major position of the winner inside its
        (dilated) window, e.g. ``i * kw + j`` in 2-D and
        ``(a * kh + i) * kw + j`` in 3-D; ``uint8`` for windows of at most
        256 elements, a wider unsigned type otherwise.  A writable view.
    input_shape, output_shape : tuple of int
        Logical shapes of ``x`` and ``y``.
    data_format : str
        Canonical data format of ``x`` and ``y`` (e.g. "NHWC", "NCDHW").
    dtype : numpy.dtype
        dtype of ``x`` (and of ``dx``).
    geometry : PoolGeometry
        Resolved pool size, strides, dilation and padding per axis.
    rank : int
        Number of spatial axes (1, 2 or 3).
    """

    __slots__ = ("_offsets", "_geometry", "_input_shape", "_data_format", "_dtype", "_memory",
                 "_plan")

    def __init__(self, *args, **kwargs):
        if not args or args[0] is not _KEY:
            raise TypeError("MaxPoolArgmax is created by numba_pool's max pooling functions "
                            "(or numba_pool.argmax_from_flat_indices), not directly")
        _, offsets, geometry, input_shape, data_format, dtype, memory = args[:7]
        self._offsets = offsets  # physical (B, *out_spatial, C), C-contiguous
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
    def rank(self) -> int:
        return self._geometry.rank

    @property
    def _layout(self):
        return layout(self.rank, self._data_format)

    @property
    def offsets(self) -> np.ndarray:
        n, c, _ = self._layout.split(self._input_shape)
        return self._layout.to_logical(self._offsets, n, c, self._memory)

    @property
    def geometry(self) -> PoolGeometry:
        return self._geometry

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        n, c, _ = self._layout.split(self._input_shape)
        return self._layout.join(n, c, self._geometry.output_size)

    @property
    def data_format(self) -> str:
        return self._data_format

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def _coordinates(self) -> list[np.ndarray]:
        """Input coordinate of each winner along every spatial axis (logical
        order, shape of ``y``)."""
        g = self._geometry
        off = self.offsets.astype(np.int64)
        taps = np.unravel_index(np.minimum(off, g.window_elements - 1), g.pool_size)
        first_spatial = 1 if self._layout.channels_last else 2
        coords = []
        for k, (axis, tap) in enumerate(zip(g.axes, taps)):
            shape = [1] * off.ndim
            shape[first_spatial + k] = -1
            coords.append(axis.start.reshape(shape) + tap * axis.dilation)
        return coords

    def flat_indices(self) -> np.ndarray:
        """PyTorch's ``return_indices`` form (int64, shape of ``y``): the flat
        position of each winner in its (n, c) spatial volume, e.g. ``h * W + w``
        in 2-D and ``(d * H + h) * W + w`` in 3-D."""
        return np.ravel_multi_index(tuple(self._coordinates()), self._geometry.input_size,
                                    mode="clip")

    def tf_indices(self, include_batch_in_index: bool = False) -> np.ndarray:
        """TensorFlow's ``tf.nn.max_pool_with_argmax`` indices (2-D NHWC only):
        ``(h * W + w) * C + c``, plus ``n * H * W * C`` with
        ``include_batch_in_index``."""
        include_batch_in_index = normalise_bool(include_batch_in_index, "include_batch_in_index")
        if self.rank != 2 or self._data_format != "NHWC":
            raise ValueError("tf_indices: TensorFlow's indices exist for 2-D NHWC pooling only, "
                             f"this argmax is {self.rank}-D {self._data_format}")
        n, h, w, c = self._input_shape
        flat = self.flat_indices() * c + np.arange(c, dtype=np.int64)
        if include_batch_in_index:
            flat = flat + (np.arange(n, dtype=np.int64) * (h * w * c)).reshape(-1, 1, 1, 1)
        return flat

    def __repr__(self) -> str:
        g = self._geometry
        return (
            f"MaxPoolArgmax(input_shape={self._input_shape}, output_shape={self.output_shape}, "
            f"data_format={self._data_format!r}, pool_size={g.pool_size}, strides={g.strides}, "
            f"padding={g.padding}, dilation={g.dilation}, adaptive={g.adaptive}, "
            f"dtype={self._dtype})"
        )


def _new_argmax(offp, plan: MaxPlan, dtype) -> MaxPoolArgmax:
    argmax = MaxPoolArgmax.__new__(MaxPoolArgmax)
    argmax._offsets, argmax._geometry, argmax._input_shape = offp, plan.geom, plan.in_shape
    argmax._data_format, argmax._dtype, argmax._memory = plan.lay.data_format, np.dtype(dtype), \
        plan.memory
    argmax._plan = plan
    return argmax


def _run_forward(plan: MaxPlan, x: np.ndarray):
    """Fast path: x has the plan's shape, dtype and memory layout.

    Kept lean: it is most of the cost of a call on a small input."""
    yp = _buffers.empty_sized(plan.phys_out, plan.dtype, plan.y_bytes)
    offp = _buffers.empty_sized(plan.phys_out, plan.odtype, plan.offsets_bytes)
    plan.forward(plan.physical(x).reshape(-1), yp, offp)
    return plan.logical(yp), _new_argmax(offp, plan, plan.dtype)


def _run_backward(plan: MaxPlan, dyv: np.ndarray, offp: np.ndarray) -> np.ndarray:
    """Fast path: ``dyv`` (dy in physical order, C-contiguous) and the offsets
    have the plan's dtypes; returns dx as the caller sees it."""
    dxp = _buffers.empty_sized(plan.phys_in, plan.dtype, plan.dx_bytes)
    plan.backward(dyv.reshape(-1), offp, dxp)
    return plan.logical(dxp)


_FAST = FastPlans()  # plans of repeated max pooling calls (numba_pool._fastpath)


def resolve_parameters(pool_size, strides, padding, dilation, ceil_mode, data_format,
                       rank: int = 2):
    """Validate and normalise the pooling parameters (everything but ``x``).

    Returns (pool, stride, dilation, padding, ceil_mode, data_format) with
    one int per spatial axis, "valid"/"same" or one (before, after) pair per
    axis, a bool and the canonical data format.
    """
    data_format = normalise_data_format(data_format, rank)
    pool = int_tuple(pool_size, "pool_size", rank)
    stride = pool if strides is None else int_tuple(strides, "strides", rank)
    dil = int_tuple(dilation, "dilation", rank)
    pad = normalise_padding(padding, pool, rank)
    ceil_mode = normalise_bool(ceil_mode, "ceil_mode")
    return pool, stride, dil, pad, ceil_mode, data_format


def prepare_input(x, data_format, rank: int):
    """Validate ``x`` and its data format; return (x, layout, spatial sizes)."""
    data_format = normalise_data_format(data_format, rank)
    x = as_input_array(x, "x")
    check_input_shape(x, data_format, rank)
    lay = layout(rank, data_format)
    return x, lay, lay.split(x.shape)[2]


def split_out(out):
    """(y buffer, argmax buffer) from a max pooling ``out=`` argument."""
    if isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError("out must be y or a (y, argmax) pair")
        return out
    return out, None


def _intact_offsets(argmax: MaxPoolArgmax, plan: MaxPlan, name: str) -> np.ndarray:
    """The argmax's physical offsets, or a ValueError if they no longer fit ``plan``
    (kernels trust their shape, dtype and contiguity)."""
    offp = argmax._offsets
    if (type(offp) is not np.ndarray or offp.shape != plan.phys_out
            or offp.dtype != plan.odtype or not offp.flags.c_contiguous):
        raise ValueError(f"{name} is corrupted: its offsets no longer match its geometry")
    return offp


def _max_pool(x, geom: PoolGeometry, lay, out, fname: str):
    """Shared body of every max pooling: x validated, geometry resolved."""
    in_place = lay.memory_of(x)
    memory = in_place or lay.natural
    plan = max_plan(x.shape, x.dtype, geom, lay, memory)
    cdtype = plan.cdtype
    xp = lay.to_physical(x, memory).astype(cdtype, copy=False)

    y_buf, arg_buf = split_out(out)
    written = {}  # output buffers the caller gave, which must not overlap x or each other
    if y_buf is not None:
        yp_user = check_out(y_buf, "out", plan.out_shape, x.dtype, lay, memory)
        written["out[0]" if isinstance(out, tuple) else "out"] = y_buf
    if arg_buf is not None:
        if not isinstance(arg_buf, MaxPoolArgmax):
            raise TypeError(f"out[1] must be a MaxPoolArgmax returned by {fname}")
        if (arg_buf._geometry != geom or arg_buf._input_shape != x.shape
                or arg_buf._data_format != lay.data_format or arg_buf._memory != memory):
            raise ValueError("out[1] was made for a different input shape or pooling configuration")
        written["out[1] (the argmax offsets)"] = _intact_offsets(arg_buf, plan, "out[1]")
    check_no_overlap(written, {"x": x})
    if arg_buf is not None:
        offp = arg_buf._offsets
        argmax = arg_buf
        argmax._dtype = x.dtype
        argmax._plan = plan
    else:
        offp = _buffers.empty(plan.phys_out, plan.odtype)
        argmax = _new_argmax(offp, plan, x.dtype)

    yp = yp_user if y_buf is not None and cdtype == x.dtype else _buffers.empty(plan.phys_out, cdtype)
    plan.forward(xp.reshape(-1), yp, offp)
    if yp.dtype != x.dtype:
        if y_buf is not None:
            yp_user[...] = yp
            yp = yp_user
        else:
            yp = yp.astype(x.dtype)
    y = y_buf if y_buf is not None else lay.to_logical(yp, plan.n, plan.c, memory)
    return y, argmax


def _max_pool_nd(rank, x, pool_size, strides, padding, dilation, ceil_mode, data_format, out):
    x_in = x
    key = _FAST.key(x, out, (rank, pool_size, strides, padding, dilation, data_format),
                    (ceil_mode,))
    plan = _FAST.get(key)
    if plan is not None:
        return _run_forward(plan, x)
    pool, stride, dil, pad, ceil_mode, data_format = resolve_parameters(
        pool_size, strides, padding, dilation, ceil_mode, data_format, rank)
    x, lay, spatial = prepare_input(x, data_format, rank)
    geom = pool_geometry(spatial, pool, stride, dil, pad, ceil_mode)
    if key is not None and x is x_in and x.dtype == compute_dtype(x.dtype):
        memory = lay.memory_of(x)
        if memory is not None:
            plan = max_plan(x.shape, x.dtype, geom, lay, memory)
            _FAST.put(key, plan)
            return _run_forward(plan, x)
    return _max_pool(x, geom, lay, out, _NAMES[rank])


_MAX_DOC = """{rank}-D max pooling, returning the pooled array and the argmax for backward.

    Parameters
    ----------
    x : array_like, {ndim}-D
        Input in ``data_format`` layout; float or integer dtype.  Any memory
        layout is accepted; channels-last or channels-first contiguous memory
        is used in place (and ``y`` comes back in the same memory layout).
    pool_size : int or {count}
        Window size per spatial axis ({axes}).
    strides : int or {count}, optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, {count} or {explicit}
        "same" as TensorFlow; ints are symmetric as PyTorch (at most half the
        pool size); ``(before, after)`` pairs per axis are explicit.
        Padded positions never win and never receive gradient.
    dilation : int or {count}, default 1
        Spacing between window taps.
    ceil_mode : bool, default False
        Round the output size up (PyTorch).
    data_format : {{{formats}}}, default "{default}"
        Also accepted: "channels_last", "channels_first".
    out : ndarray or (ndarray, MaxPoolArgmax), optional
        Buffers to write ``y`` (and the offsets of an earlier argmax of the
        same configuration) into, so that a training loop allocates nothing.

    Returns
    -------
    y : ndarray
        Pooled values, dtype of ``x``, same memory layout as ``x``.
    argmax : MaxPoolArgmax
        Window offsets of the maxima; pass to :func:`max_pool{rank}d_backward`.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments; the message names the parameter.
    """

_DOC_FIELDS = {
    1: dict(rank=1, ndim=3, count="(int,)", axes="width", explicit="(before, after)",
            formats='"NWC", "NCW"', default="NWC"),
    2: dict(rank=2, ndim=4, count="(int, int)", axes="height, width",
            explicit="((top, bottom), (left, right))", formats='"NHWC", "NCHW"', default="NHWC"),
    3: dict(rank=3, ndim=5, count="(int, int, int)", axes="depth, height, width",
            explicit="((front, back), (top, bottom), (left, right))",
            formats='"NDHWC", "NCDHW"', default="NDHWC"),
}


def max_pool1d(x: np.ndarray, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
               padding: Padding = "valid", *, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               data_format: str = "NWC", out=None) -> tuple[np.ndarray, MaxPoolArgmax]:
    return _max_pool_nd(1, x, pool_size, strides, padding, dilation, ceil_mode, data_format, out)


def max_pool2d(x: np.ndarray, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
               padding: Padding = "valid", *, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               data_format: str = "NHWC", out=None) -> tuple[np.ndarray, MaxPoolArgmax]:
    return _max_pool_nd(2, x, pool_size, strides, padding, dilation, ceil_mode, data_format, out)


def max_pool3d(x: np.ndarray, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
               padding: Padding = "valid", *, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               data_format: str = "NDHWC", out=None) -> tuple[np.ndarray, MaxPoolArgmax]:
    return _max_pool_nd(3, x, pool_size, strides, padding, dilation, ceil_mode, data_format, out)


for _rank, _f in ((1, max_pool1d), (2, max_pool2d), (3, max_pool3d)):
    _f.__doc__ = _MAX_DOC.format(**_DOC_FIELDS[_rank])


def normalise_output_size(output_size, spatial, rank: int) -> tuple:
    """Adaptive pooling's ``output_size``: an int or one int (or None, which
    keeps that axis's input size) per spatial axis."""
    if output_size is None:
        raise TypeError(f"output_size must be an int or {rank} ints (None keeps an axis)")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != rank:
            raise ValueError(f"output_size must be an int or {rank} ints, "
                             f"got {len(output_size)} values")
        sizes = tuple(n if o is None else o for o, n in zip(output_size, spatial))
    else:
        sizes = (output_size,) * rank
    return int_tuple(sizes, "output_size", rank)


def _adaptive_max(rank, x, output_size, data_format, out):
    x, lay, spatial = prepare_input(x, data_format, rank)
    sizes = normalise_output_size(output_size, spatial, rank)
    geom = adaptive_geometry(spatial, sizes)
    return _max_pool(x, geom, lay, out, f"adaptive_max_pool{rank}d")


_ADAPTIVE_MAX_DOC = """Adaptive {rank}-D max pooling (PyTorch's windows).

    Output position ``o`` of an axis of input size ``n`` and output size
    ``m`` covers ``floor(o * n / m) <= p < ceil((o + 1) * n / m)``.

    Parameters
    ----------
    x : array_like, {ndim}-D
        Input in ``data_format`` layout.
    output_size : int or {count}
        Output size per spatial axis; ``None`` in a tuple keeps that axis.
    data_format : {{{formats}}}, default "{default}"
    out : ndarray or (ndarray, MaxPoolArgmax), optional
        As for :func:`max_pool{rank}d`.

    Returns
    -------
    y : ndarray
    argmax : MaxPoolArgmax
        For :func:`max_pool{rank}d_backward`; ``flat_indices()`` gives
        PyTorch's ``return_indices``.
    """


def adaptive_max_pool1d(x, output_size, *, data_format: str = "NWC", out=None):
    return _adaptive_max(1, x, output_size, data_format, out)


def adaptive_max_pool2d(x, output_size, *, data_format: str = "NHWC", out=None):
    return _adaptive_max(2, x, output_size, data_format, out)


def adaptive_max_pool3d(x, output_size, *, data_format: str = "NDHWC", out=None):
    return _adaptive_max(3, x, output_size, data_format, out)


for _rank, _f in ((1, adaptive_max_pool1d), (2, adaptive_max_pool2d), (3, adaptive_max_pool3d)):
    _f.__doc__ = _ADAPTIVE_MAX_DOC.format(**_DOC_FIELDS[_rank])


def check_argmax(argmax, rank: int | None, fname: str) -> None:
    if not isinstance(argmax, MaxPoolArgmax):
        raise TypeError(f"argmax must be the MaxPoolArgmax returned by max pooling, "
                        f"got {type(argmax).__name__}")
    if rank is not None and argmax.rank != rank:
        raise ValueError(f"argmax: {fname} needs the argmax of a {rank}-D pooling, "
                         f"got one of a {argmax.rank}-D pooling")


def argmax_plan(argmax: MaxPoolArgmax) -> MaxPlan:
    """The argmax's plan (rebuilt after unpickling), its offsets checked."""
    plan = argmax._plan or max_plan(argmax._input_shape, argmax._dtype, argmax._geometry,
                                    argmax._layout, argmax._memory)
    _intact_offsets(argmax, plan, "argmax")
    return plan


def _max_backward(dy, argmax, out, rank, fname):
    check_argmax(argmax, rank, fname)
    dtype, memory = argmax._dtype, argmax._memory
    plan = argmax_plan(argmax)
    offp = argmax._offsets

    if (out is None and type(dy) is np.ndarray and dy.dtype == plan.cdtype
            and dy.dtype == dtype and dy.shape == plan.out_shape):
        dyv = plan.physical(dy)
        if dyv.flags.c_contiguous:  # fast path: dy already in the kernel's layout
            return _run_backward(plan, dyv, offp)

    lay = plan.lay
    dy_in = dy
    dy = as_input_array(dy, "dy")
    if dy.shape != plan.out_shape:
        raise ValueError(f"dy has shape {dy.shape}, expected {plan.out_shape} (the shape of y)")
    cdtype = plan.cdtype
    if not np.can_cast(dy.dtype, dtype, "same_kind"):
        raise TypeError(f"dy has dtype {dy.dtype}, which cannot be cast to x's dtype {dtype}")
    dyp = lay.to_physical(dy, memory).astype(dtype, copy=False).astype(cdtype, copy=False)

    dxp, user = kernel_buffer(out, plan.in_shape, plan.phys_in, dtype, cdtype, lay, memory,
                              {"dy": dy_in if isinstance(dy_in, np.ndarray) else dy,
                               "argmax (its offsets)": offp})
    plan.backward(dyp.reshape(-1), offp, dxp)
    return deliver(dxp, user, out, dtype, lay, plan.n, plan.c, memory)


_BACKWARD_DOC = """Gradient of :func:`max_pool{rank}d` (or :func:`adaptive_max_pool{rank}d`)
    with respect to ``x``.

    Each ``dy`` element is added to the input element that won its window;
    overlapping windows accumulate in output order (row-major), so results
    are identical for any thread count.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to ``y``: shape of ``y``; cast to ``x``'s
        dtype (same-kind casts only).
    argmax : MaxPoolArgmax
        The second result of the forward pass (or of
        :func:`numba_pool.argmax_from_flat_indices`).
    out : ndarray, optional
        Buffer for ``dx`` (shape and dtype of ``x``).

    Returns
    -------
    dx : ndarray
        Shape and dtype of ``x``, in the memory layout ``x`` had.
    """


def max_pool1d_backward(dy: np.ndarray, argmax: MaxPoolArgmax, *, out=None) -> np.ndarray:
    return _max_backward(dy, argmax, out, 1, "max_pool1d_backward")


def max_pool2d_backward(dy: np.ndarray, argmax: MaxPoolArgmax, *, out=None) -> np.ndarray:
    return _max_backward(dy, argmax, out, 2, "max_pool2d_backward")


def max_pool3d_backward(dy: np.ndarray, argmax: MaxPoolArgmax, *, out=None) -> np.ndarray:
    return _max_backward(dy, argmax, out, 3, "max_pool3d_backward")


for _rank, _f in ((1, max_pool1d_backward), (2, max_pool2d_backward), (3, max_pool3d_backward)):
    _f.__doc__ = _BACKWARD_DOC.format(rank=_rank)
del _rank, _f
