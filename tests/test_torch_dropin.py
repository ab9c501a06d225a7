"""numba_pool.torch against PyTorch 2.13's own pooling.

Every comparison runs with PyTorch's fallback disabled (``no_fallback``), so
a call that silently went to PyTorch fails instead of comparing PyTorch with
itself; the fallback tests check the opposite.  Results are compared bit for
bit (values, indices, gradients) and so are the strides of every output.
"""

import contextlib
import copy
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import numba_pool.torch as nt
from numba_pool.torch import _ops
from numba_pool.torch import functional as nf
from helpers import assert_same_bits

SIDES = {1: (1, 24), 2: (1, 12), 3: (1, 7)}
SHIPPED_MIN_ELEMENTS = nf.MIN_ELEMENTS


@pytest.fixture(autouse=True, scope="module")
def every_size_on_numba_pool():
    """Inputs below ``MIN_ELEMENTS`` go to PyTorch's op (numba_pool's dispatch
    costs more than PyTorch's whole op there).  These tests check the kernels
    on small tensors, so every size is routed to them here;
    test_small_inputs_go_to_pytorch checks the shipped threshold."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nf, "MIN_ELEMENTS", 0)
        yield
CL = {2: torch.channels_last, 3: torch.channels_last_3d}


class _NoFallback(types.ModuleType):
    def __getattr__(self, name):
        raise AssertionError(f"numba_pool.torch fell back to torch.nn.functional.{name}")


@contextlib.contextmanager
def fallback_disabled():
    saved, nf.F = nf.F, _NoFallback("F")
    try:
        yield
    finally:
        nf.F = saved


@pytest.fixture
def no_fallback():
    with fallback_disabled():
        yield


def same(a: torch.Tensor, b: torch.Tensor, what: str):
    assert a.stride() == b.stride() or a.numel() == 0, \
        f"{what}: strides {a.stride()} != {b.stride()}"
    assert_same_bits(a.detach().numpy(), b.detach().numpy(), what)


def make_input(draw, rank, dtype, layout):
    spatial = [draw(st.integers(*SIDES[rank])) for _ in range(rank)]
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.integers(-4, 5, [n, c] + spatial).astype(np.float64)  # many ties
    data[rng.random(data.shape) < 0.05] = np.nan
    data[rng.random(data.shape) < 0.05] = -0.0
    x = torch.from_numpy(data).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=CL[rank])
    elif draw(st.booleans()):
        x = x[0]  # unbatched
    return x


@st.composite
def cases(draw, op):
    rank = draw(st.sampled_from([1, 2, 3]))
    layout = draw(st.sampled_from(["contiguous"] + (["channels_last"] if rank > 1 else [])))
    dtypes = [torch.float32, torch.float64] + ([torch.float16] if op == "max" else [])
    x = make_input(draw, rank, draw(st.sampled_from(dtypes)), layout)
    spatial = x.shape[-rank:]
    k = [draw(st.integers(1, 4)) for _ in range(rank)]
    s = [draw(st.integers(1, 3)) for _ in range(rank)]
    p = [draw(st.integers(0, kk // 2)) for kk in k]
    d = [draw(st.integers(1, 2)) if op == "max" else 1 for _ in range(rank)]
    ceil = draw(st.booleans())
    out = [_ops.pool_output_size(n, kk, ss, pp, dd, ceil) for n, kk, ss, pp, dd in
           zip(spatial, k, s, p, d)]
    small = op == "avg" and rank == 3 and any(n < kk for n, kk in zip(spatial, k))
    if min(out) < 1 or small or not nf._windows_hit_input(spatial, k, s, p, d, ceil):
        k, s, p, d, ceil = [1] * rank, [1] * rank, [0] * rank, [1] * rank, False
    return rank, x, k, s, p, d, ceil


def grads(y, x, g):
    return torch.autograd.grad(y, x, g)[0]


@settings(max_examples=60)
@given(cases("max"))
def test_max_pool_bitwise(case):
    with fallback_disabled():
        rank, x, k, s, p, d, ceil = case
        ours_fn, theirs_fn = getattr(nt, f"max_pool{rank}d"), getattr(F, f"max_pool{rank}d")
        xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
        y, idx = ours_fn(xo, k, s, p, d, ceil_mode=ceil, return_indices=True)
        with torch.no_grad():
            y_plain = ours_fn(x, k, s, p, d, ceil_mode=ceil)
        ty, tidx = theirs_fn(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
        same(y, ty, "y")
        same(y_plain, ty, "y without indices")
        same(idx, tidx, "indices")
        g = torch.randn(ty.shape, dtype=torch.float64).to(x.dtype)
        same(grads(y, xo, g), grads(ty, xt, g), "dx")


@settings(max_examples=60)
@given(cases("avg"), st.booleans(), st.sampled_from([None, 1, 3]))
def test_avg_pool_bitwise(case, cip, override):
    with fallback_disabled():
        rank, x, k, s, p, _, ceil = case
        ours_fn, theirs_fn = getattr(nt, f"avg_pool{rank}d"), getattr(F, f"avg_pool{rank}d")
        extra = () if rank == 1 else (override,)
        xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
        y = ours_fn(xo, k, s, p, ceil, cip, *extra)
        ty = theirs_fn(xt, k, s, p, ceil, cip, *extra)
        same(y, ty, "y")
        g = torch.randn(ty.shape, dtype=torch.float64).to(x.dtype)
        same(grads(y, xo, g), grads(ty, xt, g), "dx")


@settings(max_examples=60)
@given(st.sampled_from(["max", "avg"]), cases("max"), st.data())
def test_adaptive_bitwise(op, case, data):
    with fallback_disabled():
        rank, x, *_ = case
        if op == "avg" and x.dtype == torch.float16:
            x = x.float()
        spatial = x.shape[-rank:]
        size = [data.draw(st.integers(1, n + 2) | st.none() if rank > 1 else st.integers(1, n + 2))
                for n in spatial]
        if data.draw(st.booleans()):
            size = [1] * rank  # global pooling
        if op == "avg" and all((n if v is None else v) == 1 for v, n in zip(size, spatial)):
            size[-1] = 2  # global average pooling is PyTorch's own (see the fallback tests)
        ours_fn = getattr(nt, f"adaptive_{op}_pool{rank}d")
        theirs_fn = getattr(F, f"adaptive_{op}_pool{rank}d")
        xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
        if op == "max":
            (y, idx), (ty, tidx) = ours_fn(xo, size, True), theirs_fn(xt, size, True)
            same(idx, tidx, "indices")
        else:
            y, ty = ours_fn(xo, size), theirs_fn(xt, size)
        same(y, ty, "y")
        g = torch.randn(ty.shape, dtype=torch.float64).to(x.dtype)
        same(grads(y, xo, g), grads(ty, xt, g), "dx")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_adaptive_average_divides_as_pytorch(no_fallback, dtype):
    """PyTorch's channels-last adaptive average pooling divides the channels its
    SIMD vectors cover once by kh * kw and the rest by kh, then kw (found by the
    hypothesis test above: 23 / 3 / 3 and 23 / 9 differ in float64).  Channel
    counts around every vector width, windows of 1-3 rows and columns, integer
    data (exact sums) so only the division decides the bits."""
    from numba_pool.torch._ops import simd_width

    assert simd_width(dtype, False) in (0, 1, 2, 4, 8, 16, 32, 64)
    gen = torch.Generator().manual_seed(0)
    for channels in (1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33):
        x = torch.randint(-4, 5, (2, channels, 7, 10), generator=gen).to(dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        for size in ((2, 3), (3, 4), (5, 7)):
            xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
            y, ty = nt.adaptive_avg_pool2d(xo, size), F.adaptive_avg_pool2d(xt, size)
            same(y, ty, f"y, {channels} channels, {size}")
            g = torch.randint(-40, 41, ty.shape, generator=gen).to(dtype)
            g = g.contiguous(memory_format=torch.channels_last)
            same(grads(y, xo, g), grads(ty, xt, g), f"dx, {channels} channels, {size}")


@settings(max_examples=40)
@given(cases("max"), st.booleans())
def test_max_unpool_bitwise(case, give_size):
    with fallback_disabled():
        rank, x, k, s, p, _, ceil = case
        d = [1] * rank
        if not nf._windows_hit_input(x.shape[-rank:], k, s, p, d, False):
            k, s, p = [1] * rank, [1] * rank, [0] * rank
        y, idx = getattr(F, f"max_pool{rank}d")(x, k, s, p, return_indices=True)
        size = list(x.shape[-rank:]) if give_size else None
        default = [(n - 1) * ss - 2 * pp + kk for n, ss, pp, kk in zip(y.shape[-rank:], s, p, k)]
        if size is not None and not all(dd - ss < v < dd + ss
                                        for v, dd, ss in zip(size, default, s)):
            size = None
        assume(min(size or default) >= 1)  # an empty result is PyTorch's (fallback)
        yo, yt = y.clone().requires_grad_(), y.clone().requires_grad_()
        try:
            tu = getattr(F, f"max_unpool{rank}d")(yt, idx, k, s, p, size)
        except RuntimeError as theirs:  # an index beyond a too small default output
            with pytest.raises(RuntimeError) as ours:
                getattr(nt, f"max_unpool{rank}d")(yo, idx, k, s, p, size)
            # the index named depends on PyTorch's loop order
            assert str(ours.value).split(":")[0] == str(theirs).split(":")[0]
            return
        u = getattr(nt, f"max_unpool{rank}d")(yo, idx, k, s, p, size)
        same(u, tu, "unpooled")
        g = torch.randn(tu.shape, dtype=torch.float64).to(x.dtype)
        same(grads(u, yo, g), grads(tu, yt, g), "dy")


def test_unpool_bad_index_raises_pytorchs_error():
    y, idx = F.max_pool2d(torch.randn(1, 2, 4, 4), 2, return_indices=True)
    idx = idx.clone()
    idx[0, 0, 0, 0] = 99
    with pytest.raises(RuntimeError) as theirs:
        F.max_unpool2d(y, idx, 2)
    with pytest.raises(RuntimeError) as ours:
        nt.max_unpool2d(y, idx, 2)
    assert str(ours.value).split("\n")[0] == str(theirs.value).split("\n")[0]


# --------------------------------------------------------------------------
# Fallbacks: what the kernels do not handle is PyTorch's, silently.
# --------------------------------------------------------------------------


FALLBACK_CASES = [
    ("bfloat16", lambda: nt.max_pool2d(torch.randn(2, 3, 8, 8, dtype=torch.bfloat16), 2),
     lambda: F.max_pool2d(torch.randn(2, 3, 8, 8, dtype=torch.bfloat16), 2)),
    ("non-contiguous", lambda: nt.max_pool2d(_strided(), 3, 2, 1),
     lambda: F.max_pool2d(_strided(), 3, 2, 1)),
    ("float16 average", lambda: nt.avg_pool2d(_half(), 2), lambda: F.avg_pool2d(_half(), 2)),
    ("global average", lambda: nt.adaptive_avg_pool2d(_seeded(), 1),
     lambda: F.adaptive_avg_pool2d(_seeded(), 1)),
    ("1-D channels-last memory", lambda: nt.avg_pool1d(_transposed(), 2),
     lambda: F.avg_pool1d(_transposed(), 2)),
    ("negative divisor_override", lambda: nt.avg_pool2d(_seeded(), 2, divisor_override=-3),
     lambda: F.avg_pool2d(_seeded(), 2, divisor_override=-3)),
]


def _seeded(shape=(2, 3, 8, 8), dtype=torch.float32):
    return torch.from_numpy(np.random.default_rng(1).standard_normal(shape)).to(dtype)


def _strided():
    return _seeded((2, 3, 16, 16))[:, :, ::2, ::2]


def _half():
    return _seeded(dtype=torch.float16)


def _transposed():
    return _seeded((2, 9, 3)).transpose(1, 2)


@pytest.mark.parametrize("name,ours,theirs", FALLBACK_CASES, ids=[c[0] for c in FALLBACK_CASES])
def test_fallback_gives_pytorchs_result(name, ours, theirs):
    torch.manual_seed(0)
    a = ours()
    torch.manual_seed(0)
    b = theirs()
    assert a.dtype == b.dtype and a.stride() == b.stride()
    assert torch.equal(a, b)


def test_fallback_ops_are_pytorchs():
    assert not nt.handled(nt.max_pool2d, _strided(), 3, 2, 1)
    assert not nt.handled(nt.avg_pool2d, _half(), 2)
    assert nt.handled(nt.max_pool2d, _seeded(), 3, 2, 1)
    assert nt.handled(nt.adaptive_avg_pool2d, _seeded(), 3)
    assert not nt.handled(nt.adaptive_avg_pool2d, _seeded(), 1)  # global: PyTorch's


def test_meta_tensor_falls_back():
    x = torch.empty(2, 3, 8, 8, device="meta")
    y, idx = nt.max_pool2d(x, 3, 2, 1, return_indices=True)
    ty, tidx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert y.device.type == "meta" and y.shape == ty.shape and y.stride() == ty.stride()
    assert nt.avg_pool3d(torch.empty(1, 2, 4, 4, 4, device="meta"), 2).shape == (1, 2, 2, 2, 2)


@pytest.mark.parametrize("call", [
    lambda f: f.max_pool2d(torch.randn(1, 1, 4, 4), 2, padding=2),          # pad > k/2
    lambda f: f.max_pool2d(torch.randn(1, 1, 4, 4), 0),                     # kernel 0
    lambda f: f.max_pool2d(torch.randn(1, 1, 2, 2), 5),                     # output empty
    lambda f: f.avg_pool2d(torch.randn(1, 1, 4, 4), 2, divisor_override=0),
    lambda f: f.max_pool3d(torch.randn(4, 4), 2),                           # wrong rank
    lambda f: f.max_pool1d(torch.arange(24).reshape(2, 3, 4), 2),           # int64
    lambda f: f.avg_pool3d(torch.randn(1, 1, 1, 4, 4), 2, padding=1),       # input < window
    lambda f: f.adaptive_avg_pool2d(torch.randn(1, 1, 4, 4), (2, 2, 2)),
    lambda f: f.max_unpool2d(torch.randn(1, 1, 2, 2), torch.zeros(1, 1, 2, 2).long(), 2,
                             output_size=(9, 9)),
], ids=["padding", "kernel", "empty-output", "divisor", "rank", "int64", "avg3d-small",
        "adaptive-size", "unpool-size"])
def test_bad_arguments_raise_pytorchs_errors(call):
    with pytest.raises(Exception) as theirs:
        call(F)
    with pytest.raises(Exception) as ours:
        call(nt)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


# --------------------------------------------------------------------------
# Operator registration: opcheck, gradcheck, gradgradcheck.
# --------------------------------------------------------------------------


def _opcheck_samples():
    x = _seeded((2, 3, 7, 6), torch.float64)
    xc = x.contiguous(memory_format=torch.channels_last)
    x1, x3 = _seeded((2, 3, 9), torch.float64), _seeded((1, 2, 5, 4, 6), torch.float64)
    samples = []
    for t in (x, xc, x1, x3):
        r = t.dim() - 2
        k, s, p, d = [3] * r, [2] * r, [1] * r, [1] * r
        cl = not t.is_contiguous()
        y, am = _ops.max_pool(t, k, s, p, d, True)
        ay, aam = _ops.adaptive_max_pool(t, [3] * r)
        g = torch.randn_like(y)
        samples += [
            (_ops.max_pool, (t.requires_grad_(), k, s, p, d, True)),
            (_ops.max_pool_backward, (g.requires_grad_(), am, list(t.shape), cl, k, s, p, d, True)),
            (_ops.max_pool_indices, (am, list(t.shape), k, s, p, d, True)),
            (_ops.adaptive_max_pool, (t, [3] * r)),
            (_ops.adaptive_max_pool_backward, (torch.randn_like(ay), aam, list(t.shape), cl)),
            (_ops.adaptive_max_pool_indices, (aam, list(t.shape))),
            (_ops.avg_pool, (t, k, s, p, True, False, None)),
            (_ops.avg_pool_backward, (torch.randn_like(y), list(t.shape), cl, k, s, p, True, True,
                                      2)),
            (_ops.adaptive_avg_pool, (t, [3] * r)),
            (_ops.adaptive_avg_pool_backward, (torch.randn_like(ay), list(t.shape), cl)),
            (_ops.max_unpool, (y.detach().requires_grad_(),
                               _ops.max_pool_indices(am, list(t.shape), k, s, p, d, True),
                               list(t.shape[2:]))),
        ]
    return samples


def test_opcheck_every_op():
    samples = _opcheck_samples()
    assert {op for op, _ in samples} == set(_ops.OPS)
    for op, args in samples:
        result = torch.library.opcheck(op, args)
        assert all(v == "SUCCESS" for v in result.values()), (op, result)


GRAD_FUNCS = [
    ("max_pool{r}d", lambda f, r, t: getattr(f, f"max_pool{r}d")(t, 3, 2, 1)),
    ("max_pool{r}d dilated ceil", lambda f, r, t: getattr(f, f"max_pool{r}d")(t, 2, 2, 1, 2,
                                                                           True)),
    ("avg_pool{r}d", lambda f, r, t: getattr(f, f"avg_pool{r}d")(t, 3, 2, 1, True, False)),
    ("adaptive_max_pool{r}d", lambda f, r, t: getattr(f, f"adaptive_max_pool{r}d")(t, 3)),
    ("adaptive_avg_pool{r}d", lambda f, r, t: getattr(f, f"adaptive_avg_pool{r}d")(t, 3)),
]


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("name,fn", GRAD_FUNCS, ids=[g[0] for g in GRAD_FUNCS])
def test_gradcheck_and_gradgradcheck(no_fallback, rank, name, fn):
    # distinct values: max pooling is differentiable away from ties
    n = {1: 9, 2: 6, 3: 5}[rank]
    shape = (1, 2) + (n,) * rank
    x = torch.randperm(int(np.prod(shape)), dtype=torch.float64).reshape(shape) / 7
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: fn(nt, rank, t), (x,))
    assert torch.autograd.gradgradcheck(lambda t: fn(nt, rank, t), (x,))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_unpool_gradcheck(no_fallback, rank):
    x = torch.randperm(2 * 6 ** rank, dtype=torch.float64).reshape((1, 2) + (6,) * rank)
    y, idx = getattr(F, f"max_pool{rank}d")(x, 2, return_indices=True)
    y = y.detach().requires_grad_()
    f = lambda t: getattr(nt, f"max_unpool{rank}d")(t, idx, 2)  # noqa: E731
    assert torch.autograd.gradcheck(f, (y,))
    assert torch.autograd.gradgradcheck(f, (y,))


# --------------------------------------------------------------------------
# Models: convert/restore, eager, torch.compile, torch.export, no_grad.
# --------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, x):
        return torch.relu(self.pool(self.conv(x))) + x


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), Block(),
        nn.Sequential(nn.AvgPool2d(2, ceil_mode=True), nn.AdaptiveMaxPool2d((3, 2))),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).double()


def step(model, x):
    model.zero_grad()
    y = model(x)
    y.square().sum().backward()
    return [y.detach()] + [p.grad.clone() for p in model.parameters()]


def cnn_input(channels_last):
    x = _seeded((4, 3, 17, 16), torch.float64)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def test_convert_and_restore():
    model = small_cnn()
    state = copy.deepcopy(model.state_dict())
    text = repr(model)
    assert nt.convert(model) is model
    kinds = {type(m).__module__ for m in model.modules() if "Pool" in type(m).__name__}
    assert kinds == {"numba_pool.torch.modules"}
    assert isinstance(model[2], nn.MaxPool2d) and repr(model) == text
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert nt.restore(model) is model
    kinds = {type(m).__module__ for m in model.modules() if "Pool" in type(m).__name__}
    assert kinds == {"torch.nn.modules.pooling"}
    single = nt.convert(nn.MaxPool1d(2))
    assert type(single) is nt.MaxPool1d
    with pytest.raises(TypeError, match="torch.nn.Module"):
        nt.convert("model")


@pytest.mark.parametrize("channels_last", [False, True])
def test_converted_cnn_trains_as_pytorchs(channels_last):
    x = cnn_input(channels_last)
    theirs, ours = small_cnn(), nt.convert(small_cnn())
    with torch.profiler.profile() as prof:
        ours_step = step(ours, x)
    ran = {e.name for e in prof.events() if e.name.startswith("numba_pool::")}
    assert ran >= {f"numba_pool::{op}" for op in (
        "max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward", "adaptive_max_pool",
        "adaptive_max_pool_backward")}, ran
    for a, b in zip(ours_step, step(theirs, x)):
        same(a, b, "eager")
    with torch.no_grad():
        same(ours(x), theirs(x), "no_grad")
    with torch.inference_mode():
        same(ours(x), theirs(x), "inference_mode")


@pytest.mark.parametrize("channels_last", [False, True])
def test_converted_cnn_compiles(channels_last):
    x = cnn_input(channels_last)
    expected = step(small_cnn(), x)
    # aot_eager: the graph as traced, run op by op -> bit for bit
    compiled = torch.compile(nt.convert(small_cnn()), fullgraph=True, backend="aot_eager")
    for a, b in zip(step(compiled, x), expected):
        same(a, b, "aot_eager")
    if channels_last:
        return  # inductor once (it compiles for ~20 s on 2 cores)
    # inductor fuses the convolutions' epilogues, which changes PyTorch's own
    # results by a few ulp too: compare with the same bound
    inductor_theirs = step(torch.compile(small_cnn(), fullgraph=True), x)
    inductor_ours = step(torch.compile(nt.convert(small_cnn()), fullgraph=True), x)
    for a, b, c in zip(inductor_ours, inductor_theirs, expected):
        bound = max(4 * (b - c).abs().max().item(), 1e-14 * c.abs().max().item())
        assert (a - c).abs().max().item() <= bound


def test_pooling_only_model_compiles_bitwise(no_fallback):
    make = lambda: nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2),  # noqa: E731
                                 nn.AdaptiveMaxPool2d(2))
    x = _seeded((2, 3, 16, 16), torch.float64).requires_grad_()
    compiled = torch.compile(nt.convert(make()), fullgraph=True)
    y, ty = compiled(x), make()(x)
    same(y, ty, "compiled")
    g = torch.randn_like(ty)
    same(grads(y, x, g), grads(ty, x, g), "compiled dx")


def test_compile_with_dynamic_shapes():
    make = lambda: nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2, ceil_mode=True),  # noqa
                                 nn.AdaptiveMaxPool2d(2))
    compiled = torch.compile(nt.convert(make()), fullgraph=True, dynamic=True,
                             backend="aot_eager")
    for shape in [(2, 3, 16, 16), (3, 5, 21, 18)]:
        x = _seeded(shape, torch.float64).requires_grad_()
        y, ty = compiled(x), make()(x)
        same(y, ty, f"dynamic {shape}")
        g = torch.randn_like(ty)
        same(grads(y, x, g), grads(ty, x, g), f"dynamic dx {shape}")


def test_export():
    x = cnn_input(False)
    model = nt.convert(small_cnn())
    program = torch.export.export(model, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"numba_pool.max_pool.default", "numba_pool.avg_pool.default",
            "numba_pool.adaptive_max_pool.default"} <= targets
    same(program.module()(x), small_cnn()(x), "exported")


def test_compact_argmax_saved_for_backward():
    x = _seeded((2, 3, 8, 8)).requires_grad_()
    y = nt.max_pool2d(x, 3, 2, 1)
    saved = [t for t in _saved_tensors(y.grad_fn) if t.dtype != torch.float32]
    assert [t.dtype for t in saved] == [torch.uint8]


def _saved_tensors(fn):
    out = []
    for name in dir(fn):
        if name.startswith("_saved_"):
            v = getattr(fn, name)
            out += [v] if isinstance(v, torch.Tensor) else []
    if not out and hasattr(fn, "saved_tensors"):
        out = list(fn.saved_tensors)
    return out


def test_thread_count_follows_torch():
    # in a fresh interpreter: the first numba_pool call starts Numba's
    # threading layer, which used to reset PyTorch's OpenMP thread count
    code = """
