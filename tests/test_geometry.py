"""numba_pool.geometry alone, against tables worked out by hand.

Notation: output ``o`` reads input ``start[o] + i * dilation`` for taps
``lo[o] <= i < hi[o]``; input ``p`` lies in the span (first to last tap,
dilation gaps included) of outputs ``cover_lo[p] <= o < cover_hi[p]``; ``interior`` is the range of outputs whose
every tap is inside the input.  Each row below was computed on paper from the
published rules (PyTorch's output size and ceil_mode rule, TensorFlow's
"same"), not by running the code.
"""

import re

import numpy as np
import pytest

from numba_pool.geometry import axis_geometry, pool_geometry

# size, kernel, stride, dilation, padding, ceil_mode ->
#   (pad_before, pad_after), out, start, lo, hi, cover_lo, cover_hi, interior
HAND_WORKED = [
    # ResNet stem row: k3 s2 p1 on 7 -> floor((7 + 2 - 3) / 2) + 1 = 4
    ((7, 3, 2, 1, (1, 1), False), (1, 1), 4, [-1, 1, 3, 5], [1, 0, 0, 0], [3, 3, 3, 2],
     [0, 0, 1, 1, 2, 2, 3], [1, 2, 2, 3, 3, 4, 4], (1, 3)),
    # TF "same", k2 s2 on 5: out = ceil(5/2) = 3, total = 2*2 + 2 - 5 = 1 -> (0, 1)
    ((5, 2, 2, 1, "same", False), (0, 1), 3, [0, 2, 4], [0, 0, 0], [2, 2, 1],
     [0, 0, 1, 1, 2], [1, 1, 2, 2, 3], (0, 2)),
    # TF "same", k4 s1 on 6: total = 5 + 4 - 6 = 3 -> (1, 2): the odd unit goes after
    ((6, 4, 1, 1, "same", False), (1, 2), 6, [-1, 0, 1, 2, 3, 4], [1, 0, 0, 0, 0, 0],
     [4, 4, 4, 4, 3, 2], [0, 0, 0, 1, 2, 3], [2, 3, 4, 5, 6, 6], (1, 4)),
    # ceil_mode, k3 s2 p1 on 6: ceil((6 + 2 - 3) / 2) + 1 = 4; (4-1)*2 = 6 < 6 + 1 keeps it
    ((6, 3, 2, 1, (1, 1), True), (1, 1), 4, [-1, 1, 3, 5], [1, 0, 0, 0], [3, 3, 3, 1],
     [0, 0, 1, 1, 2, 2], [1, 2, 2, 3, 3, 4], (1, 3)),
    # ceil_mode drop rule, k2 s2 p1 on 5: ceil(5/2) + 1 = 4, but (4-1)*2 = 6 >= 5 + 1: 3
    ((5, 2, 2, 1, (1, 1), True), (1, 1), 3, [-1, 1, 3], [1, 0, 0], [2, 2, 2],
     [0, 1, 1, 2, 2], [1, 2, 2, 3, 3], (1, 3)),
    # ceil_mode without padding, k2 s2 on 5: the last window overhangs the input
    ((5, 2, 2, 1, "valid", True), (0, 0), 3, [0, 2, 4], [0, 0, 0], [2, 2, 1],
     [0, 0, 1, 1, 2], [1, 1, 2, 2, 3], (0, 2)),
    # the same without ceil_mode: floor((5 - 2) / 2) + 1 = 2, input 4 is read by nothing
    ((5, 2, 2, 1, "valid", False), (0, 0), 2, [0, 2], [0, 0], [2, 2],
     [0, 0, 1, 1, 2], [1, 1, 2, 2, 2], (0, 2)),
    # dilation 2, k3 s1 p2 on 7: extent 5, floor((7 + 4 - 5) / 1) + 1 = 7
    ((7, 3, 1, 2, (2, 2), False), (2, 2), 7, [-2, -1, 0, 1, 2, 3, 4], [1, 1, 0, 0, 0, 0, 0],
     [3, 3, 3, 3, 3, 2, 2], [0, 0, 0, 1, 2, 3, 4], [3, 4, 5, 6, 7, 7, 7], (2, 5)),
    # explicit asymmetric padding (0, 2), k3 s3 on 4: floor((4 + 2 - 3) / 3) + 1 = 2
    ((4, 3, 3, 1, (0, 2), False), (0, 2), 2, [0, 3], [0, 0], [3, 1],
     [0, 0, 0, 1], [1, 1, 1, 2], (0, 1)),
]


