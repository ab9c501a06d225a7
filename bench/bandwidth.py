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
def _read_sum(a):
    s = 0.0
    for i in prange(a.size):
        s += a[i]
    return s


@njit(parallel=True, cache=True)
def _write_values(a, nchunks, value):
    """Ordinary stores (no streaming hint), as kernels issue them."""
    n = a.size
    for k in prange(nchunks):
        lo = k * n // nchunks
        hi = (k + 1) * n // nchunks
        for i in range(lo, hi):
            a[i] = value + np.float32(i & 7)


def _best_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 25)) * 1e3


def measure(repeat: int = 15) -> dict[str, float]:
    """Best read and write bandwidth (GB/s) this machine shows at numba's thread count.

    read: the faster of a parallel Numba sum and NumPy's ``max``;
    write: the faster of ``ndarray.fill`` (memset, streaming stores) and a
    parallel Numba loop of ordinary stores ("write_plain_gbs", reported too:
    what a kernel without streaming stores can reach).
    """
    import numba

    nchunks = 4 * numba.get_num_threads()
    a = np.ones(SIZE_BYTES // 4, np.float32)
    _read_sum(a)
    _write_values(a, nchunks, np.float32(1))
    read_ms = min(_best_ms(lambda: _read_sum(a), repeat), _best_ms(a.max, repeat))
    plain_ms = _best_ms(lambda: _write_values(a, nchunks, np.float32(2)), repeat)
    fill_ms = _best_ms(lambda: a.fill(3.0), repeat)
    gbs = lambda ms: a.nbytes / ms / 1e6  # noqa: E731
    return {"read_gbs": gbs(read_ms), "write_gbs": gbs(min(plain_ms, fill_ms)),
            "write_plain_gbs": gbs(plain_ms)}


def floor_ms(read_bytes: int, write_bytes: int, bw: dict[str, float]) -> float:
    """Milliseconds to read and write these bytes once at the measured bandwidth."""
    return (read_bytes / bw["read_gbs"] + write_bytes / bw["write_gbs"]) / 1e6


if __name__ == "__main__":
    print(measure())