import numba, torch
import numba_pool.torch as nt
torch.set_num_threads(1)
torch.get_num_threads()
x = torch.randn(8, 64, 32, 32)
nt.max_pool2d(x, 2)
assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1), torch.get_num_threads()
torch.set_num_threads(2)
nt.max_pool2d(x, 2)
assert torch.get_num_threads() == 2
assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip() == "ok", out.stderr


def test_windows_numba_pool_refuses_go_to_pytorch(monkeypatch):
    """Max pooling windows of 2**31 elements or more raise in numba_pool (int32
    taps); numba_pool.torch hands them to PyTorch instead.  The limit is
    lowered here so that the test needs no 8 GB tensor."""
    from numba_pool import _plan

    assert nf.MAX_WINDOW_ELEMENTS == _plan.MAX_WINDOW_ELEMENTS == 2**31
    monkeypatch.setattr(nf, "MAX_WINDOW_ELEMENTS", 9)
    x = _seeded((2, 3, 9, 9))
    assert not nt.handled(nt.max_pool2d, x, 3)             # 9 elements: PyTorch's
    assert nt.handled(nt.max_pool2d, x, (2, 4))            # 8: ours
    assert not nt.handled(nt.max_pool3d, x[:, None], (1, 3, 3))
    assert not nt.handled(nt.adaptive_max_pool2d, x, 3)    # 3x3 windows
    assert nt.handled(nt.adaptive_max_pool2d, x, (3, 9))   # 3x1 windows
    for got, want in [(nt.max_pool2d(x, 3, return_indices=True),
                       F.max_pool2d(x, 3, return_indices=True)),
                      (nt.adaptive_max_pool2d(x, 3, True), F.adaptive_max_pool2d(x, 3, True))]:
        for a, b in zip(got, want):
            same(a, b, "fallback")


