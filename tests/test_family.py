"""The pooling family (1-D/3-D max, average, adaptive, global, unpooling, index
interop) against numba_pool.reference, bit for bit, over hypothesis-drawn
configurations of every rank and both layouts; serial and parallel kernels."""

import contextlib

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numba_pool as npool
from numba_pool import reference
from helpers import assert_same_bits, parallel_threshold

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}
MAX_SIDE = {1: 12, 2: 8, 3: 5}


# 1-6 channels (channels-first planes, RGB) and 8-19 (the channels-last kernels'
# blocks of 8 and their remainders)
CHANNELS = st.one_of(st.integers(1, 6), st.integers(8, 19))


def both_ways(fn):
    """fn() run with the serial and with the parallel kernels; both results."""
    out = []
    for work in (2**62, 0):
        with parallel_threshold(work):
            out.append(fn())
    return out


@st.composite
def padding_for(draw, pool, rank):
    kind = draw(st.sampled_from(["valid", "same", "int", "tuple", "explicit"]))
    if kind in ("valid", "same"):
        return kind
    if kind == "int":
        return draw(st.integers(0, min(pool) // 2))
    if kind == "tuple":
        return tuple(draw(st.integers(0, k // 2)) for k in pool)
    return tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))


@st.composite
def nd_config(draw, rank, max_pool=3):
    """(logical x shape, kwargs) of a max/avg pooling the reference accepts."""
    pool = tuple(draw(st.integers(1, max_pool)) for _ in range(rank))
    strides = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    dilation = draw(st.one_of(st.just(1), st.tuples(*[st.integers(1, 2)] * rank)))
    padding = draw(padding_for(pool, rank))
    ceil_mode = draw(st.booleans())
    fmt = draw(st.sampled_from(FORMATS[rank]))
    n, c = draw(st.integers(0, 2)), draw(CHANNELS)
    spatial = tuple(draw(st.integers(1, MAX_SIDE[rank])) for _ in range(rank))
    shape = (n,) + spatial + (c,) if fmt[-1] == "C" else (n, c) + spatial
    kwargs = dict(pool_size=pool, strides=strides, padding=padding, dilation=dilation,
                  ceil_mode=ceil_mode, data_format=fmt)
    try:
        getattr(reference, f"max_pool{rank}d")(np.zeros((1,) + spatial + (1,)), **dict(
            kwargs, data_format=FORMATS[rank][0]))
    except ValueError:
        assume(False)
    return shape, kwargs


def data_for(shape, dtype, seed, style):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 4, shape).astype(dtype)
    if style == "ties":
        return rng.integers(-2, 3, shape).astype(dtype)
    a = rng.standard_normal(shape).astype(dtype)
    if style == "special" and a.size:
        mask = rng.random(shape) < 0.2
        a[mask] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0], dtype), int(mask.sum()))
    return a


def other_memory(x, fmt):
    """x with the same logical shape, held in the other layout's memory."""
    r = x.ndim - 2
    if fmt[-1] == "C":
        to, back = (0, r + 1) + tuple(range(1, r + 1)), (0,) + tuple(range(2, r + 2)) + (1,)
    else:
        to, back = (0,) + tuple(range(2, r + 2)) + (1,), (0, r + 1) + tuple(range(1, r + 1))
    return np.ascontiguousarray(x.transpose(to)).transpose(back)


