"""numba_pool: Numba-JIT pooling for NumPy (max, average, adaptive, global,
unpooling; 1-D, 2-D and 3-D), exact against PyTorch.

>>> import numpy as np, numba_pool as npool
>>> x = np.random.default_rng(0).standard_normal((8, 28, 28, 3), dtype=np.float32)
>>> y, argmax = npool.max_pool2d(x, 2)
>>> dx = npool.max_pool2d_backward(np.ones_like(y), argmax)
>>> y.shape, dx.shape
((8, 14, 14, 3), (8, 28, 28, 3))
"""

from . import _cache  # noqa: F401  (first: stamps every kernel with the package's source)
from . import reference
from ._buffers import buffer_cache_info, set_buffer_cache_size
from .avgpool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool3d,
    adaptive_avg_pool3d_backward,
    avg_pool1d,
    avg_pool1d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool3d,
    avg_pool3d_backward,
)
from .geometry import PoolGeometry
from .layer import (
    AdaptiveAvgPool1D,
    AdaptiveAvgPool2D,
    AdaptiveAvgPool3D,
    AdaptiveMaxPool1D,
    AdaptiveMaxPool2D,
    AdaptiveMaxPool3D,
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalAvgPool3D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPool3D,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
)
from .unpool import argmax_from_flat_indices, max_unpool1d, max_unpool2d, max_unpool3d
from .maxpool import (
    MaxPoolArgmax,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    max_pool1d,
    max_pool1d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_pool3d,
    max_pool3d_backward,
)

__version__ = "0.1.0"

__all__ = [
    "AdaptiveAvgPool1D",
    "AdaptiveAvgPool2D",
    "AdaptiveAvgPool3D",
    "AdaptiveMaxPool1D",
    "AdaptiveMaxPool2D",
    "AdaptiveMaxPool3D",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPool3D",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "MaxPoolArgmax",
    "PoolGeometry",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d",
    "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool3d",
    "avg_pool3d_backward",
    "buffer_cache_info",
    "max_pool1d",
    "max_pool1d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool3d",
    "max_pool3d_backward",
    "reference",
    "set_buffer_cache_size",
    "argmax_from_flat_indices",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "__version__",
]
