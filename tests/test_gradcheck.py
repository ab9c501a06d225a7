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
    # values are 0.1 apart: the loss is linear on the scale of h, so no truncation error
    numeric = _numeric_gradient(loss, X, 1e-3)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)
    assert np.count_nonzero(analytic) > 0


def _numeric_gradient(loss, X, h):
    numeric = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        Xp = X.copy()
        Xp[idx] += h
        Xm = X.copy()
        Xm[idx] -= h
        numeric[idx] = (loss(Xp) - loss(Xm)) / (2 * h)
    return numeric


@pytest.mark.parametrize("rank, kwargs", [
    (1, dict(pool_size=3, strides=2, padding=1)),
    (3, dict(pool_size=2, strides=1, padding="same", data_format="NCDHW")),
    (3, dict(pool_size=(3, 2, 2), strides=2, padding=((1, 0), (0, 1), (1, 1)), ceil_mode=True)),
])
def test_numerical_gradient_max_pool_1d_3d(rank, kwargs):
    rng = np.random.default_rng(rank)
    shape = (2, 9, 2) if rank == 1 else (1, 2, 5, 4, 4)
    X = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.1
    fwd = getattr(npool, f"max_pool{rank}d")
    y, am = fwd(X, **kwargs)
    W = rng.standard_normal(y.shape)
    analytic = getattr(npool, f"max_pool{rank}d_backward")(W, am)
    numeric = _numeric_gradient(lambda Xv: float(np.sum(fwd(Xv, **kwargs)[0] * W)), X, 1e-3)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)
    assert np.count_nonzero(analytic) > 0


@pytest.mark.parametrize("name, args, kwargs", [
    ("avg_pool1d", (3, 2, 1), dict(ceil_mode=True)),
    ("avg_pool2d", (3, 1, "same"), dict(data_format="NCHW")),
    ("avg_pool2d", (2, 2, 1), dict(ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", (3, 2, 1), dict(divisor_override=5, dilation=(1, 2))),
    ("avg_pool3d", ((2, 3, 2), 1, ((1, 0), (1, 1), (0, 1))), {}),
    ("adaptive_avg_pool2d", ((3, 4),), {}),
    ("adaptive_avg_pool3d", (1,), dict(data_format="NCDHW")),
])
def test_numerical_gradient_average_pooling(name, args, kwargs):
    """Average pooling is linear: the central difference is exact up to rounding."""
    rank = int(name[-2])
    rng = np.random.default_rng(rank)
    shape = {1: (2, 9, 2), 2: (2, 7, 6, 2), 3: (1, 4, 5, 4, 2)}[rank]
    if kwargs.get("data_format", "").startswith("NC"):
        shape = (shape[0], shape[-1]) + shape[1:-1]
    X = rng.standard_normal(shape)
    fwd = getattr(npool, name)
    y = fwd(X, *args, **kwargs)
    W = rng.standard_normal(y.shape)
    back_args = () if name.startswith("adaptive") else args  # adaptive: sizes from dy
    analytic = getattr(npool, f"{name}_backward")(W, X.shape, *back_args, **kwargs)
    numeric = _numeric_gradient(lambda Xv: float(np.sum(fwd(Xv, *args, **kwargs) * W)), X, 1.0)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-9, atol=1e-12)