styles = st.sampled_from(["ties", "normal", "special"])


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_max_pool_every_rank_matches_reference(rank, data):
    shape, kw = data.draw(nd_config(rank))
    # (integer dtypes compile every kernel again: see test_integer_dtypes_every_rank)
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16]))
    x = data_for(shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    if data.draw(st.booleans()):
        x = other_memory(x, kw["data_format"])
    fwd = getattr(npool, f"max_pool{rank}d")
    bwd = getattr(npool, f"max_pool{rank}d_backward")
    (y, am), (y2, am2) = both_ways(lambda: fwd(x, **kw))
    yr, amr = getattr(reference, f"max_pool{rank}d")(x, **kw)
    assert_same_bits(y, yr, "y")
    assert_same_bits(y2, yr, "parallel y")
    assert_same_bits(am.offsets, amr.offsets, "offsets")
    assert_same_bits(am2.offsets, amr.offsets, "parallel offsets")
    assert_same_bits(am.flat_indices(), amr.flat_indices(), "flat indices")
    dy = data_for(y.shape, dtype, 1, data.draw(styles))
    dxr = getattr(reference, f"max_pool{rank}d_backward")(dy, amr)
    for dx in both_ways(lambda: bwd(dy, am)):
        assert_same_bits(dx, dxr, "dx")
    for u in both_ways(lambda: getattr(npool, f"max_unpool{rank}d")(y, am)):
        assert_same_bits(u, getattr(reference, f"max_unpool{rank}d")(yr, amr), "unpool")
    # PyTorch-style indices back to an argmax: the same offsets
    back = npool.argmax_from_flat_indices(am.flat_indices(), x.shape, dtype=dtype, **kw)
    assert_same_bits(back.offsets, am.offsets, "offsets from flat indices")


@st.composite
def adaptive_config(draw, rank):
    fmt = draw(st.sampled_from(FORMATS[rank]))
    n, c = draw(st.integers(0, 2)), draw(CHANNELS)
    spatial = tuple(draw(st.integers(1, MAX_SIDE[rank] + 3)) for _ in range(rank))
    out = tuple(draw(st.one_of(st.none(), st.integers(1, s + 2))) for s in spatial)
    if draw(st.booleans()):
        out = draw(st.integers(1, 4))
    shape = (n,) + spatial + (c,) if fmt[-1] == "C" else (n, c) + spatial
    return shape, out, fmt


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_adaptive_pooling_matches_reference(rank, data):
    shape, out, fmt = data.draw(adaptive_config(rank))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x = data_for(shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    (y, am), (y2, _) = both_ways(lambda: getattr(npool, f"adaptive_max_pool{rank}d")(
        x, out, data_format=fmt))
    yr, amr = getattr(reference, f"adaptive_max_pool{rank}d")(x, out, data_format=fmt)
    assert_same_bits(y, yr, "adaptive max y")
    assert_same_bits(y2, yr, "parallel adaptive max y")
    assert_same_bits(am.offsets, amr.offsets, "adaptive offsets")
    assert_same_bits(am.flat_indices(), amr.flat_indices(), "adaptive flat indices")
    dy = data_for(y.shape, dtype, 2, "normal")
    dxr = getattr(reference, f"max_pool{rank}d_backward")(dy, amr)
    for dx in both_ways(lambda: getattr(npool, f"max_pool{rank}d_backward")(dy, am)):
        assert_same_bits(dx, dxr, "adaptive max dx")

    ya = getattr(reference, f"adaptive_avg_pool{rank}d")(x, out, data_format=fmt)
    for y in both_ways(lambda: getattr(npool, f"adaptive_avg_pool{rank}d")(x, out,
                                                                            data_format=fmt)):
        assert_same_bits(y, ya, "adaptive avg y")
    dxr = getattr(reference, f"adaptive_avg_pool{rank}d_backward")(dy, x.shape, data_format=fmt)
    for dx in both_ways(lambda: getattr(npool, f"adaptive_avg_pool{rank}d_backward")(
            dy, x.shape, data_format=fmt)):
        assert_same_bits(dx, dxr, "adaptive avg dx")


def check_avg_against_reference(rank, data):
    """One drawn average pooling, forward and backward, serial and parallel,
    bit for bit the reference's."""
    shape, kw = data.draw(nd_config(rank))
    kw["count_include_pad"] = data.draw(st.sampled_from([None, True, False]))
    kw["divisor_override"] = data.draw(st.one_of(st.none(), st.integers(1, 7)))
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8]))
    x = data_for(shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    if data.draw(st.booleans()):
        x = other_memory(x, kw["data_format"])
    yr = getattr(reference, f"avg_pool{rank}d")(x, **kw)
    for y in both_ways(lambda: getattr(npool, f"avg_pool{rank}d")(x, **kw)):
        assert_same_bits(y, yr, "avg y")
    dy = data_for(yr.shape, yr.dtype, 3, data.draw(styles))
    dxr = getattr(reference, f"avg_pool{rank}d_backward")(dy, x.shape, **kw)
    for dx in both_ways(lambda: getattr(npool, f"avg_pool{rank}d_backward")(dy, x.shape, **kw)):
        assert_same_bits(dx, dxr, "avg dx")


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_avg_pool_every_rank_matches_reference(rank, data):
    check_avg_against_reference(rank, data)


@contextlib.contextmanager
def plan_settings(**settings):
    """``numba_pool._plan``'s kernel-selection constants (or functions) set as
    given, with every remembered plan (the plan caches and the per-call fast
    paths, which would otherwise serve plans made before) cleared around; yields
    the average pooling plans made meanwhile, so that tests can assert which
    kernels ran."""
    from numba_pool import _plan, avgpool, maxpool

    saved = {name: getattr(_plan, name) for name in settings}
    make_avg_plan = avgpool.avg_plan
    used = []

    def recording(*args, **kwargs):
        used.append(make_avg_plan(*args, **kwargs))
        return used[-1]

    def forget_plans():
        _plan.max_plan.cache_clear()
        _plan.avg_plan.cache_clear()
        maxpool._FAST.clear()
        avgpool._FAST.clear()

    forget_plans()
    for name, value in settings.items():
        setattr(_plan, name, value)
    avgpool.avg_plan = recording
    try:
        yield used
    finally:
        for name, value in saved.items():
            setattr(_plan, name, value)
        avgpool.avg_plan = make_avg_plan
        forget_plans()


def avg_runs_up_to(channels):
    """Channels-last average pooling in runs (AvgPlan.runs) only up to ``channels``
    channels."""
    return plan_settings(AVG_RUN_MAX_CHANNELS=channels)


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_avg_columns_match_reference(rank, data):
    """The per-column kernels of several channels (forward: each window's taps,
    four per pass; backward: each dx column gathering its windows' shares), also
    where width stride 1 would take the runs: bit for bit the reference's."""
    with avg_runs_up_to(1):
        check_avg_against_reference(rank, data)


def stride1_planes_everywhere():
    """Every average pooling of channels-first planes with stride 1 on every
    axis through the whole-plane kernels, whatever the plane's size; yields the
    plans numba_pool's average pooling used meanwhile."""
    return plan_settings(STRIDE1_PLANE_MAX_BYTES=1 << 62)


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_avg_stride1_planes_match_reference(rank, data):
    """The whole-plane average kernels (_avg_kernels.stride1_plane_kernel and
    its backward) on every rank, window, dilation, padding, ceil_mode, divisor
    rule and dtype with stride 1, channels-first, serial and parallel, with
    +-0, NaN and inf: bit for bit the reference's; the kernels are asserted to
    have run."""
    from numba_pool import _avg_kernels

    pool = tuple(data.draw(st.integers(1, 4)) for _ in range(rank))
    kw = dict(pool_size=pool, strides=1,
              padding=tuple(data.draw(st.integers(0, k // 2)) for k in pool),
              dilation=tuple(data.draw(st.integers(1, 2)) for _ in range(rank)),
              ceil_mode=data.draw(st.booleans()),
              data_format=data.draw(st.sampled_from([f for f in FORMATS[rank] if f[1] == "C"])),
              count_include_pad=data.draw(st.sampled_from([None, True, False])),
              divisor_override=data.draw(st.one_of(st.none(), st.integers(1, 7))))
    spatial = tuple(data.draw(st.integers(1, MAX_SIDE[rank] + 4)) for _ in range(rank))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 5))) + spatial
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16, np.int32]))
    x = data_for(shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    try:
        yr = getattr(reference, f"avg_pool{rank}d")(x, **kw)
    except ValueError:
        assume(False)
    dy = data_for(yr.shape, yr.dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    dxr = getattr(reference, f"avg_pool{rank}d_backward")(dy, x.shape, **kw)
    with stride1_planes_everywhere() as plans:
        for y in both_ways(lambda: getattr(npool, f"avg_pool{rank}d")(x, **kw)):
            assert_same_bits(y, yr, "avg y")
        for dx in both_ways(lambda: getattr(npool, f"avg_pool{rank}d_backward")(
                dy, x.shape, **kw)):
            assert_same_bits(dx, dxr, "avg dx")
    for p in plans:  # (one window over the whole plane: global pooling's own path)
        assert p.empty or p.whole or p.bwd is _avg_kernels.stride1_plane_backward_kernel(), kw


def test_avg_stride1_planes_selection():
    """Whole planes for channels-first data with stride 1 on every axis and
    padded planes up to STRIDE1_PLANE_MAX_BYTES; the per-row kernels elsewhere."""
    from numba_pool import _avg_kernels
    from numba_pool.warmup import _Call

    def fwd(shape, k, s, fmt="NCHW"):
        return _Call(shape, k, s, 1, data_format=fmt, op="avg").plan(np.float32).fwd

    planes = _avg_kernels.stride1_plane_kernel()
    assert fwd((8, 32, 28, 28), 3, 1) is planes
    assert fwd((8, 32, 28), 3, 1, fmt="NCW") is planes
    assert fwd((2, 4, 8, 28, 28), 3, 1, fmt="NCDHW") is planes
    assert fwd((2, 3, 320, 320), 3, 1) is planes  # 420 KB padded planes
    assert fwd((2, 3, 512, 512), 3, 1) is not planes  # 1 MB padded planes
    assert fwd((8, 32, 28, 28), 3, 2) is not planes  # stride 2
    assert fwd((8, 28, 28, 32), 3, 1, fmt="NHWC") is not planes  # channels-last


def adaptive_avg_blocks(on: bool):
    """Adaptive average pooling of channels-first planes in interleaved blocks
    (``on``) or side by side (off), whatever the windows; yields the plans
    numba_pool's average pooling used meanwhile."""
    return plan_settings(uses_adaptive_avg_blocks=lambda *args: on)


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_adaptive_avg_plane_blocks_match_reference(rank, data):
    """Adaptive average pooling of channels-first planes, both kernels (interleaved
    blocks of 16 planes, and planes side by side), on every rank, with plane counts
    on both sides of a block and past it, every dtype, +-0, NaN and inf: bit for bit
    the reference's, serial and parallel; the chosen kernels are asserted to have run."""
    from numba_pool import _avg_kernels

    spatial = tuple(data.draw(st.integers(1, MAX_SIDE[rank] + 6)) for _ in range(rank))
    out = tuple(data.draw(st.one_of(st.none(), st.integers(1, n + 1))) for n in spatial)
    planes = data.draw(st.sampled_from([(1, 1), (1, 3), (2, 8), (1, 16), (3, 6), (2, 17)]))
    shape = planes + spatial
    fmt = FORMATS[rank][1]
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16, np.int32]))
    x = data_for(shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    yr = getattr(reference, f"adaptive_avg_pool{rank}d")(x, out, data_format=fmt)
    dy = data_for(yr.shape, yr.dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    dxr = getattr(reference, f"adaptive_avg_pool{rank}d_backward")(dy, x.shape, data_format=fmt)
    for on in (True, False):
        with adaptive_avg_blocks(on) as plans:
            for y in both_ways(lambda: getattr(npool, f"adaptive_avg_pool{rank}d")(
                    x, out, data_format=fmt)):
                assert_same_bits(y, yr, f"adaptive avg y, blocks={on}")
            for dx in both_ways(lambda: getattr(npool, f"adaptive_avg_pool{rank}d_backward")(
                    dy, x.shape, data_format=fmt)):
                assert_same_bits(dx, dxr, f"adaptive avg dx, blocks={on}")
        blocks = (_avg_kernels.adaptive_plane_block_kernel(),
                  _avg_kernels.adaptive_plane_block_backward_kernel())
        for p in plans:
            if p.empty or not p.sequential_division:  # (global pooling: its own path)
                continue
            assert (p.fwd in blocks and p.bwd in blocks) == on, (on, shape, out)


def test_adaptive_avg_plane_blocks_selection():
    """Interleaved blocks of channels-first planes wherever a block fits in
    ADAPTIVE_AVG_BLOCK_MAX_BYTES (windows overlapping or tiling the input), from
    PLANE_BLOCK_MIN_PLANES planes on; planes side by side otherwise."""
    from numba_pool import _avg_kernels

    def fwd(shape, out, fmt="NCHW"):
        rank = len(shape) - 2
        with plan_settings() as plans:
            getattr(npool, f"adaptive_avg_pool{rank}d")(np.zeros(shape, np.float32), out,
                                                         data_format=fmt)
        return plans[0].fwd

    blocks = _avg_kernels.adaptive_plane_block_kernel()
    assert fwd((4, 32, 30, 30), 7) is blocks  # 30 -> 7: windows of 5, overlapping
    assert fwd((2, 8, 56, 56), (5, 9)) is blocks
    assert fwd((1, 8, 4, 14, 14), (3, 5, 5), "NCDHW") is blocks
    assert fwd((2, 8, 56, 56), 7) is blocks  # 56 -> 7 tiles the plane
    assert fwd((2, 8, 1000), 50, "NCW") is blocks
    assert fwd((1, 7, 30, 30), 7) is not blocks  # fewer than PLANE_BLOCK_MIN_PLANES planes
    assert fwd((1, 8, 224, 224), 7) is blocks  # a block of 3.2 MB
    assert fwd((2, 8, 300, 300), 7) is not blocks  # a block of 5.8 MB
    assert fwd((4, 30, 30, 32), 7, "NHWC") is not blocks  # channels-last


@pytest.mark.parametrize("fmt, shape, pool, strides, padding, dilation", [
    ("NHWC", (2, 9, 11, 130), 3, 1, 1, 1),  # past AVG_RUN_MAX_CHANNELS: columns
    ("NHWC", (2, 9, 11, 70), (2, 5), (1, 2), (1, 2), (1, 2)),
    ("NDHWC", (1, 4, 5, 6, 80), 3, (2, 1, 1), 1, 1),
    ("NWC", (3, 17, 66), 4, 1, 2, 2),  # runs, at the limit
])
def test_avg_many_channels_match_reference(fmt, shape, pool, strides, padding, dilation):
    """Channel counts past the property tests' 19, on both sides of
    AVG_RUN_MAX_CHANNELS, with padding not counted and counted."""
    rank = len(shape) - 2
    x = data_for(shape, np.float32, 5, "special")
    for include in (False, True):
        kw = dict(pool_size=pool, strides=strides, padding=padding, dilation=dilation,
                  data_format=fmt, count_include_pad=include)
        yr = getattr(reference, f"avg_pool{rank}d")(x, **kw)
        for y in both_ways(lambda: getattr(npool, f"avg_pool{rank}d")(x, **kw)):
            assert_same_bits(y, yr, "avg y")
        dy = data_for(yr.shape, yr.dtype, 6, "special")
        dxr = getattr(reference, f"avg_pool{rank}d_backward")(dy, x.shape, **kw)
        for dx in both_ways(lambda: getattr(npool, f"avg_pool{rank}d_backward")(
                dy, x.shape, **kw)):
            assert_same_bits(dx, dxr, "avg dx")


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_plane_blocks_match_reference(rank, data):
    """Channels-first planes max-pooled in interleaved blocks (_kernels.PLANE_LANES
    planes as channels, _plan.uses_plane_blocks: narrow rows, adaptive windows):
    plane counts from PLANE_BLOCK_MIN_PLANES across several blocks with a partial
    last one, serial and parallel, bit for bit; the block kernel is asserted to
    have run."""
    from numba_pool import _kernels, _plan

    _, kw = data.draw(nd_config(rank))
    fmt = kw["data_format"] = FORMATS[rank][1]
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 19))
    assume(n * c >= _plan.PLANE_BLOCK_MIN_PLANES)
    spatial = tuple(data.draw(st.integers(1, MAX_SIDE[rank])) for _ in range(rank))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x = data_for((n, c) + spatial, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    if data.draw(st.booleans()):
        out = tuple(data.draw(st.integers(1, s + 2)) for s in spatial)
        fwd = lambda: getattr(npool, f"adaptive_max_pool{rank}d")(x, out, data_format=fmt)  # noqa: E731
        yr, amr = getattr(reference, f"adaptive_max_pool{rank}d")(x, out, data_format=fmt)
    else:
        try:
            yr, amr = getattr(reference, f"max_pool{rank}d")(x, **kw)
        except ValueError:
            assume(False)
        fwd = lambda: getattr(npool, f"max_pool{rank}d")(x, **kw)  # noqa: E731
    blocks = _kernels.plane_block_forward_kernel()
    y, am = fwd()
    assert am._plan.fwd is not _kernels.forward_kernel(0, 0, 0, 0, 0, 0)
    assume(am._plan.fwd is blocks)  # specialised windows keep their kernels
    for y, am in both_ways(fwd):
        assert_same_bits(y, yr, "y")
        assert_same_bits(am.offsets, amr.offsets, "offsets")


def stride1_gather_everywhere():
    """Every max backward of overlapping windows with width stride 1 through the
    stride-1 gather, whatever its speed."""
    return plan_settings(STRIDE1_GATHER_MAX_TAP_BYTES=1 << 30, STRIDE1_GATHER_MIN_RUN=0,
                         TAP_GATHER_MAX_TAPS=0)


def width_stride1_case(rank, data, max_window, max_width, dtypes):
    """A drawn max pooling case with width stride 1 (windows 2 to ``max_window``
    wide, any row stride, dilation, padding, ceil_mode, layout, 1-9 channels,
    rows of up to ``max_width``): ``(shape, dtype, keywords)``."""
    pool = tuple(data.draw(st.integers(1, 4)) for _ in range(rank - 1)) + (
        data.draw(st.integers(2, max_window)),)
    strides = tuple(data.draw(st.integers(1, 3)) for _ in range(rank - 1)) + (1,)
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in pool)
    fmt = data.draw(st.sampled_from(FORMATS[rank]))
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 9))
    spatial = tuple(data.draw(st.integers(1, MAX_SIDE[rank] + 4)) for _ in range(rank - 1)) + (
        data.draw(st.integers(1, max_width)),)
    shape = (n,) + spatial + (c,) if fmt[-1] == "C" else (n, c) + spatial
    kw = dict(pool_size=pool, strides=strides, padding=padding, dilation=dilation,
              ceil_mode=data.draw(st.booleans()), data_format=fmt)
    return shape, data.draw(st.sampled_from(dtypes)), kw


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_stride1_gather_matches_reference(rank, data):
    """The backward gather in runs (_kernels.stride1_gather_kernel) on every
    rank, window, dilation, padding, row stride and layout with width stride 1,
    serial and parallel, with +-0, NaN and inf in x and dy: bit for bit the
    reference's sums (row-major window order); the kernel is asserted to have run."""
    shape, dtype, kw = width_stride1_case(rank, data, 5, MAX_SIDE[rank] + 4,
                                          [np.float32, np.float64, np.int32])
    check_max_backward_path(rank, data, shape, dtype, kw, stride1_gather_everywhere,
                            "stride-1 gather")


