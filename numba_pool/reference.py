"""Pure-NumPy max pooling: the yardstick the kernels are tested against.

Written to be obviously right rather than fast, in the style of the seed
notebook: pad the input, walk the output positions in row-major order, and
look at each window as a NumPy slice.  It is derived **independently** of
the implementation: it shares only the public argument parsing
(:mod:`numba_pool._validate`) with the package, and computes every window
itself from the published formulas:

* output size (PyTorch, ``torch.nn.MaxPool2d`` docs, with padding
  ``before + after`` per axis)::

      out = floor((size + before + after - dilation * (kernel - 1) - 1) / stride) + 1

  with ``ceil_mode`` rounding up instead, and then (ATen's
  ``pooling_output_shape``) dropping a last window that would start in the
  right padding: ``if (out - 1) * stride >= size + before: out -= 1``;
* ``padding="same"`` (TensorFlow, ``tf.nn`` "same" padding docs)::

      out = ceil(size / stride)
      total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
      before = total // 2, after = total - before   # the odd unit goes after

* selection (PyTorch's CPU kernel): taps are scanned in row-major window
  order and a tap replaces the current winner when it is greater or NaN, so
  the first maximum wins ties and the last NaN wins a window holding NaN.
* backward: ``dx`` starts at +0 and each ``dy`` element is added to its
  winner in output order, in ``x``'s dtype (float16 sums round after every
  addition, as PyTorch's ``Half`` arithmetic does).

The results are returned in the caller's ``data_format``; the argmax is a
:class:`Argmax` of this module, not the package's ``MaxPoolArgmax``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import (
    as_input_array,
    check_input_shape,
    int_pair,
    normalise_bool,
    normalise_data_format,
    normalise_padding,
)

__all__ = ["Argmax", "max_pool2d", "max_pool2d_backward"]

_AXIS_NAMES = ("height", "width")


@dataclass(frozen=True)
class _Axis:
    """One spatial axis, resolved: output position ``o`` reads input
    coordinates ``o * stride - before + i * dilation`` for taps ``i < kernel``."""

    size: int
    kernel: int
    stride: int
    dilation: int
    before: int
    after: int
    out: int


def _resolve_axis(size, kernel, stride, dilation, padding, ceil_mode, name) -> _Axis:
    extent = dilation * (kernel - 1) + 1
    if padding == "same":
        out_same = -(-size // stride)
        total = max((out_same - 1) * stride + extent - size, 0)
        before, after = total // 2, total - total // 2
    elif padding == "valid":
        before = after = 0
    else:
        before, after = padding
    if before + after > extent:
        raise ValueError(f"padding: total {name} padding {before}+{after} exceeds the window's "
                         f"extent {extent}")
    numerator = size + before + after - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-numerator // stride) + 1
        if (out - 1) * stride >= size + before:
            out -= 1
    else:
        out = numerator // stride + 1
    if out < 1:
        raise ValueError(f"pool_size: the {name} window spans {extent} elements but the padded "
                         f"input has only {size + before + after}")
    for o in range(out):
        taps = o * stride - before + dilation * np.arange(kernel)
        if not ((taps >= 0) & (taps < size)).any():
            raise ValueError(f"padding/dilation: {name} output position {o} has a window that "
                             f"holds no element of x")
    return _Axis(size, kernel, stride, dilation, before, after, out)


@dataclass(frozen=True)
class Argmax:
    """Winners of :func:`max_pool2d` (reference version).

    Attributes
    ----------
    offsets : ndarray
        Shape of ``y`` (in ``data_format``): row-major tap index of each
        winner inside its window, in the smallest unsigned dtype that holds
        ``kh * kw - 1``.
    input_shape : tuple of int
        Shape of ``x``.
    data_format : str
        "NHWC" or "NCHW".
    dtype : numpy.dtype
        dtype of ``x``.
    """

    offsets: np.ndarray
    input_shape: tuple
    data_format: str
    dtype: np.dtype
    axes: tuple  # of _Axis

    @property
    def output_shape(self) -> tuple:
        return self.offsets.shape

    def flat_indices(self) -> np.ndarray:
        """PyTorch's ``return_indices`` form: ``h * W + w`` in the input plane (int64)."""
        first = _to_channels_first(self.offsets, self.data_format).astype(np.int64)
        taps = np.unravel_index(first, tuple(a.kernel for a in self.axes))
        coords = []
        for k, (a, i) in enumerate(zip(self.axes, taps)):
            o = np.arange(a.out).reshape((-1,) + (1,) * (len(self.axes) - 1 - k))
            coords.append(o * a.stride - a.before + i * a.dilation)
        flat = np.ravel_multi_index(tuple(coords), tuple(a.size for a in self.axes))
        return _from_channels_first(flat, self.data_format)


def _to_channels_first(a, data_format):
    return a if data_format == "NCHW" else np.moveaxis(a, -1, 1)


def _from_channels_first(a, data_format):
    return a if data_format == "NCHW" else np.moveaxis(a, 1, -1)


def _parse(x, pool_size, strides, padding, dilation, ceil_mode, data_format):
    data_format = normalise_data_format(data_format)
    kernel = int_pair(pool_size, "pool_size")
    stride = kernel if strides is None else int_pair(strides, "strides")
    dil = int_pair(dilation, "dilation")
    pad = normalise_padding(padding, kernel)
    ceil_mode = normalise_bool(ceil_mode, "ceil_mode")
    x = as_input_array(x, "x")
    check_input_shape(x, data_format)
    xc = _to_channels_first(x, data_format)
    pads = (pad, pad) if isinstance(pad, str) else pad
    axes = tuple(
        _resolve_axis(int(xc.shape[2 + a]), kernel[a], stride[a], dil[a], pads[a], ceil_mode,
                      _AXIS_NAMES[a])
        for a in range(2)
    )
    return x, xc, axes, data_format


