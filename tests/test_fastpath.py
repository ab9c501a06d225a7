"""The per-call fast path (numba_pool._fastpath): a repeated call skips validation
and geometry, so everything that must not skip them is checked here: the fast
path runs (and gives the full path's results, bit for bit), and arguments that
compare equal to a remembered call's but are not the same (bools for ints,
NumPy ints, lists, floats, other strides, byte orders, dtypes, out=) never reach
it."""

import numpy as np
import pytest

import numba_pool as npool
from numba_pool import avgpool, maxpool
from helpers import assert_same_bits

RNG = np.random.default_rng(7)


def _fresh():
    maxpool._FAST.clear()
    avgpool._FAST.clear()


# (function, its call on x (forward) or on (dy, x.shape) (backward), fast-path cache)
CALLS = [
    ("max_pool2d", lambda x: npool.max_pool2d(x, 3, 2, 1)[0], maxpool._FAST),
    ("max_pool1d NCW", lambda x: npool.max_pool1d(np.ascontiguousarray(x[:, :, 0]), 2,
                                                  data_format="NCW")[0], maxpool._FAST),
    ("avg_pool2d", lambda x: npool.avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                              count_include_pad=False), avgpool._FAST),
    ("avg_pool3d NCDHW", lambda x: npool.avg_pool3d(x[..., None], (2, 2, 1), 1, "same",
                                                    data_format="NCDHW"), avgpool._FAST),
    ("adaptive_avg_pool2d NCHW", lambda x: npool.adaptive_avg_pool2d(
        x, (3, None), data_format="NCHW"), avgpool._FAST),
    ("avg_pool2d_backward", lambda x: npool.avg_pool2d_backward(
        np.ones((2, 4, 4, 3), x.dtype), x.shape, 3, 2, 1, divisor_override=5), avgpool._FAST),
    ("adaptive_avg_pool2d_backward", lambda x: npool.adaptive_avg_pool2d_backward(
        np.ones((2, 3, 2, 3), x.dtype), x.shape, data_format="NHWC"), avgpool._FAST),
]


@pytest.mark.parametrize("name, call, cache", CALLS, ids=[c[0] for c in CALLS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_calls_take_the_fast_path_and_agree_bitwise(name, call, cache, dtype):
    x = RNG.standard_normal((2, 7, 7, 3)).astype(dtype)
    x[0, 1, 1, 0] = np.nan
    _fresh()
    first = call(x)  # full path: validates, remembers the plan
    assert len(cache._plans) == 1, name
    plans = dict(cache._plans)
    again = call(x)  # fast path
    assert cache._plans == plans  # (nothing new: the remembered plan served it)
    assert_same_bits(again, first, name)
    assert again is not first and not np.shares_memory(again, first)
    view = np.asfortranarray(x)  # same values, other strides: a key of its own
    assert_same_bits(call(view), first, f"{name}, Fortran-ordered")


def test_arguments_equal_to_a_remembered_calls_are_still_validated():
    x = RNG.standard_normal((2, 8, 8, 3)).astype(np.float32)
    _fresh()
    npool.max_pool2d(x, 1)
    npool.avg_pool2d(x, 1)
    npool.avg_pool2d(x, 2, 2, 0, ceil_mode=False, count_include_pad=True)
    npool.avg_pool2d_backward(np.ones((2, 4, 4, 3), np.float32), (2, 8, 8, 3), 2)
    for _ in range(2):
        with pytest.raises(TypeError, match="pool_size"):
            npool.max_pool2d(x, True)  # True == 1 and hash(True) == hash(1)
        with pytest.raises(TypeError, match="pool_size"):
            npool.avg_pool2d(x, True)
    with pytest.raises(TypeError, match="ceil_mode"):
        npool.avg_pool2d(x, 2, 2, 0, ceil_mode=0, count_include_pad=True)
    with pytest.raises(TypeError, match="count_include_pad"):
        npool.avg_pool2d(x, 2, 2, 0, ceil_mode=False, count_include_pad=1)
    with pytest.raises(TypeError, match="pool_size"):
        npool.avg_pool2d(x, 2.0, 2, 0)
    with pytest.raises(ValueError, match="input_shape"):
        npool.avg_pool2d_backward(np.ones((2, 4, 4, 3), np.float32), (2, 8, 8), 2)
    with pytest.raises(ValueError, match="dy has shape"):
        npool.avg_pool2d_backward(np.ones((2, 4, 4, 2), np.float32), (2, 8, 8, 3), 2)
    # Equal values of other types take the full path and agree.
    for k in (np.int64(2), [2, 2]):
        assert_same_bits(npool.avg_pool2d(x, k), npool.avg_pool2d(x, 2))
        assert_same_bits(npool.max_pool2d(x, k)[0], npool.max_pool2d(x, 2)[0])


def test_other_dtypes_byte_orders_and_out_take_the_full_path():
    x = RNG.standard_normal((2, 6, 6, 3)).astype(np.float32)
    _fresh()
    for a in (x, x.astype(np.float16), x.astype(">f4"), x.astype(np.int32), x.astype(np.float64)):
        for _ in range(2):  # a second call is where a wrong fast path would show
            y = npool.avg_pool2d(a, 2)
            assert_same_bits(y, npool.reference.avg_pool2d(a, 2), f"avg {a.dtype}")
            dy = np.ones(y.shape, a.dtype)
            dx = npool.avg_pool2d_backward(dy, a.shape, 2)
            assert_same_bits(dx, npool.reference.avg_pool2d_backward(dy, a.shape, 2),
                             f"avg backward {a.dtype}")
    # Only the float32 and float64 calls were remembered (forward and backward each).
    assert sorted(str(k[1]) for k in avgpool._FAST._plans) == ["float32", "float32",
                                                               "float64", "float64"]
    out = np.empty((2, 3, 3, 3), np.float32)
    for _ in range(2):
        assert npool.avg_pool2d(x, 2, out=out) is out
    assert_same_bits(out, npool.reference.avg_pool2d(x, 2))
