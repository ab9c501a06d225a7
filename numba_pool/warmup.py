"""Compile every kernel family into Numba's on-disk cache ahead of time.

Kernels compile lazily, on the first call that needs them, and are cached on
disk (``cache=True``).  A fresh install therefore pays a few seconds on the
first call of each configuration family.  ``python -m numba_pool warmup``
pays it once, at install or image-build time, compiling the families in
parallel processes (compiles into one cache directory at once are safe).

Nothing here runs at import.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from . import _plan

__all__ = ["FAMILIES", "DEFAULT_DTYPES", "warmup"]

DEFAULT_DTYPES = ("float32", "float64", "float16", "uint8")
ALL_DTYPES = DEFAULT_DTYPES + ("int8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
# Specialised (window-constant) kernels exist only for these (see _plan.forward_key).
_SPECIALISED = ("float32", "float64", "float16")


@dataclass(frozen=True)
class _Call:
    """One call of a pooling function (and its backward) on a small input."""

    shape: tuple  # logical shape; its length gives the rank
    pool_size: object
    strides: object
    padding: object = 0
    data_format: str | None = None  # None: the rank's channels-last format
    # "max", "avg", "adaptive_avg" (pool_size is the output size), "unpool" or
    # "unpool_flat" (PyTorch's indices)
    op: str = "max"

    @property
    def rank(self) -> int:
        return len(self.shape) - 2

    def plan(self, dtype):
        """The plan this call would run (kernels chosen, nothing compiled)."""
        from . import maxpool
        from ._plan import avg_plan, max_plan
        from ._validate import normalise_avg_options
        from .geometry import adaptive_geometry, pool_geometry

        fmt = self.data_format or {1: "NWC", 2: "NHWC", 3: "NDHWC"}[self.rank]
        x = np.zeros(self.shape, dtype)
        if self.op == "adaptive_avg":
            x, lay, spatial = maxpool.prepare_input(x, fmt, self.rank)
            geom = adaptive_geometry(spatial, (self.pool_size,) * self.rank)
            return avg_plan(x.shape, x.dtype, geom, lay, lay.natural, False, None)
        pool, stride, dil, pad, ceil, fmt = maxpool.resolve_parameters(
            self.pool_size, self.strides, self.padding, 1, False, fmt, self.rank)
        x, lay, spatial = maxpool.prepare_input(x, fmt, self.rank)
        geom = pool_geometry(spatial, pool, stride, dil, pad, ceil)
        if self.op == "avg":
            return avg_plan(x.shape, x.dtype, geom, lay, lay.natural,
                            *normalise_avg_options(self.padding, None, None))
        return max_plan(x.shape, x.dtype, geom, lay, lay.natural)

    def run(self, dtype):
        """Forward and backward (or unpooling); returns the max pooling's argmax."""
        from . import avgpool, maxpool, unpool

        x = np.zeros(self.shape, dtype)
        fmt = self.data_format or {1: "NWC", 2: "NHWC", 3: "NDHWC"}[self.rank]
        args = (self.pool_size, self.strides, self.padding)
        if self.op == "adaptive_avg":
            y = getattr(avgpool, f"adaptive_avg_pool{self.rank}d")(x, self.pool_size,
                                                                   data_format=fmt)
            getattr(avgpool, f"adaptive_avg_pool{self.rank}d_backward")(
                np.ones_like(y), x.shape, data_format=fmt)
            return None
        if self.op == "avg":
            y = getattr(avgpool, f"avg_pool{self.rank}d")(x, *args, data_format=fmt)
            getattr(avgpool, f"avg_pool{self.rank}d_backward")(np.ones_like(y), x.shape, *args,
                                                               data_format=fmt)
            return None
        y, argmax = getattr(maxpool, f"max_pool{self.rank}d")(x, *args, data_format=fmt)
        if self.op == "unpool_flat":
            from ._layout import layout

            lay = layout(self.rank, fmt)
            unpool.unpool_flat(y, np.zeros(y.shape, np.int64), lay.split(x.shape)[2], lay)
        elif self.op == "unpool":
            getattr(unpool, f"max_unpool{self.rank}d")(y, argmax)
        else:
            getattr(maxpool, f"max_pool{self.rank}d_backward")(np.ones_like(y), argmax)
        return argmax