def tap_gather_everywhere():
    """Every max backward with width stride 1 (windows wider than 1) through the
    tap gather, whatever its speed or its number of taps."""
    return plan_settings(TAP_GATHER_MAX_TAPS=1 << 30, TAP_GATHER_MIN_INTERIOR=0,
                         TAP_GATHER_MIN_INTERIOR_PER_EDGE=0)


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_tap_gather_matches_reference(rank, data):
    """The register-summing gather (_kernels.tap_gather_kernel) on every rank,
    window, dilation, padding (and ceil_mode), row stride and layout with
    width stride 1, serial and parallel, with +-0, NaN and inf in x and dy:
    bit for bit the reference's sums (row-major window order); the kernel is
    asserted to have run.  Rows of up to 40 elements, so that both the
    kernel's blocks of every-tap-inside elements and its checked edges run."""
    shape, dtype, kw = width_stride1_case(rank, data, 6, 40,
                                          [np.float32, np.float64, np.int32, np.uint8])
    check_max_backward_path(rank, data, shape, dtype, kw, tap_gather_everywhere, "tap gather")


def check_max_backward_path(rank, data, shape, dtype, kw, forcing, kind):
    """A drawn x and dy for max pooling with ``kw``; inside the context
    ``forcing``, numba_pool's backward is asserted to take ``kind`` (else the
    example is dropped: windows that do not overlap) and to give the
    reference's dx bit for bit, serial and parallel."""
    x = data_for(shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    try:
        yr, amr = getattr(reference, f"max_pool{rank}d")(x, **kw)
    except ValueError:
        assume(False)
    dy = data_for(yr.shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    dxr = getattr(reference, f"max_pool{rank}d_backward")(dy, amr)
    backward = getattr(npool, f"max_pool{rank}d_backward")
    with forcing():
        _, am = getattr(npool, f"max_pool{rank}d")(x, **kw)
        assume(am._plan.backward_kind == kind)
        for dx in both_ways(lambda: backward(dy, am)):
            assert_same_bits(dx, dxr, "dx")


def plane_gather_everywhere():
    """Every max backward of channels-first planes with stride 1 on every axis
    through the plane gather, whatever its speed, the window, the plane's size
    or the dtype (float16 aside: its sums need the scatter's rounding)."""
    return plan_settings(
        PLANE_GATHER_MAX_TAPS=1 << 30, PLANE_GATHER_MAX_TAP_BYTES=1 << 62,
        PLANE_GATHER_MAX_TAPS_X_BYTES=1 << 30,
        PLANE_GATHER_DTYPES=tuple(np.dtype(t) for t in (np.float32, np.float64, np.int32,
                                                          np.uint8)),
        STRIDE1_GATHER_MAX_TAP_BYTES=0, TAP_GATHER_MAX_TAPS=0)


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_plane_gather_matches_reference(rank, data):
    """The whole-plane gather (_kernels.plane_gather_kernel) on every rank,
    window, dilation, padding (and ceil_mode) with stride 1, serial and
    parallel, with +-0, NaN and inf in x and dy: bit for bit the reference's
    sums; the kernel is asserted to have run."""
    pool = tuple(data.draw(st.integers(1, 4)) for _ in range(rank))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in pool)
    fmt = data.draw(st.sampled_from([f for f in FORMATS[rank] if f[1] == "C"]))
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 5))
    spatial = tuple(data.draw(st.integers(1, MAX_SIDE[rank] + 4)) for _ in range(rank))
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32, np.uint8]))
    kw = dict(pool_size=pool, strides=1, padding=padding, dilation=dilation,
              ceil_mode=data.draw(st.booleans()), data_format=fmt)
    check_max_backward_path(rank, data, (n, c) + spatial, dtype, kw, plane_gather_everywhere,
                            "plane gather")


