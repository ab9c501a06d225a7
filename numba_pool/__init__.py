"""numba_pool: Numba-JIT max pooling for NumPy, exact against PyTorch.

>>> import numpy as np, numba_pool as npool
>>> x = np.random.default_rng(0).standard_normal((8, 28, 28, 3), dtype=np.float32)
>>> y, argmax = npool.max_pool2d(x, 2)
>>> dx = npool.max_pool2d_backward(np.ones_like(y), argmax)
>>> y.shape, dx.shape
((8, 14, 14, 3), (8, 28, 28, 3))
"""

from . import reference
from .geometry import PoolGeometry
from .layer import MaxPool2D
from .pooling import MaxPoolArgmax, max_pool2d, max_pool2d_backward

__version__ = "0.1.0"

__all__ = [
    "MaxPool2D",
    "MaxPoolArgmax",
    "PoolGeometry",
    "max_pool2d",
    "max_pool2d_backward",
    "reference",
    "__version__",
]
