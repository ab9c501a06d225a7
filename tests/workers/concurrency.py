"""Run by tests/test_concurrency.py in a fresh interpreter (a crash must not kill pytest).

usage: python concurrency.py threads|fork|fork-fresh
Prints "OK <threading layer or 'serial'>" on success.
"""

import multiprocessing as mp
import sys
import threading

import numpy as np
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
from helpers import same_bits  # noqa: E402

import numba_pool as npool
from numba_pool import _threading

SHAPE = (4, 64, 64, 16)  # large enough to take the parallel path
KW = dict(pool_size=3, strides=2, padding="same")


def work(seed):
    x = np.random.default_rng(seed).integers(0, 50, SHAPE).astype(np.float32)
    y, am = npool.max_pool2d(x, **KW)
    dx = npool.max_pool2d_backward(np.full(y.shape, 0.5, np.float32), am)
    return y, dx


def expected(seed):
    from numba_pool import reference

    x = np.random.default_rng(seed).integers(0, 50, SHAPE).astype(np.float32)
    y, am = reference.max_pool2d(x, **KW)
    return y, reference.max_pool2d_backward(np.full(y.shape, 0.5, np.float32), am)


def same(a, b):
    return all(same_bits(u, v) for u, v in zip(a, b))


def child(seed):
    return same(work(seed), expected(seed))


def main(mode):
    assert np.prod(SHAPE) > _threading.PARALLEL_MIN_WORK
    if mode == "threads":
        seeds = list(range(8))
        want = {s: expected(s) for s in seeds}
        barrier = threading.Barrier(len(seeds))
        failures = []

        def run(seed):
            barrier.wait()
            for _ in range(15):
                if not same(work(seed), want[seed]):
                    failures.append(seed)

        threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
    elif mode in ("fork", "fork-fresh"):
        if mode == "fork":
            assert child(100)  # the parent starts its threading layer first
        with mp.get_context("fork").Pool(3) as pool:
            assert all(pool.map(child, range(6)))
        assert child(101)  # and the parent still works afterwards
    else:
        raise SystemExit(f"unknown mode {mode}")
    layer = "serial" if not _threading.parallel_available() else (_threading._current_layer() or "serial")
    print("OK", layer)


if __name__ == "__main__":
    main(sys.argv[1])
