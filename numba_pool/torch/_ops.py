"""PyTorch custom operators (``torch.ops.numba_pool.*``) over numba_pool's kernels.

Each op is a ``torch.library.custom_op`` with a fake (meta) implementation
giving PyTorch's output shapes *and strides*, and an autograd formula, so
eager mode, ``torch.compile(fullgraph=True)``, ``torch.export``, ``no_grad``
and ``inference_mode`` all see ordinary operators.  Tensors are channels-first
logical (``N, C, *spatial``, batched: :mod:`numba_pool.torch.functional`
unsqueezes unbatched input) and reach the kernels without a copy when they
are contiguous or channels_last: a tensor's memory is a NumPy view, and the
NumPy layer already takes NCHW data in either memory layout.

Max pooling keeps numba_pool's compact argmax (``uint8`` window offsets for
windows of up to 256 elements, one byte per output element) for backward;
PyTorch's int64 indices are made only when asked for (``*_indices`` ops).

The ops trust their arguments: :mod:`numba_pool.torch.functional` validates
and routes anything else to PyTorch's own ops.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch._prims_common import suggest_memory_format

from .. import _buffers, _threading
from .._layout import FORMATS, PLANAR, layout
from .._plan import avg_plan, max_plan, offsets_dtype
from ..avgpool import _backward as _avg_backward_np
from ..avgpool import _forward as _avg_forward_np
from ..geometry import PoolGeometry, adaptive_axis_geometry, adaptive_geometry, pool_geometry
from ..maxpool import _max_backward, _max_pool, _new_argmax, _run_backward, _run_forward
from ..unpool import unpool_flat

_NS = "numba_pool"

# --------------------------------------------------------------------------
# Helpers: layouts, strides, geometry.
# --------------------------------------------------------------------------


def _lay(rank: int):
    return layout(rank, FORMATS[rank][1])  # torch tensors are channels first


def _cl_format(rank: int):
    return {2: torch.channels_last, 3: torch.channels_last_3d}.get(rank, torch.contiguous_format)


def _input_format(x: Tensor):
    """PyTorch's ``suggest_memory_format`` of an input (channels_last or not)."""
    return suggest_memory_format(x) if x.dim() in (4, 5) else torch.contiguous_format


def _format_of_flag(channels_last: bool, rank: int):
    return _cl_format(rank) if channels_last else torch.contiguous_format


def output_format(op: str, rank: int, x_format):
    """Memory format of a forward result, as PyTorch 2.13 CPU makes it
    (measured, ``tests/test_torch_dropin.py`` checks every case): 2-D ops and
    3-D max pooling keep channels_last; 3-D average, adaptive and unpooling
    ops return contiguous tensors; 1-D results are contiguous."""
    if rank == 2 or (rank == 3 and op == "max"):
        return x_format
    return torch.contiguous_format


@functools.lru_cache(maxsize=1024)
def _strides(shape: tuple, fmt) -> tuple:
    return torch.empty(shape, device="meta", memory_format=fmt).stride()


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


def _as_tensor(a: np.ndarray, fmt) -> Tensor:
    """``a`` as a tensor with the strides ``torch.empty(memory_format=fmt)``
    gives (zero-copy when ``a`` already is laid out so)."""
    t = torch.from_numpy(a)
    want = _strides(tuple(a.shape), fmt)
    if t.stride() == want:
        return t
    if t.is_contiguous(memory_format=fmt):  # differs only in strides of size-1 axes
        return t.as_strided(t.shape, want)
    out = torch.empty_strided(t.shape, want, dtype=t.dtype)
    out.copy_(t)
    return out


