"""The seed notebook's worked examples, reproduced through every entry point."""

import numpy as np
import pytest

import numba_pool as npool
from numba_pool.compat import MaxPoolingLayer, max_pool_naive_backward
from helpers import assert_same_bits


def float_sequence(size):
    return np.arange(size, dtype=np.float32)


# Printed by the seed notebook (example 1: dX; examples 2 and 3: dX[0] by channel).
SEED_DX_1 = np.array([[0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0], [0, 3, 0, 4]], np.float32)
SEED_DX_2_BY_CHANNEL = np.array([
    [[0, 0, 0, 0], [0, 1, 0, 4], [0, 0, 0, 0], [0, 7, 0, 10]],
    [[0, 0, 0, 0], [0, 2, 0, 5], [0, 0, 0, 0], [0, 8, 0, 11]],
    [[0, 0, 0, 0], [0, 3, 0, 6], [0, 0, 0, 0], [0, 9, 0, 12]],
], np.float32)


def all_entry_points(X, dY, S=2):
    """dX from the API, the layer, the compat layer and the compat function."""
    y, am = npool.max_pool2d(X, S)
    yield npool.max_pool2d_backward(dY, am)
    layer = npool.MaxPool2D(S)
    layer.forward(X)
    yield layer.backward(dY)
    seed_layer = MaxPoolingLayer(stride=S)
    seed_layer.forward(X)
    yield seed_layer.backward(dY)
    yield max_pool_naive_backward(dY, X, S)


def test_example_1_single_channel():
    X = float_sequence(4 * 4).reshape(1, 4, 4, 1)
    dY = (float_sequence(2 * 2) + 1).reshape(1, 2, 2, 1)
    for dX in all_entry_points(X, dY):
        assert_same_bits(dX[0, :, :, 0], SEED_DX_1)


def test_example_2_multiple_channels():
    X = float_sequence(4 * 4 * 3).reshape(1, 4, 4, 3)
    dY = (float_sequence(2 * 2 * 3) + 1).reshape(1, 2, 2, 3)
    for dX in all_entry_points(X, dY):
        assert_same_bits(dX[0].transpose(2, 0, 1), SEED_DX_2_BY_CHANNEL)


def test_example_3_mini_batch():
    X = float_sequence(4 * 4 * 4 * 3).reshape(4, 4, 4, 3)
    dY = float_sequence(4 * 2 * 2 * 3).reshape(4, 2, 2, 3) + 1
    for dX in all_entry_points(X, dY):
        assert_same_bits(dX[0].transpose(2, 0, 1), SEED_DX_2_BY_CHANNEL)
        # every image's maxima sit at the bottom-right of each window
        expected = np.zeros_like(X)
        expected[:, 1::2, 1::2, :] = dY
        assert_same_bits(dX, expected)


def seed_max_pool_naive_backward(dY, X, S):
    """The seed notebook's own loops, verbatim in behaviour (mask credits ties)."""
    N_batch, H_in, W_in, C_in = X.shape
    dX = np.zeros_like(X)
    for n in range(N_batch):
        for h in range(H_in // S):
            for w in range(W_in // S):
                X_slice = X[n, h * S:h * S + S, w * S:w * S + S, :]
                mask = X_slice == np.max(X_slice, axis=(0, 1))
                dX[n, h * S:h * S + S, w * S:w * S + S, :] = mask * dY[n, h, w, :]
    return dX


@pytest.mark.parametrize("S, shape", [(2, (10, 8, 8, 3)), (3, (4, 30, 12, 6)), (5, (1, 100, 200, 16)),
                                      (2, (3, 7, 9, 2))])
def test_compat_matches_the_seed_without_ties(S, shape):
    rng = np.random.default_rng(S)
    X = rng.standard_normal(shape).astype(np.float32) * 45676.362342398
    dY = rng.standard_normal((shape[0], shape[1] // S, shape[2] // S, shape[3]))
    seed = seed_max_pool_naive_backward(dY, X, S)
    # The seed's `mask * dY` writes -0.0 where a negative gradient meets a
    # non-winner; numba_pool writes +0.0 there (a sum from zero, as PyTorch).
    # So: the seed's values, and the seed's bits once its zeros are made +0.0.
    seed_positive_zeros = np.where(seed == 0, 0.0, seed)
    layer = MaxPoolingLayer(stride=S)
    Y = layer.forward(X)
    assert Y.dtype == np.float64  # as the seed's np.zeros buffer
    for dX in (max_pool_naive_backward(dY, X, S), layer.backward(dY)):
        np.testing.assert_array_equal(dX, seed)
        assert_same_bits(dX, seed_positive_zeros)


def test_compat_ties_go_to_the_first_maximum_only():
    """The one documented difference from the seed."""
    X = np.zeros((1, 2, 2, 1), np.float32)  # four tied maxima
    dY = np.ones((1, 1, 1, 1), np.float32)
    seed = seed_max_pool_naive_backward(dY, X, 2)
    ours = max_pool_naive_backward(dY, X, 2)
    assert seed.sum() == 4  # the seed credits every tie
    assert_same_bits(ours[0, :, :, 0], np.array([[1, 0], [0, 0]], np.float32))


def test_compat_backward_before_forward_is_an_error():
    with pytest.raises(ValueError, match="dY"):
        MaxPoolingLayer(2).backward(np.ones((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="dy"):
        npool.MaxPool2D(2).backward(np.ones((1, 1, 1, 1)))
