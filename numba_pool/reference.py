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
    int_tuple,
    normalise_avg_options,
    normalise_bool,
    normalise_data_format,
    normalise_padding,
)

__all__ = ["Argmax", "adaptive_avg_pool1d", "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d",
           "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d", "adaptive_avg_pool3d_backward",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "avg_pool1d",
           "avg_pool1d_backward", "avg_pool2d", "avg_pool2d_backward", "avg_pool3d",
           "avg_pool3d_backward", "max_pool1d", "max_pool1d_backward", "max_pool2d",
           "max_pool2d_backward", "max_pool3d", "max_pool3d_backward", "max_unpool1d",
           "max_unpool2d", "max_unpool3d"]

_AXIS_NAMES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}
_DEFAULT_FORMAT = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


@dataclass(frozen=True)
class _Axis:
    """One spatial axis, resolved: output position ``o`` reads input
    coordinates ``o * stride - before + i * dilation`` for taps ``i < kernel``
    (regular pooling) or ``floor(o * size / out) + i`` for taps
    ``i < ceil((o + 1) * size / out) - floor(o * size / out)`` (adaptive
    pooling, ``kernel`` the widest window)."""

    size: int
    kernel: int
    stride: int
    dilation: int
    before: int
    after: int
    out: int
    adaptive: bool = False

    def taps(self, o: int):
        """Input coordinates of output ``o``'s taps, and which lie inside x."""
        i = np.arange(self.kernel)
        if self.adaptive:
            start = (o * self.size) // self.out
            end = -(-(o + 1) * self.size // self.out)
            coord = start + i
            return coord, coord < end
        coord = o * self.stride - self.before + i * self.dilation
        return coord, (coord >= 0) & (coord < self.size)

    def padded_taps(self, o: int) -> int:
        """Taps of output ``o`` inside the padded input (PyTorch's
        count_include_pad divisor factor; the ceil_mode overhang beyond the
        padding does not count)."""
        if self.adaptive:
            return int(self.taps(o)[1].sum())
        coord = o * self.stride - self.before + np.arange(self.kernel) * self.dilation
        return int(((coord >= -self.before) & (coord < self.size + self.after)).sum())


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
    axis = _Axis(size, kernel, stride, dilation, before, after, out)
    for o in range(out):
        if not axis.taps(o)[1].any():
            raise ValueError(f"padding/dilation: {name} output position {o} has a window that "
                             f"holds no element of x")
    return axis


def _adaptive_axis(size, out, name) -> _Axis:
    if out < 1:
        raise ValueError(f"output_size: the {name} output size must be >= 1, got {out}")
    widest = max(-(-(o + 1) * size // out) - (o * size) // out for o in range(out))
    return _Axis(size, widest, 0, 1, 0, 0, out, adaptive=True)


@dataclass(frozen=True)
class Argmax:
    """Winners of the reference max pooling functions.

    Attributes
    ----------
    offsets : ndarray
        Shape of ``y`` (in ``data_format``): row-major tap index of each
        winner inside its window (for adaptive pooling, inside the widest
        window's shape), in the smallest unsigned dtype that holds the
        largest tap index.
    input_shape : tuple of int
        Shape of ``x``.
    data_format : str
        Canonical data format (e.g. "NHWC").
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
        """PyTorch's ``return_indices`` form: flat position in the (n, c) spatial volume (int64)."""
        first = _to_channels_first(self.offsets, self.data_format).astype(np.int64)
        taps = np.unravel_index(first, tuple(a.kernel for a in self.axes))
        coords = []
        for k, (a, i) in enumerate(zip(self.axes, taps)):
            o = np.arange(a.out).reshape((-1,) + (1,) * (len(self.axes) - 1 - k))
            if a.adaptive:
                coords.append((o * a.size) // a.out + i)
            else:
                coords.append(o * a.stride - a.before + i * a.dilation)
        flat = np.ravel_multi_index(tuple(coords), tuple(a.size for a in self.axes))
        return _from_channels_first(flat, self.data_format)


def _channels_last(data_format):
    return data_format[-1] == "C"


def _to_channels_first(a, data_format):
    return np.moveaxis(a, -1, 1) if _channels_last(data_format) else a


def _from_channels_first(a, data_format):
    return np.moveaxis(a, 1, -1) if _channels_last(data_format) else a


def _parse_x(x, data_format, rank):
    data_format = normalise_data_format(data_format, rank)
    x = as_input_array(x, "x")
    check_input_shape(x, data_format, rank)
    return x, _to_channels_first(x, data_format), data_format


def _parse(x, pool_size, strides, padding, dilation, ceil_mode, data_format, rank=2):
    data_format = normalise_data_format(data_format, rank)
    kernel = int_tuple(pool_size, "pool_size", rank)
    stride = kernel if strides is None else int_tuple(strides, "strides", rank)
    dil = int_tuple(dilation, "dilation", rank)
    pad = normalise_padding(padding, kernel, rank)
    ceil_mode = normalise_bool(ceil_mode, "ceil_mode")
    x, xc, data_format = _parse_x(x, data_format, rank)
    pads = (pad,) * rank if isinstance(pad, str) else pad
    axes = tuple(
        _resolve_axis(int(xc.shape[2 + a]), kernel[a], stride[a], dil[a], pads[a], ceil_mode,
                      _AXIS_NAMES[rank][a])
        for a in range(rank)
    )
    return x, xc, axes, data_format


def _parse_adaptive(x, output_size, data_format, rank):
    x, xc, data_format = _parse_x(x, data_format, rank)
    spatial = xc.shape[2:]
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != rank:
            raise ValueError(f"output_size must be an int or {rank} ints")
        output_size = tuple(n if o is None else o for o, n in zip(output_size, spatial))
    sizes = int_tuple(output_size, "output_size", rank)
    axes = tuple(_adaptive_axis(int(n), o, _AXIS_NAMES[rank][a])
                 for a, (n, o) in enumerate(zip(spatial, sizes)))
    return x, xc, axes, data_format


def _window(xc, axes, pos):
    """Values of the window at output position ``pos`` (shape (n, c, taps),
    taps in row-major window order, only those inside x) and the row-major
    numbers of those taps."""
    coords, inside = [], None
    for a, o in zip(axes, pos):
        coord, ok = a.taps(o)
        coords.append(np.clip(coord, 0, a.size - 1))
        inside = ok if inside is None else (inside[..., None] & ok)
    block = xc[(slice(None), slice(None)) + np.ix_(*coords)]
    n, c = xc.shape[:2]
    taps = np.flatnonzero(inside)
    return block.reshape(n, c, int(np.prod(block.shape[2:])))[:, :, taps], taps


def _max_pool(x, xc, axes, data_format):
    n, c = xc.shape[:2]
    out_shape = tuple(a.out for a in axes)
    y = np.zeros((n, c) + out_shape, x.dtype)
    n_taps = int(np.prod([a.kernel for a in axes]))
    offsets = np.zeros((n, c) + out_shape, np.min_scalar_type(n_taps - 1))
    for pos in np.ndindex(*out_shape):
        values, taps = _window(xc, axes, pos)
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


def _max_pool_nd(rank, x, pool_size, strides, padding, dilation, ceil_mode, data_format):
    return _max_pool(*_parse(x, pool_size, strides, padding, dilation, ceil_mode, data_format,
                             rank))


def max_pool1d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               data_format="NWC"):
    """Reference 1-D max pooling; see :func:`numba_pool.max_pool1d`."""
    return _max_pool_nd(1, x, pool_size, strides, padding, dilation, ceil_mode, data_format)


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
    return _max_pool_nd(2, x, pool_size, strides, padding, dilation, ceil_mode, data_format)


def max_pool3d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               data_format="NDHWC"):
    """Reference 3-D max pooling; see :func:`numba_pool.max_pool3d`."""
    return _max_pool_nd(3, x, pool_size, strides, padding, dilation, ceil_mode, data_format)


def adaptive_max_pool1d(x, output_size, *, data_format="NWC"):
    """Reference adaptive max pooling (PyTorch's windows)."""
    return _max_pool(*_parse_adaptive(x, output_size, data_format, 1))


def adaptive_max_pool2d(x, output_size, *, data_format="NHWC"):
    """Reference adaptive max pooling (PyTorch's windows)."""
    return _max_pool(*_parse_adaptive(x, output_size, data_format, 2))


def adaptive_max_pool3d(x, output_size, *, data_format="NDHWC"):
    """Reference adaptive max pooling (PyTorch's windows)."""
    return _max_pool(*_parse_adaptive(x, output_size, data_format, 3))


def _max_backward(dy, argmax, rank):
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
    if len(axes) != rank:
        raise ValueError(f"argmax: needs the argmax of a {rank}-D pooling")
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
            coord, valid = a.taps(o)
            ok &= valid[i]
            coords.append(coord[i])
        grad = g[(slice(None), slice(None)) + pos].reshape(-1)
        # one target per plane: no repeated indices within this update
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in PyTorch
            dx[(planes[ok],) + tuple(co[ok] for co in coords)] += grad[ok]
    return _from_channels_first(dx.reshape((n, c) + in_spatial), fmt)


def max_pool1d_backward(dy, argmax):
    """Reference backward of :func:`max_pool1d` / :func:`adaptive_max_pool1d`."""
    return _max_backward(dy, argmax, 1)


def max_pool2d_backward(dy, argmax):
    """Reference backward of :func:`max_pool2d` / :func:`adaptive_max_pool2d`: ``dx``
    starts as +0 and every ``dy`` element is added to the element its
    window's offset names, output positions in row-major order (the order of
    PyTorch's CPU kernel), in ``x``'s dtype.  An offset that does not name an
    element of ``x`` (only possible if the argmax was tampered with) credits
    nothing."""
    return _max_backward(dy, argmax, 2)


def max_pool3d_backward(dy, argmax):
    """Reference backward of :func:`max_pool3d` / :func:`adaptive_max_pool3d`."""
    return _max_backward(dy, argmax, 3)


# --------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------


def _avg_dtypes(dtype):
    """(compute dtype, result dtype): float16 is computed in float32, integers
    in and to float64 (as ``np.mean``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return np.dtype(np.float64), np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32), dtype
    return dtype, dtype


def _divisors(axes, taps_inside, pos, count_include_pad, divisor_override):
    if divisor_override is not None:
        return divisor_override
    if count_include_pad:
        return int(np.prod([a.padded_taps(o) for a, o in zip(axes, pos)]))
    return taps_inside


def _share(v, axes, taps, pos, count_include_pad, divisor_override):
    """``v`` divided by the window's divisor, in ``v``'s dtype.  Adaptive
    windows divide by each axis's window length in turn (ATen's
    ``sum / kh / kw``), except global pooling (every output size 1); regular
    windows and global pooling once by the product."""
    t = v.dtype.type
    if axes[0].adaptive and any(a.out != 1 for a in axes):  # global pooling: one division
        for a, o in zip(axes, pos):
            v = v / t(a.taps(o)[1].sum())
        return v
    return v / t(_divisors(axes, len(taps), pos, count_include_pad, divisor_override))


def _avg_pool(x, xc, axes, data_format, count_include_pad, divisor_override):
    cdtype, rdtype = _avg_dtypes(x.dtype)
    n, c = xc.shape[:2]
    out_shape = tuple(a.out for a in axes)
    y = np.zeros((n, c) + out_shape, rdtype)
    for pos in np.ndindex(*out_shape):
        values, taps = _window(xc, axes, pos)
        acc = np.zeros((n, c), cdtype)
        for k in range(values.shape[-1]):  # one tap at a time: row-major summation order
            acc = acc + values[:, :, k].astype(cdtype)
        y[(slice(None), slice(None)) + pos] = _share(acc, axes, taps, pos, count_include_pad,
                                                     divisor_override).astype(rdtype)
    return _from_channels_first(y, data_format)


def _avg_backward(dy, input_shape, axes, data_format, count_include_pad, divisor_override):
    dy = as_input_array(dy, "dy")
    cdtype, rdtype = _avg_dtypes(dy.dtype)
    g = _to_channels_first(dy, data_format).astype(cdtype)
    n, c = g.shape[:2]
    dx = np.zeros((n, c) + tuple(a.size for a in axes), cdtype)
    for pos in np.ndindex(*(a.out for a in axes)):
        coords, inside = [], None
        for a, o in zip(axes, pos):
            coord, ok = a.taps(o)
            coords.append(coord)
            inside = ok if inside is None else (inside[..., None] & ok)
        taps = np.flatnonzero(inside)
        share = _share(g[(slice(None), slice(None)) + pos], axes, taps, pos, count_include_pad,
                       divisor_override)
        idx = np.unravel_index(taps, tuple(a.kernel for a in axes))
        for t in range(len(taps)):
            at = tuple(co[i[t]] for co, i in zip(coords, idx))
            dx[(slice(None), slice(None)) + at] += share
    return _from_channels_first(dx.astype(rdtype), data_format)


def _avg_nd(rank, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
            divisor_override, data_format):
    cip, override = normalise_avg_options(padding, count_include_pad, divisor_override)
    x, xc, axes, data_format = _parse(x, pool_size, strides, padding, dilation, ceil_mode,
                                      data_format, rank)
    return _avg_pool(x, xc, axes, data_format, cip, override)


def _avg_backward_nd(rank, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                     count_include_pad, divisor_override, data_format):
    cip, override = normalise_avg_options(padding, count_include_pad, divisor_override)
    _, _, axes, data_format = _parse(np.zeros(tuple(input_shape), np.float32), pool_size,
                                     strides, padding, dilation, ceil_mode, data_format, rank)
    return _avg_backward(dy, input_shape, axes, data_format, cip, override)


def avg_pool1d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               count_include_pad=None, divisor_override=None, data_format="NWC"):
    """Reference 1-D average pooling: the window's elements summed from zero
    in row-major order in the compute dtype (float32 for float16, float64
    for integers), divided by the window's divisor (PyTorch's rules)."""
    return _avg_nd(1, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
                   divisor_override, data_format)


def avg_pool2d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               count_include_pad=None, divisor_override=None, data_format="NHWC"):
    """Reference 2-D average pooling; see :func:`avg_pool1d`."""
    return _avg_nd(2, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
                   divisor_override, data_format)


def avg_pool3d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               count_include_pad=None, divisor_override=None, data_format="NDHWC"):
    """Reference 3-D average pooling; see :func:`avg_pool1d`."""
    return _avg_nd(3, x, pool_size, strides, padding, dilation, ceil_mode, count_include_pad,
                   divisor_override, data_format)


def avg_pool1d_backward(dy, input_shape, pool_size, strides=None, padding="valid", *, dilation=1,
                        ceil_mode=False, count_include_pad=None, divisor_override=None,
                        data_format="NWC"):
    """Reference gradient of :func:`avg_pool1d`: ``dx`` starts at +0, and in
    output order each ``dy / divisor`` is added to every tap of its window."""
    return _avg_backward_nd(1, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                            count_include_pad, divisor_override, data_format)


def avg_pool2d_backward(dy, input_shape, pool_size, strides=None, padding="valid", *, dilation=1,
                        ceil_mode=False, count_include_pad=None, divisor_override=None,
                        data_format="NHWC"):
    """Reference gradient of :func:`avg_pool2d`; see :func:`avg_pool1d_backward`."""
    return _avg_backward_nd(2, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                            count_include_pad, divisor_override, data_format)


def avg_pool3d_backward(dy, input_shape, pool_size, strides=None, padding="valid", *, dilation=1,
                        ceil_mode=False, count_include_pad=None, divisor_override=None,
                        data_format="NDHWC"):
    """Reference gradient of :func:`avg_pool3d`; see :func:`avg_pool1d_backward`."""
    return _avg_backward_nd(3, dy, input_shape, pool_size, strides, padding, dilation, ceil_mode,
                            count_include_pad, divisor_override, data_format)


def _adaptive_avg_nd(rank, x, output_size, data_format):
    x, xc, axes, data_format = _parse_adaptive(x, output_size, data_format, rank)
    return _avg_pool(x, xc, axes, data_format, False, None)


def _adaptive_avg_backward_nd(rank, dy, input_shape, data_format):
    dy = as_input_array(dy, "dy")
    data_format = normalise_data_format(data_format, rank)
    out = _to_channels_first(dy, data_format).shape[2:]
    _, _, axes, data_format = _parse_adaptive(np.zeros(tuple(input_shape), np.float32), out,
                                              data_format, rank)
    return _avg_backward(dy, input_shape, axes, data_format, False, None)


def adaptive_avg_pool1d(x, output_size, *, data_format="NWC"):
    """Reference adaptive average pooling: PyTorch's windows, divisor the window size."""
    return _adaptive_avg_nd(1, x, output_size, data_format)


