"""Kernels against numba_pool.reference over the whole parameter space (hypothesis)."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numba_pool as npool
from numba_pool import _threading, reference
from strategies import make_input, pool_config, values

FLOATS = [np.float32, np.float64]
ALL_DTYPES = FLOATS + [np.float16, np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16,
                       np.uint32, np.uint64]


@contextlib.contextmanager
def parallel_threshold(work):
    old = _threading.PARALLEL_MIN_WORK
    _threading.PARALLEL_MIN_WORK = work
    try:
        yield
    finally:
        _threading.PARALLEL_MIN_WORK = old


def pool_both_ways(x, kwargs, dy_seed=0, parallel=True):
    """Forward/backward with the serial and the parallel kernel; check they agree bitwise."""
    results = []
    for threshold in ((2**62, 0) if parallel else (2**62, 2**62)):
        with parallel_threshold(threshold):
            y, am = npool.max_pool2d(x, **kwargs)
            dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(x.dtype)
            dx = npool.max_pool2d_backward(dy, am)
        results.append((y, am.offsets.copy(), dy, dx))
    (y, off, dy, dx), (y2, off2, _, dx2) = results
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(off, off2)
    np.testing.assert_array_equal(dx, dx2)
    return y, off, dy, dx


def assert_bits_equal(a, b):
    """Equal bit for bit: NaN in the same places, same sign of zero."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                  np.ascontiguousarray(b).view(np.uint8))


def check_against_reference(x, kwargs, parallel=True):
    y, off, dy, dx = pool_both_ways(x, kwargs, parallel=parallel)
    yr, amr = reference.max_pool2d(x, **kwargs)
    assert y.dtype == x.dtype and y.shape == yr.shape
    assert_bits_equal(y, yr)
    np.testing.assert_array_equal(off, amr.offsets)
    assert off.dtype == np.uint8
    dxr = reference.max_pool2d_backward(dy, amr)
    assert dx.dtype == x.dtype and dx.shape == x.shape
    # backward: same summation order as the reference, so bit-exact too
    assert_bits_equal(dx, dxr)


@given(cfg=pool_config(), dtype=st.sampled_from(FLOATS), data=st.data())
def test_float_kernels_match_reference(cfg, dtype, data):
    (n, c, h, w), kwargs = cfg
    x = make_input(data.draw(values((n, c, h, w), dtype)), kwargs["data_format"])
    check_against_reference(x, kwargs)


# Parallel drivers are dtype-independent code around the same row workers;
# checking them on a few dtypes keeps cold-cache compile time in bounds.
PARALLEL_CHECKED = (np.float32, np.float64, np.float16, np.uint8, np.int32)


@given(cfg=pool_config(max_hw=6), dtype=st.sampled_from(ALL_DTYPES), data=st.data())
def test_all_dtypes_match_reference(cfg, dtype, data):
    (n, c, h, w), kwargs = cfg
    x = make_input(data.draw(values((n, c, h, w), dtype)), kwargs["data_format"])
    check_against_reference(x, kwargs, parallel=dtype in PARALLEL_CHECKED)


@given(cfg=pool_config(), data=st.data())
def test_other_memory_layout_matches_reference(cfg, data):
    """NHWC data held in NCHW memory (and vice versa) gives the same results."""
    (n, c, h, w), kwargs = cfg
    nchw = data.draw(values((n, c, h, w), np.float32))
    fmt = kwargs["data_format"]
    # logical array in `fmt`, memory in the other layout
    x = nchw.transpose(0, 2, 3, 1) if fmt == "NHWC" else np.ascontiguousarray(
        nchw.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not x.flags.c_contiguous or min(n, c, h * w) <= 1
    y, _, _, dx = pool_both_ways(x, kwargs)
    yr, amr = reference.max_pool2d(np.ascontiguousarray(x), **kwargs)
    np.testing.assert_array_equal(y, yr)
    assert dx.shape == x.shape


@given(h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 4), data=st.data())
def test_window_as_large_as_the_input(h, w, c, data):
    x = data.draw(values((2, c, h, w), np.float64))
    for fmt in ("NHWC", "NCHW"):
        xin = make_input(x, fmt)
        check_against_reference(xin, dict(pool_size=(h, w), data_format=fmt))
        y, _ = npool.max_pool2d(xin, (h, w), data_format=fmt)
        assert y.shape == ((2, 1, 1, c) if fmt == "NHWC" else (2, c, 1, 1))


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_one_pixel_images(fmt):
    x = make_input(np.array([[[[3.0]], [[-1.0]]]], np.float32), fmt)  # N=1, C=2, 1x1
    y, am = npool.max_pool2d(x, 1, data_format=fmt)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(npool.max_pool2d_backward(np.ones_like(y), am), np.ones_like(x))
    check_against_reference(x, dict(pool_size=3, strides=1, padding=1, data_format=fmt))


def test_large_windows_use_wider_offsets():
    x = np.random.default_rng(1).standard_normal((1, 20, 20, 2))
    y, am = npool.max_pool2d(x, 17, 1)
    assert am.offsets.dtype == np.uint16
    yr, amr = reference.max_pool2d(x, 17, 1)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(am.offsets, amr.offsets)
    dy = np.ones_like(y)
    np.testing.assert_array_equal(npool.max_pool2d_backward(dy, am),
                                  reference.max_pool2d_backward(dy, amr))


def test_results_do_not_depend_on_thread_count():
    import numba

    x = np.random.default_rng(2).integers(0, 4, (3, 33, 35, 5)).astype(np.float32)
    kwargs = dict(pool_size=3, strides=1, padding="same")
    outs = []
    with parallel_threshold(0):
        for nt in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(nt)
            y, am = npool.max_pool2d(x, **kwargs)
            dx = npool.max_pool2d_backward(np.full(y.shape, 0.1, np.float32), am)
            outs.append((y, dx))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for y, dx in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(dx, outs[0][1])
