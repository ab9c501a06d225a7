"""Average pooling of every rank: :func:`avg_pool1d`, :func:`avg_pool2d`,
:func:`avg_pool3d`, adaptive average pooling, and their backward passes.

Same flow and engine as max pooling (validate -> geometry -> cached plan ->
allocate -> kernel); the kernels are in :mod:`numba_pool._avg_kernels`.
Results: float16 input is summed in float32 and rounded once; integer
input gives float64 (as ``np.mean``).
"""

from __future__ import annotations

import numpy as np

from . import _buffers
from ._fastpath import FastPlans
from ._layout import deliver, kernel_buffer, layout
from ._plan import avg_plan
from ._validate import as_input_array, normalise_avg_options, normalise_data_format
from .geometry import PoolGeometry, adaptive_geometry, pool_geometry
from .maxpool import Padding, IntOrTuple, normalise_output_size, prepare_input, resolve_parameters

__all__ = [
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "avg_pool1d_backward", "avg_pool2d_backward",
    "avg_pool3d_backward", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_backward",
]


_FAST = FastPlans()  # plans of repeated calls of the NumPy API (numba_pool._fastpath)


def _fast_forward(plan, x: np.ndarray) -> np.ndarray:
    """The forward of a remembered call: ``x`` has the plan's shape, layout and
    compute dtype, which is also the result's."""
    yp = _buffers.empty_sized(plan.phys_out, plan.cdtype, plan.y_bytes)
    plan.forward(plan.physical(x).reshape(-1), yp)
    return plan.logical(yp)


def _fast_backward(plan, dy: np.ndarray) -> np.ndarray:
    """The backward of a remembered call (``dy`` as ``x`` in :func:`_fast_forward`)."""
    dxp = _buffers.empty_sized(plan.phys_in, plan.cdtype, plan.dx_bytes)
    plan.backward(plan.physical(dy).reshape(-1), dxp)
    return plan.logical(dxp)


def _remember(key, plan, a, a_in) -> None:
    """Remember ``plan`` under ``key`` where the array ``a`` (x or dy, as
    validated; ``a_in`` as given) can take the fast path next time: given as is,
    in a memory layout of its own, already in the compute (and result) dtype."""
    if (key is not None and a is a_in and a.dtype == plan.cdtype == plan.rdtype
            and plan.lay.memory_of(a) == plan.memory):
        _FAST.put(key, plan)


def _forward(x, geom: PoolGeometry, lay, out, cip: bool, override, lanes: int = 0,
             key=None, x_in=None):
    memory = lay.memory_of(x) or lay.natural
    plan = avg_plan(x.shape, x.dtype, geom, lay, memory, cip, override, lanes)
    _remember(key, plan, x, x_in)
    xp = lay.to_physical(x, memory).astype(plan.cdtype, copy=False)
    yp, user = kernel_buffer(out, plan.out_shape, plan.phys_out, plan.rdtype, plan.cdtype, lay,
                             memory, {"x": x})
    plan.forward(xp.reshape(-1), yp)
    return deliver(yp, user, out, plan.rdtype, lay, plan.n, plan.c, memory)


def _input_shape(input_shape, rank: int) -> tuple:
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != rank + 2:
        raise ValueError(f"input_shape must be the {rank + 2}-D shape of x, got {input_shape!r}")
    for n in input_shape:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"input_shape must hold non-negative ints, got {input_shape!r}")
    return tuple(int(n) for n in input_shape)


def _backward(dy, input_shape, geom: PoolGeometry, lay, out, cip: bool, override,
              lanes: int = 0, key=None):
    dy_in = dy
    dy = as_input_array(dy, "dy")
    n, c, _ = lay.split(input_shape)
    y_shape = lay.join(n, c, geom.output_size)
    if dy.shape != y_shape:
        raise ValueError(f"dy has shape {dy.shape}, expected {y_shape} (the shape of y)")
    memory = lay.memory_of(dy) or lay.natural
    plan = avg_plan(tuple(input_shape), dy.dtype, geom, lay, memory, cip, override, lanes)
    _remember(key, plan, dy, dy_in)
    dyp = lay.to_physical(dy, memory).astype(plan.cdtype, copy=False)
    dxp, user = kernel_buffer(out, plan.in_shape, plan.phys_in, plan.rdtype, plan.cdtype, lay,
                              memory, {"dy": dy_in if isinstance(dy_in, np.ndarray) else dy})
    plan.backward(dyp.reshape(-1), dxp)
    return deliver(dxp, user, out, plan.rdtype, lay, plan.n, plan.c, memory)