def adaptive_avg_pool2d(x, output_size, *, data_format="NHWC"):
    """Reference adaptive average pooling: PyTorch's windows, divisor the window size."""
    return _adaptive_avg_nd(2, x, output_size, data_format)


def adaptive_avg_pool3d(x, output_size, *, data_format="NDHWC"):
    """Reference adaptive average pooling: PyTorch's windows, divisor the window size."""
    return _adaptive_avg_nd(3, x, output_size, data_format)


def adaptive_avg_pool1d_backward(dy, input_shape, *, data_format="NWC"):
    """Reference gradient of :func:`adaptive_avg_pool1d`."""
    return _adaptive_avg_backward_nd(1, dy, input_shape, data_format)


def adaptive_avg_pool2d_backward(dy, input_shape, *, data_format="NHWC"):
    """Reference gradient of :func:`adaptive_avg_pool2d`."""
    return _adaptive_avg_backward_nd(2, dy, input_shape, data_format)


def adaptive_avg_pool3d_backward(dy, input_shape, *, data_format="NDHWC"):
    """Reference gradient of :func:`adaptive_avg_pool3d`."""
    return _adaptive_avg_backward_nd(3, dy, input_shape, data_format)


# --------------------------------------------------------------------------
# Unpooling
# --------------------------------------------------------------------------


