"""Arrays of more than 2**31 elements: 64-bit index arithmetic end to end (about 6 GB of RAM)."""

import numpy as np
import pytest

import numba_pool as npool


def test_more_than_2_31_elements():
    try:
        x = np.zeros((1, 2, 32769, 32768), np.uint8)  # 2**31 + 2**16 elements, NCHW
    except MemoryError:  # pragma: no cover - depends on the machine
        pytest.skip("not enough memory for a 2 GiB array")
    assert x.size > 2**31
    # marks near the very end, where 32-bit offsets would have wrapped
    x[0, 1, -2, -1] = 7
    x[0, 1, 32766, 5] = 9
    x[0, 1, -1, :4] = 3  # last row: outside every 2x2 window (odd height)
    y, am = npool.max_pool2d(x, 2, data_format="NCHW")
    assert y.shape == (1, 2, 16384, 16384)
    assert y[0, 1, -1, -1] == 7 and y[0, 1, 16383, 2] == 9
    assert int(y.sum(dtype=np.int64)) == 16
    dx = npool.max_pool2d_backward(np.ones(y.shape, np.uint8), am)
    assert dx.shape == x.shape
    assert dx[0, 1, -2, -1] == 1 and dx[0, 1, 32766, 5] == 1
    assert dx[0, 1, -1, :4].sum() == 0  # the uncovered last row gets no gradient
    assert int(dx[0, 1, -3:].sum(dtype=np.int64)) == 16384  # one winner per window of the last window row
