"""Stateful pooling layers in the NumPy-CNN style (``forward``/``backward``).

``MaxPool1D/2D/3D``, ``AvgPool1D/2D/3D``, ``AdaptiveMaxPool1D/2D/3D``,
``AdaptiveAvgPool1D/2D/3D``, ``GlobalMaxPool1D/2D/3D`` and
``GlobalAvgPool1D/2D/3D``: each validates its parameters at construction and
remembers, in ``forward``, what its ``backward`` needs.
"""

from __future__ import annotations

import numpy as np

from .maxpool import (
    IntOrPair,
    MaxPoolArgmax,
    Padding,
    max_pool2d,
    max_pool2d_backward,
    resolve_parameters,
)

__all__ = ["MaxPool2D"]


class MaxPool2D:
    """Max pooling layer that remembers its argmax between forward and backward.

    Parameters are those of :func:`numba_pool.max_pool2d` and are validated
    here, at construction, so a misconfigured layer fails before training.

    Examples
    --------
    >>> import numpy as np, numba_pool as npool
    >>> layer = npool.MaxPool2D(2)
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> layer.forward(x)[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> layer.backward(np.ones((1, 2, 2, 1), np.float32))[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]], dtype=float32)
    """

    def __init__(
        self,
        pool_size: IntOrPair,
        strides: IntOrPair | None = None,
        padding: Padding = "valid",
        *,
        dilation: IntOrPair = 1,
        ceil_mode: bool = False,
        data_format: str = "NHWC",
    ) -> None:
        # Validate the configuration now, so a misconfigured layer fails before training.
        fmt = resolve_parameters(pool_size, strides, padding, dilation, ceil_mode, data_format)[-1]
        self.pool_size, self.strides, self.padding = pool_size, strides, padding
        self.dilation, self.ceil_mode, self.data_format = dilation, ceil_mode, fmt
        self.argmax: MaxPoolArgmax | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Pool ``x`` and remember where each maximum came from."""
        y, self.argmax = max_pool2d(
            x, self.pool_size, self.strides, self.padding,
            dilation=self.dilation, ceil_mode=self.ceil_mode, data_format=self.data_format,
        )
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient with respect to the input of the last :meth:`forward`."""
        if self.argmax is None:
            raise ValueError("dy: MaxPool2D.backward was called before forward")
        return max_pool2d_backward(dy, self.argmax)

    __call__ = forward

    def __repr__(self) -> str:
        return (
            f"MaxPool2D(pool_size={self.pool_size!r}, strides={self.strides!r}, "
            f"padding={self.padding!r}, dilation={self.dilation!r}, "
            f"ceil_mode={self.ceil_mode!r}, data_format={self.data_format!r})"
        )


class _Layer:
    """Shared body of the stateless-API layers: validated at construction,
    ``forward`` remembers what ``backward`` needs."""

    _rank = 2
    _format = "NHWC"

    def __call__(self, x):
        return self.forward(x)

    def _check_forward_done(self, state):
        if state is None:
            raise ValueError(f"dy: {type(self).__name__}.backward was called before forward")


def _max_layer(rank: int, fmt: str):
    from . import maxpool

    pool = getattr(maxpool, f"max_pool{rank}d")
    back = getattr(maxpool, f"max_pool{rank}d_backward")

    class Layer(_Layer):
        __doc__ = f"""{rank}-D max pooling layer; parameters of :func:`numba_pool.max_pool{rank}d`."""

        def __init__(self, pool_size, strides=None, padding="valid", *, dilation=1,
                     ceil_mode=False, data_format=fmt):
            fmt_ = resolve_parameters(pool_size, strides, padding, dilation, ceil_mode,
                                      data_format, rank)[-1]
            self.pool_size, self.strides, self.padding = pool_size, strides, padding
            self.dilation, self.ceil_mode, self.data_format = dilation, ceil_mode, fmt_
            self.argmax = None

        def forward(self, x):
            y, self.argmax = pool(x, self.pool_size, self.strides, self.padding,
                                  dilation=self.dilation, ceil_mode=self.ceil_mode,
                                  data_format=self.data_format)
            return y

        def backward(self, dy):
            self._check_forward_done(self.argmax)
            return back(dy, self.argmax)

        def __repr__(self):
            return (f"{type(self).__name__}(pool_size={self.pool_size!r}, strides="
                    f"{self.strides!r}, padding={self.padding!r}, dilation={self.dilation!r}, "
                    f"ceil_mode={self.ceil_mode!r}, data_format={self.data_format!r})")

    return Layer


