"""Any memory layout, dtype and size of input gives the reference's results."""

import numpy as np
import pytest

import numba_pool as npool
from numba_pool import reference
from helpers import assert_same_bits

RNG = np.random.default_rng(7)
BASE = RNG.integers(-3, 4, (3, 9, 10, 4)).astype(np.float32)  # NHWC, many ties
KW = dict(pool_size=3, strides=2, padding=1)


def expected(x, **kw):
    y, am = reference.max_pool2d(np.ascontiguousarray(x), **{**KW, **kw})
    dy = np.arange(y.size, dtype=x.dtype).reshape(y.shape) % 7
    return y, dy, reference.max_pool2d_backward(dy, am)


@pytest.mark.parametrize("make", [
    lambda a: a[:, ::2, ::-1, 1:],                       # strided, negative strides
    lambda a: np.asfortranarray(a),                      # Fortran order
    lambda a: a.astype(a.dtype.newbyteorder(">")),       # byte-swapped
    lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1),  # NCHW memory
    lambda a: np.broadcast_to(a[:1], a.shape),            # zero strides, read-only
])
def test_unusual_layouts(make):
    x = make(BASE)
    y_ref, dy, dx_ref = expected(x)
    y, am = npool.max_pool2d(x, **KW)
    assert_same_bits(y, y_ref)
    dx = npool.max_pool2d_backward(dy, am)
    assert_same_bits(dx, dx_ref)
    assert dx.shape == x.shape and dx.dtype == np.float32


def test_read_only_input():
    x = BASE.copy()
    x.flags.writeable = False
    y_ref, dy, dx_ref = expected(x)
    y, am = npool.max_pool2d(x, **KW)
    dy.flags.writeable = False
    assert_same_bits(y, y_ref)
    assert_same_bits(npool.max_pool2d_backward(dy, am), dx_ref)


def test_memory_format_is_preserved():
    nchw_memory = np.ascontiguousarray(BASE.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    y, am = npool.max_pool2d(nchw_memory, **KW)
    assert y.transpose(0, 3, 1, 2).flags.c_contiguous  # y in NCHW memory too
    dx = npool.max_pool2d_backward(np.ones_like(y), am)
    assert dx.transpose(0, 3, 1, 2).flags.c_contiguous
    y2, _ = npool.max_pool2d(BASE, **KW)
    assert y2.flags.c_contiguous


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_empty_batch_and_empty_channels(fmt):
    for shape in [(0, 5, 5, 3), (2, 5, 5, 0)]:
        x = np.zeros(shape if fmt == "NHWC" else (shape[0], shape[3], shape[1], shape[2]))
        y, am = npool.max_pool2d(x, 2, data_format=fmt)
        assert y.size == 0 and y.shape == reference.max_pool2d(x, 2, data_format=fmt)[0].shape
        dx = npool.max_pool2d_backward(y, am)
        assert dx.shape == x.shape


def test_dy_layout_and_dtype_conversions():
    y, am = npool.max_pool2d(BASE, **KW)
    y_ref, dy, dx_ref = expected(BASE)
    for dy_variant in (dy.astype(np.float64).astype(np.float32), np.asfortranarray(dy),
                       dy.astype(np.int16), dy.tolist(), dy.astype(">f4")):
        assert_same_bits(npool.max_pool2d_backward(dy_variant, am), dx_ref)


def test_out_buffers_are_used_and_reused():
    y_buf = np.empty((3, 5, 5, 4), np.float32)
    y, am = npool.max_pool2d(BASE, **KW, out=y_buf)
    assert y is y_buf
    off_id = am.offsets.__array_interface__["data"][0]
    y2, am2 = npool.max_pool2d(BASE * 2, **KW, out=(y_buf, am))
    assert y2 is y_buf and am2 is am
    assert am2.offsets.__array_interface__["data"][0] == off_id
    assert_same_bits(y_buf, reference.max_pool2d(BASE * 2, **KW)[0])
    dx_buf = np.empty_like(BASE)
    dx = npool.max_pool2d_backward(np.ones_like(y_buf), am, out=dx_buf)
    assert dx is dx_buf
    _, amr = reference.max_pool2d(BASE * 2, **KW)
    assert_same_bits(dx_buf, reference.max_pool2d_backward(np.ones_like(y_buf), amr))


def test_float16_out_buffer():
    x = BASE.astype(np.float16)
    y_buf = np.empty((3, 5, 5, 4), np.float16)
    y, am = npool.max_pool2d(x, **KW, out=y_buf)
    assert y is y_buf
    assert_same_bits(y_buf, reference.max_pool2d(x, **KW)[0])


def test_argmax_metadata_and_flat_indices():
    y, am = npool.max_pool2d(BASE, **KW)
    assert am.input_shape == BASE.shape and am.output_shape == y.shape
    assert am.data_format == "NHWC" and am.dtype == np.float32
    assert am.geometry.pool_size == (3, 3) and am.geometry.padding == ((1, 1), (1, 1))
    assert am.offsets.dtype == np.uint8 and am.offsets.shape == y.shape
    flat = am.flat_indices()
    h, w = np.divmod(flat, BASE.shape[2])
    n, _, _, c = np.indices(y.shape)
    assert_same_bits(BASE[n, h, w, c], y)
    assert "MaxPoolArgmax(" in repr(am)