@pytest.mark.parametrize("args, pads, out, start, lo, hi, cover_lo, cover_hi, interior",
                         HAND_WORKED, ids=[str(row[0]) for row in HAND_WORKED])
def test_axis_geometry_matches_hand_worked_table(args, pads, out, start, lo, hi, cover_lo,
                                                 cover_hi, interior):
    g = axis_geometry(*args)
    assert (g.pad_before, g.pad_after) == pads
    assert g.out == out
    for name, want in (("start", start), ("lo", lo), ("hi", hi), ("cover_lo", cover_lo),
                       ("cover_hi", cover_hi)):
        np.testing.assert_array_equal(getattr(g, name), np.array(want, np.int64), err_msg=name)
    assert g.interior == interior


@pytest.mark.parametrize("args, message", [
    ((3, 2, 1, 4, (1, 1), False), "padding/dilation: axis output position 0 has a window"),
    ((6, 2, 2, 1, (2, 2), False), "padding: total axis padding 2+2 exceeds the window's extent 2"),
    ((2, 3, 1, 1, "valid", False), "pool_size: the axis window spans 3 elements"),
    ((3, 2, 1, 3, "valid", False), "pool_size: the axis window spans 4 elements"),
])
def test_axis_geometry_errors(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        axis_geometry(*args)


def test_tiles_exactly():
    assert axis_geometry(6, 2, 2, 1, "valid", False).tiles_exactly
    assert not axis_geometry(7, 2, 2, 1, "valid", False).tiles_exactly  # remainder
    assert axis_geometry(6, 2, 2, 1, "same", True).tiles_exactly  # "same" needs no padding here
    assert not axis_geometry(6, 2, 2, 2, "valid", False).tiles_exactly  # dilation gaps
    assert not axis_geometry(6, 3, 2, 1, (1, 1), False).tiles_exactly


def test_pool_geometry_combines_two_axes():
    g = pool_geometry((7, 5), (3, 2), (2, 2), (1, 1), ((1, 1), (0, 0)), False)
    assert g.output_size == (4, 2) and g.input_size == (7, 5)
    assert g.padding == ((1, 1), (0, 0)) and g.window_elements == 6
    assert g.pool_size == (3, 2) and g.strides == (2, 2) and g.dilation == (1, 1)
    same = pool_geometry((5, 6), (2, 4), (2, 1), (1, 1), "same", False)
    assert same.padding == ((0, 1), (1, 2)) and same.output_size == (3, 6)


@pytest.mark.parametrize("spatial, pool, stride, dil, pad, expected", [
    # rows read: {0,1}, {1,2,3}, {3,4,5}, {5,6}
    ((7, 4), (3, 1), (2, 1), (1, 1), ((1, 1), (0, 0)), [2, 4, 6, 7]),
    # rows read: {0,1}, {2,3}; row 4 is read by nothing (zeroed after the last row)
    ((5, 4), (2, 1), (2, 1), (1, 1), ((0, 0), (0, 0)), [2, 4]),
    # dilation 3 > stride 1: rows {0,3}, {1,4}, {2,5}, {3,6}
    ((7, 4), (2, 1), (1, 1), (3, 1), ((0, 0), (0, 0)), [4, 5, 6, 7]),
    # 3-D, depth 2 x height 3 flattened to rows d*3 + h: {0,1,3,4}, {1,2,4,5}
    ((2, 3, 4), (2, 2, 1), (1, 1, 1), (1, 1, 1), ((0, 0),) * 3, [5, 6]),
])
def test_rows_zeroed_before_each_output_row(spatial, pool, stride, dil, pad, expected):
    """zero_upto[r]: 1 + the last input row read by output rows up to r (the
    scatter zeroes dx rows below it before scattering row r)."""
    from numba_pool._rows import row_tables

    g = pool_geometry(spatial, pool, stride, dil, pad, False)
    assert row_tables(g).zero_upto.tolist() == expected