def _few_channel_calls(k: int, rank: int = 2) -> list[_Call]:
    """Windows of k on every axis, 1-4 channels, strides 1, 2 and k, without
    and with padding (a specialised kernel is compiled twice: with and without
    the code for windows that reach outside x, see _plan.has_borders)."""
    side = (9,) * rank
    return [_Call((2,) + side + (nc,), k, s, p) for s in sorted({1, 2, k}) for nc in range(1, 5)
            for p in (0, 1)]


# family name -> calls that together compile every kernel of the family
FAMILIES: dict[str, list[_Call]] = {
    "forward, any window": [_Call((2, 9, 9, 6), 4, 1)],
    # 5+ channels, windows overlapping little (_plan.uses_direct_forward)
    "forward, any window, 5+ channels, little overlap": [_Call((2, 9, 9, 6), (2, 3), (2, 3))],
    # channels-first planes with adaptive windows or narrow rows, interleaved in
    # blocks (every rank; _plan.uses_plane_blocks)
    "forward, any window, small channels-first planes": [
        _Call((2, 4, 9, 9), (2, 3), (2, 3), data_format="NCHW")],
    "forward, square windows, 5+ channels": [_Call((2, 9, 9, 8), k, 2, p) for k in (2, 3)
                                              for p in (0, 1)],
    "forward, 5x5 and 7x7 windows (2/5 window <= stride < window), 5+ channels": [
        _Call((2, 15, 15, 8), k, s, p) for k, s in ((5, 2), (7, 3)) for p in (0, 2)],
    "forward, 2x2 windows, 1-4 channels": _few_channel_calls(2),
    "forward, 3x3 windows, 1-4 channels": _few_channel_calls(3),
    # windows that do not overlap, images of 64 KiB and more (smaller few-channel
    # images take the scatter, _plan.SCATTER_MAX_IMAGE_BYTES, and so do window rows
    # of more than _plan.GATHER_MAX_WINDOW_ROW elements)
    "backward, gather (windows that do not overlap)": (
        [_Call((1, 8, 8, 8), 2, 2), _Call((1, 256, 255, 2), (2, 3), (2, 3))]
        + [_Call((1, 256, 255, nc), k, k) for k in (2, 3) for nc in range(1, 5)
           if k * nc <= _plan.GATHER_MAX_WINDOW_ROW]),
    "backward, scatter (overlapping windows, small images)": [
        _Call((2, 9, 9, 8), 3, 1, 1), _Call((2, 3, 9, 9), 3, 2, 1, "NCHW")],
    # width stride 1, up to _plan.TAP_GATHER_MAX_TAPS taps per dx element (one
    # kernel per output rows reading a dx row x window width), long rows
    "backward, tap gather (width stride 1, up to 9 taps)": (
        [_Call((1, 1, 600, 1), (1, k), 1) for k in range(2, 10)]
        + [_Call((1, 6, 600, 1), k, 1) for k in ((2, 2), (2, 3), (2, 4), (3, 2), (3, 3), (4, 2))]),
    # rows too short for the tap gather, many channels
    "backward, stride-1 gather (overlapping windows, long rows)": [_Call((1, 3, 14, 64), 2, 1)],
    "backward, plane gather (stride 1, small channels-first images)": [
        _Call((1, 2, 20, 20), 2, 1, data_format="NCHW")],
    "1-D forward, windows 2, 3 (and 5, 7 with 5+ channels)": (
        [_Call((2, 9, 8), k, 2, p) for k in (2, 3) for p in (0, 1)]
        + [_Call((2, 15, 8), k, 3, p) for k in (5, 7) for p in (0, 2)]
        + _few_channel_calls(2, 1) + _few_channel_calls(3, 1)),
    "3-D forward, cubes 2 and 3, 5+ channels": [_Call((2, 5, 5, 5, 8), k, 2, p) for k in (2, 3)
                                                for p in (0, 1)],
    "3-D forward, cubes 2 and 3, 1-4 channels": _few_channel_calls(2, 3) + _few_channel_calls(3, 3),
    "3-D backward, scatter (overlapping windows)": [_Call((2, 5, 5, 5, 8), 3, 1, 1)],
    "unpooling": [_Call((2, 9, 9, 8), 3, 1, 1, op="unpool"),
                  _Call((2, 5, 5, 5, 8), 3, 1, 1, op="unpool")],
    "average pooling (every rank)": [
        _Call((2, 9, 9, 8), 3, 2, 1, op="avg"),
        _Call((2, 3, 5, 5), 5, 5, op="avg", data_format="NCHW"),
        _Call((2, 3, 9, 9), 3, 1, 1, op="avg", data_format="NCHW"),
        _Call((2, 4, 9, 9), 4, None, op="adaptive_avg", data_format="NCHW"),  # overlapping
        _Call((2, 3, 8, 8), 4, None, op="adaptive_avg", data_format="NCHW")],  # tiling
    "unpooling by flat indices (numba_pool.torch's max_unpool)": [
        _Call((2, 9, 9, 8), 2, 2, op="unpool_flat")],
}