def backward_kind(shape, *args, fmt=None, dtype=np.float32):
    """Which max backward kernel a configuration takes (``fmt``: channels-first
    by default)."""
    rank = len(shape) - 2
    fmt = fmt or FORMATS[rank][1]
    x = np.zeros(shape, dtype)
    return getattr(npool, f"max_pool{rank}d")(x, *args, data_format=fmt)[1]._plan.backward_kind


def test_tap_gather_selection():
    """The tap gather wherever the width stride is 1, windows have up to 9 taps
    per dx element and rows are long enough that elements with a column tap
    outside the output row (summed with every tap checked) are few."""
    t, kind = "tap gather", backward_kind
    assert kind((2, 8, 96, 96), 3, 1, 1) == t  # 94 of 96 elements every tap inside
    assert kind((2, 8, 64, 64), 3, 1, 1) == t
    assert kind((2, 8, 32, 32), 2, 1, 1) == t  # every element
    assert kind((2, 8, 32, 32), 2, 1, 1, dtype=np.float64) == t
    assert kind((2, 3, 64, 384), 3, (2, 1), 1) == t  # 2 output rows x 3 taps
    assert kind((2, 8, 200), 5, 1, 2) == t
    assert kind((2, 64, 64, 3), 3, 1, 1, fmt="NHWC") == t
    assert kind((2, 400, 128), 3, 1, fmt="NWC") == t
    assert kind((2, 8, 6, 8, 64), 2, 1, fmt="NCDHW") == t  # 4 output rows x 2 taps
    assert kind((2, 8, 32, 32), 3, 1, 1) == "plane gather"  # 2 edge elements in 32
    assert kind((2, 8, 48, 48), 3, 1, 1) == "plane gather"  # 2 in 48
    assert kind((2, 14, 14, 512), 3, 1, 1, fmt="NHWC") == "scatter"  # 2 x 512 in 14 x 512
    assert kind((2, 3, 64, 384), 5, 1, 2) == "scatter"  # 25 taps
    assert kind((2, 3, 64, 384), 5, (2, 1), 2) == "scatter"  # 3 output rows x 5 taps
    assert kind((2, 3, 64, 384), 3, (1, 2), 1) == "scatter"  # width stride 2
    assert kind((2, 3, 64, 384), 3, 1, 1, dtype=np.float16) == "scatter"  # rounding


