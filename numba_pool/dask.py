"""Pooling of Dask arrays, larger than memory, on one machine or a cluster.

:func:`max_pool2d` & co. take a ``dask.array.Array`` and the in-memory
functions' parameters and return a lazy Dask array of the pooled values,
**bit for bit** the in-memory result on the whole array for any chunking.

How: along every spatial axis each output position belongs to the input
chunk holding the first input element of its window, so output chunks follow
input chunks (aligned to the stride: a chunk's outputs are the windows that
start in it).  An output block reads its own input chunk plus, where its last
windows cross the chunk border, a halo of at most ``(k - 1) * d + 1 - s``
elements of the next chunk(s) — nothing else.  Each block is pooled by the
same kernels with the block's exact share of the geometry
(:func:`numba_pool.geometry.window_block`): same taps, same order, same
divisors, hence the same bits.  Batch and channel chunks are kept as they are.

Parameters are checked when the graph is built (the full geometry is computed
eagerly), never at compute time.  A NumPy array is rejected with a TypeError
pointing to the in-memory function (silently computing in memory is exactly
what a user of this module wants to avoid).

Threads: each task runs numba_pool's kernels on ``threads_per_task`` threads
(default 1), because Dask already runs one task per core (threaded
scheduler: ``num_workers`` threads; ``distributed``: ``nthreads`` per worker).
Kernels release the GIL, so Dask's threads run them in parallel; 1 thread
per task keeps cores from being oversubscribed (Dask's workers x Numba's
threads).  Raise it when there are fewer tasks than cores.

Needs ``pip install 'numba_pool[dask]'``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

try:
    import dask.array as da
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("numba_pool.dask needs Dask: pip install 'numba_pool[dask]'") from exc

from . import _threading
from ._layout import layout
from ._validate import _check_dtype, check_input_shape, normalise_avg_options
from .avgpool import _forward as _avg_forward
from .geometry import PoolGeometry, pool_geometry, window_block
from .maxpool import _max_pool, resolve_parameters

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "pyramid"]


def _axis_blocks(axis, chunks: Sequence[int]) -> list[tuple[int, int]]:
    """Output ranges ``[o0, o1)`` per input chunk: the windows whose first
    input element lies in that chunk (empty chunks dropped)."""
    eff_first = np.maximum(axis.start, 0)  # first input element each window reads
    bounds = np.cumsum((0,) + tuple(chunks))
    owner = np.searchsorted(bounds, eff_first, side="right") - 1
    edges = np.flatnonzero(np.diff(owner)) + 1
    cuts = [0] + edges.tolist() + [axis.out]
    return list(zip(cuts[:-1], cuts[1:]))


def _check_array(x, fname: str):
    if not isinstance(x, da.Array):
        raise TypeError(f"numba_pool.dask.{fname} takes a dask.array.Array, got "
                        f"{type(x).__name__}; for arrays in memory use numba_pool.{fname}")
    _check_dtype(np.dtype(x.dtype), "x")
    if any(math.isnan(n) for n in x.shape):
        raise ValueError("x has unknown chunk sizes; call x.compute_chunk_sizes() first")


def aligned_chunks(axis, chunks: Sequence[int]) -> tuple[int, ...]:
    """Input chunks moved so that every inner border is a window's first
    input element (the first one at or after the old border): then the
    windows starting in a chunk read at most ``(k - 1) * d + 1 - s`` elements
    past its end (none when windows do not overlap)."""
    firsts = np.maximum(axis.start, 0)
    borders = np.cumsum(chunks)[:-1]
    moved = firsts[np.minimum(np.searchsorted(firsts, borders), axis.out - 1)]
    moved = np.where(moved >= borders, moved, axis.size)  # no window starts after: merge
    edges = np.unique(np.concatenate(([0], moved[(moved > 0) & (moved < axis.size)],
                                      [axis.size])))
    return tuple(int(v) for v in np.diff(edges))


def _pool_blocks(x, spatial_axes: tuple, geom: PoolGeometry, pool_block, out_dtype):
    """The lazy result: one task per output block (batch/channel chunks kept);
    ``pool_block(block, block_geometry)`` pools one block."""

    def block_fn(block, block_geom):
        # the kernels trust the geometry: a mismatch would be a bug here, not bad input
        size = tuple(block.shape[d] for d in spatial_axes)
        if size != block_geom.input_size:
            raise RuntimeError(f"numba_pool.dask: block of spatial size {size} does not match "
                               f"its geometry {block_geom.input_size}")
        return pool_block(block, block_geom)

    new = {d: aligned_chunks(ax, x.chunks[d]) for ax, d in zip(geom.axes, spatial_axes)}
    if any(new[d] != x.chunks[d] for d in spatial_axes):
        x = x.rechunk(new)
    per_axis = [_axis_blocks(ax, x.chunks[d]) for ax, d in zip(geom.axes, spatial_axes)]
    ends = [np.cumsum(x.chunks[d]) for d in spatial_axes]
    reads = [[window_block(ax, o0, o1) for o0, o1 in blocks]
             for ax, blocks in zip(geom.axes, per_axis)]
    if all(len(r) == len(e) and all(b <= end for (_, b, _), end in zip(r, e))
           for r, e in zip(reads, ends)):
        # No window crosses a chunk border (e.g. k <= s): one task per chunk,
        # reading that chunk only.
        return _pool_chunkwise(x, spatial_axes, geom, per_axis, ends, block_fn, out_dtype)

    def build(level: int, slices: list, axes_geom: list):
        if level == len(spatial_axes):
            piece = x[tuple(slices)]
            piece = piece.rechunk({d: -1 for d in spatial_axes})
            block_geom = PoolGeometry(tuple(axes_geom))
            chunks = list(piece.chunks)
            for d, ag in zip(spatial_axes, axes_geom):
                chunks[d] = (ag.out,)
            return piece.map_blocks(block_fn, block_geom, dtype=out_dtype, chunks=tuple(chunks),
                                    meta=np.empty((0,) * x.ndim, out_dtype))
        row = []
        for a, b, sub in reads[level]:
            s = list(slices)
            s[spatial_axes[level]] = slice(a, b)
            row.append(build(level + 1, s, axes_geom + [sub]))
        return row

    nested = build(0, [slice(None)] * x.ndim, [])
    # one nesting level per spatial axis, joined in axis order
    return _join(nested, spatial_axes)


def _pool_chunkwise(x, spatial_axes, geom, per_axis, ends, block_fn, out_dtype):
    subs = [[window_block(ax, o0, o1, stop=int(end))[2] for (o0, o1), end in zip(blocks, e)]
            for ax, blocks, e in zip(geom.axes, per_axis, ends)]
    chunks = list(x.chunks)
    for d, blocks in zip(spatial_axes, per_axis):
        chunks[d] = tuple(o1 - o0 for o0, o1 in blocks)

    def run(block, block_info=None):
        where = block_info[None]["chunk-location"]
        block_geom = PoolGeometry(tuple(s[where[d]] for s, d in zip(subs, spatial_axes)))
        return block_fn(block, block_geom)

    return x.map_blocks(run, dtype=out_dtype, chunks=tuple(chunks),
                        meta=np.empty((0,) * x.ndim, out_dtype))


def _join(nested, spatial_axes):
    if not isinstance(nested, list):
        return nested
    parts = [_join(n, spatial_axes[1:]) for n in nested]
    return da.concatenate(parts, axis=spatial_axes[0])


def _block_kernel(kind: str, lay, fname: str, threads_per_task, cip: bool = False,
                  override=None):
    """``fn(block, block_geometry)``: one block (in ``lay``) pooled by the
    kernels on ``threads_per_task`` threads."""
    threads = int(threads_per_task)
    if threads < 1:
        raise ValueError(f"threads_per_task must be >= 1, got {threads_per_task!r}")

    def fn(block, block_geom):
        _threading.follow_thread_count(threads)
        block = np.ascontiguousarray(block)
        if kind == "max":
            return _max_pool(block, block_geom, lay, None, fname)[0]
        return _avg_forward(block, block_geom, lay, None, cip, override)
    return fn


def _result_dtype(kind: str, dtype) -> np.dtype:
    """Max keeps the dtype; averages of integers are float64 (as in memory)."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float64) if kind == "avg" and dtype.kind in "iu" else dtype


