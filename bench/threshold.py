"""Measure where the parallel kernel starts to beat the serial one.

numba_pool runs the serial kernel below ``_threading.PARALLEL_MIN_WORK``
elements touched (input + outputs).  This script times both kernels over a
range of sizes at the current thread count and prints the crossover, so
the threshold can be re-checked on any machine:

    .venv/bin/python bench/threshold.py
"""

from __future__ import annotations

import os
import sys

import numpy as np

import numba_pool as npool
from numba_pool import _threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_ms  # noqa: E402

CONFIGS = [
    ("NHWC C=16 k2s2", lambda s: (1, s, s, 16), dict(pool_size=2, data_format="NHWC")),
    ("NHWC C=3 k3s2p1", lambda s: (1, s, s, 3), dict(pool_size=3, strides=2, padding=1)),
    ("NCHW C=8 k2s2", lambda s: (1, 8, s, s), dict(pool_size=2, data_format="NCHW")),
]


def main() -> None:
    import numba

    print(f"threads: {numba.get_num_threads()}")
    saved = _threading.PARALLEL_MIN_WORK
    try:
        for name, shape_of, kw in CONFIGS:
            print(f"\n{name}\n{'work':>9} {'op':>4} {'serial us':>10} {'parallel us':>12}")
            for side in (8, 12, 16, 24, 32, 48, 64, 96):
                x = np.random.default_rng(0).standard_normal(shape_of(side)).astype(np.float32)
                y, am = npool.max_pool2d(x, **kw)
                dy = np.ones_like(y)
                work = x.size + 2 * y.size
                for op, fn in (("fwd", lambda: npool.max_pool2d(x, **kw)),
                               ("bwd", lambda: npool.max_pool2d_backward(dy, am))):
                    _threading.PARALLEL_MIN_WORK = 2**62
                    serial = median_ms(fn, 301) * 1e3
                    _threading.PARALLEL_MIN_WORK = 0
                    parallel = median_ms(fn, 301) * 1e3
                    mark = "  <- parallel wins" if parallel < serial else ""
                    print(f"{work:>9} {op:>4} {serial:>10.1f} {parallel:>12.1f}{mark}")
    finally:
        _threading.PARALLEL_MIN_WORK = saved


if __name__ == "__main__":
    main()
