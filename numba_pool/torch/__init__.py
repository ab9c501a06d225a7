"""numba_pool for PyTorch: a drop-in for ``torch.nn``'s CPU pooling.

``model = numba_pool.torch.convert(model)`` switches every pooling module of a
model to numba_pool's kernels (``restore`` undoes it); the functions mirror
``torch.nn.functional``'s.  Results are PyTorch's (max pooling bit for bit;
average pooling too except the forward of global pooling, within rounding),
autograd, ``torch.compile(fullgraph=True)``, ``torch.export``, ``no_grad`` and
``inference_mode`` work, and whatever the kernels do not handle (other
devices, bfloat16, unusual strides or parameters) runs PyTorch's own op.
Parallel kernels use ``torch.get_num_threads()`` threads (at most
``NUMBA_NUM_THREADS``).  Needs ``pip install numba_pool[torch]``.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("numba_pool.torch needs PyTorch: pip install 'numba_pool[torch]'") from exc

from . import _ops  # noqa: F401  (registers the torch.ops.numba_pool operators)
from .functional import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    handled,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
)
from .modules import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    MaxUnpool1d,
    MaxUnpool2d,
    MaxUnpool3d,
    convert,
    restore,
)

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "convert", "handled", "max_pool1d", "max_pool2d", "max_pool3d", "max_unpool1d",
    "max_unpool2d", "max_unpool3d", "restore",
]
