"""Against TensorFlow's max_pool2d: the second, independent oracle for "same" padding.

TensorFlow is required: ``make test`` installs it, and a missing TensorFlow
fails this module.  The one documented opt-out is ``NUMBA_POOL_SKIP_TENSORFLOW=1``
(for platforms without a TensorFlow wheel); the run then reports the skip in
its summary.  ("same" padding is also checked against PyTorch on explicitly
padded input in test_torch.py, so the opt-out never leaves it unchecked.)

TensorFlow has no dilation, ceil_mode or explicit max-pool padding on the CPU,
so only "valid"/"same" NHWC cases are compared; it ignores NaN, so data
here is finite.
"""

import os

import numpy as np
import pytest

import numba_pool as npool
from numba_pool import reference
from helpers import assert_same_bits

if os.environ.get("NUMBA_POOL_SKIP_TENSORFLOW") == "1":
    pytest.skip("TensorFlow oracle skipped: NUMBA_POOL_SKIP_TENSORFLOW=1", allow_module_level=True)
try:
    import tensorflow as tf
except ImportError as exc:  # a missing oracle fails the run; it never skips silently
    raise ImportError(
        "TensorFlow is a required test oracle (make test installs tensorflow-cpu); "
        "set NUMBA_POOL_SKIP_TENSORFLOW=1 to run without it") from exc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, padding", [
    (2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "SAME"), ((2, 3), (1, 2), "VALID"), (4, 3, "SAME"),
    (2, 1, "SAME"), (5, 2, "SAME"), ((4, 1), (3, 1), "SAME"), (2, 3, "SAME"), (6, 4, "SAME"),
])
def test_forward_and_gradient_match_tensorflow(k, s, padding, dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 11, 9, 3)).astype(dtype)  # many ties: a misplaced pad shows
    y, am = npool.max_pool2d(x, k, s, padding)
    yr, amr = reference.max_pool2d(x, k, s, padding)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy[rng.random(y.shape) < 0.2] = -0.0
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = tf.nn.max_pool2d(xt, k, s, padding)
    assert_same_bits(y, yt.numpy(), "kernel y")
    assert_same_bits(yr, yt.numpy(), "reference y")
    dxt = tape.gradient(yt, xt, output_gradients=tf.constant(dy)).numpy()
    assert_same_bits(npool.max_pool2d_backward(dy, am), dxt, "kernel dx")
    assert_same_bits(reference.max_pool2d_backward(dy, amr), dxt, "reference dx")


@pytest.mark.parametrize("k, s, padding", [(3, 2, "SAME"), (2, 2, "VALID"), (4, 1, "SAME")])
def test_indices_match_tensorflow_max_pool_with_argmax(k, s, padding):
    """tf.nn.max_pool_with_argmax: flat (h * W + w) * C + c indices within each image."""
    x = np.random.default_rng(1).standard_normal((2, 9, 10, 4)).astype(np.float32)
    _, idx = tf.nn.max_pool_with_argmax(x, k, s, padding, include_batch_in_index=False)
    _, am = npool.max_pool2d(x, k, s, padding)
    c = np.arange(x.shape[3])
    assert_same_bits(am.flat_indices() * x.shape[3] + c, idx.numpy())