def test_plane_gather_selection():
    """The plane gather where measured faster: channels-first planes, stride 1,
    up to 9 taps of float32 or 4 of float64, small padded planes, rows too
    short for the tap gather."""
    p, kind = "plane gather", backward_kind
    assert kind((2, 8, 32, 32), 3, 1, 1) == p
    assert kind((2, 8, 32, 32), (3, 2), 1) == p
    assert kind((2, 8, 50), 3, 1, 1) == p
    assert kind((2, 8, 8, 16, 16), 2, 1) == p
    assert kind((2, 8, 14, 14), 2, 1, 1) == p
    assert kind((2, 8, 32, 32), 5, 1, 2) == "scatter"  # 25 taps
    assert kind((2, 8, 128, 40), 3, 1) == "scatter"  # 9 taps x 160 KB
    assert kind((2, 8, 32, 32), 3, 1, 1, dtype=np.float64) == "scatter"  # 9 x 8 bytes
    assert kind((2, 8, 14, 14), 2, 1, 1, dtype=np.float64) == p  # 4 x 8 bytes
    assert kind((2, 8, 40, 40), 2, 1, dtype=np.float64) == p
    assert kind((2, 8, 32, 32), 3, (2, 1), 1) == "scatter"  # row stride 2
    assert kind((2, 32, 32, 8), 3, 1, 1, fmt="NHWC") != p


def test_stride1_gather_selection():
    """The stride-1 gather where the tap gather does not run and it measured
    faster (few taps of narrow elements, long runs), the scatter or the channel
    gather elsewhere."""
    g, kind = "stride-1 gather", backward_kind
    assert kind((1, 14, 14, 512), 2, 1, fmt="NHWC") == g  # 512 edge elements in 14 x 512
    assert kind((1, 8, 32, 64), 2, 1, fmt="NHWC") == g  # 64 in 32 x 64
    assert kind((1, 14, 14, 512), 3, 1, 1, fmt="NHWC") == "scatter"  # 9 taps
    assert kind((1, 14, 14, 512), 2, 1, fmt="NHWC", dtype=np.float64) == "scatter"  # 8 bytes
    assert kind((1, 14, 14, 512), 2, 1, fmt="NHWC", dtype=np.float16) == "scatter"  # rounding
    assert kind((1, 3, 128, 384), 2, 2) == "gather"  # no overlap
    assert kind((1, 3, 8, 384), (2, 2), (1, 2)) != g  # width stride 2


def direct_forward_everywhere():
    """Every max forward with 5+ channels (the kernels' C) and regular windows through
    the direct kernel, whatever the window's overlap or shape."""
    return plan_settings(DIRECT_FORWARD_MAX_VISITS=float("inf"),
                         forward_key=lambda geom, channels, dtype: (0,) * 6)


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_direct_forward_matches_reference(rank, data):
    """The direct forward (_kernels.direct_forward_kernel: window by window, the
    running maximum kept in y) on every rank, window, stride, dilation, padding and
    ceil_mode, channels-last with 5+ channels, serial and parallel, with ties, +-0,
    NaN and inf: values and offsets bit for bit the reference's; the kernel is
    asserted to have run."""
    from numba_pool import _kernels

    pool = tuple(data.draw(st.integers(1, 4)) for _ in range(rank))
    kw = dict(pool_size=pool, strides=tuple(data.draw(st.integers(1, 4)) for _ in range(rank)),
              padding=data.draw(padding_for(pool, rank)),
              dilation=tuple(data.draw(st.integers(1, 2)) for _ in range(rank)),
              ceil_mode=data.draw(st.booleans()), data_format=FORMATS[rank][0])
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(5, 12))
    shape = (n,) + tuple(data.draw(st.integers(1, MAX_SIDE[rank] + 4))
                         for _ in range(rank)) + (c,)
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8]))
    x = data_for(shape, dtype, data.draw(st.integers(0, 2**31)), data.draw(styles))
    try:
        yr, amr = getattr(reference, f"max_pool{rank}d")(x, **kw)
    except ValueError:
        assume(False)
    with direct_forward_everywhere():
        for y, am in both_ways(lambda: getattr(npool, f"max_pool{rank}d")(x, **kw)):
            assert am._plan.fwd is _kernels.direct_forward_kernel()
            assert_same_bits(y, yr, "y")
            assert_same_bits(am.offsets, amr.offsets, "offsets")


