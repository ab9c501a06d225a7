"""Against TensorFlow's max_pool2d when it is installed (the `bench` extra installs it).

TensorFlow has no dilation, ceil_mode or explicit max-pool padding on the CPU,
so only "valid"/"same" NHWC cases are compared; it also ignores NaN, so data
here is finite.
"""

import numpy as np
import pytest

import numba_pool as npool

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("k, s, padding", [(2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "SAME"),
                                           ((2, 3), (1, 2), "VALID"), (4, 3, "SAME")])
def test_forward_and_gradient_match_tensorflow(k, s, padding):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 11, 9, 3)).astype(np.float32)  # many ties
    y, am = npool.max_pool2d(x, k, s, padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = tf.nn.max_pool2d(xt, k, s, padding)
    np.testing.assert_array_equal(y, yt.numpy())
    dxt = tape.gradient(yt, xt, output_gradients=tf.constant(dy))
    np.testing.assert_array_equal(npool.max_pool2d_backward(dy, am), dxt.numpy())