def _unpool(y, argmax, rank):
    if not isinstance(argmax, Argmax):
        raise TypeError("argmax must be the Argmax of a reference max pooling")
    if len(argmax.axes) != rank:
        raise ValueError(f"argmax: needs the argmax of a {rank}-D pooling")
    y = as_input_array(y, "y")
    if y.shape != argmax.output_shape:
        raise ValueError(f"y has shape {y.shape}, expected {argmax.output_shape}")
    axes, fmt = argmax.axes, argmax.data_format
    v = _to_channels_first(y, fmt)
    offsets = _to_channels_first(argmax.offsets, fmt).astype(np.int64)
    n, c = v.shape[:2]
    kernel = tuple(a.kernel for a in axes)
    out = np.zeros((n * c,) + tuple(a.size for a in axes), y.dtype)
    planes = np.arange(n * c)
    for pos in np.ndindex(*(a.out for a in axes)):  # output order: the last window wins
        tap = offsets[(slice(None), slice(None)) + pos].reshape(-1)
        ok = tap < np.prod(kernel)
        tap_idx = np.unravel_index(np.where(ok, tap, 0), kernel)
        coords = []
        for a, o, i in zip(axes, pos, tap_idx):
            coord, valid = a.taps(o)
            ok &= valid[i]
            coords.append(coord[i])
        # an offset naming no element of x (tampered argmax) places nothing
        out[(planes[ok],) + tuple(co[ok] for co in coords)] = \
            v[(slice(None), slice(None)) + pos].reshape(-1)[ok]
    return _from_channels_first(out.reshape((n, c) + out.shape[1:]), fmt)


def max_unpool1d(y, argmax):
    """Reference unpooling: zeros of x's shape, each ``y`` value written at its
    winner's position in output order (a winner of several windows keeps the
    last one's value: all equal when ``y`` is the forward's result)."""
    return _unpool(y, argmax, 1)


def max_unpool2d(y, argmax):
    """Reference 2-D unpooling; see :func:`max_unpool1d`."""
    return _unpool(y, argmax, 2)


def max_unpool3d(y, argmax):
    """Reference 3-D unpooling; see :func:`max_unpool1d`."""
    return _unpool(y, argmax, 3)
