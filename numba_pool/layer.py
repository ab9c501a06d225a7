"""A stateful max pooling layer in the NumPy-CNN style (``forward``/``backward``)."""

from __future__ import annotations

import numpy as np

from .pooling import (
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
