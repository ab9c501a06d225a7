"""Every bad argument raises TypeError/ValueError naming the parameter."""

import re

import numpy as np
import pytest

import numba_pool as npool
from numba_pool import reference
from helpers import assert_same_bits

X = np.zeros((2, 6, 6, 3), np.float32)


@pytest.mark.parametrize("fn", [npool.max_pool2d, reference.max_pool2d])
@pytest.mark.parametrize("x, kwargs, exc, name", [
    (np.zeros((6, 6, 3)), {}, ValueError, "x must be 4-D"),
    (np.zeros((1, 1, 6, 6, 3)), {}, ValueError, "x must be 4-D"),
    (np.zeros((1, 0, 6, 3)), {}, ValueError, "x has zero-size"),
    (np.zeros((1, 6, 0, 3)), {}, ValueError, "x has zero-size"),
    (np.zeros((1, 3, 0, 6)), dict(data_format="NCHW"), ValueError, "x has zero-size"),
    (np.zeros((1, 4, 4, 1), complex), {}, TypeError, "x has complex"),
    (np.zeros((1, 4, 4, 1), bool), {}, TypeError, "x has dtype bool"),
    (np.zeros((1, 4, 4, 1), object), {}, TypeError, "x must have a real numeric"),
    (np.zeros((1, 4, 4, 1), "U3"), {}, TypeError, "x must have a real numeric"),
    (np.zeros((1, 4, 4, 1), "datetime64[s]"), {}, TypeError, "x must have a real numeric"),
    (np.zeros((1, 4, 4, 1), np.longdouble), {}, TypeError, "x must have a real numeric"),
    ("abc", {}, TypeError, "x must have a real numeric"),
    (np.ma.zeros((1, 4, 4, 1)), {}, TypeError, "x is a masked array"),
    ([[1, [2]]], {}, TypeError, "x must be an array"),
    (X, dict(pool_size=0), ValueError, "pool_size must be >= 1"),
    (X, dict(pool_size=-2), ValueError, "pool_size must be >= 1"),
    (X, dict(pool_size=(2, 0)), ValueError, "pool_size must be >= 1"),
    (X, dict(pool_size=2.0), TypeError, "pool_size must be an int"),
    (X, dict(pool_size="2"), TypeError, "pool_size must be an int"),
    (X, dict(pool_size=True), TypeError, "pool_size must be an int"),
    (X, dict(pool_size=None), TypeError, "pool_size must be an int"),
    (X, dict(pool_size=(2, 2, 2)), ValueError, "pool_size must be an int or a pair"),
    (X, dict(pool_size=7), ValueError, "pool_size: the height window"),
    (X, dict(pool_size=2**40), ValueError, "pool_size must be at most"),
    (X, dict(strides=0), ValueError, "strides must be >= 1"),
    (X, dict(strides=(1.5, 1)), TypeError, "strides must be an int"),
    (X, dict(strides=[1]), ValueError, "strides must be an int or a pair"),
    (X, dict(dilation=0), ValueError, "dilation must be >= 1"),
    (X, dict(dilation="x"), TypeError, "dilation must be an int"),
    (X, dict(dilation=6), ValueError, "pool_size: the height window spans 7"),
    (X, dict(padding="full"), ValueError, "padding must be 'valid', 'same'"),
    (X, dict(padding=2), ValueError, "padding must be at most half the pool size"),
    (X, dict(padding=(0, 2)), ValueError, "padding must be at most half the pool size"),
    (X, dict(padding=-1), ValueError, "padding must be >= 0"),
    (X, dict(padding=1.0), TypeError, "padding must be"),
    (X, dict(padding=None), TypeError, "padding must be"),
    (X, dict(padding=((1, 0), (0, -1))), ValueError, "padding must be non-negative"),
    (X, dict(padding=((1, 0, 1), (0, 1))), ValueError, "padding for the height"),
    (X, dict(padding=((1, 0), 1)), ValueError, "padding must be ((top, bottom)"),
    (X, dict(padding=((0, 4), (0, 0)), dilation=3), ValueError, "padding/dilation: height output position"),
    (X, dict(padding=((2, 2), (0, 0))), ValueError, "padding: total height padding 2+2 exceeds"),
    (X, dict(padding=((2**62, 0), (0, 0))), ValueError, "padding: total height padding"),
    (X, dict(ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
    (X, dict(ceil_mode=1), TypeError, "ceil_mode must be a bool"),
    (X, dict(data_format="NWHC"), ValueError, "data_format must be 'NHWC' or 'NCHW'"),
    (X, dict(data_format=None), TypeError, "data_format must be a string"),
])
def test_forward_argument_errors(fn, x, kwargs, exc, name):
    kwargs = dict(kwargs)
    pool = kwargs.pop("pool_size", 2)
    with pytest.raises(exc, match=re.escape(name)):
        fn(x, pool, **kwargs)


def test_window_with_no_element_names_the_parameters():
    # dilation 4 with padding 1: output 0's taps are at -1 and 3, outside a 3-pixel input
    x = np.zeros((1, 3, 3, 1), np.float32)
    with pytest.raises(ValueError, match="padding/dilation.*holds no element"):
        npool.max_pool2d(x, 2, 1, padding=1, dilation=4)


def test_accepted_spellings():
    y1, _ = npool.max_pool2d(X, (2, 2), [2, 2], "VALID", data_format="nhwc")
    y2, _ = npool.max_pool2d(X, np.int64(2), np.array([2, 2]), padding=np.int32(0),
                             data_format="channels_last")
    y3, _ = npool.max_pool2d(X.tolist(), 2)
    assert_same_bits(y1, y2)
    assert_same_bits(y1, y3.astype(np.float32))
    y4, _ = npool.max_pool2d(X.transpose(0, 3, 1, 2), 2, data_format="channels_first")
    assert_same_bits(y4, y1.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("fwd, bwd", [(npool.max_pool2d, npool.max_pool2d_backward),
                                      (reference.max_pool2d, reference.max_pool2d_backward)])
def test_backward_argument_errors(fwd, bwd):
    y, am = fwd(X, 2)
    with pytest.raises(ValueError, match="dy has shape"):
        bwd(np.zeros((2, 3, 3, 2), np.float32), am)
    with pytest.raises(ValueError, match="dy has shape"):
        bwd(np.zeros(y.shape[1:], np.float32), am)
    with pytest.raises(TypeError, match="dy has complex"):
        bwd(np.zeros(y.shape, complex), am)
    with pytest.raises(TypeError, match="dy has dtype float64, which cannot be cast"):
        _, am_int = fwd(X.astype(np.int32), 2)
        bwd(np.zeros(y.shape), am_int)
    with pytest.raises(TypeError, match="dy must have a real numeric"):
        bwd(np.zeros(y.shape, object), am)
    with pytest.raises(TypeError, match="argmax must be the"):
        bwd(y, np.zeros(y.shape, np.uint8))
    with pytest.raises(TypeError, match="argmax must be the"):
        bwd(y, None)
    other = (npool.max_pool2d if fwd is reference.max_pool2d else reference.max_pool2d)(X, 2)[1]
    with pytest.raises(TypeError, match="argmax must be the"):
        bwd(y, other)  # the package's and the reference's argmaxes do not mix


def test_argmax_cannot_be_constructed_or_corrupted():
    with pytest.raises(TypeError, match="MaxPoolArgmax is created by"):
        npool.MaxPoolArgmax(np.zeros(3))
    y, am = npool.max_pool2d(X, 2)
    am._offsets = am._offsets[:, :1]  # simulate tampering with private state
    with pytest.raises(ValueError, match="argmax is corrupted"):
        npool.max_pool2d_backward(y, am)


def test_layer_validates_at_construction():
    with pytest.raises(ValueError, match="pool_size"):
        npool.MaxPool2D(0)
    with pytest.raises(TypeError, match="strides"):
        npool.MaxPool2D(2, strides="1")
    with pytest.raises(ValueError, match="padding"):
        npool.MaxPool2D(2, padding=5)
    with pytest.raises(ValueError, match="data_format"):
        npool.MaxPool2D(2, data_format="HWC")
    with pytest.raises(TypeError, match="ceil_mode"):
        npool.MaxPool2D(2, ceil_mode=None)
    with pytest.raises(ValueError, match="dilation"):
        npool.MaxPool2D(2, dilation=-1)


def test_out_buffer_errors():
    y, am = npool.max_pool2d(X, 2)
    with pytest.raises(ValueError, match="out has shape"):
        npool.max_pool2d(X, 2, out=np.empty((2, 2, 2, 3), np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        npool.max_pool2d(X, 2, out=np.empty(y.shape, np.float64))
    with pytest.raises(TypeError, match="out must be a numpy array"):
        npool.max_pool2d(X, 2, out=[0])
    with pytest.raises(ValueError, match="out must be contiguous"):
        npool.max_pool2d(X, 2, out=np.empty((2, 3, 3, 6), np.float32)[..., ::2])
    ro = np.empty(y.shape, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        npool.max_pool2d(X, 2, out=ro)
    with pytest.raises(ValueError, match="out\\[1\\] was made for a different"):
        npool.max_pool2d(X, 3, out=(np.empty((2, 2, 2, 3), np.float32), am))
    with pytest.raises(TypeError, match="out\\[1\\] must be a MaxPoolArgmax"):
        npool.max_pool2d(X, 2, out=(np.empty(y.shape, np.float32), y))
    with pytest.raises(ValueError, match="out must be y or a"):
        npool.max_pool2d(X, 2, out=(y,))
    with pytest.raises(ValueError, match="out has shape"):
        npool.max_pool2d_backward(y, am, out=np.empty(y.shape, np.float32))
    x_alias = np.zeros((1, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        npool.max_pool2d(x_alias, 1, out=x_alias)


def _overlapping_cases():
    """(call, message) pairs where an output buffer overlaps an input or another output."""
    xu = np.random.default_rng(0).integers(0, 255, (1, 6, 6, 8)).astype(np.uint8)
    y2, am2 = npool.max_pool2d(xu, 2)
    y3, am3 = npool.max_pool2d(xu, 3, 1, "same")
    xf = np.random.default_rng(1).standard_normal((2, 6, 6, 3)).astype(np.float32)
    yf, amf = npool.max_pool2d(xf, 2)
    big = np.zeros((2, 6, 6, 3), np.float32)
    flat = np.random.default_rng(2).standard_normal(xf.size + yf.size).astype(np.float32)
    x_in_flat = flat[:xf.size].reshape(xf.shape)
    y_over_x_tail = flat[xf.size - 5:xf.size - 5 + yf.size].reshape(yf.shape)  # 5 shared
    return [
        # y written into the argmax's own offsets (both uint8, same shape)
        (lambda: npool.max_pool2d(xu, 2, out=(am2.offsets, am2)), "out[0] must not share memory with out[1]"),
        # x is the offsets buffer that the call writes
        (lambda: npool.max_pool2d(am3.offsets, 3, 1, "same", out=(np.empty_like(y3), am3)),
         "out[1] (the argmax offsets) must not share memory with x"),
        # y written over x (a view of the same memory)
        (lambda: npool.max_pool2d(x_in_flat, 2, out=y_over_x_tail), "out must not share memory with x"),
        (lambda: npool.max_pool2d(x_in_flat, 2, out=(y_over_x_tail, amf)),
         "out[0] must not share memory with x"),
        # backward: dx over dy, dx over the offsets
        (lambda: npool.max_pool2d_backward(big[:, :3, :3], amf, out=big),
         "out must not share memory with dy"),
    ]


@pytest.mark.parametrize("index", range(5))
def test_out_buffers_may_not_alias_inputs_or_each_other(index):
    call, message = _overlapping_cases()[index]
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_backward_out_may_not_alias_the_argmax():
    x = np.random.default_rng(0).integers(0, 255, (1, 4, 4, 2)).astype(np.uint8)
    y, am = npool.max_pool2d(x, 1)  # offsets have x's shape and dtype (uint8)
    before = am.offsets.copy()
    with pytest.raises(ValueError, match="out must not share memory with argmax"):
        npool.max_pool2d_backward(np.ones(y.shape, np.uint8), am, out=am.offsets)
    assert_same_bits(am.offsets, before)  # nothing was written


@pytest.mark.parametrize("call, name", [
    (lambda x: npool.max_pool2d(x, 46341), "pool_size"),
    (lambda x: npool.adaptive_max_pool2d(x, 1), "output_size"),
    (lambda x: npool.max_pool3d(np.empty((1, 1291, 1291, 1291, 1), np.int8), 1291),
     "pool_size"),
    (lambda x: npool.max_pool2d(np.empty((1, 32768, 65536, 1), np.int8), (32768, 65536)),
     "pool_size"),  # exactly 2**31
])
def test_windows_of_2_31_elements_or_more_are_refused(call, name):
    """The generic max forward keeps winning taps as int32: a window of 2**31
    or more elements is a clear ValueError, never a wrong argmax.  x is never
    touched (np.empty: no memory is written before the check).  (A 1-D
    window is already limited to 2**31 - 1 by pool_size's own check.)"""
    x = np.empty((1, 46341, 46341, 1), np.int8)  # 2**31 + 4281 elements
    with pytest.raises(ValueError, match=f"^{name}: a window of (2147488281|2151685171|2147483648) "
                                         "elements; max pooling supports windows of fewer "
                                         "than 2\\*\\*31"):
        call(x)
    small = np.zeros((1, 3, 3, 1), np.int8)  # the limit is on the window, not reached here
    assert npool.max_pool2d(small, 3)[0].item() == 0