def _avg_layer(rank: int, fmt: str):
    from . import avgpool
    from ._validate import normalise_avg_options

    pool = getattr(avgpool, f"avg_pool{rank}d")
    back = getattr(avgpool, f"avg_pool{rank}d_backward")

    class Layer(_Layer):
        __doc__ = f"""{rank}-D average pooling layer; parameters of :func:`numba_pool.avg_pool{rank}d`."""

        def __init__(self, pool_size, strides=None, padding="valid", *, dilation=1,
                     ceil_mode=False, count_include_pad=None, divisor_override=None,
                     data_format=fmt):
            fmt_ = resolve_parameters(pool_size, strides, padding, dilation, ceil_mode,
                                      data_format, rank)[-1]
            normalise_avg_options(padding, count_include_pad, divisor_override)
            self.kwargs = dict(pool_size=pool_size, strides=strides, padding=padding,
                               dilation=dilation, ceil_mode=ceil_mode,
                               count_include_pad=count_include_pad,
                               divisor_override=divisor_override, data_format=fmt_)
            self.input_shape = None

        def forward(self, x):
            y = pool(x, **self.kwargs)
            self.input_shape = np.shape(x)
            return y

        def backward(self, dy):
            self._check_forward_done(self.input_shape)
            return back(dy, self.input_shape, **self.kwargs)

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
            return f"{type(self).__name__}({args})"

    return Layer


def _adaptive_layer(rank: int, fmt: str, op: str, global_: bool):
    from . import avgpool, maxpool

    if op == "max":
        pool = getattr(maxpool, f"adaptive_max_pool{rank}d")
        back = getattr(maxpool, f"max_pool{rank}d_backward")
    else:
        pool = getattr(avgpool, f"adaptive_avg_pool{rank}d")
        back = getattr(avgpool, f"adaptive_avg_pool{rank}d_backward")

    class Layer(_Layer):
        if global_:
            __doc__ = (f"Global {rank}-D {op} pooling layer (Keras style): the whole spatial "
                       f"volume per channel; ``keepdims=False`` drops the spatial axes.")

            def __init__(self, *, keepdims=False, data_format=fmt):
                self.data_format = maxpool.normalise_data_format(data_format, rank)
                self.keepdims = maxpool.normalise_bool(keepdims, "keepdims")
                self.output_size = 1
                self.state = None
        else:
            __doc__ = f"Adaptive {rank}-D {op} pooling layer (PyTorch's windows)."

            def __init__(self, output_size, *, data_format=fmt):
                self.data_format = maxpool.normalise_data_format(data_format, rank)
                if not isinstance(output_size, (tuple, list)):
                    maxpool.int_tuple(output_size, "output_size", rank)
                self.output_size = output_size
                self.keepdims = True
                self.state = None

        def _squeeze(self, y):
            if self.keepdims:
                return y
            axes = tuple(range(1, rank + 1)) if self.data_format[-1] == "C" else tuple(
                range(2, rank + 2))
            return y.reshape(tuple(n for k, n in enumerate(y.shape) if k not in axes))

        def _expand(self, dy):
            if self.keepdims:
                return dy
            dy = np.asarray(dy)
            n, c = dy.shape
            shape = (n,) + (1,) * rank + (c,) if self.data_format[-1] == "C" else (
                (n, c) + (1,) * rank)
            return dy.reshape(shape)

        def forward(self, x):
            r = pool(x, self.output_size, data_format=self.data_format)
            if op == "max":
                y, self.state = r
            else:
                y, self.state = r, np.shape(x)
            return self._squeeze(y)

        def backward(self, dy):
            self._check_forward_done(self.state)
            dy = self._expand(dy)
            if op == "max":
                return back(dy, self.state)
            return back(dy, self.state, data_format=self.data_format)

        def __repr__(self):
            if global_:
                return (f"{type(self).__name__}(keepdims={self.keepdims!r}, "
                        f"data_format={self.data_format!r})")
            return (f"{type(self).__name__}(output_size={self.output_size!r}, "
                    f"data_format={self.data_format!r})")

    return Layer


_FORMATS = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
for _rank in (1, 2, 3):
    for _name, _cls in (
        (f"MaxPool{_rank}D", _max_layer(_rank, _FORMATS[_rank]) if _rank != 2 else None),
        (f"AvgPool{_rank}D", _avg_layer(_rank, _FORMATS[_rank])),
        (f"AdaptiveMaxPool{_rank}D", _adaptive_layer(_rank, _FORMATS[_rank], "max", False)),
        (f"AdaptiveAvgPool{_rank}D", _adaptive_layer(_rank, _FORMATS[_rank], "avg", False)),
        (f"GlobalMaxPool{_rank}D", _adaptive_layer(_rank, _FORMATS[_rank], "max", True)),
        (f"GlobalAvgPool{_rank}D", _adaptive_layer(_rank, _FORMATS[_rank], "avg", True)),
    ):
        if _cls is not None:
            _cls.__name__ = _cls.__qualname__ = _name
            _cls.__module__ = __name__
            globals()[_name] = _cls
            __all__.append(_name)
del _rank, _name, _cls