def _avg_nd(rank, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
            divisor_override, data_format, out):
    key = _FAST.key(x, out, ("avg", rank, pool_size, strides, padding, dilation,
                             divisor_override, data_format), (ceil_mode, count_include_pad))
    plan = _FAST.get(key)
    if plan is not None:
        return _fast_forward(plan, x)
    x_in = x
    pool, stride, dil, pad, ceil_mode, data_format = resolve_parameters(
        pool_size, strides, padding, dilation, ceil_mode, data_format, rank)
    cip, override = normalise_avg_options(padding, count_include_pad, divisor_override)
    x, lay, spatial = prepare_input(x, data_format, rank)
    geom = pool_geometry(spatial, pool, stride, dil, pad, ceil_mode)
    return _forward(x, geom, lay, out, cip, override, key=key, x_in=x_in)


def _avg_backward_nd(rank, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                     count_include_pad, divisor_override, data_format, out):
    key = _FAST.key(dy, out, ("avg backward", rank, input_shape, pool_size, strides, padding,
                              dilation, divisor_override, data_format),
                    (ceil_mode, count_include_pad))
    plan = _FAST.get(key)
    if plan is not None:
        return _fast_backward(plan, dy)
    pool, stride, dil, pad, ceil_mode, data_format = resolve_parameters(
        pool_size, strides, padding, dilation, ceil_mode, data_format, rank)
    cip, override = normalise_avg_options(padding, count_include_pad, divisor_override)
    input_shape = _input_shape(input_shape, rank)
    lay = layout(rank, data_format)
    spatial = lay.split(input_shape)[2]
    if 0 in spatial:
        raise ValueError(f"input_shape has zero-size spatial dimensions: {input_shape}")
    geom = pool_geometry(spatial, pool, stride, dil, pad, ceil_mode)
    return _backward(dy, input_shape, geom, lay, out, cip, override, key=key)


_AVG_DOC = """{rank}-D average pooling (PyTorch's divisor rules).

    Parameters
    ----------
    x : array_like, {ndim}-D
        Input in ``data_format`` layout; float or integer dtype.
    pool_size, strides, padding, dilation, ceil_mode
        As for :func:`numba_pool.max_pool{rank}d`.  Dilation is allowed.
    count_include_pad : bool or None, default None
        Whether padded positions count in the divisor (the ceil_mode
        overhang beyond the padding never counts).  None: True for integer
        or explicit padding (PyTorch's default), False for "same"
        (TensorFlow's and Keras's behaviour).
    divisor_override : int, optional
        Divide every window's sum by this instead.
    data_format : {{{formats}}}, default "{default}"
    out : ndarray, optional
        Buffer for ``y``.

    Returns
    -------
    y : ndarray
        dtype of ``x`` for floats (float16 summed in float32), float64 for
        integers; each window's elements summed in row-major order from zero,
        then divided once by the divisor (PyTorch's CPU order).
    """

_AVG_BACKWARD_DOC = """Gradient of :func:`avg_pool{rank}d` with respect to ``x``.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to ``y``.
    input_shape : tuple of int
        Shape of ``x``.
    pool_size, strides, padding, dilation, ceil_mode, count_include_pad, divisor_override, data_format
        Those of the forward call.
    out : ndarray, optional
        Buffer for ``dx``.

    Returns
    -------
    dx : ndarray
        ``dy / divisor`` added to every tap of each window, output positions
        in row-major order, starting from +0.
    """

_FMT = {1: dict(rank=1, ndim=3, formats='"NWC", "NCW"', default="NWC"),
        2: dict(rank=2, ndim=4, formats='"NHWC", "NCHW"', default="NHWC"),
        3: dict(rank=3, ndim=5, formats='"NDHWC", "NCDHW"', default="NDHWC")}


def avg_pool1d(x, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
               padding: Padding = "valid", *, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               count_include_pad: bool | None = None, divisor_override: int | None = None,
               data_format: str = "NWC", out=None) -> np.ndarray:
    return _avg_nd(1, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
                   divisor_override, data_format, out)


def avg_pool2d(x, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
               padding: Padding = "valid", *, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               count_include_pad: bool | None = None, divisor_override: int | None = None,
               data_format: str = "NHWC", out=None) -> np.ndarray:
    return _avg_nd(2, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
                   divisor_override, data_format, out)


def avg_pool3d(x, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
               padding: Padding = "valid", *, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               count_include_pad: bool | None = None, divisor_override: int | None = None,
               data_format: str = "NDHWC", out=None) -> np.ndarray:
    return _avg_nd(3, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
                   divisor_override, data_format, out)


def avg_pool1d_backward(dy, input_shape, pool_size, strides=None, padding="valid", *,
                        dilation=1, ceil_mode=False, count_include_pad=None,
                        divisor_override=None, data_format="NWC", out=None) -> np.ndarray:
    return _avg_backward_nd(1, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                            count_include_pad, divisor_override, data_format, out)