def test_adaptive_window_bound_covers_pytorchs_windows():
    for n in range(1, 60):
        for out in range(1, n + 1):
            longest = max(-(-(i + 1) * n // out) - i * n // out for i in range(out))
            bound = nf._adaptive_window_bound(n, out)
            assert longest <= bound, (n, out)
            assert bound == longest or n % out != 0, (n, out)


def test_small_inputs_go_to_pytorch(monkeypatch):
    monkeypatch.setattr(nf, "MIN_ELEMENTS", SHIPPED_MIN_ELEMENTS)
    assert SHIPPED_MIN_ELEMENTS == 16384
    below = _seeded((1, 3, 42, 130))  # 16380 elements
    at = _seeded((1, 4, 64, 64))      # 16384
    cl = at.contiguous(memory_format=torch.channels_last)
    calls = [lambda x: nt.max_pool2d(x, 3, 2, 1), lambda x: nt.avg_pool2d(x, 3, 1, 1),
             lambda x: nt.adaptive_max_pool2d(x, 5), lambda x: nt.adaptive_avg_pool2d(x, 5),
             lambda x: nt.max_pool1d(x.flatten(1, 2), 3)]
    for call in calls:
        assert not nt.handled(call, below)
        assert nt.handled(call, at) and nt.handled(call, cl)
    y, idx = nt.max_pool2d(below, 2, return_indices=True)
    assert not nt.handled(nt.max_unpool2d, y, idx, 2)
    # the same results either way (max pooling: bit for bit, gradients too)
    for x in (below, at, cl):
        x = x.clone().requires_grad_()
        xt = x.detach().clone().requires_grad_()
        a, b = nt.max_pool2d(x, 3, 2, 1), F.max_pool2d(xt, 3, 2, 1)
        same(a, b, "y")
        g = torch.randn_like(b)
        a.backward(g)
        b.backward(g)
        same(x.grad, xt.grad, "dx")


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_repeat_calls_take_the_remembered_path_bitwise(no_fallback, layout, dtype):
    """The second call of a configuration reuses the first one's plan
    (_ops._max_fast); its values, indices and gradients stay PyTorch's."""
    _ops._max_fast.clear()
    _ops._max_backward_fast.clear()
    x = _seeded((2, 3, 9, 11), dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(F.max_pool2d(x, 3, 2, 1))
    for _ in range(3):
        ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        y, idx = nt.max_pool2d(ours, 3, 2, 1, return_indices=True)
        ty, tidx = F.max_pool2d(theirs, 3, 2, 1, return_indices=True)
        same(y, ty, "y")
        same(idx, tidx, "indices")
        y.backward(g)
        ty.backward(g)
        same(ours.grad, theirs.grad, "dx")
    remembered = list(_ops._max_fast.values()) + list(_ops._max_backward_fast.values())
    assert len(remembered) == 2
    # float16 is computed in float32: always the full path
    assert all((v is None) == (dtype == torch.float16) for v in remembered)
    # an expanded gradient (stride 0) is never remembered, and still right
    ours = x.clone().requires_grad_()
    nt.max_pool2d(ours, 3, 2, 1).sum().backward()
    theirs = x.clone().requires_grad_()
    F.max_pool2d(theirs, 3, 2, 1).sum().backward()
    same(ours.grad, theirs.grad, "dx of an expanded gradient")


AVG_REPEATS = {
    "avg_pool1d k3 s2 p1": (lambda x: nt.avg_pool1d(x, 3, 2, 1), 1),
    "avg_pool2d k3 s1 p1": (lambda x: nt.avg_pool2d(x, 3, 1, 1), 2),
    "avg_pool2d k2 ceil, no pad count": (
        lambda x: nt.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False), 2),
    "avg_pool2d divisor_override": (lambda x: nt.avg_pool2d(x, 3, 2, 1, divisor_override=5), 2),
    "avg_pool3d k2": (lambda x: nt.avg_pool3d(x, 2), 3),
    "adaptive_avg_pool2d 4x3": (lambda x: nt.adaptive_avg_pool2d(x, (4, 3)), 2),
    "adaptive_avg_pool3d": (lambda x: nt.adaptive_avg_pool3d(x, (2, 3, 2)), 3),
}


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the avg kernels' dtypes
@pytest.mark.parametrize("case", sorted(AVG_REPEATS))
def test_repeat_average_calls_take_the_remembered_path_bitwise(no_fallback, monkeypatch, case,
                                                               layout, dtype):
    """Average pooling's repeat path (_ops._avg_fast): from the second call on, a
    configuration skips the full path, and every call's values and gradients
    are the first call's bit for bit (the first call's are checked against
    PyTorch elsewhere)."""
    call, rank = AVG_REPEATS[case]
    _ops._avg_fast.clear()
    _ops._avg_backward_fast.clear()
    x = _seeded((2, 12, 7, 9, 8)[:2 + rank] if rank < 3 else (2, 12, 5, 7, 6), dtype)
    if layout == "channels_last" and rank >= 2:
        x = x.contiguous(memory_format=torch.channels_last if rank == 2
                         else torch.channels_last_3d)
    full = {"forward": 0, "backward": 0}
    real_forward, real_backward = _ops._avg_forward, _ops._avg_backward

    def count(name, real):
        def spy(*args):
            full[name] += 1
            return real(*args)
        return spy

    monkeypatch.setattr(_ops, "_avg_forward", count("forward", real_forward))
    monkeypatch.setattr(_ops, "_avg_backward", count("backward", real_backward))
    g = torch.randn_like(call(x))
    results = []
    for _ in range(3):
        ours = x.clone().requires_grad_()
        y = call(ours)
        # autograd.grad, not .backward: .grad would be restrided to x's layout
        results.append((y, torch.autograd.grad(y, ours, g)[0]))
    for y, dx in results[1:]:
        same(y, results[0][0], "y")
        same(dx, results[0][1], "dx")
    remembered = list(_ops._avg_fast.values()) + list(_ops._avg_backward_fast.values())
    assert len(remembered) == 2
    assert all(v is not None for v in remembered) and full == {"forward": 1, "backward": 1}
    # a gradient in another memory order is its own configuration, and still right
    ours = x.clone().requires_grad_()
    call(ours).sum().backward()
    expected = x.clone().requires_grad_()
    call(expected).backward(torch.ones_like(g))
    same(ours.grad, expected.grad, "dx of an expanded gradient")
    assert None in _ops._avg_backward_fast.values()  # stride 0: never the repeat path
