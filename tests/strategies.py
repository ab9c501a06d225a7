"""Hypothesis strategies over the whole max_pool2d parameter space."""

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from numba_pool import reference


@st.composite
def padding_for(draw, pool):
    kind = draw(st.sampled_from(["valid", "same", "SAME", "int", "pair", "explicit"]))
    if kind in ("valid", "same", "SAME"):
        return kind
    if kind == "int":
        return draw(st.integers(0, min(pool) // 2))
    if kind == "pair":
        return (draw(st.integers(0, pool[0] // 2)), draw(st.integers(0, pool[1] // 2)))
    return tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))


@st.composite
def pool_config(draw, max_hw=9, max_pool=4):
    """(x shape args, kwargs) for a configuration whose geometry is valid
    (as the reference, not the implementation, decides)."""
    pair = st.tuples(st.integers(1, max_pool), st.integers(1, max_pool))
    small = st.tuples(st.integers(1, 4), st.integers(1, 4))
    pool = draw(pair)
    strides = draw(st.one_of(st.none(), small, st.integers(1, 4)))
    dilation = draw(st.one_of(st.just(1), small))
    padding = draw(padding_for(pool))
    ceil_mode = draw(st.booleans())
    data_format = draw(st.sampled_from(["NHWC", "NCHW"]))
    n = draw(st.integers(0, 3))
    c = draw(st.integers(1, 5))
    h = draw(st.integers(1, max_hw))
    w = draw(st.integers(1, max_hw))
    try:
        reference.max_pool2d(np.zeros((1, h, w, 1)), pool, strides, padding, dilation=dilation,
                             ceil_mode=ceil_mode)
    except ValueError:
        assume(False)
    kwargs = dict(pool_size=pool, strides=strides, padding=padding, dilation=dilation,
                  ceil_mode=ceil_mode, data_format=data_format)
    return (n, c, h, w), kwargs


@st.composite
def values(draw, shape, dtype):
    """Arrays with many ties and, for floats, NaN and +-inf."""
    size = int(np.prod(shape))
    style = draw(st.sampled_from(["ties", "normal", "special"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = (info.min, info.max) if style == "normal" else (max(info.min, -2), min(info.max, 2))
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=dtype)
    if style == "ties":
        return rng.integers(-2, 3, size=shape).astype(dtype)
    a = rng.standard_normal(size).astype(dtype)
    if style == "special":
        specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
        mask = rng.random(size) < 0.3
        a[mask] = rng.choice(specials, mask.sum())
    return a.reshape(shape)


def make_input(nchw: np.ndarray, data_format: str) -> np.ndarray:
    return np.ascontiguousarray(nchw if data_format == "NCHW" else nchw.transpose(0, 2, 3, 1))


@st.composite
def layouts(draw, nchw: np.ndarray, data_format: str):
    """The logical array ``nchw`` in ``data_format``, held in one of many memory
    layouts: contiguous, the other layout's memory, Fortran order, a strided or
    reversed view of a larger array, byte-swapped."""
    logical = make_input(nchw, data_format)
    kind = draw(st.sampled_from(["contiguous", "other", "fortran", "strided", "reversed",
                                 "swapped"]))
    if kind == "contiguous":
        return logical
    if kind == "other":
        perm, back = ((0, 3, 1, 2), (0, 2, 3, 1)) if data_format == "NHWC" else (
            (0, 2, 3, 1), (0, 3, 1, 2))
        return np.ascontiguousarray(logical.transpose(perm)).transpose(back)
    if kind == "fortran":
        return np.asfortranarray(logical)
    if kind == "strided":
        big = np.zeros(tuple(2 * s for s in logical.shape), logical.dtype)
        big[::2, ::2, ::2, ::2] = logical
        return big[::2, ::2, ::2, ::2]
    if kind == "reversed":
        return np.ascontiguousarray(logical[:, ::-1, :, ::-1])[:, ::-1, :, ::-1]
    return logical.astype(logical.dtype.newbyteorder("S"))