def test_direct_forward_selection():
    """The direct forward where measured faster: 5+ channels, no specialised kernel
    or windows of 5 and 7 that do not overlap, each input element in at most 6
    windows; the generic row pass with more overlap, few channels or adaptive
    windows."""
    from numba_pool import _kernels

    direct = _kernels.direct_forward_kernel()

    def fwd(shape, *args, fmt="NHWC", rank=2, dtype=np.float32):
        fn = getattr(npool, f"max_pool{rank}d")
        return fn(np.zeros(shape, dtype), *args, data_format=fmt)[1]._plan.fwd

    assert fwd((2, 32, 32, 64), (3, 2), (3, 2)) is direct
    assert fwd((2, 32, 32, 64), (3, 2), 1, 1) is direct  # 6 visits
    assert fwd((2, 32, 32, 64), 4, 2, 1, dtype=np.float64) is direct
    assert fwd((2, 35, 35, 8), 5, 5, 2) is direct
    assert fwd((2, 35, 35, 8), 7, 7) is direct
    assert fwd((2, 400, 16), 5, 1, 2, fmt="NWC", rank=1) is direct
    assert fwd((2, 8, 16, 16, 8), (2, 3, 3), (2, 3, 3), fmt="NDHWC", rank=3) is direct
    assert fwd((2, 35, 35, 8), 5, 3) is not direct  # the specialised 5x5 kernel
    assert fwd((2, 32, 32, 64), 3, 2, 1) is not direct  # the specialised 3x3 kernel
    assert fwd((2, 32, 32, 64), 6, 2) is not direct  # 9 visits
    assert fwd((2, 32, 32, 64), 4, 1) is not direct  # 16 visits
    assert fwd((2, 32, 32, 3), (3, 2), (3, 2)) is not direct  # 3 channels
    assert fwd((2, 64, 32, 32), (3, 2), (3, 2), fmt="NCHW") is not direct  # planes
    adaptive = npool.adaptive_max_pool2d(np.zeros((2, 30, 30, 64), np.float32), 7)[1]
    assert adaptive._plan.fwd is not direct


def test_masked_scatter_selection():
    """The masked scatter (one bit mask per output row and column) for windows of up to
    MASKED_SCATTER_MAX_TAPS taps, not float16, in either layout; the general scatter
    elsewhere.  Few-channel windows whose rows span more than GATHER_MAX_WINDOW_ROW
    elements take it instead of the gather.  (Its results: every max backward
    property test with overlapping windows, and the tampered-offsets test, which
    fails with the masks' row range off by one or the mask test removed.)"""
    from numba_pool import _kernels

    masked = _kernels.masked_scatter_kernel()

    def bwd(shape, *args, fmt="NCHW", rank=2, dtype=np.float32):
        fn = getattr(npool, f"max_pool{rank}d")
        return fn(np.zeros(shape, dtype), *args, data_format=fmt)[1]._plan.bwd

    assert bwd((2, 8, 32, 32), 7, 1, 3) is masked
    assert bwd((2, 8, 32, 32), 8, 1) is masked  # 64 taps
    assert bwd((2, 8, 32), 3, 2, 1, fmt="NCW", rank=1) is masked
    assert bwd((2, 8, 9, 16, 16), 3, 2, 1, fmt="NCDHW", rank=3) is masked
    assert bwd((2, 8, 32, 32), 3, 2, 1, dtype=np.float64) is masked
    assert bwd((2, 8, 32, 32), 9, 1) is not masked  # 81 taps
    assert bwd((2, 8, 32, 32), 3, 2, 1, dtype=np.float16) is not masked  # rounding
    assert bwd((2, 32, 32, 8), 3, 2, 1, fmt="NHWC") is masked  # channels-last
    assert bwd((2, 9, 32, 32, 64), 3, 2, 1, fmt="NDHWC", rank=3) is masked
    assert bwd((2, 32, 32, 3), 3, 2, 1, fmt="NHWC", dtype=np.float16) is not masked
    # few channels, windows tiling the input: the gather where a window row spans
    # at most 8 elements, the masked scatter beyond
    assert bwd((2, 384, 384, 3), 3, 3, fmt="NHWC") is masked  # 3 x 3 elements
    assert bwd((2, 384, 384, 4), 3, 3, fmt="NHWC") is masked  # 3 x 4
    assert bwd((2, 384, 384, 2), 3, 3, fmt="NHWC") is not masked  # 3 x 2: gather
    assert bwd((2, 384, 384, 4), 2, 2, fmt="NHWC") is not masked  # 2 x 4: gather


def test_small_tiling_images_take_the_gather():
    """Few-channel images small enough for the scatter take the gather where the
    windows tile every axis exactly on rows of GATHER_TILES_MIN_ROW elements or
    more (_plan.gather_tiles); padded windows and shorter rows keep the scatter."""

    def kind(shape, *args, fmt="NHWC", rank=2):
        fn = getattr(npool, f"max_pool{rank}d")
        return fn(np.zeros(shape, np.float32), *args, data_format=fmt)[1]._plan.backward_kind

    assert kind((128, 28, 28, 3), 2) == "gather"  # the seed
    assert kind((32, 64, 56, 56), 2, fmt="NCHW") == "gather"
    assert kind((8, 4, 24, 24, 24), 2, fmt="NCDHW", rank=3) == "gather"
    assert kind((8, 64, 64, 3), 3, 3, 1) == "scatter"  # padding
    assert kind((1, 512, 14, 14), 2, fmt="NCHW") == "scatter"  # rows of 14
    assert kind((8, 64, 27, 27), 2, fmt="NCHW") == "scatter"  # a remainder column and row
    assert kind((8, 64, 32, 32), 2, 2, 0, fmt="NCHW") == "gather"


@pytest.mark.parametrize("rank, shape, k, s, p", [
    (1, (2, 19, 301), 5, 3, 2),
    (2, (3, 7, 33, 40), 5, 2, 2),
    (2, (2, 17, 20, 37), (3, 2), (1, 2), 0),
    (3, (2, 9, 5, 18, 21), (3, 5, 5), (1, 2, 2), (1, 2, 2)),
])
def test_plane_blocks_on_wide_strided_rows(rank, shape, k, s, p):
    """Rows wider than the narrow-row rule, width stride >= 2: blocks, bit for bit
    the reference (NaN, +-inf, -0.0 and ties in x), serial and parallel, with a
    partial last block."""
    from numba_pool import _kernels

    fmt = FORMATS[rank][1]
    for style in ("special", "ties"):
        x = data_for(shape, np.float32, 5, style)
        yr, amr = getattr(reference, f"max_pool{rank}d")(x, k, s, p, data_format=fmt)
        fwd = lambda: getattr(npool, f"max_pool{rank}d")(x, k, s, p, data_format=fmt)  # noqa: E731
        for y, am in both_ways(fwd):
            assert am._plan.fwd is _kernels.plane_block_forward_kernel()
            assert_same_bits(y, yr, "y")
            assert_same_bits(am.offsets, amr.offsets, "offsets")