def avg_pool2d_backward(dy, input_shape, pool_size, strides=None, padding="valid", *,
                        dilation=1, ceil_mode=False, count_include_pad=None,
                        divisor_override=None, data_format="NHWC", out=None) -> np.ndarray:
    return _avg_backward_nd(2, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                            count_include_pad, divisor_override, data_format, out)


def avg_pool3d_backward(dy, input_shape, pool_size, strides=None, padding="valid", *,
                        dilation=1, ceil_mode=False, count_include_pad=None,
                        divisor_override=None, data_format="NDHWC", out=None) -> np.ndarray:
    return _avg_backward_nd(3, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                            count_include_pad, divisor_override, data_format, out)


def _adaptive_avg(rank, x, output_size, data_format, out):
    key = _FAST.key(x, out, ("adaptive", rank, output_size, data_format))
    plan = _FAST.get(key)
    if plan is not None:
        return _fast_forward(plan, x)
    x_in = x
    x, lay, spatial = prepare_input(x, data_format, rank)
    geom = adaptive_geometry(spatial, normalise_output_size(output_size, spatial, rank))
    return _forward(x, geom, lay, out, False, None, key=key, x_in=x_in)


def _adaptive_avg_backward(rank, dy, input_shape, data_format, out):
    key = _FAST.key(dy, out, ("adaptive backward", rank, input_shape, data_format))
    plan = _FAST.get(key)
    if plan is not None:
        return _fast_backward(plan, dy)
    data_format = normalise_data_format(data_format, rank)
    lay = layout(rank, data_format)
    input_shape = _input_shape(input_shape, rank)
    dy_arr = as_input_array(dy, "dy")
    if dy_arr.ndim != rank + 2:
        raise ValueError(f"dy must be {rank + 2}-D ({data_format}), got shape {dy_arr.shape}")
    spatial = lay.split(input_shape)[2]
    if 0 in spatial:
        raise ValueError(f"input_shape has zero-size spatial dimensions: {input_shape}")
    geom = adaptive_geometry(spatial, normalise_output_size(lay.split(dy_arr.shape)[2],
                                                            spatial, rank))
    return _backward(dy, input_shape, geom, lay, out, False, None, key=key)


_ADAPTIVE_DOC = """Adaptive {rank}-D average pooling (PyTorch's windows and divisions).

    Output ``o`` of an axis of input size ``n`` and output size ``m`` averages
    ``floor(o * n / m) <= p < ceil((o + 1) * n / m)``: the sum in row-major
    order divided by each axis's window length in turn (ATen's
    ``sum / kh / kw``).  ``output_size`` 1 is global average pooling.

    Parameters
    ----------
    x : array_like, {ndim}-D
    output_size : int or tuple
        One int (or None: keep the input size) per spatial axis.
    data_format : {{{formats}}}, default "{default}"
    out : ndarray, optional

    Returns
    -------
    y : ndarray
    """


def adaptive_avg_pool1d(x, output_size, *, data_format: str = "NWC", out=None) -> np.ndarray:
    return _adaptive_avg(1, x, output_size, data_format, out)


def adaptive_avg_pool2d(x, output_size, *, data_format: str = "NHWC", out=None) -> np.ndarray:
    return _adaptive_avg(2, x, output_size, data_format, out)


def adaptive_avg_pool3d(x, output_size, *, data_format: str = "NDHWC", out=None) -> np.ndarray:
    return _adaptive_avg(3, x, output_size, data_format, out)


def adaptive_avg_pool1d_backward(dy, input_shape, *, data_format: str = "NWC", out=None):
    return _adaptive_avg_backward(1, dy, input_shape, data_format, out)


def adaptive_avg_pool2d_backward(dy, input_shape, *, data_format: str = "NHWC", out=None):
    return _adaptive_avg_backward(2, dy, input_shape, data_format, out)


def adaptive_avg_pool3d_backward(dy, input_shape, *, data_format: str = "NDHWC", out=None):
    return _adaptive_avg_backward(3, dy, input_shape, data_format, out)


for _rank in (1, 2, 3):
    globals()[f"avg_pool{_rank}d"].__doc__ = _AVG_DOC.format(**_FMT[_rank])
    globals()[f"avg_pool{_rank}d_backward"].__doc__ = _AVG_BACKWARD_DOC.format(rank=_rank)
    globals()[f"adaptive_avg_pool{_rank}d"].__doc__ = _ADAPTIVE_DOC.format(**_FMT[_rank])
    globals()[f"adaptive_avg_pool{_rank}d_backward"].__doc__ = (
        f"Gradient of :func:`adaptive_avg_pool{_rank}d`: ``dy`` divided as the forward "
        "divides, added to every tap of its window in output order.")
del _rank
