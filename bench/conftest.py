"""Benchmark session set-up: thread count for every library, from BENCH_THREADS."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

THREADS = int(os.environ.get("BENCH_THREADS", "0")) or os.cpu_count()


def pytest_configure(config):
    import numba

    from impls import available

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    # Import a framework only when its implementation is benchmarked here:
    # their thread pools (spinning OpenMP workers) slow each other down.
    impls = available()
    if "pytorch" in impls:
        import torch

        torch.set_num_threads(THREADS)
    if "tensorflow" in impls:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
