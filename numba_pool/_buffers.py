"""Result buffers: a large result reuses the memory of an earlier one its caller let go.

Why: the first write to a fresh large array faults its pages in, and the
system zeroes each page before handing it over, a write pass of its own.
Arrays above 32 MB come straight from ``mmap`` (glibc's largest threshold),
so every call pays it again.  Measured on this project's 2-core Xeon, 1
thread, float32, fresh result against a reused one (``out=``): audio 1-D max
backward 32x128x4000 23.6 -> 17.6 ms, 3-D max k3 s2 p1 backward
8x16x56x56x64 26.3 -> 17.7 ms, ResNet-D average backward 32x56x56x256
25.8 -> 16.6 ms; a bare ``np.empty(...).fill(0)`` of 65 MB takes 11.6 ms
against 4.6 ms for ``fill`` alone.

How: every result of at least :data:`MIN_BYTES` is a view of a buffer this
module keeps.  A buffer is *idle* when nothing but this module refers to it
(every NumPy view, ``memoryview`` or ``torch.from_numpy`` tensor of a result
holds a reference to the buffer, so its reference count says whether any is
alive); a request of the same size takes the most recently used idle buffer.
Buffers are held up to :func:`set_buffer_cache_size` bytes in all (default
256 MiB, environment variable ``NUMBA_POOL_BUFFER_CACHE_MB``); beyond that
the least recently used idle ones are dropped, and ones still in use are
forgotten (freed as usual when their caller lets go).  So at most that many
bytes stay allocated after the caller has dropped every result.

Results hold no data of their own until a kernel writes them: as with
``np.empty``, the kernels write every element (the test suite reuses buffers of
every size, each filled with garbage first: ``_Cache.poison``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings

import numpy as np

MIN_BYTES = 4 << 20  # smaller results come from malloc's own reused memory
MAX_BUFFERS = 64
_ENV = "NUMBA_POOL_BUFFER_CACHE_MB"
_DEFAULT_MB = 256


def _capacity_from_env() -> int:
    raw = os.environ.get(_ENV)
    if raw is None:
        return _DEFAULT_MB << 20
    try:
        mb = float(raw)
        if mb < 0:
            raise ValueError
    except ValueError:
        warnings.warn(f"{_ENV}={raw!r} is not a non-negative number of MiB; "
                      f"using {_DEFAULT_MB}", RuntimeWarning, stacklevel=2)
        return _DEFAULT_MB << 20
    return int(mb * (1 << 20))


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buffers: list[np.ndarray] = []  # least recently used first
        self.capacity = _capacity_from_env()
        # Tests: reused buffers are filled with garbage first, alternately the bytes
        # 0x5A and 0xA5 (finite float32/float64 values, not NaN, which bitwise
        # comparisons take as equal to any NaN), so an element a kernel leaves
        # unwritten differs from any expected result.
        self.poison = False
        self.hits = 0
        self.misses = 0


_cache = _Cache()


def _refs_at(buffers: list, i: int) -> int:
    return sys.getrefcount(buffers[i])


# References a buffer held only by the cache's list shows through _refs_at:
# measured, not assumed, so that no interpreter's counting can make a buffer
# in use look idle.
_IDLE_REFS = _refs_at([np.empty(1, np.uint8)], 0)


def _idle(buffers: list, i: int) -> bool:
    return _refs_at(buffers, i) == _IDLE_REFS


def _after_fork() -> None:  # a lock held by another thread at fork time stays held in the child
    _cache.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def empty_sized(shape, dtype, nbytes: int) -> np.ndarray:
    """:func:`empty` for a caller that knows the result's bytes (a plan): below
    :data:`MIN_BYTES` straight from ``np.empty``, without :func:`empty`'s
    bookkeeping (~0.7 us of a 5.6 us call)."""
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    return empty(shape, dtype)


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, as ``np.empty(shape, dtype)``,
    reusing an idle buffer of the same size where there is one."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize * math.prod(shape)  # (np.prod: 3 us, most of a small call's budget)
    cache = _cache
    if nbytes < MIN_BYTES or cache.capacity < nbytes:
        return np.empty(shape, dtype)
    with cache.lock:
        buffers = cache.buffers
        found = None
        for i in range(len(buffers) - 1, -1, -1):  # most recently used first
            if buffers[i].nbytes == nbytes and _idle(buffers, i):
                found = buffers.pop(i)
                break
        reused = found is not None
        if reused:
            cache.hits += 1
            if cache.poison:
                found.fill(0x5A if cache.hits % 2 else 0xA5)
        else:
            cache.misses += 1
            found = np.empty(nbytes, np.uint8)
        buffers.append(found)
        result = found.view(dtype).reshape(shape)  # holds the buffer: in use from here on
        if not reused:  # a reuse leaves the bytes and count held unchanged
            _trim(cache)
    return result


def _trim(cache: _Cache) -> None:
    """Drop buffers (idle ones first, least recently used first) until the
    cache holds at most its capacity and :data:`MAX_BUFFERS` buffers."""
    buffers = cache.buffers
    held = sum(b.nbytes for b in buffers)
    i = 0
    while (held > cache.capacity or len(buffers) > MAX_BUFFERS) and i < len(buffers):
        if _idle(buffers, i):
            held -= buffers.pop(i).nbytes
        else:
            i += 1
    while held > cache.capacity or len(buffers) > MAX_BUFFERS:  # only buffers in use left
        held -= buffers.pop(0).nbytes


def set_buffer_cache_size(nbytes: int) -> int:
    """Set how many bytes of result buffers numba_pool may keep for reuse.

    Large results (at least 4 MiB) are views of buffers numba_pool keeps: once
    the caller drops every view of one, the next result of the same size
    reuses it instead of fresh memory, whose pages the system must fault in
    and zero (30-45 % of a large backward pass, measured).  Buffers beyond
    ``nbytes`` in all are released, idle ones first.

    Parameters
    ----------
    nbytes : int
        The most memory kept, in bytes (default 256 MiB, or the environment
        variable ``NUMBA_POOL_BUFFER_CACHE_MB`` at import).  0 turns reuse off
        and releases every idle buffer.

    Returns
    -------
    int
        The previous size.

    Examples
    --------
    >>> import numba_pool as npool
    >>> previous = npool.set_buffer_cache_size(0)        # off
    >>> _ = npool.set_buffer_cache_size(previous)        # back on
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)):
        raise TypeError(f"nbytes must be an int, got {type(nbytes).__name__}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    with _cache.lock:
        previous = _cache.capacity
        _cache.capacity = int(nbytes)
        _trim(_cache)
    return previous


def buffer_cache_info() -> dict[str, int]:
    """The result-buffer cache's state: ``capacity``, ``held_bytes``,
    ``idle_bytes`` (held but reusable now), ``buffers``, ``hits`` and
    ``misses`` (requests of at least 4 MiB served by reuse, or by fresh memory).

    Examples
    --------
    >>> import numba_pool as npool
    >>> sorted(npool.buffer_cache_info())
    ['buffers', 'capacity', 'held_bytes', 'hits', 'idle_bytes', 'misses']
    """
    with _cache.lock:
        buffers = _cache.buffers
        idle = sum(buffers[i].nbytes for i in range(len(buffers)) if _idle(buffers, i))
        return {"capacity": _cache.capacity, "held_bytes": sum(b.nbytes for b in buffers),
                "idle_bytes": idle, "buffers": len(buffers), "hits": _cache.hits,
                "misses": _cache.misses}
