"""The result-buffer cache (numba_pool/_buffers.py): a result's memory is
reused only once nothing refers to it, never while any view of it lives; the
cache keeps to its size; its settings are validated.

The rest of the suite runs with every result drawn from the cache and every
reused buffer filled with garbage first (conftest.py), so the kernels' "every
element written" is checked by every bitwise test.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import assert_same_bits

import numba_pool as npool
from numba_pool import _buffers, reference

SHAPE = (2, 64, 128, 64)  # 4 MiB of float32 x; dx too
BIG = 1 << 20  # float32 elements of 4 MiB


@pytest.fixture
def defaults(monkeypatch):
    """The library's own settings (the suite lowers MIN_BYTES), an empty cache."""
    monkeypatch.setattr(_buffers, "MIN_BYTES", 4 << 20)
    monkeypatch.setattr(_buffers._cache, "buffers", [])
    monkeypatch.setattr(_buffers._cache, "capacity", 256 << 20)
    return _buffers._cache


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_released_result_is_reused(defaults):
    x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    y, am = npool.max_pool2d(x, 3, 1, 1)
    dy = np.ones_like(y)
    dx = npool.max_pool2d_backward(dy, am)
    first = address(dx)
    hits = npool.buffer_cache_info()["hits"]
    del dx
    dx = npool.max_pool2d_backward(dy, am)
    assert address(dx) == first
    assert npool.buffer_cache_info()["hits"] == hits + 1
    _, ref_am = reference.max_pool2d(x, 3, 1, 1)
    assert_same_bits(dx, reference.max_pool2d_backward(dy, ref_am))


@pytest.mark.parametrize("holder", ["view", "child view", "memoryview", "ravel", "torch"])
def test_result_in_use_is_not_reused(defaults, holder):
    """Anything that still reads a result keeps its memory out of reuse,
    whatever refers to it: a view, a view of a view, a buffer export, a tensor."""
    a = _buffers.empty((BIG,), np.float32)
    a[:] = 7
    if holder == "view":
        keep = a[5:]
    elif holder == "child view":
        keep = a.reshape(2, -1)[1][3:]
    elif holder == "memoryview":
        keep = memoryview(a)
    elif holder == "ravel":
        keep = a.reshape(1024, -1).T.ravel(order="F")[::2]
    else:
        torch = pytest.importorskip("torch")  # a dev extra: present in make test
        keep = torch.from_numpy(a)
    del a
    b = _buffers.empty((BIG,), np.float32)
    b[:] = -1
    assert np.all(np.asarray(keep) == 7)
    del keep
    c = _buffers.empty((BIG,), np.float32)  # now the first buffer is idle again
    assert npool.buffer_cache_info()["hits"] >= 1
    assert not np.shares_memory(b, c)


def test_reuse_across_dtypes_and_shapes(defaults):
    """A buffer of the same size serves any dtype and shape; a different size never."""
    a = _buffers.empty((BIG,), np.float32)
    first = address(a)
    del a
    b = _buffers.empty((512, 1024), np.float64)[:, :512]  # 4 MiB, other shape and dtype
    assert address(b) == first and b.base.nbytes == 4 * BIG
    c = _buffers.empty((BIG + 1,), np.float32)
    assert address(c) != first
    assert c.flags.c_contiguous and c.flags.aligned and c.shape == (BIG + 1,)


def test_small_results_bypass_the_cache(defaults):
    a = _buffers.empty((10, 10), np.float32)
    assert a.base is None and a.flags.owndata
    assert npool.buffer_cache_info()["buffers"] == 0


def test_capacity_is_kept(defaults):
    npool.set_buffer_cache_size(10 << 20)  # two 4 MiB buffers
    kept = [_buffers.empty((BIG,), np.float32) for _ in range(3)]
    info = npool.buffer_cache_info()
    assert info["held_bytes"] <= 10 << 20 and info["idle_bytes"] == 0
    for i, k in enumerate(kept):  # each still the caller's own memory
        k.fill(i)
    assert all(np.all(k == i) for i, k in enumerate(kept))
    del kept, k  # the loop variable holds the last one
    info = npool.buffer_cache_info()
    assert info["idle_bytes"] == info["held_bytes"] <= 10 << 20
    assert npool.set_buffer_cache_size(0) == 10 << 20
    info = npool.buffer_cache_info()
    assert info["held_bytes"] == 0 and info["capacity"] == 0
    before = info["misses"]
    a = _buffers.empty((BIG,), np.float32)
    assert a.flags.owndata and npool.buffer_cache_info()["misses"] == before  # off: bypassed


def test_buffer_count_is_bounded(defaults, monkeypatch):
    monkeypatch.setattr(_buffers, "MIN_BYTES", 1)
    kept = [_buffers.empty((4,), np.float32) for _ in range(_buffers.MAX_BUFFERS + 10)]
    assert npool.buffer_cache_info()["buffers"] == _buffers.MAX_BUFFERS
    kept[0][:] = 1  # forgotten by the cache, still the caller's
    assert np.all(kept[0] == 1)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), ("1", TypeError), (True, TypeError),
                                        (1.5, TypeError)])
def test_set_buffer_cache_size_errors(defaults, bad, error):
    with pytest.raises(error, match="nbytes"):
        npool.set_buffer_cache_size(bad)
    assert npool.buffer_cache_info()["capacity"] == 256 << 20


def _capacity_in_fresh_process(value):
    env = dict(os.environ, NUMBA_POOL_BUFFER_CACHE_MB=value)
    code = "import numba_pool as n; print(n.buffer_cache_info()['capacity'])"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return int(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_environment_variable():
    assert _capacity_in_fresh_process("0")[0] == 0
    assert _capacity_in_fresh_process("1.5")[0] == 3 << 19
    capacity, err = _capacity_in_fresh_process("lots")
    assert capacity == 256 << 20 and "NUMBA_POOL_BUFFER_CACHE_MB='lots'" in err


def test_threads_never_share_a_buffer(defaults):
    """Threads drawing and releasing buffers at once: each result stays its own."""
    errors = []

    def work(k):
        for i in range(50):
            a = _buffers.empty((BIG,), np.float32)
            a.fill(k * 1000 + i)
            if not np.all(a == k * 1000 + i):
                errors.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert npool.buffer_cache_info()["hits"] > 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_fork_while_another_thread_holds_the_lock(defaults):
    """A child forked while another thread held the cache's lock can still allocate."""
    from helpers import fork_while_held

    code = fork_while_held(_buffers._cache.lock,
                           lambda: _buffers.empty((BIG,), np.float32).fill(1))
    assert code == 0, "the forked child hung on the cache's lock"


def test_suite_reuses_with_garbage():
    """conftest.py's settings are in force for the rest of the suite."""
    assert _buffers.MIN_BYTES == 1 and _buffers._cache.poison
