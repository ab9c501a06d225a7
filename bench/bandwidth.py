"""This machine's memory bandwidth, measured with Numba kernels at the current thread count.

The "floor" for a pooling call is the time to read its inputs once at the
read bandwidth plus write its outputs once at the write bandwidth.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit, prange

SIZE_BYTES = 512 * 2**20  # far larger than any cache


@njit(parallel=True, cache=True, fastmath=True)
def _read(a, nchunks):
    n = a.size
    acc = np.zeros(nchunks, np.float32)
    for k in prange(nchunks):
        lo = k * n // nchunks
        hi = (k + 1) * n // nchunks
        s = np.float32(0)
        for i in range(lo, hi):
            s = max(s, a[i])  # max like pooling; fastmath lets LLVM vectorise it
        acc[k] = s
    return acc.max()


@njit(parallel=True, cache=True)
def _write(a, nchunks, value):
    n = a.size
    for k in prange(nchunks):
        lo = k * n // nchunks
        hi = (k + 1) * n // nchunks
        for i in range(lo, hi):
            a[i] = value


def _best_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 25)) * 1e3


def measure(repeat: int = 15) -> dict[str, float]:
    """{"read_gbs": ..., "write_gbs": ...} at numba's current thread count."""
    import numba

    nchunks = 4 * numba.get_num_threads()
    a = np.ones(SIZE_BYTES // 4, np.float32)
    _read(a, nchunks)
    _write(a, nchunks, np.float32(2))
    read_ms = _best_ms(lambda: _read(a, nchunks), repeat)
    # alternate values so the stores are real work, not a memset of equal data
    values = iter(np.arange(repeat + 1, dtype=np.float32))
    write_ms = _best_ms(lambda: _write(a, nchunks, next(values)), repeat)
    return {"read_gbs": a.nbytes / read_ms / 1e6, "write_gbs": a.nbytes / write_ms / 1e6}


def floor_ms(read_bytes: int, write_bytes: int, bw: dict[str, float]) -> float:
    """Milliseconds to read and write these bytes once at the measured bandwidth."""
    return (read_bytes / bw["read_gbs"] + write_bytes / bw["write_gbs"]) / 1e6


if __name__ == "__main__":
    print(measure())
