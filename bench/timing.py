"""Wall-clock timing shared by the bench scripts that do not use pytest-benchmark."""

from __future__ import annotations

import time

import numpy as np


def median_ms(fn, rounds: int) -> float:
    """Median milliseconds of ``rounds`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3
