"""Numerical gradient of loss = sum(max_pool2d(X) * W) with respect to X (float64).

The seed differentiated sum(backward(...)), which does not depend on X; this
differentiates the real loss.
"""

import numpy as np
import pytest

import numba_pool as npool


@pytest.mark.parametrize("kwargs", [
    dict(pool_size=2),
    dict(pool_size=3, strides=2, padding=1),
    dict(pool_size=(2, 3), strides=1, padding="same"),
    dict(pool_size=2, strides=1, dilation=2, ceil_mode=True),
    dict(pool_size=3, strides=2, padding=((1, 0), (0, 2)), data_format="NCHW"),
])
def test_numerical_gradient(kwargs):
    rng = np.random.default_rng(0)
    shape = (2, 3, 7, 6) if kwargs.get("data_format") == "NCHW" else (2, 7, 6, 3)
    # distinct values far apart: no ties, so the loss is differentiable at X
    X = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.1
    y, am = npool.max_pool2d(X, **kwargs)
    W = rng.standard_normal(y.shape)

    def loss(Xv):
        return float(np.sum(npool.max_pool2d(Xv, **kwargs)[0] * W))

    analytic = npool.max_pool2d_backward(W, am)
    numeric = np.zeros_like(X)
    h = 1e-3  # values are 0.1 apart: the loss is linear on this scale, so no truncation error
    for idx in np.ndindex(X.shape):
        Xp = X.copy()
        Xp[idx] += h
        Xm = X.copy()
        Xm[idx] -= h
        numeric[idx] = (loss(Xp) - loss(Xm)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)
    assert np.count_nonzero(analytic) > 0
