"""numba_pool.reference (and the kernels) against PyTorch's CPU max_pool2d, bit for bit.

PyTorch is a required dev dependency (``make test`` installs it): a missing
torch fails this module instead of skipping it.  Expected values come from
PyTorch alone; nothing here reads the package's geometry.
"""

import numpy as np
import pytest
import torch

import numba_pool as npool
from numba_pool import reference
from helpers import assert_same_bits

F = torch.nn.functional


def random_configs(count, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        yield dict(
            n=int(rng.integers(1, 3)), c=int(rng.integers(1, 6)),
            h=int(rng.integers(1, 14)), w=int(rng.integers(1, 14)),
            k=(kh, kw), s=tuple(int(v) for v in rng.integers(1, 5, 2)),
            d=tuple(int(v) for v in rng.integers(1, 3, 2)),
            p=(int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))),
            ceil=bool(rng.integers(0, 2)),
            dtype=(np.float32, np.float64, np.float16)[int(rng.integers(0, 3))],
            style=("ties", "normal", "nan")[int(rng.integers(0, 3))],
            fmt=("NHWC", "NCHW")[int(rng.integers(0, 2))],
            memory=("contiguous", "channels_last")[int(rng.integers(0, 2))],
            seed=int(rng.integers(0, 2**31)),
        )


def special_values(rng, shape, dtype, fraction):
    """Random normals with a ``fraction`` of +-0, NaN and +-inf."""
    a = rng.standard_normal(shape).astype(dtype)
    mask = rng.random(shape) < fraction
    a[mask] = rng.choice(np.array([0.0, -0.0, np.nan, np.inf, -np.inf], dtype), mask.sum())
    return a


def to_nchw(a, fmt):
    return a if fmt == "NCHW" else a.transpose(0, 3, 1, 2)


def from_nchw(a, fmt):
    return np.ascontiguousarray(a if fmt == "NCHW" else a.transpose(0, 2, 3, 1))


def torch_forward_backward(x_nchw, dy_nchw, cfg):
    """PyTorch's values, indices and gradient; x in NCHW or channels_last memory."""
    xt = torch.from_numpy(x_nchw)
    if cfg["memory"] == "channels_last":
        xt = xt.contiguous(memory_format=torch.channels_last)
    xt.requires_grad_()
    y, idx = F.max_pool2d(xt, cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil"],
                          return_indices=True)
    y.backward(torch.from_numpy(dy_nchw))
    return y.detach().numpy(), idx.numpy(), xt.grad.numpy()


def test_reference_and_kernels_match_pytorch_on_random_configurations():
    compared = rejected = 0
    for cfg in random_configs(500):
        rng = np.random.default_rng(cfg["seed"])
        shape = (cfg["n"], cfg["c"], cfg["h"], cfg["w"])
        if cfg["style"] == "ties":
            x = rng.integers(-2, 3, shape).astype(cfg["dtype"])
        else:
            x = special_values(rng, shape, cfg["dtype"], 0.25 if cfg["style"] == "nan" else 0.0)
        kwargs = dict(pool_size=cfg["k"], strides=cfg["s"], padding=cfg["p"], dilation=cfg["d"],
                      ceil_mode=cfg["ceil"], data_format=cfg["fmt"])
        xin = from_nchw(x, cfg["fmt"])
        try:
            yt, _ = F.max_pool2d(torch.from_numpy(x), cfg["k"], cfg["s"], cfg["p"], cfg["d"],
                                 cfg["ceil"], return_indices=True)
        except RuntimeError as exc:  # PyTorch rejects the geometry: so must we
            assert "too small" in str(exc) or "pad" in str(exc)
            for fn in (reference.max_pool2d, npool.max_pool2d):
                with pytest.raises(ValueError):
                    fn(xin, **kwargs)
            rejected += 1
            continue
        try:
            yr, amr = reference.max_pool2d(xin, **kwargs)
        except ValueError as exc:
            # Our documented difference: a window with no input element is an
            # error; PyTorch outputs -inf there.
            assert "holds no element" in str(exc)
            assert torch.isinf(yt).any()
            with pytest.raises(ValueError, match="holds no element"):
                npool.max_pool2d(xin, **kwargs)
            rejected += 1
            continue
        # dy holds +-0, NaN and +-inf too: -0.0 must land as +0.0 (a sum from zero)
        dy = special_values(rng, yr.shape, cfg["dtype"], 0.2)
        y_t, idx_t, dx_t = torch_forward_backward(x, np.ascontiguousarray(to_nchw(dy, cfg["fmt"])),
                                                  cfg)
        y, am = npool.max_pool2d(xin, **kwargs)
        for name, (yy, aa) in (("reference", (yr, amr)), ("kernels", (y, am))):
            assert_same_bits(to_nchw(yy, cfg["fmt"]), y_t, f"{name} y {cfg}")
            assert_same_bits(to_nchw(aa.flat_indices(), cfg["fmt"]), idx_t,
                             f"{name} indices {cfg}")
        assert_same_bits(to_nchw(reference.max_pool2d_backward(dy, amr), cfg["fmt"]), dx_t,
                         f"reference dx {cfg}")
        assert_same_bits(to_nchw(npool.max_pool2d_backward(dy, am), cfg["fmt"]), dx_t,
                         f"kernel dx {cfg}")
        compared += 1
    assert compared >= 350, (compared, rejected)