def _pool(kind: str, rank: int, x, pool_size, strides, padding, dilation, ceil_mode,
          data_format, count_include_pad=None, divisor_override=None, threads_per_task=1):
    fname = f"{kind}_pool{rank}d"
    _check_array(x, fname)
    pool, stride, dil, pad, ceil_mode, data_format = resolve_parameters(
        pool_size, strides, padding, dilation, ceil_mode, data_format, rank)
    lay = layout(rank, data_format)
    check_input_shape(x, data_format, rank)
    n, c, spatial = lay.split(x.shape)
    geom = pool_geometry(spatial, pool, stride, dil, pad, ceil_mode)  # raises eagerly
    spatial_axes = tuple(range(1, rank + 1)) if lay.channels_last else tuple(range(2, rank + 2))
    cip, override = (normalise_avg_options(padding, count_include_pad, divisor_override)
                     if kind == "avg" else (False, None))
    pool_block = _block_kernel(kind, lay, fname, threads_per_task, cip, override)
    return _pool_blocks(x, spatial_axes, geom, pool_block, _result_dtype(kind, x.dtype))


_DOC = """{rank}-D {what} pooling of a Dask array (lazy), bit for bit
    :func:`numba_pool.{fname}` on the whole array, for any chunking.

    Parameters
    ----------
    x : dask.array.Array
        {ndim}-D, in ``data_format`` layout.
    pool_size, strides, padding, dilation, ceil_mode, data_format{avg}
        As for :func:`numba_pool.{fname}`.
    threads_per_task : int, default 1
        Numba threads per Dask task (see the module docstring).

    Returns
    -------
    dask.array.Array
        The pooled values (the argmax is not kept). Its chunks along the
        spatial axes follow ``x``'s: one output chunk per input chunk in
        which windows start.

    Raises
    ------
    TypeError, ValueError
        When the graph is built, for invalid arguments (as the in-memory
        function), or a TypeError if ``x`` is not a Dask array.
    """


