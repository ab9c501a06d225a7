"""Integer images and float16: supported, padding never wins, dtypes preserved."""

import numpy as np
import pytest

import numba_pool as npool
from helpers import assert_same_bits

INTS = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


@pytest.mark.parametrize("dtype", INTS + [np.float16])
def test_padding_acts_as_the_dtype_minimum(dtype):
    lowest = np.iinfo(dtype).min if np.dtype(dtype).kind in "iu" else -np.inf
    x = np.full((1, 3, 3, 2), lowest, dtype)
    x[0, 2, 2, 1] = 1
    y, am = npool.max_pool2d(x, 3, 1, padding="same")
    assert y.dtype == dtype
    assert (y[..., 0] == lowest).all()  # only real (minimum) values, never a pad value
    dy = np.ones(y.shape, dtype)
    dx = npool.max_pool2d_backward(dy, am)
    assert dx.dtype == dtype and dx.shape == x.shape
    # every gradient lands on a real element: nothing is lost in padding
    assert dx[..., 0].astype(np.int64).sum() == 9
    assert dx[0, 2, 2, 1] == 4  # four windows of the 3x3 output contain (2, 2)


def test_uint8_image_pooling():
    img = np.random.default_rng(0).integers(0, 256, (2, 31, 33, 3), dtype=np.uint8)
    y, am = npool.max_pool2d(img, 2)
    expected = img[:, :30, :32].reshape(2, 15, 2, 16, 2, 3).max(axis=(2, 4))
    assert_same_bits(y, expected)
    assert y.dtype == np.uint8


def test_integer_gradients_wrap_like_numpy():
    x = np.zeros((1, 2, 2, 1), np.int8)  # tie: the first element wins every window
    y, am = npool.max_pool2d(x, 2, 1, padding=((1, 0), (1, 0)))
    dx = npool.max_pool2d_backward(np.full(y.shape, 100, np.int8), am)
    # element (0, 0) wins all four windows: 400 wraps in int8 as NumPy does
    assert dx[0, 0, 0, 0] == np.int8(np.int64(400).astype(np.int8))


def test_float16_computes_exactly():
    x = (np.random.default_rng(1).standard_normal((2, 8, 8, 3)) * 1000).astype(np.float16)
    y, am = npool.max_pool2d(x, 3, 2, 1)
    assert y.dtype == np.float16
    y32, _ = npool.max_pool2d(x.astype(np.float32), 3, 2, 1)
    assert_same_bits(y, y32.astype(np.float16))
    dx = npool.max_pool2d_backward(np.ones(y.shape, np.float16), am)
    assert dx.dtype == np.float16 and dx.sum() == y.size
