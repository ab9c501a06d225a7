"""``torch.nn.functional``'s pooling functions, on numba_pool's kernels.

Same signatures, defaults, results and errors as PyTorch 2.13's: each
function checks whether numba_pool handles the call (a CPU tensor of a
supported dtype, of at least MIN_ELEMENTS (16384) elements, contiguous or
channels_last, parameters PyTorch accepts, every window holding at least
one input element, max pooling windows of fewer than 2**31 elements) and
otherwise calls PyTorch's own function, which computes the result or raises
PyTorch's error.
The checks are plain Python on shapes and strides, so ``torch.compile``
traces through them (``fullgraph=True`` works) and records the numba_pool
operator.

>>> import torch, numba_pool.torch as nt
>>> x = torch.randn(2, 3, 8, 8)
>>> y, idx = nt.max_pool2d(x, 2, return_indices=True)
>>> torch.equal(y, torch.nn.functional.max_pool2d(x, 2))
True
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .._plan import MAX_WINDOW_ELEMENTS
from . import _ops

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "max_unpool1d", "max_unpool2d",
    "max_unpool3d", "handled",
]

IntOrSeq = Union[int, Sequence[int]]

# Windows of MAX_WINDOW_ELEMENTS or more elements (a 46341 x 46341 plane in one
# window) are refused by numba_pool's max pooling (its taps are int32) and go
# to PyTorch.

# Inputs of fewer elements go to PyTorch's op: a numba_pool call pays 70-100 us
# of dispatch (custom operator, autograd node, plan lookup) before its kernel
# runs, more than PyTorch's whole op takes there.  Measured on this project's
# 2-core machine, 2 threads, max pooling 3x3/2 of 1x64xHxW float32, PyTorch /
# numba_pool us: 16384 elements NCHW forward 42 / 134, forward + backward
# 100 / 353, channels_last forward 8 / 82; from 65536 elements the NCHW
# forward is ours (219 / 148).  Max pooling is bitwise the same either way;
# average pooling within the stated rounding.
MIN_ELEMENTS = 1 << 14

# dtypes the kernels take with PyTorch's exact results (max and unpooling copy
# values, so float16 is exact too; average pooling of float16 is not bit for
# bit PyTorch's and stays with PyTorch).
_MAX_DTYPES = (torch.float32, torch.float64, torch.float16)
_AVG_DTYPES = (torch.float32, torch.float64)


def _tensor_ok(x, rank: int, dtypes) -> bool:
    """A CPU strided tensor of a supported dtype, batched or not, of at least
    MIN_ELEMENTS elements, contiguous (or channels_last for batched 2-D/3-D)."""
    if not isinstance(x, Tensor) or x.device.type != "cpu" or x.layout != torch.strided:
        return False
    if (x.dtype not in dtypes or x.dim() not in (rank + 1, rank + 2)
            or x.numel() < max(MIN_ELEMENTS, 1)):
        return False
    if x.is_contiguous():
        return True
    return x.dim() == rank + 2 and rank > 1 and x.is_contiguous(memory_format=_ops._cl_format(rank))


def _ints(value, rank: int, allow_empty: bool = False) -> Optional[list]:
    """One int per spatial axis from an int or a sequence of 1 or ``rank``
    ints (PyTorch's forms), or None if PyTorch would not accept it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return [value] * rank
    if isinstance(value, (tuple, list, torch.Size)):
        if allow_empty and len(value) == 0:
            return []
        if len(value) in (1, rank) and all(isinstance(v, int) and not isinstance(v, bool)
                                           for v in value):
            return list(value) * (rank if len(value) == 1 else 1)
    return None


def _window_params(rank, kernel_size, stride, padding, dilation):
    """(kernel, stride, padding, dilation) lists as PyTorch resolves them, or
    None where PyTorch would raise (then PyTorch raises)."""
    k = _ints(kernel_size, rank)
    s = k if stride is None else _ints(stride, rank, allow_empty=True)
    if s == []:
        s = k
    p = _ints(padding, rank)
    d = _ints(dilation, rank)
    if k is None or s is None or p is None or d is None:
        return None
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        return None
    if any(pp > kk // 2 for pp, kk in zip(p, k)):  # PyTorch: at most half the kernel
        return None
    return k, s, p, d


def _windows_hit_input(spatial, k, s, p, d, ceil_mode) -> bool:
    """Every window holds an input element (numba_pool's rule; PyTorch would
    return -inf or 0/0 for the others, so those go to PyTorch)."""
    for n, kk, ss, pp, dd in zip(spatial, k, s, p, d):
        out = _ops.pool_output_size(n, kk, ss, pp, dd, ceil_mode)
        if out < 1:
            return False
        for o in range(min(out, -(-pp // ss))):  # windows starting in the padding
            start = o * ss - pp
            first_inside = -(-(-start) // dd)  # first tap at a position >= 0
            if first_inside >= kk or start + first_inside * dd >= n:
                return False
    return True


def _batched(x: Tensor, rank: int) -> Tensor:
    return x if x.dim() == rank + 2 else x.unsqueeze(0)


def _unbatch(t: Tensor, x: Tensor, rank: int) -> Tensor:
    return t if x.dim() == rank + 2 else t.squeeze(0)


# --------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------


def _max_pool(rank, fallback, x, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    params = _window_params(rank, kernel_size, stride, padding, dilation)
    if (params is None or not isinstance(ceil_mode, bool) or not _tensor_ok(x, rank, _MAX_DTYPES)
            or math.prod(params[0]) >= MAX_WINDOW_ELEMENTS
            or not _windows_hit_input(x.shape[-rank:], *params, ceil_mode)):
        return getattr(F, fallback)(x, kernel_size, stride, padding, dilation,
                                    ceil_mode=ceil_mode, return_indices=return_indices)
    xb = _batched(x, rank)
    y, argmax = _ops.max_pool(xb, *params, ceil_mode)
    if not return_indices:
        return _unbatch(y, x, rank)
    idx = _ops.max_pool_indices(argmax, list(xb.shape), *params, ceil_mode)
    return _unbatch(y, x, rank), _unbatch(idx, x, rank)


def max_pool1d(input: Tensor, kernel_size: IntOrSeq, stride: Optional[IntOrSeq] = None,
               padding: IntOrSeq = 0, dilation: IntOrSeq = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """As :func:`torch.nn.functional.max_pool1d`."""
    return _max_pool(1, "max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input: Tensor, kernel_size: IntOrSeq, stride: Optional[IntOrSeq] = None,
               padding: IntOrSeq = 0, dilation: IntOrSeq = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """As :func:`torch.nn.functional.max_pool2d`."""
    return _max_pool(2, "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input: Tensor, kernel_size: IntOrSeq, stride: Optional[IntOrSeq] = None,
               padding: IntOrSeq = 0, dilation: IntOrSeq = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """As :func:`torch.nn.functional.max_pool3d`."""
    return _max_pool(3, "max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


# --------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------


def _avg_pool(rank, fallback, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, *extra):
    params = _window_params(rank, kernel_size, stride, padding, 1)
    ok = (params is not None and isinstance(ceil_mode, bool)
          and isinstance(count_include_pad, bool)
          and (divisor_override is None or (type(divisor_override) is int
                                            and 1 <= divisor_override <= 2**24))
          and _tensor_ok(x, rank, _AVG_DTYPES)
          and _windows_hit_input(x.shape[-rank:], *params, ceil_mode)
          # PyTorch's avg_pool3d also rejects inputs smaller than the window
          and (rank != 3 or all(n >= kk for n, kk in zip(x.shape[-rank:], params[0]))))
    if not ok:
        return getattr(F, fallback)(x, kernel_size, stride, padding, ceil_mode,
                                    count_include_pad, *extra)
    k, s, p, _ = params
    y = _ops.avg_pool(_batched(x, rank), k, s, p, ceil_mode, count_include_pad, divisor_override)
    return _unbatch(y, x, rank)


def avg_pool1d(input: Tensor, kernel_size: IntOrSeq, stride: Optional[IntOrSeq] = None,
               padding: IntOrSeq = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """As :func:`torch.nn.functional.avg_pool1d`."""
    return _avg_pool(1, "avg_pool1d", input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size: IntOrSeq, stride: Optional[IntOrSeq] = None,
               padding: IntOrSeq = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """As :func:`torch.nn.functional.avg_pool2d`."""
    return _avg_pool(2, "avg_pool2d", input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, divisor_override)


def avg_pool3d(input: Tensor, kernel_size: IntOrSeq, stride: Optional[IntOrSeq] = None,
               padding: IntOrSeq = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """As :func:`torch.nn.functional.avg_pool3d`."""
    return _avg_pool(3, "avg_pool3d", input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, divisor_override)


# --------------------------------------------------------------------------
# Adaptive pooling
# --------------------------------------------------------------------------


def _adaptive_size(output_size, x: Tensor, rank: int) -> Optional[list]:
    """Output size per axis (None entries keep the input's), or None if
    PyTorch would not accept it or the kernels do not take it."""
    if rank == 1 and isinstance(output_size, (tuple, list)) and None in output_size:
        return None  # PyTorch's 1-D adaptive pooling takes no None
    if isinstance(output_size, (tuple, list, torch.Size)) and len(output_size) in (1, rank):
        sizes = list(output_size) * (rank if len(output_size) == 1 else 1)
        sizes = [x.shape[x.dim() - rank + a] if v is None else v for a, v in enumerate(sizes)]
    else:
        sizes = _ints(output_size, rank)
    if sizes is None or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                for v in sizes):
        return None
    return sizes


def _adaptive_window_bound(n, out: int):
    """At least the longest of PyTorch's adaptive windows over ``n`` elements
    (``ceil((i + 1) * n / out) - floor(i * n / out)`` is below ``n / out + 2``,
    and exactly ``n / out`` when ``out`` divides ``n``)."""
    return n // out + (0 if n % out == 0 else 2)


def _adaptive_window_elements(spatial, sizes) -> int:
    # a plain loop: torch.compile traces this, and fullgraph tracing
    # rejects generator expressions
    elements = 1
    for n, o in zip(spatial, sizes):
        elements *= _adaptive_window_bound(n, o)
    return elements


def _adaptive_max(rank, fallback, x, output_size, return_indices):
    sizes = _adaptive_size(output_size, x, rank) if isinstance(x, Tensor) else None
    if (sizes is None or not _tensor_ok(x, rank, _MAX_DTYPES)
            or _adaptive_window_elements(x.shape[-rank:], sizes) >= MAX_WINDOW_ELEMENTS):
        return getattr(F, fallback)(x, output_size, return_indices)
    xb = _batched(x, rank)
    y, argmax = _ops.adaptive_max_pool(xb, sizes)
    if not return_indices:
        return _unbatch(y, x, rank)
    idx = _ops.adaptive_max_pool_indices(argmax, list(xb.shape))
    return _unbatch(y, x, rank), _unbatch(idx, x, rank)


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """As :func:`torch.nn.functional.adaptive_max_pool1d`."""
    return _adaptive_max(1, "adaptive_max_pool1d", input, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """As :func:`torch.nn.functional.adaptive_max_pool2d`."""
    return _adaptive_max(2, "adaptive_max_pool2d", input, output_size, return_indices)


def adaptive_max_pool3d(input: Tensor, output_size, return_indices: bool = False):
    """As :func:`torch.nn.functional.adaptive_max_pool3d`."""
    return _adaptive_max(3, "adaptive_max_pool3d", input, output_size, return_indices)


def _adaptive_avg(rank, fallback, x, output_size):
    sizes = _adaptive_size(output_size, x, rank) if isinstance(x, Tensor) else None
    # Global average pooling stays PyTorch's: ATen sums it in SIMD-lane order
    # (CPU-dependent), which the kernels match only within rounding, and
    # ATen's is the faster forward here (bench/family.md).
    if sizes is None or sizes == [1] * rank or not _tensor_ok(x, rank, _AVG_DTYPES):
        return getattr(F, fallback)(x, output_size)
    return _unbatch(_ops.adaptive_avg_pool(_batched(x, rank), sizes), x, rank)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """As :func:`torch.nn.functional.adaptive_avg_pool1d`."""
    return _adaptive_avg(1, "adaptive_avg_pool1d", input, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """As :func:`torch.nn.functional.adaptive_avg_pool2d`."""
    return _adaptive_avg(2, "adaptive_avg_pool2d", input, output_size)


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """As :func:`torch.nn.functional.adaptive_avg_pool3d`."""
    return _adaptive_avg(3, "adaptive_avg_pool3d", input, output_size)


# --------------------------------------------------------------------------
# Unpooling
# --------------------------------------------------------------------------


def _unpool_size(x: Tensor, rank, kernel_size, stride, padding, output_size) -> Optional[list]:
    """PyTorch's output size of ``max_unpool`` (or None where it would raise)."""
    k = _ints(kernel_size, rank)
    s = k if stride is None else _ints(stride, rank)
    p = _ints(padding, rank)
    if k is None or s is None or p is None:
        return None
    default = [(x.shape[x.dim() - rank + a] - 1) * s[a] - 2 * p[a] + k[a] for a in range(rank)]
    if output_size is None:
        size = default
    else:
        if not isinstance(output_size, (tuple, list, torch.Size)):
            return None
        size = list(output_size)
        if len(size) == rank + 2:
            size = size[2:]
        if len(size) != rank or not all(isinstance(v, int) for v in size):
            return None
        if not all(d - ss < v < d + ss for v, d, ss in zip(size, default, s)):
            return None
    return size if all(v >= 1 for v in size) else None


def _max_unpool(rank, fallback, x, indices, kernel_size, stride, padding, output_size):
    size = (_unpool_size(x, rank, kernel_size, stride, padding, output_size)
            if isinstance(x, Tensor) else None)
    ok = (size is not None and _tensor_ok(x, rank, _MAX_DTYPES) and isinstance(indices, Tensor)
          and indices.dtype == torch.int64 and indices.device.type == "cpu"
          and indices.shape == x.shape and indices.layout == torch.strided)
    if not ok:
        return getattr(F, fallback)(x, indices, kernel_size, stride, padding, output_size)
    out = _ops.max_unpool(_batched(x, rank), _batched(indices, rank), size)
    return _unbatch(out, x, rank)


def max_unpool1d(input: Tensor, indices: Tensor, kernel_size: IntOrSeq,
                 stride: Optional[IntOrSeq] = None, padding: IntOrSeq = 0,
                 output_size: Optional[Sequence[int]] = None) -> Tensor:
    """As :func:`torch.nn.functional.max_unpool1d`."""
    return _max_unpool(1, "max_unpool1d", input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size: IntOrSeq,
                 stride: Optional[IntOrSeq] = None, padding: IntOrSeq = 0,
                 output_size: Optional[Sequence[int]] = None) -> Tensor:
    """As :func:`torch.nn.functional.max_unpool2d`."""
    return _max_unpool(2, "max_unpool2d", input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input: Tensor, indices: Tensor, kernel_size: IntOrSeq,
                 stride: Optional[IntOrSeq] = None, padding: IntOrSeq = 0,
                 output_size: Optional[Sequence[int]] = None) -> Tensor:
    """As :func:`torch.nn.functional.max_unpool3d`."""
    return _max_unpool(3, "max_unpool3d", input, indices, kernel_size, stride, padding,
                       output_size)


def handled(fn, *args, **kwargs) -> bool:
    """Whether ``fn(*args, **kwargs)`` (one of this module's functions) runs on
    numba_pool's kernels rather than falling back to PyTorch's.

    >>> import torch, numba_pool.torch as nt
    >>> nt.handled(nt.max_pool2d, torch.randn(1, 3, 128, 128), 2)
    True
    >>> nt.handled(nt.max_pool2d, torch.randn(1, 3, 128, 128, dtype=torch.bfloat16), 2)
    False
    >>> nt.handled(nt.max_pool2d, torch.randn(1, 3, 8, 8), 2)  # below MIN_ELEMENTS
    False
    """
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(*args, **kwargs)
    return any(e.name.startswith("numba_pool::") for e in prof.events())
