"""The pooling family against PyTorch 2.13 CPU on random configurations.

Max pooling (every rank, adaptive too): values, indices and gradients bit for
bit.  Average pooling: bit for bit for regular and adaptive windows (same
summation order and divisions as ATen) except global pooling (output size 1),
where ATen sums in SIMD-lane order (CPU-dependent): within the summation
rounding bound there.
Nothing here reads the package's geometry: PyTorch decides every window.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numba_pool as npool
from helpers import assert_same_bits

FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
SIDES = {1: (4, 30), 2: (3, 14), 3: (3, 8)}


def random_case(rng, rank, dilation=True):
    k = tuple(int(v) for v in rng.integers(1, 4, rank))
    s = tuple(int(v) for v in rng.integers(1, 4, rank))
    d = tuple(int(v) for v in rng.integers(1, 3, rank)) if dilation else (1,) * rank
    p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
    ceil = bool(rng.integers(0, 2))
    spatial = tuple(int(v) for v in rng.integers(*SIDES[rank], rank))
    n, c = int(rng.integers(1, 3)), int(rng.choice([1, 2, 3, 4, 9, 17]))
    return (n, c) + spatial, k, s, d, p, ceil


def to_last(a):
    return np.moveaxis(a, 1, -1)


def values(rng, shape, dtype):
    x = rng.integers(-3, 4, shape).astype(dtype)  # many ties
    x[rng.random(shape) < 0.05] = np.nan
    return x


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_pool_every_rank_bitwise_against_pytorch(rank):
    rng = np.random.default_rng(rank)
    fwd = getattr(F, f"max_pool{rank}d")
    checked = 0
    while checked < 60:
        shape, k, s, d, p, ceil = random_case(rng, rank)
        dtype = [np.float32, np.float64][checked % 2]
        x = values(rng, shape, dtype)
        try:
            ty, ti = fwd(torch.from_numpy(x), k, s, p, d, ceil_mode=ceil, return_indices=True)
        except RuntimeError:
            continue
        checked += 1
        dy = rng.standard_normal(ty.shape).astype(dtype)
        xt = torch.from_numpy(x).requires_grad_()
        fwd(xt, k, s, p, d, ceil_mode=ceil).backward(torch.from_numpy(dy))
        channels_last = checked % 3 == 0  # the same logical data held channels-last
        xin, fmt = (to_last(x), LAST[rank]) if channels_last else (x, FIRST[rank])
        y, am = getattr(npool, f"max_pool{rank}d")(xin, k, s, p, dilation=d, ceil_mode=ceil,
                                                   data_format=fmt)
        back = (lambda a: to_last(a)) if channels_last else (lambda a: a)
        assert_same_bits(y, back(ty.numpy()), f"y {shape} k{k} s{s} d{d} p{p} ceil={ceil}")
        np.testing.assert_array_equal(am.flat_indices(), back(ti.numpy()))
        dx = getattr(npool, f"max_pool{rank}d_backward")(back(dy), am)
        assert_same_bits(dx, back(xt.grad.numpy()), "dx")
        u = getattr(npool, f"max_unpool{rank}d")(y, am)
        # what max_unpool does (its output_size check rejects dilated and ceil_mode shapes)
        tu = torch.zeros(shape[0], shape[1], int(np.prod(shape[2:])), dtype=ty.dtype).scatter_(
            2, ti.reshape(shape[0], shape[1], -1), ty.reshape(shape[0], shape[1], -1))
        assert_same_bits(u, back(tu.reshape(shape).numpy()), "unpool")
        # PyTorch's indices in, the same gradient out
        am2 = npool.argmax_from_flat_indices(back(ti.numpy()), xin.shape, k, s, p, dilation=d,
                                             ceil_mode=ceil, data_format=fmt, dtype=dtype)
        assert_same_bits(getattr(npool, f"max_pool{rank}d_backward")(back(dy), am2), dx,
                         "dx via PyTorch indices")


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_adaptive_pooling_against_pytorch(rank):
    rng = np.random.default_rng(10 + rank)
    for case in range(40):
        shape, *_ = random_case(rng, rank)
        out = tuple(int(rng.integers(1, n + 3)) for n in shape[2:])
        if case % 8 == 0:
            out = (1,) * rank  # global pooling
        dtype = [np.float32, np.float64][case % 2]
        x = rng.standard_normal(shape).astype(dtype)
        tm, ti = getattr(F, f"adaptive_max_pool{rank}d")(torch.from_numpy(x), out,
                                                          return_indices=True)
        y, am = getattr(npool, f"adaptive_max_pool{rank}d")(x, out, data_format=FIRST[rank])
        assert_same_bits(y, tm.numpy(), "adaptive max")
        np.testing.assert_array_equal(am.flat_indices(), ti.numpy())
        dy = rng.standard_normal(tm.shape).astype(dtype)
        xt = torch.from_numpy(x).requires_grad_()
        getattr(F, f"adaptive_max_pool{rank}d")(xt, out).backward(torch.from_numpy(dy))
        assert_same_bits(getattr(npool, f"max_pool{rank}d_backward")(dy, am), xt.grad.numpy(),
                         "adaptive max dx")

        xt = torch.from_numpy(x).requires_grad_()
        ta = getattr(F, f"adaptive_avg_pool{rank}d")(xt, out)
        ta.backward(torch.from_numpy(dy))
        ya = getattr(npool, f"adaptive_avg_pool{rank}d")(x, out, data_format=FIRST[rank])
        dxa = getattr(npool, f"adaptive_avg_pool{rank}d_backward")(dy, shape,
                                                                   data_format=FIRST[rank])
        if out == (1,) * rank:
            # ATen's global path sums in SIMD-lane order (8 or 16 lanes by CPU), so only
            # the rounding bound is portable: |error| <= n * eps * mean(|x|) for a mean of n
            scale = np.abs(x).mean(axis=tuple(range(2, rank + 2)), keepdims=True)
            n = int(np.prod(shape[2:]))
            bound = n * np.finfo(dtype).eps * scale
            assert np.all(np.abs(ya - ta.detach().numpy()) <= bound)
        else:
            assert_same_bits(ya, ta.detach().numpy(), f"adaptive avg {shape} -> {out}")
        assert_same_bits(dxa, xt.grad.numpy(), "adaptive avg dx")


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_avg_pool_bitwise_against_pytorch(rank):
    rng = np.random.default_rng(20 + rank)
    fwd = getattr(F, f"avg_pool{rank}d")
    checked = 0
    while checked < 60:
        shape, k, s, _, p, ceil = random_case(rng, rank, dilation=False)
        cip = bool(rng.integers(0, 2))
        override = int(rng.integers(1, 6)) if rank > 1 and checked % 4 == 0 else None
        dtype = [np.float32, np.float64][checked % 2]
        x = rng.standard_normal(shape).astype(dtype)
        extra = {} if rank == 1 else dict(divisor_override=override)
        xt = torch.from_numpy(x).requires_grad_()
        try:
            ty = fwd(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip, **extra)
        except RuntimeError:
            continue
        checked += 1
        dy = rng.standard_normal(ty.shape).astype(dtype)
        ty.backward(torch.from_numpy(dy))
        channels_last = checked % 3 == 0
        xin, fmt = (to_last(x), LAST[rank]) if channels_last else (x, FIRST[rank])
        back = (lambda a: to_last(a)) if channels_last else (lambda a: a)
        kw = dict(ceil_mode=ceil, count_include_pad=cip, divisor_override=override,
                  data_format=fmt)
        y = getattr(npool, f"avg_pool{rank}d")(xin, k, s, p, **kw)
        assert_same_bits(y, back(ty.detach().numpy()),
                         f"avg y {shape} k{k} s{s} p{p} ceil={ceil} cip={cip} div={override}")
        dx = getattr(npool, f"avg_pool{rank}d_backward")(back(dy), xin.shape, k, s, p, **kw)
        assert_same_bits(dx, back(xt.grad.numpy()), "avg dx")


def test_float16_avg_within_tolerance_of_pytorch():
    """float16: summed in float32 and rounded once (PyTorch also sums Half in float)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float16)
    y = npool.avg_pool2d(x, 3, 2, 1, data_format="NCHW")
    t = F.avg_pool2d(torch.from_numpy(x), 3, 2, 1).numpy()
    assert y.dtype == np.float16
    np.testing.assert_array_max_ulp(y, t, 1)
