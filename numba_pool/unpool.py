"""Max unpooling and PyTorch index interop.

:func:`max_unpool2d` (and 1-D/3-D) places ``y``'s values at the argmax
positions of an array of the input's shape, zeros elsewhere: the scatter
kernel of the max backward, assigning instead of adding.
:func:`argmax_from_flat_indices` turns PyTorch's ``return_indices`` into a
:class:`~numba_pool.MaxPoolArgmax`, so backward and unpooling accept them.
"""

from __future__ import annotations

import numpy as np

from . import _buffers, _kernels
from ._layout import CHANNELS_LAST, Layout, deliver, kernel_buffer, readonly
from ._plan import _run, max_plan
from ._validate import as_input_array
from .geometry import pool_geometry
from .maxpool import (
    MaxPoolArgmax,
    _new_argmax,
    argmax_plan,
    check_argmax,
    prepare_input,
    resolve_parameters,
)

__all__ = ["argmax_from_flat_indices", "max_unpool1d", "max_unpool2d", "max_unpool3d"]


def _unpool(y, argmax, out, rank):
    check_argmax(argmax, rank, f"max_unpool{rank}d")
    plan = argmax_plan(argmax)
    y_in = y
    y = as_input_array(y, "y")
    if y.shape != plan.out_shape:
        raise ValueError(f"y has shape {y.shape}, expected {plan.out_shape} (the argmax's output)")
    lay, memory = plan.lay, plan.memory
    kdtype = np.dtype(np.float32) if y.dtype == np.float16 else y.dtype
    yp = lay.to_physical(y, memory).astype(kdtype, copy=False)
    outp, user = kernel_buffer(out, plan.in_shape, plan.phys_in, y.dtype, kdtype, lay, memory,
                               {"y": y_in if isinstance(y_in, np.ndarray) else y,
                                "argmax (its offsets)": argmax._offsets})
    plan.unpool(yp.reshape(-1), argmax._offsets, outp)
    return deliver(outp, user, out, y.dtype, lay, plan.n, plan.c, memory)


_DOC = """Max unpooling ({rank}-D): the inverse placement of :func:`max_pool{rank}d`.

    Parameters
    ----------
    y : array_like
        Values shaped like the pooled output (usually the forward's ``y``).
    argmax : MaxPoolArgmax
        From :func:`max_pool{rank}d`, :func:`adaptive_max_pool{rank}d` or
        :func:`argmax_from_flat_indices`.
    out : ndarray, optional
        Buffer of x's shape and y's dtype.

    Returns
    -------
    ndarray
        Shape of the pooled input, dtype of ``y``: each ``y`` value at its
        window's winner, zeros elsewhere.  An element that won several
        (overlapping) windows receives its value once: the last such
        window's, in output order (all equal when ``y`` is the forward's
        result), as PyTorch's ``max_unpool`` does with the same indices.
    """


def max_unpool1d(y, argmax: MaxPoolArgmax, *, out=None) -> np.ndarray:
    return _unpool(y, argmax, out, 1)


def max_unpool2d(y, argmax: MaxPoolArgmax, *, out=None) -> np.ndarray:
    return _unpool(y, argmax, out, 2)


def max_unpool3d(y, argmax: MaxPoolArgmax, *, out=None) -> np.ndarray:
    return _unpool(y, argmax, out, 3)


for _rank in (1, 2, 3):
    globals()[f"max_unpool{_rank}d"].__doc__ = _DOC.format(rank=_rank)
del _rank