def test_plane_block_selection():
    """Blocks where measured faster (adaptive windows, narrow rows, width strides
    of 2 or more), the per-plane kernels elsewhere (wide rows of width stride 1,
    one plane, channels-last data, blocks over their byte limits)."""
    from numba_pool import _kernels

    blocks = _kernels.plane_block_forward_kernel()

    def kernel(x, *args, adaptive=False, fmt="NCHW"):
        fn = npool.adaptive_max_pool2d if adaptive else npool.max_pool2d
        return fn(x, *args, data_format=fmt)[1]._plan.fwd

    assert kernel(np.zeros((2, 8, 30, 30), np.float32), 7, adaptive=True) is blocks
    assert kernel(np.zeros((2, 8, 14, 14), np.float32), 5, 1, 2) is blocks
    assert kernel(np.zeros((2, 8, 32, 32), np.float32), 5, 1, 2) is not blocks
    assert kernel(np.zeros((1, 1, 14, 14), np.float32), 5, 1, 2) is not blocks
    assert kernel(np.zeros((2, 14, 14, 8), np.float32), 5, 1, 2, fmt="NHWC") is not blocks
    assert kernel(np.zeros((2, 8, 14, 14), np.float32), 3, 1, 1) is not blocks  # specialised
    # wider rows with width stride >= 2 (strided columns), blocks up to 1 MB
    assert kernel(np.zeros((2, 8, 32, 32), np.float32), 5, 2, 2) is blocks
    assert kernel(np.zeros((2, 8, 32, 32), np.float32), 5, 5, 2) is blocks
    assert kernel(np.zeros((2, 8, 64, 64), np.float32), (3, 5), (1, 2)) is blocks
    assert kernel(np.zeros((2, 8, 64, 64), np.float32), (5, 3), (2, 1)) is not blocks
    assert kernel(np.zeros((2, 2, 256, 256), np.float32), 5, 2, 2) is not blocks  # 4 MB
    assert kernel(np.zeros((1, 16, 128, 128), np.float32), 5, 2, 2) is not blocks  # 1 MB
    assert kernel(np.zeros((1, 16, 112, 112), np.float32), 5, 2, 2) is blocks  # 784 KB
    # windows tiling rows wider than PLANE_BLOCK_MAX_TILING_WIDTH: per plane
    assert kernel(np.zeros((1, 16, 64, 64), np.float32), 5, 5) is not blocks
    assert kernel(np.zeros((1, 32, 48, 48), np.float32), 7, 7, 3) is blocks
    # fewer than PLANE_BLOCK_MIN_PLANES planes: per plane
    assert kernel(np.zeros((2, 3, 128, 128), np.float32), 7, 7) is not blocks
    assert kernel(np.zeros((1, 7, 30, 30), np.float32), 7, adaptive=True) is not blocks
    assert kernel(np.zeros((1, 8, 30, 30), np.float32), 7, adaptive=True) is blocks
    big = np.zeros((1, 2, 200, 200), np.float32)  # 16 such planes exceed the block size
    assert kernel(big, 9, adaptive=True) is not blocks


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_global_average_of_planes_matches_reference(dtype):
    """The channels-first global-pooling kernel (blocks of planes side by side):
    plane counts around and across its block size, special values, adaptive and
    regular pooling (a window covering the image, divisor override too)."""
    for planes in (1, 7, 8, 9, 17, 45):
        for rank, side in ((1, 11), (2, 7), (3, 3)):
            fmt = FORMATS[rank][1]
            x = data_for((planes // 3 + 1, 3) + (side,) * rank, dtype, planes,
                         "special" if planes % 2 else "normal")
            yr = getattr(reference, f"adaptive_avg_pool{rank}d")(x, 1, data_format=fmt)
            for y in both_ways(lambda: getattr(npool, f"adaptive_avg_pool{rank}d")(
                    x, 1, data_format=fmt)):
                assert_same_bits(y, yr, f"global avg, {planes} planes, rank {rank}")
            for override in (None, 5):
                kw = dict(data_format=fmt, divisor_override=override)
                yr = getattr(reference, f"avg_pool{rank}d")(x, side, **kw)
                for y in both_ways(lambda: getattr(npool, f"avg_pool{rank}d")(x, side, **kw)):
                    assert_same_bits(y, yr, f"avg over the image, {planes} planes, {override}")


def test_avg_divisor_rules_by_hand():
    """Worked by hand.  5 elements, k3 s2 p1 ceil_mode: windows [-1,2) [1,4) [3,6), the
    padding is [-1] and [5]: include pad divides by 3, 3, 3; exclude by 2, 3, 2.
    6 elements, k3 s2 p0 ceil_mode: windows [0,3) [2,5) [4,7), the last overhangs the
    input without padding: the overhang never counts (divisors 3, 3, 2)."""
    x = np.arange(1, 6, dtype=np.float64).reshape(1, 5, 1)
    inc = npool.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)
    exc = npool.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_array_equal(inc[0, :, 0], [3 / 3, 9 / 3, 9 / 3])
    np.testing.assert_array_equal(exc[0, :, 0], [3 / 2, 9 / 3, 9 / 2])
    x6 = np.arange(1, 7, dtype=np.float64).reshape(1, 6, 1)
    over = npool.avg_pool1d(x6, 3, 2, 0, ceil_mode=True, count_include_pad=True)
    np.testing.assert_array_equal(over[0, :, 0], [6 / 3, 12 / 3, 11 / 2])
    # "same" excludes padding by default (Keras), integers give float64
    same = npool.avg_pool1d(np.array([[[1], [2], [3]]], np.int32), 2, 1, "same")
    assert same.dtype == np.float64
    np.testing.assert_array_equal(same[0, :, 0], [1.5, 2.5, 3.0])
    assert npool.avg_pool1d(x, 2, divisor_override=1)[0, 0, 0] == 3.0


def test_unpool_places_each_value_once():
    x = np.array([[[0.], [5.], [1.], [0.]]])  # NWC; 5 wins windows 0 and 1 (k2 s1)
    y, am = npool.max_pool1d(x, 2, 1)
    u = npool.max_unpool1d(y, am)
    np.testing.assert_array_equal(u[0, :, 0], [0, 5, 1, 0])
    u2 = npool.max_unpool1d(np.array([[[7.], [9.], [2.]]]), am)  # last window's value wins
    np.testing.assert_array_equal(u2[0, :, 0], [0, 9, 2, 0])


def test_tf_indices_and_errors():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    y, am = npool.max_pool2d(x, 2)
    idx = am.tf_indices()
    # the max of each window is its bottom-right element: (h, w) = (2i+1, 2j+1)
    i, j = np.meshgrid(np.arange(2), np.arange(2), indexing="ij")
    expect = ((2 * i + 1) * 4 + 2 * j + 1)[None, :, :, None] * 3 + np.arange(3)
    np.testing.assert_array_equal(idx, np.broadcast_to(expect, idx.shape))
    with_batch = am.tf_indices(include_batch_in_index=True)
    np.testing.assert_array_equal(with_batch[1] - idx[1], 4 * 4 * 3)
    with pytest.raises(ValueError, match="tf_indices"):
        npool.max_pool2d(x, 2, data_format="NCHW")[1].tf_indices()


