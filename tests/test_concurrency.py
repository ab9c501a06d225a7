"""Threads and fork under every Numba threading layer, in fresh interpreters.

Without numba_pool's guards (numba_pool/_threading.py) the workqueue/threads
case aborts the interpreter and the omp/fork case hangs or kills the
children; here every case must finish with results equal to the reference.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_same_bits

WORKER = Path(__file__).parent / "workers" / "concurrency.py"
LAYERS = [None, "omp", "workqueue", "tbb"]


def run_worker(mode, layer, timeout=240):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer:
        env["NUMBA_THREADING_LAYER"] = layer
    env["NUMBA_NUM_THREADS"] = env.get("NUMBA_NUM_THREADS", "4")  # >1 thread even on 1 core
    return subprocess.run([sys.executable, str(WORKER), mode], env=env, capture_output=True,
                          text=True, timeout=timeout)


def tbb_available():
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("mode", ["threads", "fork", "fork-fresh"])
def test_worker(mode, layer):
    proc = run_worker(mode, layer)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    last = proc.stdout.strip().splitlines()[-1]
    if layer == "tbb" and not tbb_available():
        # forced layer cannot load: one warning, then serial kernels
        assert last == "OK serial"
        assert "no Numba threading layer could be started" in proc.stderr
    elif layer:
        assert last == f"OK {layer}"
    else:
        assert last.startswith("OK ")


def test_set_num_threads_is_honoured(monkeypatch):
    """Parallel calls run with the caller's numba.set_num_threads count; with one
    thread the kernel runs serially, without the parallel driver."""
    import numba
    import numpy as np

    import numba_pool as npool
    from numba_pool import _driver

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least two Numba threads")
    calls = []
    real_drive = _driver.drive

    def spy(*args):
        calls.append(numba.get_num_threads())
        real_drive(*args)

    monkeypatch.setattr(_driver, "drive", spy)
    x = np.random.default_rng(0).standard_normal((4, 64, 64, 16), dtype=np.float32)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        y1, _ = npool.max_pool2d(x, 3, 2, 1)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        y2, _ = npool.max_pool2d(x, 3, 2, 1)
    finally:
        numba.set_num_threads(previous)
    assert calls == [numba.config.NUMBA_NUM_THREADS]
    assert_same_bits(y1, y2)