def argmax_from_flat_indices(indices, input_shape, pool_size, strides=None, padding="valid", *,
                             dilation=1, ceil_mode=False, data_format="NHWC",
                             dtype=np.float32) -> MaxPoolArgmax:
    """A :class:`MaxPoolArgmax` from PyTorch-style indices.

    Parameters
    ----------
    indices : array_like of int
        Shaped like ``y`` in ``data_format``; each the flat position of the
        window's winner inside its (n, c) spatial volume (PyTorch's
        ``return_indices``, and :meth:`MaxPoolArgmax.flat_indices`).
    input_shape : tuple of int
        Shape of ``x`` in ``data_format``; its rank gives the pooling's rank.
    pool_size, strides, padding, dilation, ceil_mode, data_format
        The pooling's parameters, as for :func:`numba_pool.max_pool2d` & co.
    dtype : dtype, default float32
        dtype of ``x`` (and of the gradient backward will return).

    Raises
    ------
    ValueError
        If an index does not name an element of its own window inside x.
    """
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) not in (3, 4, 5):
        raise ValueError(f"input_shape must be the 3-, 4- or 5-D shape of x, got {input_shape!r}")
    rank = len(input_shape) - 2
    pool, stride, dil, pad, ceil_mode, data_format = resolve_parameters(
        pool_size, strides, padding, dilation, ceil_mode, data_format, rank)
    x_like = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), tuple(input_shape),
                                             (0,) * len(input_shape))
    _, lay, spatial = prepare_input(x_like, data_format, rank)
    dtype = np.dtype(dtype)
    geom = pool_geometry(spatial, pool, stride, dil, pad, ceil_mode)
    plan = max_plan(tuple(int(n) for n in input_shape), dtype, geom, lay, lay.natural)
    idx = as_input_array(indices, "indices")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.shape != plan.out_shape:
        raise ValueError(f"indices has shape {idx.shape}, expected {plan.out_shape} (the shape "
                         "of y)")
    idx = idx.astype(np.int64)
    first_spatial = 1 if lay.channels_last else 2
    coords = np.unravel_index(np.clip(idx, 0, int(np.prod(spatial)) - 1), spatial)
    inside = (idx >= 0) & (idx < int(np.prod(spatial)))
    tap = np.zeros(idx.shape, np.int64)
    for k, (axis, coord) in enumerate(zip(geom.axes, coords)):
        shape = [1] * idx.ndim
        shape[first_spatial + k] = -1
        rel = coord - axis.start.reshape(shape)
        i, rem = np.divmod(rel, axis.dilation)
        inside &= (rem == 0) & (i >= axis.lo.reshape(shape)) & (i < axis.hi.reshape(shape))
        tap = tap * axis.kernel + i
    if not inside.all():
        bad = tuple(int(v) for v in np.argwhere(~inside)[0])
        raise ValueError(f"indices: index {int(idx[bad])} at position {bad} does not lie in its "
                         "window")
    offp = lay.to_physical(tap.astype(plan.odtype), plan.memory)
    if not offp.flags.owndata:
        offp = offp.copy()
    return _new_argmax(np.ascontiguousarray(offp), plan, dtype)


def unpool_flat(y: np.ndarray, indices: np.ndarray, output_spatial: tuple,
                lay: Layout) -> np.ndarray:
    """``y``'s values at flat per-(n, c) positions ``indices`` (PyTorch's
    ``max_unpool`` with any indices, not only a pooling's winners) of a zero
    array with spatial size ``output_spatial``; logical arrays in ``lay``.

    Values are copied as bit patterns (each dtype viewed as the unsigned
    integer of its size: three kernels cover every dtype). Raises ValueError
    if an index is outside ``[0, prod(output_spatial))``.
    """
    n, c, out_in = lay.split(y.shape)
    size = int(np.prod(output_spatial))
    idx = np.asarray(indices)
    if idx.shape != y.shape or idx.dtype.kind not in "iu":
        raise ValueError("indices must be integers shaped like the input")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= size):
        raise ValueError(f"indices must lie in [0, {size}), the output's spatial size")
    memory = lay.memory_of(y) or lay.natural
    bits = np.dtype(f"u{y.dtype.itemsize}")
    yp = lay.to_physical(y, memory).view(bits)
    ip = lay.to_physical(idx.astype(np.int64, copy=False), memory)
    outp = _buffers.empty(lay.physical_shape(n, c, output_spatial, memory), bits)
    B, C = (n, c) if memory == CHANNELS_LAST else (n * c, 1)
    so = int(np.prod(out_in))
    if outp.size:
        _run(_kernels.flat_unpool_kernel(),
             (readonly(yp.reshape(-1)), readonly(ip.reshape(-1)), outp.reshape(-1)),
             (so, size, C, B), B * (so + size) * C)
    return lay.to_logical(outp.view(y.dtype), n, c, memory)