def _families_for(dtype: str) -> list[str]:
    if dtype in _SPECIALISED:
        return list(FAMILIES)
    return ["forward, any window", "forward, any window, 5+ channels, little overlap",
            "backward, gather (windows that do not overlap)",
            "backward, scatter (overlapping windows, small images)",
            "backward, tap gather (width stride 1, up to 9 taps)",
            "backward, stride-1 gather (overlapping windows, long rows)",
            "3-D backward, scatter (overlapping windows)", "unpooling",
            "average pooling (every rank)",
            "unpooling by flat indices (numba_pool.torch's max_unpool)"]


def _compile_family(dtype: str, family: str) -> float:
    """Run every call of ``family`` serially, then through the parallel driver
    (one for every kernel; each kernel's trampoline is made per process, not
    cached); return seconds."""
    from . import _threading

    start = time.perf_counter()
    saved = _threading.PARALLEL_MIN_WORK
    try:
        for threshold in (2**62, 0):  # the kernels, then the parallel driver
            _threading.PARALLEL_MIN_WORK = threshold
            for call in FAMILIES[family]:
                call.run(dtype)
    finally:
        _threading.PARALLEL_MIN_WORK = saved
    return time.perf_counter() - start


def warmup(dtypes: Iterable[str] = DEFAULT_DTYPES, jobs: int | None = None,
           progress: Callable[[str], None] | None = print,
           families: Iterable[str] | None = None) -> dict[tuple[str, str], float]:
    """Compile every kernel family for ``dtypes`` into the on-disk cache.

    Parameters
    ----------
    dtypes : iterable of str
        NumPy dtype names; default float32, float64, float16 and uint8.
    families : iterable of str, optional
        Only the families whose name contains one of these words (see
        :data:`FAMILIES`); default all.
    jobs : int, optional
        Parallel processes; default the number of CPUs.
    progress : callable, optional
        Called with one line per finished family (``None``: silent).

    Returns
    -------
    dict
        ``(dtype, family) -> seconds`` (near zero when the cache was warm).
    """
    dtypes = [np.dtype(d).name for d in dtypes]
    for d in dtypes:
        if d not in ALL_DTYPES:
            raise ValueError(f"dtypes: {d!r} is not a dtype numba_pool pools "
                             f"(one of {', '.join(ALL_DTYPES)})")
    words = None if families is None else [w.lower() for w in families]
    tasks = [(d, f) for d in dtypes for f in _families_for(d)
             if words is None or any(w in f.lower() for w in words)]
    if not tasks:
        raise ValueError(f"families: none of {sorted(FAMILIES)} matches {families!r}")
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    timings: dict[tuple[str, str], float] = {}
    # spawn: a forked child of a process that ran OpenMP threads is not safe
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_compile_family, d, f): (d, f) for d, f in tasks}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            key = futures[future]
            timings[key] = future.result()
            if progress is not None:
                progress(f"[{done:>2}/{len(tasks)}] {key[0]:<8} {key[1]:<40} "
                         f"{timings[key]:6.1f} s")
    if progress is not None:
        progress(f"numba_pool warmup: {len(tasks)} kernel families compiled and cached in "
                 f"{time.perf_counter() - started:.1f} s")
    return timings
