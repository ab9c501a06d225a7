"""Drop-in replacements for the seed notebook's pooling code.

The notebook (``shared/seed``) defines ``MaxPoolingLayer(stride)`` and
``max_pool_naive_backward(dY, X, S)``: NHWC, window == stride, no padding,
output size ``H // S``.  Changing its import to::

    from numba_pool.compat import MaxPoolingLayer, max_pool_naive_backward

keeps every call, shape and dtype, and runs the fast kernels.

One deliberate difference: **ties**.  The seed builds a mask
``X_slice == max`` and credits *every* tied element with the full gradient;
here only the first maximum in row-major window order receives it, as in
PyTorch and TensorFlow (and as the true subgradient of a sum requires:
crediting all ties multiplies the gradient).  Without ties the results are
identical, up to the sign of zero: the seed's ``mask * dY`` writes -0.0 where
a negative gradient meets a non-winning element, numba_pool writes +0.0 (a
sum from zero, as PyTorch).
"""

from __future__ import annotations

import numpy as np

from ._validate import int_pair
from .maxpool import MaxPoolArgmax, max_pool2d, max_pool2d_backward

__all__ = ["MaxPoolingLayer", "max_pool_naive_backward"]


class MaxPoolingLayer:
    """The seed's layer: window = stride = ``stride``, NHWC.

    ``forward`` returns float64 like the seed's ``np.zeros`` buffer;
    ``backward`` returns ``dX`` with ``X``'s dtype.
    """

    def __init__(self, stride=1):
        int_pair(stride, "stride")  # fail at construction, naming the parameter
        self.stride = stride
        self.X = None
        self._argmax: MaxPoolArgmax | None = None

    def forward(self, X):
        y, self._argmax = max_pool2d(X, self.stride)
        self.X = X
        return y.astype(np.float64)

    def backward(self, dY):
        if self._argmax is None:
            raise ValueError("dY: MaxPoolingLayer.backward was called before forward")
        return max_pool2d_backward(np.asarray(dY).astype(self._argmax.dtype, copy=False),
                                   self._argmax)


def max_pool_naive_backward(dY, X, S):
    """The seed's function: gradient of window = stride = ``S`` max pooling.

    Returns ``dX`` with the shape and dtype of ``X``.
    """
    _, argmax = max_pool2d(X, int_pair(S, "stride"))
    return max_pool2d_backward(np.asarray(dY).astype(argmax.dtype, copy=False), argmax)