@pytest.mark.parametrize("fmt, c, k, s", [
    ("NHWC", 8, 2, 2), ("NCHW", 3, 2, 2),            # windows tile the input
    ("NHWC", 8, (3, 2), 2), ("NCHW", 3, (4, 3), (2, 3)),
    ("NHWC", 3, 2, 2), ("NHWC", 64, 3, 2),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_negative_zero_gradients_land_as_positive_zero(fmt, c, k, s, dtype):
    """PyTorch adds dy into zeros: a -0.0 gradient gives +0.0 in dx."""
    x = np.random.default_rng(0).standard_normal((2, c, 6, 6)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    yt = F.max_pool2d(xt, k, s)
    yt.backward(torch.full_like(yt, -0.0))
    _, am = npool.max_pool2d(from_nchw(x, fmt), k, s, data_format=fmt)
    dx = npool.max_pool2d_backward(np.full(am.output_shape, -0.0, dtype), am)
    assert not np.signbit(dx).any()
    assert_same_bits(to_nchw(dx, fmt), xt.grad.numpy())


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
@pytest.mark.parametrize("k, s, p", [(3, 1, 1), (5, 1, 2), (3, 2, 1), (2, 1, 0)])
def test_float16_gradients_round_like_pytorch(fmt, k, s, p):
    """Overlapping windows sum several float16 gradients: each addition rounds
    to float16, as PyTorch's Half arithmetic does (a float32 accumulation
    rounded once differs by up to several ulp)."""
    rng = np.random.default_rng(3)
    x = rng.integers(-1, 2, (2, 5, 12, 13)).astype(np.float16)  # ties: winners shared
    xt = torch.from_numpy(x).requires_grad_()
    yt = F.max_pool2d(xt, k, s, p)
    dy = (rng.standard_normal(yt.shape) * 100).astype(np.float16)
    yt.backward(torch.from_numpy(dy))
    _, am = npool.max_pool2d(from_nchw(x, fmt), k, s, p, data_format=fmt)
    dx = npool.max_pool2d_backward(from_nchw(dy, fmt), am)
    assert_same_bits(to_nchw(dx, fmt), xt.grad.numpy())
    _, amr = reference.max_pool2d(from_nchw(x, fmt), k, s, p, data_format=fmt)
    assert_same_bits(to_nchw(reference.max_pool2d_backward(from_nchw(dy, fmt), amr), fmt),
                     xt.grad.numpy())
    # the test can fail: one float32 rounding differs from PyTorch on this data
    once = npool.max_pool2d_backward(from_nchw(dy, fmt).astype(np.float32),
                                     npool.max_pool2d(from_nchw(x, fmt).astype(np.float32), k, s,
                                                      p, data_format=fmt)[1])
    if k > s:
        assert not np.array_equal(to_nchw(once.astype(np.float16), fmt), xt.grad.numpy())


def tensorflow_same_padding(size, k, s, d=1):
    """TensorFlow's published "same" rule, written out here independently:
    out = ceil(size / s); total = max((out - 1) * s + (k - 1) * d + 1 - size, 0);
    the smaller half before, the odd unit after."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return out, total // 2, total - total // 2


@pytest.mark.parametrize("h, w, k, s, d", [
    (7, 8, 3, 2, 1), (5, 5, 2, 2, 1), (6, 9, 4, 3, 1), (1, 4, 3, 1, 1), (8, 8, 2, 1, 1),
    (10, 7, 4, 1, 1), (9, 9, (2, 3), (3, 2), 1), (11, 6, 3, 1, 2), (6, 6, 5, 2, 1),
])
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_same_padding_matches_pytorch_on_explicitly_padded_input(h, w, k, s, d, fmt):
    """'same' = TensorFlow's padding; PyTorch can't pad asymmetrically, so pad by
    hand with -inf using the formula above and pool "valid" in PyTorch."""
    rng = np.random.default_rng(5)
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (s, s) if isinstance(s, int) else s
    x = rng.integers(-2, 3, (2, 3, h, w)).astype(np.float64)  # ties: a misplaced pad shows
    ho, pt, pb = tensorflow_same_padding(h, kh, sh, d)
    wo, pl, pr = tensorflow_same_padding(w, kw, sw, d)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf)
    xpt = torch.from_numpy(xp).requires_grad_()
    yt, idx = F.max_pool2d(xpt, k, s, dilation=d, return_indices=True)
    dy = rng.standard_normal(yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, am = npool.max_pool2d(from_nchw(x, fmt), k, s, "same", dilation=d, data_format=fmt)
    assert to_nchw(y, fmt).shape[2:] == (ho, wo)
    assert_same_bits(to_nchw(y, fmt), yt.detach().numpy())
    dx = npool.max_pool2d_backward(from_nchw(dy, fmt), am)
    assert_same_bits(to_nchw(dx, fmt), xpt.grad.numpy()[:, :, pt:pt + h, pl:pl + w])
    # indices: PyTorch's are in the padded plane; map them back
    r, c = np.divmod(idx.numpy(), w + pl + pr)
    assert_same_bits(to_nchw(am.flat_indices(), fmt), (r - pt) * w + (c - pl))
    yr, amr = reference.max_pool2d(from_nchw(x, fmt), k, s, "same", dilation=d, data_format=fmt)
    assert_same_bits(to_nchw(yr, fmt), yt.detach().numpy())
    assert_same_bits(to_nchw(reference.max_pool2d_backward(from_nchw(dy, fmt), amr), fmt),
                     xpt.grad.numpy()[:, :, pt:pt + h, pl:pl + w])