def max_pool1d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               data_format="NWC", threads_per_task: int = 1):
    return _pool("max", 1, x, pool_size, strides, padding, dilation, ceil_mode, data_format,
                 threads_per_task=threads_per_task)


def max_pool2d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               data_format="NHWC", threads_per_task: int = 1):
    return _pool("max", 2, x, pool_size, strides, padding, dilation, ceil_mode, data_format,
                 threads_per_task=threads_per_task)


def max_pool3d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               data_format="NDHWC", threads_per_task: int = 1):
    return _pool("max", 3, x, pool_size, strides, padding, dilation, ceil_mode, data_format,
                 threads_per_task=threads_per_task)


def avg_pool1d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               count_include_pad=None, divisor_override=None, data_format="NWC",
               threads_per_task: int = 1):
    return _pool("avg", 1, x, pool_size, strides, padding, dilation, ceil_mode, data_format,
                 count_include_pad, divisor_override, threads_per_task)


def avg_pool2d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               count_include_pad=None, divisor_override=None, data_format="NHWC",
               threads_per_task: int = 1):
    return _pool("avg", 2, x, pool_size, strides, padding, dilation, ceil_mode, data_format,
                 count_include_pad, divisor_override, threads_per_task)


def avg_pool3d(x, pool_size, strides=None, padding="valid", *, dilation=1, ceil_mode=False,
               count_include_pad=None, divisor_override=None, data_format="NDHWC",
               threads_per_task: int = 1):
    return _pool("avg", 3, x, pool_size, strides, padding, dilation, ceil_mode, data_format,
                 count_include_pad, divisor_override, threads_per_task)


for _rank in (1, 2, 3):
    for _kind, _what in (("max", "max"), ("avg", "average")):
        _f = globals()[f"{_kind}_pool{_rank}d"]
        _f.__doc__ = _DOC.format(
            rank=_rank, what=_what, fname=f"{_kind}_pool{_rank}d", ndim=_rank + 2,
            avg=", count_include_pad, divisor_override" if _kind == "avg" else "")
