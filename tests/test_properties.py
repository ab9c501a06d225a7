"""Kernels against numba_pool.reference over the whole parameter space (hypothesis)."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numba_pool as npool
from numba_pool import reference
from helpers import assert_same_bits, parallel_threshold
from strategies import layouts, make_input, pool_config, values

FLOATS = [np.float32, np.float64]
ALL_DTYPES = FLOATS + [np.float16, np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16,
                       np.uint32, np.uint64]


def default_dy(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def pool_both_ways(x, kwargs, dy=None, parallel=True):
    """Forward/backward with the serial and the parallel kernel; check they agree bitwise."""
    results = []
    for threshold in ((2**62, 0) if parallel else (2**62, 2**62)):
        with parallel_threshold(threshold):
            y, am = npool.max_pool2d(x, **kwargs)
            if dy is None:
                dy = default_dy(y.shape, x.dtype)
            dx = npool.max_pool2d_backward(dy, am)
        results.append((y, am, dx))
    (y, am, dx), (y2, am2, dx2) = results
    assert_same_bits(y2, y, "parallel y")
    assert_same_bits(am2.offsets, am.offsets, "parallel offsets")
    assert_same_bits(dx2, dx, "parallel dx")
    return y, am, dy, dx


def check_against_reference(x, kwargs, parallel=True, dy=None):
    """Kernels (serial and parallel) equal the reference bit for bit: y,
    offsets (dtype included), flat indices and dx; x may have any memory layout."""
    y, am, dy, dx = pool_both_ways(x, kwargs, dy=dy, parallel=parallel)
    yr, amr = reference.max_pool2d(x, **kwargs)
    assert_same_bits(y, yr, "y")
    assert_same_bits(am.offsets, amr.offsets, "offsets")
    assert_same_bits(am.flat_indices(), amr.flat_indices(), "flat indices")
    # backward: same summation order as the reference, so bit-exact too
    assert_same_bits(dx, reference.max_pool2d_backward(dy, amr), "dx")
    assert dx.shape == x.shape
    return y, am, dy, dx


@given(cfg=pool_config(), dtype=st.sampled_from(FLOATS), data=st.data())
def test_float_kernels_match_reference(cfg, dtype, data):
    """Any memory layout of x, and a dy holding +-0, NaN and +-inf."""
    (n, c, h, w), kwargs = cfg
    x = data.draw(layouts(data.draw(values((n, c, h, w), dtype)), kwargs["data_format"]))
    y_shape = npool.max_pool2d(x, **kwargs)[0].shape
    dy = make_input(data.draw(values(y_shape, dtype)), "NCHW")  # shape of y, any values
    check_against_reference(x, kwargs, dy=dy)


@given(cfg=pool_config(max_hw=24, max_pool=20), data=st.data())
def test_large_windows_match_reference(cfg, data):
    """Windows of up to 20x20 taps (uint16 offsets beyond 256 taps)."""
    (n, c, h, w), kwargs = cfg
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16, np.int16]))
    x = make_input(data.draw(values((min(n, 1), min(c, 2), h, w), dtype)), kwargs["data_format"])
    check_against_reference(x, kwargs, parallel=False)


@given(cfg=pool_config(), data=st.data())
def test_out_buffers_match_fresh_results(cfg, data):
    """out= (y, y with an earlier argmax, dx) gives the fresh results bit for bit."""
    (n, c, h, w), kwargs = cfg
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16, np.uint8]))
    fmt = kwargs["data_format"]
    x = make_input(data.draw(values((n, c, h, w), dtype)), fmt)
    y, am = npool.max_pool2d(x, **kwargs)
    dy = make_input(data.draw(values(y.shape, dtype)), "NCHW")
    dx = npool.max_pool2d_backward(dy, am)
    y_buf = np.full_like(y, 7)
    reuse = data.draw(st.booleans())
    earlier = npool.max_pool2d(make_input(data.draw(values((n, c, h, w), dtype)), fmt),
                               **kwargs)[1]
    y2, am2 = npool.max_pool2d(x, **kwargs, out=(y_buf, earlier) if reuse else y_buf)
    assert y2 is y_buf and (am2 is earlier) == reuse
    assert_same_bits(y_buf, y, "out y")
    assert_same_bits(am2.offsets, am.offsets, "out offsets")
    dx_buf = np.full_like(x, 3)
    assert npool.max_pool2d_backward(dy, am2, out=dx_buf) is dx_buf
    assert_same_bits(dx_buf, dx, "out dx")


# Parallel drivers are dtype-independent code around the same row workers;
# checking them on a few dtypes keeps cold-cache compile time in bounds.
PARALLEL_CHECKED = (np.float32, np.float64, np.float16, np.uint8, np.int32)


@given(cfg=pool_config(max_hw=6), dtype=st.sampled_from(ALL_DTYPES), data=st.data())
def test_all_dtypes_match_reference(cfg, dtype, data):
    (n, c, h, w), kwargs = cfg
    x = data.draw(layouts(data.draw(values((n, c, h, w), dtype)), kwargs["data_format"]))
    dy = make_input(data.draw(values(npool.max_pool2d(x, **kwargs)[0].shape, dtype)), "NCHW")
    check_against_reference(x, kwargs, parallel=dtype in PARALLEL_CHECKED, dy=dy)


@given(cfg=pool_config(), data=st.data())
def test_other_memory_layout_matches_reference(cfg, data):
    """NHWC data held in NCHW memory (and vice versa): y, offsets and dx bit for
    bit, and y and dx come back in the memory layout x had."""
    (n, c, h, w), kwargs = cfg
    nchw = data.draw(values((n, c, h, w), np.float32))
    fmt = kwargs["data_format"]
    # logical array in `fmt`, memory in the other layout
    x = nchw.transpose(0, 2, 3, 1) if fmt == "NHWC" else np.ascontiguousarray(
        nchw.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not x.flags.c_contiguous or min(n, c, h * w) <= 1
    y, am, _, dx = check_against_reference(x, kwargs)
    other = (0, 3, 1, 2) if fmt == "NHWC" else (0, 2, 3, 1)
    if x.flags.c_contiguous:  # one channel or one pixel: also in fmt's own layout, which wins
        assert y.flags.c_contiguous and dx.flags.c_contiguous
    else:
        assert y.transpose(other).flags.c_contiguous and dx.transpose(other).flags.c_contiguous


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
    assert_same_bits(y, x)
    assert_same_bits(npool.max_pool2d_backward(np.ones_like(y), am), np.ones_like(x))
    check_against_reference(x, dict(pool_size=3, strides=1, padding=1, data_format=fmt))


@pytest.mark.parametrize("pool, shape, offsets", [
    ((16, 16), (1, 20, 20, 2), np.uint8),      # 256 taps: offsets 0..255
    (17, (1, 20, 20, 2), np.uint16),           # 289 taps
    ((257, 256), (1, 258, 257, 1), np.uint32),  # 65792 taps
])
def test_offset_dtypes_at_their_limits(pool, shape, offsets):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    x[0, -1, -1, 0] = 100.0  # the last tap of the last window wins: the largest offset
    y, am = npool.max_pool2d(x, pool, 1)
    assert am.offsets.dtype == offsets
    check_against_reference(x, dict(pool_size=pool, strides=1), parallel=False)


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
        assert_same_bits(y, outs[0][0])
        assert_same_bits(dx, outs[0][1])


@given(cfg=pool_config(max_hw=7), c=st.integers(16, 70), dtype=st.sampled_from(FLOATS + [np.float16]),
       data=st.data())
def test_many_channels_few_images_match_reference(cfg, c, dtype, data):
    """Few images, many channels: the parallel scatter splits each image's
    channels into blocks (overlapping windows); every path bit for bit."""
    (n, _, h, w), kwargs = cfg
    kwargs = dict(kwargs, data_format="NHWC")
    x = data.draw(layouts(data.draw(values((min(n, 2), c, h, w), dtype)), "NHWC"))
    dy = make_input(data.draw(values(npool.max_pool2d(x, **kwargs)[0].shape, dtype)), "NCHW")
    check_against_reference(x, kwargs, dy=dy)


@settings(max_examples=25)
@given(data=st.data())
def test_large_few_channel_images_match_reference(data):
    """Images of 64 KiB and more with 1-4 channels and windows that do not
    overlap take the gather kernels (the specialised few-channel ones for
    2x2 and 3x3 windows) where a window row spans at most 8 elements (width x
    channels); 4x4 windows and wider rows the scatter."""
    k = data.draw(st.sampled_from([2, 3, (2, 3), 4]))
    pair = (k, k) if isinstance(k, int) else k
    strides = tuple(p + data.draw(st.integers(0, 1)) for p in pair)
    c = data.draw(st.integers(1, 4))
    fmt = data.draw(st.sampled_from(["NHWC", "NCHW"]))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    h, w = data.draw(st.integers(128, 136)), data.draw(st.integers(128, 136))
    padding = data.draw(st.sampled_from(["valid", "same", 0, 1]))
    kwargs = dict(pool_size=k, strides=strides, padding=padding, data_format=fmt)
    x = make_input(data.draw(values((1, c, h, w), dtype)), fmt)
    _, am = npool.max_pool2d(x, **kwargs)
    scatter = am._plan.backward_kind == "scatter"
    row = pair[1] * (c if fmt == "NHWC" else 1)  # a window row's elements in memory
    assert scatter == (k == 4 or row > 8)  # this test is about the gather
    check_against_reference(x, kwargs)


@settings(max_examples=30)
@given(k=st.sampled_from([5, 7]), overlap=st.sampled_from([1.0, 1.4, 2.5]),
       pad=st.booleans(), dilation=st.sampled_from([1, 2]), c=st.integers(5, 20),
       h=st.integers(7, 21), w=st.integers(7, 21), dtype=st.sampled_from(FLOATS),
       data=st.data())
def test_large_windows_with_many_channels(k, overlap, pad, dilation, c, h, w, dtype, data):
    """5x5 and 7x7 windows that overlap little have a specialised kernel (many
    channels), those that do not overlap the direct one: serial and parallel,
    with ties and padding, bit for bit."""
    from numba_pool import _kernels
    from numba_pool._plan import forward_key

    stride = max(1, int(np.ceil(k / overlap)))
    kwargs = dict(pool_size=k, strides=stride, padding=k // 2 if pad else 0, dilation=dilation,
                  ceil_mode=False, data_format="NHWC")
    if (h + 2 * kwargs["padding"] - dilation * (k - 1) - 1) < 0 or (
            w + 2 * kwargs["padding"] - dilation * (k - 1) - 1) < 0:
        return  # no output (ValueError, tested elsewhere)
    x = data.draw(values((2, c, h, w), dtype)).transpose(0, 2, 3, 1).copy()
    x[:, :2, :2] = 1.0  # ties inside windows
    y, am, _, _ = check_against_reference(x, kwargs)
    if stride >= k:
        assert am._plan.fwd is _kernels.direct_forward_kernel()
    else:
        assert forward_key(am._plan.geom, am._plan.C, am._plan.cdtype)[2] == k


@given(k=st.sampled_from([2, 3]), stride=st.sampled_from([1, 2, "k"]), pad=st.integers(0, 1),
       ceil=st.booleans(), c=st.sampled_from([1, 3, 8]), h=st.integers(3, 12),
       w=st.integers(3, 12), fmt=st.sampled_from(["NHWC", "NCHW"]),
       dtype=st.sampled_from(FLOATS), data=st.data())
def test_specialised_forward_with_and_without_border_code(k, stride, pad, ceil, c, h, w, fmt,
                                                          dtype, data):
    """A specialised forward kernel leaves its code for windows reaching outside x
    out exactly when no window does (``_plan.has_borders``), and either variant
    gives the reference's results bit for bit, serial and parallel."""
    from numba_pool import _kernels
    from numba_pool._plan import forward_key, has_borders

    stride = k if stride == "k" else stride  # (the strides few channels have kernels for)
    kwargs = dict(pool_size=k, strides=stride, padding=pad, dilation=1, ceil_mode=ceil,
                  data_format=fmt)
    try:
        reference.max_pool2d(np.zeros((1, h, w, 1) if fmt == "NHWC" else (1, 1, h, w)),
                             **kwargs)
    except ValueError:
        return  # no output, or a window with no element of x (tested elsewhere)
    x = make_input(data.draw(values((2, c, h, w), dtype)), fmt)
    _, am, _, _ = check_against_reference(x, kwargs)
    plan = am._plan
    key = forward_key(plan.geom, plan.C, plan.cdtype)
    assert key[2] == k
    borders = has_borders(plan.geom)
    assert borders == (pad > 0 or (ceil and any(a.interior != (0, a.out)
                                                for a in plan.geom.axes)))
    assert plan.fwd is _kernels.forward_kernel(*key, int(borders))
