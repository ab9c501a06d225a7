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


def test_tf_indices_method_matches_max_pool_with_argmax():
    x = np.random.default_rng(2).standard_normal((3, 9, 10, 4)).astype(np.float32)
    for include in (False, True):
        _, idx = tf.nn.max_pool_with_argmax(x, 3, 2, "SAME", include_batch_in_index=include)
        _, am = npool.max_pool2d(x, 3, 2, "same")
        assert_same_bits(am.tf_indices(include_batch_in_index=include), idx.numpy())


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("k, s, padding", [(2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "SAME"),
                                           (4, 3, "SAME")])
def test_max_pool_1d_3d_match_tensorflow(rank, k, s, padding):
    rng = np.random.default_rng(rank)
    shape = (2, 13, 3) if rank == 1 else (2, 7, 6, 5, 3)
    ties = rng.integers(-3, 4, shape).astype(np.float32)  # values: a misplaced pad shows
    assert_same_bits(getattr(npool, f"max_pool{rank}d")(ties, k, s, padding)[0],
                     getattr(tf.nn, f"max_pool{rank}d")(ties, k, s, padding).numpy(), "ties y")
    # gradients on distinct values: TensorFlow's 3-D gradient breaks ties its own way
    x = (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.25).astype(np.float32)
    y, am = getattr(npool, f"max_pool{rank}d")(x, k, s, padding)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = getattr(tf.nn, f"max_pool{rank}d")(xt, k, s, padding)
    assert_same_bits(y, yt.numpy(), f"max_pool{rank}d y")
    assert_same_bits(getattr(reference, f"max_pool{rank}d")(x, k, s, padding)[0], yt.numpy(),
                     "reference y")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dxt = tape.gradient(yt, xt, output_gradients=tf.constant(dy)).numpy()
    dx = getattr(npool, f"max_pool{rank}d_backward")(dy, am)
    if rank == 3 and s < k:  # TensorFlow adds overlapping windows' shares in its own order
        # rounding bound of a sum of up to k**3 terms (each |.| <= max|dy|) in another order
        bound = k**3 * np.finfo(np.float32).eps * np.abs(dy).max() * k**3
        np.testing.assert_allclose(dx, dxt, rtol=0, atol=bound)
        np.testing.assert_array_equal(dx != 0, dxt != 0)
    else:
        assert_same_bits(dx, dxt, "dx")


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("k, s, padding", [(2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "SAME")])
def test_avg_pool_matches_tensorflow(rank, k, s, padding):
    """TensorFlow's average excludes padding under "same": our default for "same"."""
    rng = np.random.default_rng(10 + rank)
    shape = {1: (2, 13, 3), 2: (2, 9, 8, 3), 3: (2, 7, 6, 5, 3)}[rank]
    # float64 where TensorFlow's CPU kernel has it (not 3-D): differences far below 1e-12
    dtype, tol = (np.float32, 1e-6) if rank == 3 else (np.float64, 1e-12)
    x = rng.standard_normal(shape).astype(dtype)
    y = getattr(npool, f"avg_pool{rank}d")(x, k, s, padding)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = getattr(tf.nn, f"avg_pool{rank}d")(xt, k, s, padding)
    np.testing.assert_allclose(y, yt.numpy(), rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxt = tape.gradient(yt, xt, output_gradients=tf.constant(dy)).numpy()
    dx = getattr(npool, f"avg_pool{rank}d_backward")(dy, x.shape, k, s, padding)
    np.testing.assert_allclose(dx, dxt, rtol=tol, atol=tol)
