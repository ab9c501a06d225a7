"""Hypothesis fuzz of the whole argument space; run in a subprocess by tests/test_fuzz.py.

Every call must either return exactly what numba_pool.reference returns, or
raise ValueError/TypeError (never a Numba error) whose message names a
parameter.  A segfault, abort or hang shows up as the subprocess dying.

usage: python fuzz.py MAX_EXAMPLES SEED
"""

import sys

import numpy as np
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
from helpers import same_bits  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import numba_pool as npool
from numba_pool import reference

COUNTS = {"ok": 0, "error": 0}
PARAMS = ("x", "pool_size", "strides", "padding", "dilation", "ceil_mode", "data_format", "dy",
          "argmax", "out")

DTYPES = ["float16", "float32", "float64", ">f4", ">f8", "<i2", ">i4", "int8", "uint8", "int16",
          "uint16", "int32", "uint32", "int64", "uint64", "bool", "complex64", "complex128",
          "object", "U2", "S3", "datetime64[s]", "timedelta64[s]", "longdouble"]

def mostly(good, bad, tenths_good=8):
    """Draw from ``good`` with probability ~tenths_good/10, else from ``bad``."""
    return st.integers(0, 9).flatmap(lambda i: good if i < tenths_good else bad)


ints = st.one_of(st.integers(-3, 6), st.sampled_from([0, 2**31, 2**63, -(2**40)]),
                 st.integers(1, 4).map(np.int64))
junk = st.sampled_from([None, 1.5, "2", b"2", True, False, [], (), [[1]], {}, np.float32(2.0),
                        float("nan"), complex(1, 1)])
small = st.integers(1, 3)
valid_pair = st.one_of(small, st.tuples(small, small))
int_param = mostly(valid_pair, st.one_of(ints, st.tuples(ints, ints), st.lists(ints, max_size=3),
                                         junk))
padding = mostly(st.one_of(
    st.sampled_from(["valid", "same", "VALID", "Same"]), st.integers(0, 1),
    st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
              st.tuples(st.integers(0, 2), st.integers(0, 2)))), st.one_of(
    st.sampled_from(["full", "", "causal"]),
    int_param,
    st.tuples(st.tuples(ints, ints), st.tuples(ints, ints)),
    st.tuples(st.tuples(ints, ints, ints), st.tuples(ints, ints)),
    st.tuples(st.tuples(ints, ints), ints),
))
data_format = mostly(st.sampled_from(["NHWC", "NCHW", "nchw", "channels_first", "channels_last"]),
                     st.one_of(st.sampled_from(["NHCW", "", "HWC"]), junk, ints))
ceil_mode = mostly(st.one_of(st.booleans(), st.just(np.bool_(True))),
                   st.sampled_from([0, 1, None, "True", 1.0]), 9)


@st.composite
def arrays(draw):
    ndim = draw(mostly(st.just(4), st.sampled_from([0, 1, 3, 5]), 9))
    sizes = mostly(st.integers(1, 7), st.integers(0, 2), 9)
    shape = tuple(draw(st.lists(sizes, min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(mostly(st.sampled_from(["float32", "float64"]), st.sampled_from(DTYPES),
                                 4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.integers(-3, 4, size=shape)
    if dtype.kind in "f" and draw(st.booleans()):
        base = base.astype(np.float64)
        base[rng.random(shape) < 0.2] = np.nan
        base[rng.random(shape) < 0.1] = np.inf
    try:
        a = base.astype(dtype)
    except (TypeError, ValueError):
        a = np.zeros(shape, dtype)
    how = draw(st.sampled_from(["plain", "strided", "transposed", "fortran", "readonly", "list",
                                "broadcast"]))
    if how == "strided" and a.ndim:
        big = np.repeat(a, 2, axis=-1)
        a = big[..., ::2]
    elif how == "transposed" and a.ndim == 4:
        a = np.ascontiguousarray(a.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    elif how == "fortran":
        a = np.asfortranarray(a)
    elif how == "readonly":
        a = a.copy()
        a.flags.writeable = False
    elif how == "broadcast" and a.ndim == 4 and a.shape[0] > 0:
        a = np.broadcast_to(a[:1], a.shape)
    elif how == "list":
        return a.tolist()
    return a


def assert_good_error(exc):
    assert isinstance(exc, (ValueError, TypeError)), repr(exc)
    assert not type(exc).__module__.startswith("numba"), repr(exc)
    msg = str(exc)
    assert any(p in msg for p in PARAMS), msg


def outcome(fn, *args, **kwargs):
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - classified by the caller
        assert_good_error(exc)
        return "error", type(exc)


same_array = same_bits  # bit patterns: -0.0 != +0.0, NaN == same NaN, dtype checked


@given(x=arrays(), pool=int_param, strides=mostly(st.none(), int_param, 5), padding=padding,
       dilation=mostly(st.just(1), int_param, 6), ceil=ceil_mode, fmt=data_format, data=st.data())
def fuzz(x, pool, strides, padding, dilation, ceil, fmt, data):
    kwargs = dict(dilation=dilation, ceil_mode=ceil, data_format=fmt)
    got = outcome(npool.max_pool2d, x, pool, strides, padding, **kwargs)
    want = outcome(reference.max_pool2d, x, pool, strides, padding, **kwargs)
    assert got[0] == want[0], (got, want)
    COUNTS[got[0]] += 1
    if got[0] == "error":
        assert got[1] is want[1], (got, want)
        return
    (y, am), (yr, amr) = got[1], want[1]
    assert same_array(y, yr)
    assert same_array(am.offsets, amr.offsets)

    # backward with a well-formed or a hostile dy
    dy_kind = data.draw(st.sampled_from(["good", "good", "shape", "complex", "list", "float64"]))
    if dy_kind == "good":
        dy = np.ones(y.shape, y.dtype)
    elif dy_kind == "shape":
        dy = np.ones(y.shape + (1,), y.dtype)
    elif dy_kind == "complex":
        dy = np.ones(y.shape, complex)
    elif dy_kind == "list":
        dy = np.ones(y.shape, y.dtype).tolist()
    else:
        dy = np.ones(y.shape, np.float64)
    # overwrite offsets with arbitrary values: must never escape dx
    if y.size and data.draw(st.booleans()):
        info = np.iinfo(am.offsets.dtype)
        junk_offsets = np.random.default_rng(0).integers(0, info.max, am.offsets.shape,
                                                         endpoint=True)
        am.offsets[...] = junk_offsets
        amr.offsets[...] = junk_offsets
    g = outcome(npool.max_pool2d_backward, dy, am)
    r = outcome(reference.max_pool2d_backward, dy, amr)
    assert g[0] == r[0], (g, r)
    if g[0] == "ok":
        assert same_array(g[1], r[1])
    else:
        assert g[1] is r[1]


if __name__ == "__main__":
    import resource

    # A runaway allocation must fail here, not take the machine's memory.
    limit = 6 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    n, s = int(sys.argv[1]), int(sys.argv[2])
    seed(s)(settings(max_examples=n, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))(fuzz))()
    print(f"forward calls: {COUNTS['ok']} returned, {COUNTS['error']} raised")
    assert COUNTS["ok"] >= n // 5, COUNTS  # the fuzz must reach the kernels often
    print("OK", n)