def _sync_threads() -> None:
    """Numba's parallel kernels use PyTorch's thread count.  Starting Numba's
    OpenMP layer resets the thread count of the OpenMP runtime PyTorch uses
    (measured: ``torch.set_num_threads(1)``, one numba_pool call, and PyTorch
    ran on 2 threads), so PyTorch's count is put back if it moved."""
    n = torch.get_num_threads()
    _threading.follow_thread_count(n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def pool_output_size(n, k: int, s: int, p: int, d: int, ceil_mode: bool):
    """PyTorch's ``pooling_output_shape`` (works on SymInts in fake mode)."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out = out - 1
    return out


def _geometry(spatial, kernel_size, stride, padding, dilation, ceil_mode) -> PoolGeometry:
    return pool_geometry(tuple(int(v) for v in spatial), tuple(kernel_size), tuple(stride),
                         tuple(dilation), tuple((p, p) for p in padding), bool(ceil_mode))


# --------------------------------------------------------------------------
# Max pooling (regular and adaptive): forward, backward, indices.
# --------------------------------------------------------------------------


def _max_forward(x: Tensor, geom: PoolGeometry, op: str):
    _sync_threads()
    rank = geom.rank
    y, argmax = _max_pool(_np(x), geom, _lay(rank), None, f"{op}_pool{rank}d")
    fmt = output_format(op, rank, _input_format(x))
    return _as_tensor(y, fmt), _as_tensor(argmax.offsets, fmt)


def _remember_max_forward(key, x: Tensor, geom: PoolGeometry, op: str) -> None:
    lay = _lay(geom.rank)
    xa = _np(x)
    memory = lay.memory_of(xa)
    fast = None  # None: this configuration always takes the full path
    if memory is not None:
        plan = max_plan(xa.shape, xa.dtype, geom, lay, memory)
        if plan.cdtype == plan.dtype and _in_kernel_order(plan, xa):
            fast = (plan, output_format(op, geom.rank, _input_format(x)))
    _remember(_max_fast, key, fast)


def _max_forward_repeat(x: Tensor, plan, fmt):
    """:func:`_max_forward` for a configuration seen before (see _max_fast):
    the NumPy layer's own fast path."""
    _sync_threads()
    y, argmax = _run_forward(plan, _np(x))
    return _as_tensor(y, fmt), _as_tensor(plan.logical(argmax._offsets), fmt)


def _argmax_of(argmax: Tensor, input_size, geom: PoolGeometry, dtype):
    """numba_pool's :class:`MaxPoolArgmax` over an argmax tensor's memory."""
    lay = _lay(geom.rank)
    off = _np(argmax)
    memory = lay.memory_of(off) or PLANAR
    plan = max_plan(tuple(int(v) for v in input_size), np.dtype(dtype), geom, lay, memory)
    return _new_argmax(lay.to_physical(off, memory), plan, np.dtype(dtype))


def _max_backward_t(grad: Tensor, argmax: Tensor, input_size, channels_last: bool,
                    geom: PoolGeometry) -> Tensor:
    _sync_threads()
    rank = geom.rank
    dtype = _np(grad).dtype
    am = _argmax_of(argmax, input_size, geom, dtype)
    dx = _max_backward(_np(grad), am, None, rank, f"max_pool{rank}d_backward")
    return _as_tensor(dx, _format_of_flag(channels_last, rank))


def _remember_max_backward(key, grad: Tensor, argmax: Tensor, input_size, channels_last: bool,
                           geom: PoolGeometry) -> None:
    lay = _lay(geom.rank)
    dy, off = _np(grad), _np(argmax)
    memory = lay.memory_of(off)
    fast = None  # e.g. an expanded grad (stride 0): always the full path
    if memory is not None:
        plan = max_plan(tuple(int(v) for v in input_size), dy.dtype, geom, lay, memory)
        if (plan.cdtype == plan.dtype and off.dtype == plan.odtype
                and dy.shape == plan.out_shape and _in_kernel_order(plan, dy, off)):
            fast = (plan, _format_of_flag(channels_last, geom.rank))
    _remember(_max_backward_fast, key, fast)


def _max_backward_repeat(grad: Tensor, argmax: Tensor, plan, fmt) -> Tensor:
    """:func:`_max_backward_t` for a configuration seen before."""
    _sync_threads()
    dx = _run_backward(plan, plan.physical(_np(grad)), plan.physical(_np(argmax)))
    return _as_tensor(dx, fmt)


def _indices(argmax: Tensor, input_size, geom: PoolGeometry) -> Tensor:
    am = _argmax_of(argmax, input_size, geom, np.float32)
    out = torch.empty_like(argmax, dtype=torch.int64)  # PyTorch's indices have y's strides
    out.copy_(torch.from_numpy(am.flat_indices()))
    return out


def _offsets_dtype(window_elements: int) -> torch.dtype:
    """numba_pool's argmax offsets dtype (:func:`numba_pool._plan.offsets_dtype`)
    as a torch dtype."""
    return torch.from_numpy(np.empty(0, offsets_dtype(window_elements))).dtype


def _empty(shape, dtype, fmt) -> Tensor:
    return torch.empty(shape, dtype=dtype, memory_format=fmt)


# Repeat calls: a call whose tensors have the shapes, strides and dtypes of an
# earlier call (and the same pooling parameters) reuses that call's plan and
# skips geometry, validation and layout detection.  A configuration is
# remembered only where its tensors already are in the kernels' memory order
# and dtype (no copy, no float16 conversion), and only after the full path ran
# it.  Measured on a 1x4x4x4 input (2 threads): max pooling forward 102 ->
# 72 us a call, most of the rest being PyTorch's custom-operator dispatch.
# Average pooling (regular and adaptive) has the same path (_avg_fast).
_FAST_LIMIT = 256
_UNSEEN = object()
_max_fast: dict = {}
_max_backward_fast: dict = {}


def _remember(cache: dict, key, value) -> None:
    if len(cache) >= _FAST_LIMIT:
        cache.clear()
    cache[key] = value


def _in_kernel_order(plan, *arrays) -> bool:
    """Every array is, viewed in the plan's physical order, C-contiguous."""
    return all(plan.physical(a).flags.c_contiguous for a in arrays)


@torch.library.custom_op(f"{_NS}::max_pool", mutates_args=())
def max_pool(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
             padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool
             ) -> tuple[Tensor, Tensor]:
    """Max pooling of a batched channels-first tensor: (y, compact argmax)."""
    key = (tuple(x.shape), x.stride(), x.dtype, tuple(kernel_size), tuple(stride),
           tuple(padding), tuple(dilation), ceil_mode)
    fast = _max_fast.get(key, _UNSEEN)
    if fast is not None and fast is not _UNSEEN:
        return _max_forward_repeat(x, *fast)
    geom = _geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    y, argmax = _max_forward(x, geom, "max")
    if fast is _UNSEEN:
        _remember_max_forward(key, x, geom, "max")
    return y, argmax


@max_pool.register_fake
def _(x, kernel_size, stride, padding, dilation, ceil_mode):
    rank = len(kernel_size)
    out = [pool_output_size(n, k, s, p, d, ceil_mode)
           for n, k, s, p, d in zip(x.shape[2:], kernel_size, stride, padding, dilation)]
    fmt = output_format("max", rank, _input_format(x))
    shape = list(x.shape[:2]) + out
    window = int(np.prod(kernel_size))
    return _empty(shape, x.dtype, fmt), _empty(shape, _offsets_dtype(window), fmt)


@torch.library.custom_op(f"{_NS}::max_pool_backward", mutates_args=())
def max_pool_backward(grad: Tensor, argmax: Tensor, input_size: Sequence[int],
                      channels_last: bool, kernel_size: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool
                      ) -> Tensor:
    """Gradient of :func:`max_pool`: each ``grad`` element added to its winner."""
    key = (tuple(grad.shape), grad.stride(), grad.dtype, tuple(argmax.shape), argmax.stride(),
           argmax.dtype, tuple(input_size), channels_last, tuple(kernel_size), tuple(stride),
           tuple(padding), tuple(dilation), ceil_mode)
    fast = _max_backward_fast.get(key, _UNSEEN)
    if fast is not None and fast is not _UNSEEN:
        return _max_backward_repeat(grad, argmax, *fast)
    geom = _geometry(input_size[2:], kernel_size, stride, padding, dilation, ceil_mode)
    dx = _max_backward_t(grad, argmax, input_size, channels_last, geom)
    if fast is _UNSEEN:
        _remember_max_backward(key, grad, argmax, input_size, channels_last, geom)
    return dx


@max_pool_backward.register_fake
def _(grad, argmax, input_size, channels_last, kernel_size, stride, padding, dilation,
      ceil_mode):
    return _empty(input_size, grad.dtype, _format_of_flag(channels_last, len(kernel_size)))


@torch.library.custom_op(f"{_NS}::max_pool_indices", mutates_args=())
def max_pool_indices(argmax: Tensor, input_size: Sequence[int], kernel_size: Sequence[int],
                     stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                     ceil_mode: bool) -> Tensor:
    """PyTorch's ``return_indices`` (int64, flat per (n, c) plane) from an argmax."""
    geom = _geometry(input_size[2:], kernel_size, stride, padding, dilation, ceil_mode)
    return _indices(argmax, input_size, geom)


@max_pool_indices.register_fake
def _(argmax, input_size, kernel_size, stride, padding, dilation, ceil_mode):
    return torch.empty_like(argmax, dtype=torch.int64)


@torch.library.custom_op(f"{_NS}::adaptive_max_pool", mutates_args=())
def adaptive_max_pool(x: Tensor, output_size: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Adaptive max pooling (PyTorch's windows): (y, compact argmax)."""
    geom = adaptive_geometry(tuple(x.shape[2:]), tuple(output_size))
    return _max_forward(x, geom, "adaptive_max")


@adaptive_max_pool.register_fake
def _(x, output_size):
    rank = len(output_size)
    fmt = output_format("adaptive_max", rank, _input_format(x))
    shape = list(x.shape[:2]) + list(output_size)
    window = 1
    for n, o in zip(x.shape[2:], output_size):
        window *= adaptive_axis_geometry(int(n), int(o)).kernel  # the widest window
    return _empty(shape, x.dtype, fmt), _empty(shape, _offsets_dtype(window), fmt)


@torch.library.custom_op(f"{_NS}::adaptive_max_pool_backward", mutates_args=())
def adaptive_max_pool_backward(grad: Tensor, argmax: Tensor, input_size: Sequence[int],
                               channels_last: bool) -> Tensor:
    """Gradient of :func:`adaptive_max_pool`."""
    geom = adaptive_geometry(tuple(input_size[2:]), tuple(grad.shape[2:]))
    return _max_backward_t(grad, argmax, input_size, channels_last, geom)


@adaptive_max_pool_backward.register_fake
def _(grad, argmax, input_size, channels_last):
    return _empty(input_size, grad.dtype, _format_of_flag(channels_last, grad.dim() - 2))


@torch.library.custom_op(f"{_NS}::adaptive_max_pool_indices", mutates_args=())
def adaptive_max_pool_indices(argmax: Tensor, input_size: Sequence[int]) -> Tensor:
    """PyTorch's ``return_indices`` of adaptive max pooling."""
    geom = adaptive_geometry(tuple(input_size[2:]), tuple(argmax.shape[2:]))
    return _indices(argmax, input_size, geom)


@adaptive_max_pool_indices.register_fake
def _(argmax, input_size):
    return torch.empty_like(argmax, dtype=torch.int64)


def _gather(grad_input: Tensor, indices: Tensor) -> Tensor:
    """``grad_input`` read at flat per-plane ``indices`` (shape of indices):
    the adjoint of scattering through them."""
    flat = grad_input.reshape(grad_input.shape[0], grad_input.shape[1], -1)
    return flat.gather(2, indices.reshape(indices.shape[0], indices.shape[1], -1)) \
        .reshape(indices.shape)


def _dx_channels_last(op: str, x: Tensor) -> bool:
    """Whether PyTorch returns the gradient of ``op`` channels_last: where it
    returns the forward's result so (measured; 3-D average and adaptive ops
    compute channels_last input in contiguous memory both ways)."""
    return output_format(op, x.dim() - 2, _input_format(x)) != torch.contiguous_format


def _setup(op: str, saves_argmax: bool):
    def setup_context(ctx, inputs, output):
        x = inputs[0]
        ctx.input_size = list(x.shape)
        ctx.channels_last = _dx_channels_last(op, x)
        ctx.params = tuple(inputs[1:])
        if saves_argmax:
            ctx.save_for_backward(output[1])
    return setup_context


def _max_pool_grad(ctx, grad, _grad_argmax):
    (argmax,) = ctx.saved_tensors
    dx = max_pool_backward(grad, argmax, ctx.input_size, ctx.channels_last, *ctx.params)
    return (dx,) + (None,) * len(ctx.params)


def _adaptive_max_pool_grad(ctx, grad, _grad_argmax):
    (argmax,) = ctx.saved_tensors
    return adaptive_max_pool_backward(grad, argmax, ctx.input_size, ctx.channels_last), None


max_pool.register_autograd(_max_pool_grad, setup_context=_setup("max", True))
adaptive_max_pool.register_autograd(_adaptive_max_pool_grad,
                                    setup_context=_setup("adaptive_max", True))


def _setup_max_backward(ctx, inputs, output):
    ctx.argmax_args = tuple(inputs[2:])
    ctx.save_for_backward(inputs[1])
    ctx.n_inputs = len(inputs)


def _max_pool_backward_grad(ctx, grad_dx):
    # dx = scatter(grad, winners) is linear in grad: its adjoint gathers.
    (argmax,) = ctx.saved_tensors
    input_size, _cl, *params = ctx.argmax_args
    if params:
        idx = max_pool_indices(argmax, input_size, *params)
    else:
        idx = adaptive_max_pool_indices(argmax, input_size)
    return (_gather(grad_dx, idx),) + (None,) * (ctx.n_inputs - 1)


max_pool_backward.register_autograd(_max_pool_backward_grad, setup_context=_setup_max_backward)
adaptive_max_pool_backward.register_autograd(_max_pool_backward_grad,
                                             setup_context=_setup_max_backward)


# --------------------------------------------------------------------------
# Average pooling (regular and adaptive): forward and backward.
# --------------------------------------------------------------------------


def _avg_geometry(spatial, kernel_size, stride, padding, ceil_mode) -> PoolGeometry:
    return _geometry(spatial, kernel_size, stride, padding, (1,) * len(kernel_size), ceil_mode)


@functools.lru_cache(maxsize=None)
def simd_width(dtype: torch.dtype, backward: bool) -> int:
    """Channels per SIMD vector in PyTorch's channels-last 2-D adaptive average
    pooling on this machine (0: none), measured once per process.

    ATen's kernel divides the channels its vectors cover once by ``kh * kw``
    and the remaining ones by ``kh``, then ``kw``; which channels those are
    depends on the vector width of the CPU and build (measured here: 8 for
    float32, 4 for float64).  One 3x3 window of value ``S`` (``S / 3 / 3``
    differs from ``S / 9`` in this dtype) over 127 channels tells."""
    channels, value = 127, {torch.float32: 5.0, torch.float64: 11.0}[dtype]
    x = torch.zeros(1, channels, 5, 7, dtype=dtype).contiguous(memory_format=torch.channels_last)
    if backward:
        g = torch.zeros(1, channels, 2, 3, dtype=dtype)
        g[0, :, 1, 2] = value
        g = g.contiguous(memory_format=torch.channels_last)
        got = torch.ops.aten._adaptive_avg_pool2d_backward(g, x)[0, :, 4, 6]
    else:
        x[0, :, 2, 4] = value  # output (1, 2) averages rows 2-4, columns 4-6
        got = torch.ops.aten._adaptive_avg_pool2d(x, [2, 3])[0, :, 1, 2]
    once = (got == torch.tensor(value, dtype=dtype) / 9).tolist()
    lanes = sum(once)
    for width in (1, 2, 4, 8, 16, 32, 64):
        if lanes == channels - channels % width and all(once[:lanes]):
            return width
    return 0


def _lanes(t: Tensor, geom: PoolGeometry, backward: bool) -> int:
    """Leading channels PyTorch divides once by the window size (see
    :func:`simd_width`): channels-last 2-D adaptive average pooling only."""
    if not (geom.adaptive and geom.rank == 2 and _input_format(t) == torch.channels_last):
        return 0
    width = simd_width(t.dtype, backward)
    channels = t.shape[1]
    return channels - channels % width if width else 0


def _avg_forward(x: Tensor, geom: PoolGeometry, op: str, cip: bool, override) -> Tensor:
    _sync_threads()
    rank = geom.rank
    y = _avg_forward_np(_np(x), geom, _lay(rank), None, cip, override, _lanes(x, geom, False))
    return _as_tensor(y, output_format(op, rank, _input_format(x)))


def _avg_backward(grad: Tensor, input_size, channels_last: bool, geom: PoolGeometry, cip: bool,
                  override) -> Tensor:
    _sync_threads()
    rank = geom.rank
    dx = _avg_backward_np(_np(grad), tuple(int(v) for v in input_size), geom, _lay(rank), None,
                          cip, override, _lanes(grad, geom, True))
    return _as_tensor(dx, _format_of_flag(channels_last, rank))


_avg_fast: dict = {}
_avg_backward_fast: dict = {}


def _remember_avg(cache: dict, key, t: Tensor, input_size, geom: PoolGeometry, cip: bool,
                  override, backward: bool, fmt) -> None:
    """Remember the plan of an average pooling call that just ran the full
    path with ``t`` (x, or the gradient for ``backward``), where ``t`` is in
    the kernels' memory order and compute dtype."""
    lay = _lay(geom.rank)
    a = _np(t)
    memory = lay.memory_of(a)
    fast = None  # None: this configuration always takes the full path
    if memory is not None:
        plan = avg_plan(tuple(int(v) for v in input_size), a.dtype, geom, lay, memory, cip,
                        override, _lanes(t, geom, backward))
        if plan.cdtype == a.dtype == plan.rdtype and _in_kernel_order(plan, a):
            fast = (plan, fmt)
    _remember(cache, key, fast)


def _avg_forward_repeat(x: Tensor, plan, fmt) -> Tensor:
    """:func:`_avg_forward` for a configuration seen before (see _avg_fast)."""
    _sync_threads()
    yp = _buffers.empty(plan.phys_out, plan.cdtype)
    plan.forward(plan.physical(_np(x)).reshape(-1), yp)
    return _as_tensor(plan.logical(yp), fmt)


def _avg_backward_repeat(grad: Tensor, plan, fmt) -> Tensor:
    """:func:`_avg_backward` for a configuration seen before."""
    _sync_threads()
    dxp = _buffers.empty(plan.phys_in, plan.cdtype)
    plan.backward(plan.physical(_np(grad)).reshape(-1), dxp)
    return _as_tensor(plan.logical(dxp), fmt)


def _avg_forward_cached(key, x: Tensor, make_geometry, op: str, cip: bool, override) -> Tensor:
    fast = _avg_fast.get(key, _UNSEEN)
    if fast is not None and fast is not _UNSEEN:
        return _avg_forward_repeat(x, *fast)
    geom = make_geometry()
    y = _avg_forward(x, geom, op, cip, override)
    if fast is _UNSEEN:
        _remember_avg(_avg_fast, key, x, x.shape, geom, cip, override, False,
                      output_format(op, geom.rank, _input_format(x)))
    return y


def _avg_backward_cached(key, grad: Tensor, input_size, channels_last: bool, make_geometry,
                         cip: bool, override) -> Tensor:
    fast = _avg_backward_fast.get(key, _UNSEEN)
    if fast is not None and fast is not _UNSEEN:
        return _avg_backward_repeat(grad, *fast)
    geom = make_geometry()
    dx = _avg_backward(grad, input_size, channels_last, geom, cip, override)
    if fast is _UNSEEN:
        _remember_avg(_avg_backward_fast, key, grad, input_size, geom, cip, override, True,
                      _format_of_flag(channels_last, geom.rank))
    return dx


@torch.library.custom_op(f"{_NS}::avg_pool", mutates_args=())
def avg_pool(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
             padding: Sequence[int], ceil_mode: bool, count_include_pad: bool,
             divisor_override: Optional[int]) -> Tensor:
    """Average pooling of a batched channels-first tensor (PyTorch's divisors)."""
    key = ("avg", tuple(x.shape), x.stride(), x.dtype, tuple(kernel_size), tuple(stride),
           tuple(padding), ceil_mode, count_include_pad, divisor_override)
    return _avg_forward_cached(
        key, x, lambda: _avg_geometry(x.shape[2:], kernel_size, stride, padding, ceil_mode),
        "avg", count_include_pad, divisor_override)


@avg_pool.register_fake
def _(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    rank = len(kernel_size)
    out = [pool_output_size(n, k, s, p, 1, ceil_mode)
           for n, k, s, p in zip(x.shape[2:], kernel_size, stride, padding)]
    return _empty(list(x.shape[:2]) + out, x.dtype,
                  output_format("avg", rank, _input_format(x)))


@torch.library.custom_op(f"{_NS}::avg_pool_backward", mutates_args=())
def avg_pool_backward(grad: Tensor, input_size: Sequence[int], channels_last: bool,
                      kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                      ceil_mode: bool, count_include_pad: bool,
                      divisor_override: Optional[int]) -> Tensor:
    """Gradient of :func:`avg_pool`."""
    key = ("avg", tuple(grad.shape), grad.stride(), grad.dtype, tuple(input_size), channels_last,
           tuple(kernel_size), tuple(stride), tuple(padding), ceil_mode, count_include_pad,
           divisor_override)
    return _avg_backward_cached(
        key, grad, input_size, channels_last,
        lambda: _avg_geometry(input_size[2:], kernel_size, stride, padding, ceil_mode),
        count_include_pad, divisor_override)


@avg_pool_backward.register_fake
def _(grad, input_size, channels_last, kernel_size, stride, padding, ceil_mode,
      count_include_pad, divisor_override):
    return _empty(input_size, grad.dtype, _format_of_flag(channels_last, len(kernel_size)))


@torch.library.custom_op(f"{_NS}::adaptive_avg_pool", mutates_args=())
def adaptive_avg_pool(x: Tensor, output_size: Sequence[int]) -> Tensor:
    """Adaptive average pooling (PyTorch's windows and divisions)."""
    key = ("adaptive", tuple(x.shape), x.stride(), x.dtype, tuple(output_size))
    return _avg_forward_cached(
        key, x, lambda: adaptive_geometry(tuple(x.shape[2:]), tuple(output_size)),
        "adaptive_avg", False, None)


@adaptive_avg_pool.register_fake
def _(x, output_size):
    rank = len(output_size)
    return _empty(list(x.shape[:2]) + list(output_size), x.dtype,
                  output_format("adaptive_avg", rank, _input_format(x)))


@torch.library.custom_op(f"{_NS}::adaptive_avg_pool_backward", mutates_args=())
def adaptive_avg_pool_backward(grad: Tensor, input_size: Sequence[int],
                               channels_last: bool) -> Tensor:
    """Gradient of :func:`adaptive_avg_pool`."""
    key = ("adaptive", tuple(grad.shape), grad.stride(), grad.dtype, tuple(input_size),
           channels_last)
    return _avg_backward_cached(
        key, grad, input_size, channels_last,
        lambda: adaptive_geometry(tuple(input_size[2:]), tuple(grad.shape[2:])), False, None)


@adaptive_avg_pool_backward.register_fake
def _(grad, input_size, channels_last):
    return _empty(input_size, grad.dtype, _format_of_flag(channels_last, grad.dim() - 2))


def _avg_pool_grad(ctx, grad):
    dx = avg_pool_backward(grad, ctx.input_size, ctx.channels_last, *ctx.params)
    return (dx,) + (None,) * len(ctx.params)


def _adaptive_avg_pool_grad(ctx, grad):
    return adaptive_avg_pool_backward(grad, ctx.input_size, ctx.channels_last), None


avg_pool.register_autograd(_avg_pool_grad, setup_context=_setup("avg", False))
adaptive_avg_pool.register_autograd(_adaptive_avg_pool_grad,
                                    setup_context=_setup("adaptive_avg", False))


def _setup_avg_backward(ctx, inputs, output):
    ctx.params = tuple(inputs[3:])
    ctx.n_inputs = len(inputs)
    ctx.output_size = list(inputs[0].shape[2:])


def _avg_pool_backward_grad(ctx, grad_dx):
    # The backward is linear in grad, and its adjoint is the forward itself
    # (each window's elements summed and divided by the same divisor).
    if ctx.params:
        ggrad = avg_pool(grad_dx, *ctx.params)
    else:
        ggrad = adaptive_avg_pool(grad_dx, ctx.output_size)
    return (ggrad,) + (None,) * (ctx.n_inputs - 1)


avg_pool_backward.register_autograd(_avg_pool_backward_grad, setup_context=_setup_avg_backward)
adaptive_avg_pool_backward.register_autograd(_avg_pool_backward_grad,
                                             setup_context=_setup_avg_backward)


# --------------------------------------------------------------------------
# Unpooling with PyTorch's flat indices.
# --------------------------------------------------------------------------


@torch.library.custom_op(f"{_NS}::max_unpool", mutates_args=())
def max_unpool(x: Tensor, indices: Tensor, output_size: Sequence[int]) -> Tensor:
    """``x``'s values at flat per-plane ``indices`` of a zero tensor with
    spatial size ``output_size`` (PyTorch's ``max_unpool``)."""
    _sync_threads()
    rank = len(output_size)
    fmt = output_format("max_unpool", rank, _input_format(x))
    try:
        out = unpool_flat(_np(x), _np(indices), tuple(int(v) for v in output_size), _lay(rank))
    except ValueError:  # an index out of range: PyTorch's own op raises its error
        return _torch_unpool(x, indices, output_size)
    return _as_tensor(out, fmt)


def _torch_unpool(x, indices, output_size):
    rank = len(output_size)
    if rank == 1:
        return torch.ops.aten.max_unpool2d(x.unsqueeze(-1), indices.unsqueeze(-1),
                                           [int(output_size[0]), 1]).squeeze(-1)
    if rank == 2:
        return torch.ops.aten.max_unpool2d(x, indices, list(output_size))
    # max_unpool3d's stride and padding only enter its (already done) size checks
    return torch.ops.aten.max_unpool3d(x, indices, list(output_size), [1, 1, 1], [0, 0, 0])


@max_unpool.register_fake
def _(x, indices, output_size):
    rank = len(output_size)
    return _empty(list(x.shape[:2]) + list(output_size), x.dtype,
                  output_format("max_unpool", rank, _input_format(x)))


def _setup_unpool(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _max_unpool_grad(ctx, grad):
    (indices,) = ctx.saved_tensors
    return _gather(grad, indices), None, None


max_unpool.register_autograd(_max_unpool_grad, setup_context=_setup_unpool)

OPS = (max_pool, max_pool_backward, max_pool_indices, adaptive_max_pool,
       adaptive_max_pool_backward, adaptive_max_pool_indices, avg_pool, avg_pool_backward,
       adaptive_avg_pool, adaptive_avg_pool_backward, max_unpool)