del _rank, _kind, _what, _f


def pyramid(x, levels: int, *, op: str = "max", factor: int = 2,
            axes: Optional[Sequence[int]] = None, threads_per_task: int = 1) -> list:
    """Multiscale pyramid (the OME-Zarr recipe): ``levels`` arrays, each the
    previous one (``x`` for the first) pooled by ``factor`` along ``axes``.

    Parameters
    ----------
    x : dask.array.Array
        Any number of dimensions (e.g. (Z, Y, X), (C, Y, X), (T, C, Z, Y, X)).
    levels : int
        Number of downsampled levels returned (``x`` itself is not included).
    op : {"max", "mean"}
        Max pooling or average pooling (integer input averages to float64).
    factor : int, default 2
        Window and stride along every pooled axis.  Sizes not divisible by
        ``factor`` keep their last partial window (``ceil_mode``), averaged
        over the elements it holds: level sizes are ``ceil(n / factor)``.
    axes : sequence of 1-3 ints, optional
        The axes to downsample; default the last two (Y, X), or the only one
        of a 1-D array.  Pass ``axes=(-3, -2, -1)`` for volumes.  The other
        axes are kept as they are (batch).
    threads_per_task : int, default 1

    Returns
    -------
    list of dask.array.Array
        Lazy levels; level ``i + 1`` is computed from level ``i``'s blocks.

    Examples
    --------
    >>> import dask.array as da, numba_pool.dask as nd
    >>> x = da.ones((64, 1000, 1000), chunks=(16, 256, 256), dtype="uint16")
    >>> [lvl.shape for lvl in nd.pyramid(x, 3, op="mean", axes=(1, 2))]
    [(64, 500, 500), (64, 250, 250), (64, 125, 125)]
    """
    if not isinstance(x, da.Array):
        raise TypeError(f"pyramid takes a dask.array.Array, got {type(x).__name__}")
    if op not in ("max", "mean"):
        raise ValueError(f"op must be 'max' or 'mean', got {op!r}")
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 0:
        raise ValueError(f"levels must be a non-negative int, got {levels!r}")
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"factor must be a positive int, got {factor!r}")
    if axes is None:
        axes = tuple(range(max(0, x.ndim - 2), x.ndim))
    try:
        axes = tuple(int(a) % x.ndim for a in axes)
    except (TypeError, ZeroDivisionError):
        raise ValueError(f"axes must be axis numbers of x, got {axes!r}") from None
    if not 1 <= len(axes) <= 3 or len(set(axes)) != len(axes):
        raise ValueError(f"axes must name 1 to 3 distinct axes, got {axes!r}")
    out = []
    level = x
    for _ in range(levels):
        level = _pool_axes(level, axes, op, int(factor), threads_per_task)
        out.append(level)
    return out


def _pool_axes(x, axes: tuple, op: str, factor: int, threads_per_task: int):
    """Pool ``x`` by ``factor`` along ``axes`` (any others are batch): the
    blocks are viewed as (batch, 1, *spatial) channels-first arrays."""
    rank = len(axes)
    fname = f"{'max' if op == 'max' else 'avg'}_pool{rank}d"
    _check_array(x, fname)
    spatial = tuple(x.shape[a] for a in axes)
    pool = (factor,) * rank
    geom = pool_geometry(spatial, pool, pool, (1,) * rank, "valid", True)
    lay = layout(rank, "NC" + "DHW"[3 - rank:])
    others = tuple(a for a in range(x.ndim) if a not in axes)
    order = others + axes

    kind = "max" if op == "max" else "avg"
    pool_planes = _block_kernel(kind, lay, fname, threads_per_task)

    def pool_block(block, block_geom):
        v = np.ascontiguousarray(block.transpose(order))  # (others..., spatial...)
        lead = v.shape[:len(others)]
        res = pool_planes(v.reshape((-1, 1) + v.shape[len(others):]), block_geom)
        return res.reshape(lead + res.shape[2:]).transpose(np.argsort(order))

    return _pool_blocks(x, axes, geom, pool_block, _result_dtype(kind, x.dtype))