@pytest.mark.parametrize("call, exc, match", [
    (lambda: npool.max_pool1d(np.zeros((1, 4, 2)), 2, data_format="NHWC"), ValueError,
     "data_format must be 'NWC' or 'NCW'"),
    (lambda: npool.max_pool3d(np.zeros((1, 4, 4, 2)), 2), ValueError, "x must be 5-D"),
    (lambda: npool.max_pool3d(np.zeros((1, 4, 4, 4, 2)), (2, 2)), ValueError,
     "pool_size must be an int or a triple of ints"),
    (lambda: npool.max_pool1d(np.zeros((1, 4, 2)), 2, padding=(2, 2, 1)), ValueError,
     "padding must be an int"),
    (lambda: npool.max_pool3d(np.zeros((1, 0, 4, 4, 2)), 2), ValueError, "zero-size"),
    (lambda: npool.avg_pool2d(np.zeros((1, 4, 4, 2)), 2, count_include_pad="no"), TypeError,
     "count_include_pad must be a bool"),
    (lambda: npool.avg_pool2d(np.zeros((1, 4, 4, 2)), 2, divisor_override=0), ValueError,
     "divisor_override must be >= 1"),
    (lambda: npool.avg_pool2d(np.zeros((1, 4, 4, 2)), 2, divisor_override=2.0), TypeError,
     "divisor_override must be None or an int"),
    (lambda: npool.avg_pool2d_backward(np.zeros((1, 2, 2, 2)), (1, 4, 4), 2), ValueError,
     "input_shape must be the 4-D shape"),
    (lambda: npool.avg_pool2d_backward(np.zeros((1, 3, 2, 2)), (1, 4, 4, 2), 2), ValueError,
     "dy has shape"),
    (lambda: npool.adaptive_avg_pool2d(np.zeros((1, 4, 4, 2)), 0), ValueError,
     "output_size must be >= 1"),
    (lambda: npool.adaptive_max_pool2d(np.zeros((1, 4, 4, 2)), (2, 2, 2)), ValueError,
     "output_size must be an int or 2 ints"),
    (lambda: npool.adaptive_max_pool2d(np.zeros((1, 4, 4, 2)), None), TypeError,
     "output_size must be an int"),
    (lambda: npool.max_pool3d_backward(np.zeros((1, 2, 2, 2)), npool.max_pool2d(
        np.zeros((1, 4, 4, 2)), 2)[1]), ValueError, "needs the argmax of a 3-D pooling"),
    (lambda: npool.max_unpool2d(np.zeros((1, 3, 2, 2)), npool.max_pool2d(
        np.zeros((1, 4, 4, 2)), 2)[1]), ValueError, "y has shape"),
    (lambda: npool.argmax_from_flat_indices(np.full((1, 2, 2, 2), 15), (1, 4, 4, 2), 2),
     ValueError, "does not lie in its window"),
    (lambda: npool.argmax_from_flat_indices(np.zeros((1, 2, 2, 2)), (1, 4, 4, 2), 2), TypeError,
     "indices must be integers"),
    (lambda: npool.argmax_from_flat_indices(np.zeros((1, 3, 2, 2), int), (1, 4, 4, 2), 2),
     ValueError, "indices has shape"),
    (lambda: npool.AvgPool3D(2, padding=5), ValueError, "padding must be at most half"),
    (lambda: npool.GlobalAvgPool2D(keepdims=1), TypeError, "keepdims must be a bool"),
    (lambda: npool.MaxPool1D(2).backward(np.zeros((1, 2, 1))), ValueError,
     "called before forward"),
])
def test_family_errors_name_the_parameter(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_layers_match_functions(rank):
    fmt = FORMATS[rank][0]
    x = np.random.default_rng(rank).standard_normal((2,) + (6,) * rank + (3,)).astype(np.float32)
    checks = [
        (getattr(npool, f"MaxPool{rank}D")(2), lambda: getattr(npool, f"max_pool{rank}d")(x, 2)[0]),
        (getattr(npool, f"AvgPool{rank}D")(3, 2, 1), lambda: getattr(npool, f"avg_pool{rank}d")(
            x, 3, 2, 1)),
        (getattr(npool, f"AdaptiveMaxPool{rank}D")(4),
         lambda: getattr(npool, f"adaptive_max_pool{rank}d")(x, 4)[0]),
        (getattr(npool, f"AdaptiveAvgPool{rank}D")(4),
         lambda: getattr(npool, f"adaptive_avg_pool{rank}d")(x, 4)),
        (getattr(npool, f"GlobalMaxPool{rank}D")(),
         lambda: x.max(axis=tuple(range(1, rank + 1)))),
        (getattr(npool, f"GlobalAvgPool{rank}D")(keepdims=True),
         lambda: getattr(npool, f"adaptive_avg_pool{rank}d")(x, 1)),
    ]
    for layer, expected in checks:
        y = layer.forward(x)
        assert_same_bits(y, expected(), repr(layer))
        dx = layer.backward(np.ones_like(y))
        assert dx.shape == x.shape and dx.dtype == x.dtype
        assert fmt in repr(layer)


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_tampered_offsets_credit_nothing_outside_x(rank, data):
    """Offsets rewritten by the caller (``argmax.offsets`` is writable) may name taps in
    the padding: backward and unpooling credit nothing there, like the reference, and
    never write outside dx."""
    shape, kw = data.draw(nd_config(rank))
    x = data_for(shape, np.float32, data.draw(st.integers(0, 2**31)), "normal")
    y, am = getattr(npool, f"max_pool{rank}d")(x, **kw)
    yr, amr = getattr(reference, f"max_pool{rank}d")(x, **kw)
    taps = int(np.prod(kw["pool_size"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    new = rng.integers(0, taps + 2, y.shape)  # some beyond the window too
    am.offsets[...] = np.minimum(new, np.iinfo(am.offsets.dtype).max)
    amr.offsets[...] = am.offsets
    dy = np.ones(y.shape, np.float32)
    for dx in both_ways(lambda: getattr(npool, f"max_pool{rank}d_backward")(dy, am)):
        assert_same_bits(dx, getattr(reference, f"max_pool{rank}d_backward")(dy, amr), "dx")
    for u in both_ways(lambda: getattr(npool, f"max_unpool{rank}d")(yr, am)):
        assert_same_bits(u, getattr(reference, f"max_unpool{rank}d")(yr, amr), "unpool")


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8])
def test_integer_dtypes_every_rank(rank, dtype):
    """Integer data at ranks 1 and 3 (padding acts as the dtype's minimum)."""
    shape = (2, 9, 3) if rank == 1 else (2, 5, 6, 4, 3)
    x = data_for(shape, dtype, rank, "normal")
    kw = dict(pool_size=3, strides=2, padding=1)
    y, am = getattr(npool, f"max_pool{rank}d")(x, **kw)
    yr, amr = getattr(reference, f"max_pool{rank}d")(x, **kw)
    assert_same_bits(y, yr, "y")
    assert_same_bits(am.offsets, amr.offsets, "offsets")
    dy = np.ones(y.shape, dtype)
    assert_same_bits(getattr(npool, f"max_pool{rank}d_backward")(dy, am),
                     getattr(reference, f"max_pool{rank}d_backward")(dy, amr), "dx")
