"""The interleaving of channels-first plane blocks (``_kernels._planes_to_lanes``
and its inverse), tile by tile (``numba_pool._transpose``) for 4- and 8-byte
elements and element by element otherwise, against NumPy's transpose."""

import numpy as np
import pytest
from numba import njit

from numba_pool import _kernels, _transpose

LANES = _kernels.PLANE_LANES


@njit
def _interleave(src, base, V, n, dst):
    _kernels._planes_to_lanes(src, base, V, n, dst)


@njit
def _deinterleave(src, V, n, dst, base):
    _kernels._lanes_to_planes(src, V, n, dst, base)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint64, np.int16,
                                   np.uint8])
@pytest.mark.parametrize("V", [1, 7, 8, 13, 35, 64])
@pytest.mark.parametrize("n", [LANES, LANES - 1, 3])
def test_interleave_round_trip(dtype, V, n):
    """Every element lands where NumPy's transpose puts it, with planes that start
    past the array's beginning, a partial last tile (V not a multiple of the tile
    side), partial blocks (n < LANES: element by element) and nothing written
    outside the block."""
    base = 5
    rng = np.random.default_rng(V * 100 + n)
    src = rng.integers(0, 120, base + n * V + 3).astype(dtype)
    planes = src[base:base + n * V].reshape(n, V)

    lanes = np.full(V * n + 4, 77, dtype)
    _interleave(src, base, V, n, lanes)
    np.testing.assert_array_equal(lanes[:V * n].reshape(V, n), planes.T)
    assert (lanes[V * n:] == 77).all()

    back = np.full(base + n * V + 3, 99, dtype)
    _deinterleave(lanes, V, n, back, base)
    np.testing.assert_array_equal(back[base:base + n * V].reshape(n, V), planes)
    assert (back[:base] == 99).all() and (back[base + n * V:] == 99).all()


def test_tile_side():
    """Tiles of 32 bytes for 4- and 8-byte elements only."""
    assert [_transpose.tile_size(s) for s in (1, 2, 4, 8)] == [0, 0, 8, 4]
    assert LANES % _transpose.tile_size(4) == 0 and LANES % _transpose.tile_size(8) == 0


def test_float_bits_move_unchanged():
    """The tiles move bit patterns: -0.0, NaN payloads and infinities survive."""
    V, n = 11, LANES
    bits = np.random.default_rng(3).integers(0, 2**32, n * V, dtype=np.uint64).astype(np.uint32)
    bits[:4] = [0x80000000, 0x7FC00001, 0xFF800000, 0x7F800000]
    src = bits.view(np.float32)
    lanes = np.empty(V * n, np.float32)
    _interleave(src, 0, V, n, lanes)
    np.testing.assert_array_equal(lanes.view(np.uint32).reshape(V, n),
                                  bits.reshape(n, V).T)
