"""Bit-exact comparison: the only equality the README's exactness promise allows.

Bit patterns are compared, so +0.0 and -0.0 differ and dtypes must match.
NaN is compared as NaN: every NaN equals every other NaN (the sign and
payload of a NaN made by ``inf - inf`` depend on the processor and on how
the library's arithmetic was compiled, and no NumPy or PyTorch result
promises them), but a NaN never equals a number.
"""

import contextlib

import numpy as np


def _bits(a: np.ndarray) -> np.ndarray:
    """Bit patterns, with every NaN mapped to one canonical pattern."""
    a = np.ascontiguousarray(a)
    bits = a.view(np.dtype(f"u{a.dtype.itemsize}"))
    if a.dtype.kind == "f":
        canonical = np.array(np.nan, a.dtype).view(bits.dtype)
        bits = np.where(np.isnan(a), canonical, bits)
    return bits


def same_bits(actual, expected) -> bool:
    """Equal dtype, shape and bit patterns (for workers that report, not assert)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    return (actual.dtype == expected.dtype and actual.shape == expected.shape
            and np.array_equal(_bits(actual), _bits(expected)))


def assert_same_bits(actual, expected, what="array"):
    """Equal dtype, shape and bit patterns: +0.0 and -0.0 differ, NaN equals
    NaN (any sign or payload), and float32 never passes for float64."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if actual.dtype.kind not in "fiu":
        raise TypeError(f"{what}: cannot compare bits of dtype {actual.dtype}")
    a, e = _bits(actual), _bits(expected)
    if not np.array_equal(a, e):
        where = np.argwhere(a != e)
        first = tuple(int(v) for v in where[0])
        raise AssertionError(
            f"{what}: {len(where)} of {a.size} elements differ in their bits; first at {first}: "
            f"{actual[first]!r} (bits {int(a[first]):#x}) != {expected[first]!r} "
            f"(bits {int(e[first]):#x})")


@contextlib.contextmanager
def parallel_threshold(work):
    """Temporarily set the work above which kernels run in parallel (0: always
    parallel, 2**62: always serial)."""
    from numba_pool import _threading

    old = _threading.PARALLEL_MIN_WORK
    _threading.PARALLEL_MIN_WORK = work
    try:
        yield
    finally:
        _threading.PARALLEL_MIN_WORK = old


def fork_while_held(lock, in_child, timeout=60.0):
    """Fork while another thread holds ``lock``; the child runs ``in_child()`` and
    exits 0.  Returns the child's exit code, or None if it was still running after
    ``timeout`` seconds (then killed): a child stuck on the inherited, held lock."""
    import os
    import threading
    import time

    held, release = threading.Event(), threading.Event()

    def holder():
        with lock:
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(30)
    pid = os.fork()
    if pid == 0:  # child
        try:
            in_child()
        finally:
            os._exit(0)
    release.set()
    t.join()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None
