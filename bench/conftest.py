"""Benchmark session set-up: thread count for every library, from BENCH_THREADS."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

THREADS = int(os.environ.get("BENCH_THREADS", "0")) or os.cpu_count()


def pytest_configure(config):
    import numba

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch

        torch.set_num_threads(THREADS)
    except ImportError:
        pass
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    except ImportError:
        pass