def _window(axes, out_pos):
    """Padded-array slices of the window at ``out_pos``, and the row-major
    numbers of its taps that fall inside x."""
    slices, inside = [], None
    for a, o in zip(axes, out_pos):
        first = o * a.stride  # in padded coordinates
        slices.append(slice(first, first + a.dilation * (a.kernel - 1) + 1, a.dilation))
        coord = o * a.stride - a.before + a.dilation * np.arange(a.kernel)
        ok = (coord >= 0) & (coord < a.size)
        inside = ok if inside is None else (inside[..., None] & ok)
    return tuple(slices), np.flatnonzero(inside)


def max_pool2d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               data_format="NHWC"):
    """Reference forward pass; same arguments and results as :func:`numba_pool.max_pool2d`
    (without ``out``), the argmax being an :class:`Argmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_pool import reference
    >>> x = np.array([[1., 3., 2.], [3., 0., 5.]]).reshape(1, 2, 3, 1)
    >>> y, am = reference.max_pool2d(x, 2, 1, ceil_mode=True)
    >>> y[0, :, :, 0], am.offsets[0, :, :, 0]
    (array([[3., 5.]]), array([[1, 3]], dtype=uint8))
    """
    x, xc, axes, data_format = _parse(x, pool_size, strides, padding, dilation, ceil_mode,
                                      data_format)
    n, c = xc.shape[:2]
    kernel = tuple(a.kernel for a in axes)
    out_shape = tuple(a.out for a in axes)
    # ceil_mode's last window may overhang the padding: make room for it (never read)
    padded = tuple(max(a.before + a.size + a.after,
                       (a.out - 1) * a.stride + a.dilation * (a.kernel - 1) + 1) for a in axes)
    xpad = np.zeros((n, c) + padded, x.dtype)
    xpad[(slice(None), slice(None)) + tuple(slice(a.before, a.before + a.size) for a in axes)] = xc
    y = np.zeros((n, c) + out_shape, x.dtype)
    n_taps = int(np.prod(kernel))
    offsets = np.zeros((n, c) + out_shape, np.min_scalar_type(n_taps - 1))
    for pos in np.ndindex(*out_shape):
        slices, taps = _window(axes, pos)
        window = xpad[(slice(None), slice(None)) + slices].reshape(n, c, n_taps)
        values = window[:, :, taps]
        is_nan = values != values
        last_nan = values.shape[-1] - 1 - np.argmax(is_nan[:, :, ::-1], axis=-1)
        with np.errstate(invalid="ignore"):
            first_max = np.argmax(values, axis=-1)
        winner = np.where(is_nan.any(axis=-1), last_nan, first_max)
        y[(slice(None), slice(None)) + pos] = np.take_along_axis(values, winner[..., None], -1)[..., 0]
        offsets[(slice(None), slice(None)) + pos] = taps[winner]
    argmax = Argmax(_from_channels_first(offsets, data_format).copy(), x.shape, data_format,
                    x.dtype, axes)
    return _from_channels_first(y, data_format), argmax


def max_pool2d_backward(dy, argmax):
    """Reference backward pass; see :func:`numba_pool.max_pool2d_backward`.

    ``dx`` starts as +0 and every ``dy`` element is added to the element
    its window's offset names, output positions in row-major order (the
    order of PyTorch's CPU kernel), in ``x``'s dtype.  An offset that does
    not name an element of ``x`` (only possible if the argmax was tampered
    with) credits nothing.
    """
    if not isinstance(argmax, Argmax):
        raise TypeError("argmax must be the Argmax returned by numba_pool.reference.max_pool2d, "
                        f"got {type(argmax).__name__}")
    dy = as_input_array(dy, "dy")
    if dy.shape != argmax.output_shape:
        raise ValueError(f"dy has shape {dy.shape}, expected {argmax.output_shape} (the shape of y)")
    dtype = argmax.dtype
    if not np.can_cast(dy.dtype, dtype, "same_kind"):
        raise TypeError(f"dy has dtype {dy.dtype}, which cannot be cast to x's dtype {dtype}")
    axes, fmt = argmax.axes, argmax.data_format
    g = _to_channels_first(dy.astype(dtype), fmt)
    offsets = _to_channels_first(argmax.offsets, fmt).astype(np.int64)
    n, c = g.shape[:2]
    kernel = tuple(a.kernel for a in axes)
    in_spatial = tuple(a.size for a in axes)
    dx = np.zeros((n * c,) + in_spatial, dtype)
    planes = np.arange(n * c)
    for pos in np.ndindex(*(a.out for a in axes)):
        tap = offsets[(slice(None), slice(None)) + pos].reshape(-1)
        ok = tap < np.prod(kernel)
        tap_idx = np.unravel_index(np.where(ok, tap, 0), kernel)
        coords = []
        for a, o, i in zip(axes, pos, tap_idx):
            coord = o * a.stride - a.before + i * a.dilation
            ok &= (coord >= 0) & (coord < a.size)
            coords.append(coord)
        grad = g[(slice(None), slice(None)) + pos].reshape(-1)
        # one target per plane: no repeated indices within this update
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in PyTorch
            dx[(planes[ok],) + tuple(co[ok] for co in coords)] += grad[ok]
    return _from_channels_first(dx.reshape((n, c) + in_spatial), fmt)
