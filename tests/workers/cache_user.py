"""Compile (or load from cache) and check the kernels; run by tests/test_cache.py.

Prints "OK hits=<n> misses=<n>", then "FILE <path of numba_pool>", where hits/misses are Numba's on-disk cache
statistics of the kernels this process used.
"""

import numpy as np
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
from helpers import same_bits  # noqa: E402

import numba_pool as npool
from numba_pool import _driver, reference


kernels = [_driver.drive]  # the kernels this process ran, and their parallel driver
for dtype in (np.float32, np.float64):
    x = np.random.default_rng(0).integers(0, 9, (2, 130, 130, 3)).astype(dtype)  # parallel path
    y, am = npool.max_pool2d(x, 3, 2, 1)
    dx = npool.max_pool2d_backward(np.ones_like(y), am)
    yr, amr = reference.max_pool2d(x, 3, 2, 1)
    assert same_bits(y, yr) and same_bits(am.offsets, amr.offsets)
    assert same_bits(dx, reference.max_pool2d_backward(np.ones_like(y), amr))

    kernels += [am._plan.fwd, am._plan.bwd]
hits = misses = 0
for kernel in set(kernels):
    stats = kernel.stats
    hits += sum(stats.cache_hits.values())
    misses += sum(stats.cache_misses.values())
print(f"OK hits={hits} misses={misses}")
print("FILE", npool.__file__)
