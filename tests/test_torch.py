"""numba_pool.reference (and the kernels) against PyTorch's CPU max_pool2d."""

import numpy as np
import pytest

import numba_pool as npool
from numba_pool import reference

torch = pytest.importorskip("torch")
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
            dtype=(np.float32, np.float64)[int(rng.integers(0, 2))],
            style=("ties", "normal", "nan")[int(rng.integers(0, 3))],
            fmt=("NHWC", "NCHW")[int(rng.integers(0, 2))],
            seed=int(rng.integers(0, 2**31)),
        )


def torch_pool(x_nchw, cfg):
    xt = torch.from_numpy(x_nchw).requires_grad_()
    y, idx = F.max_pool2d(xt, cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil"],
                          return_indices=True)
    return xt, y, idx


def to_nchw(a, fmt):
    return a if fmt == "NCHW" else a.transpose(0, 3, 1, 2)


def test_reference_and_kernels_match_pytorch_on_random_configurations():
    compared = skipped = 0
    for cfg in random_configs(400):
        rng = np.random.default_rng(cfg["seed"])
        shape = (cfg["n"], cfg["c"], cfg["h"], cfg["w"])
        if cfg["style"] == "ties":
            x = rng.integers(-2, 3, shape).astype(cfg["dtype"])
        else:
            x = rng.standard_normal(shape).astype(cfg["dtype"])
            if cfg["style"] == "nan":
                x[rng.random(shape) < 0.15] = np.nan
                x[rng.random(shape) < 0.1] = -np.inf
        kwargs = dict(pool_size=cfg["k"], strides=cfg["s"], padding=cfg["p"], dilation=cfg["d"],
                      ceil_mode=cfg["ceil"], data_format=cfg["fmt"])
        xin = np.ascontiguousarray(x if cfg["fmt"] == "NCHW" else x.transpose(0, 2, 3, 1))
        try:
            xt, yt, idx = torch_pool(x, cfg)
        except RuntimeError as exc:  # PyTorch rejects the geometry: so must we
            assert "too small" in str(exc) or "pad" in str(exc)
            with pytest.raises(ValueError):
                reference.max_pool2d(xin, **kwargs)
            skipped += 1
            continue
        try:
            yr, amr = reference.max_pool2d(xin, **kwargs)
        except ValueError as exc:
            # Our documented difference: a window with no input element is an
            # error; PyTorch outputs -inf there.
            assert "holds no element" in str(exc)
            assert torch.isinf(yt).any()
            skipped += 1
            continue
        dy = rng.standard_normal(yr.shape).astype(cfg["dtype"])
        yt.backward(torch.from_numpy(np.ascontiguousarray(to_nchw(dy, cfg["fmt"]))))
        for y, am in (( yr, amr), npool.max_pool2d(xin, **kwargs)):
            np.testing.assert_array_equal(to_nchw(y, cfg["fmt"]), yt.detach().numpy())
            np.testing.assert_array_equal(to_nchw(am.flat_indices(), cfg["fmt"]), idx.numpy())
        dxr = reference.max_pool2d_backward(dy, amr)
        np.testing.assert_array_equal(to_nchw(dxr, cfg["fmt"]), xt.grad.numpy())
        dx = npool.max_pool2d_backward(dy, npool.max_pool2d(xin, **kwargs)[1])
        np.testing.assert_array_equal(to_nchw(dx, cfg["fmt"]), xt.grad.numpy())
        compared += 1
    assert compared >= 300, (compared, skipped)


def test_same_padding_matches_tensorflow_formula_via_explicit_torch_padding():
    """'same' = TF's padding; PyTorch can't pad asymmetrically, so pad by hand with -inf."""
    rng = np.random.default_rng(5)
    for h, w, k, s in [(7, 8, 3, 2), (5, 5, 2, 2), (6, 9, 4, 3), (1, 4, 3, 1)]:
        x = rng.standard_normal((2, 3, h, w))
        y, am = npool.max_pool2d(x, k, s, "same", data_format="NCHW")
        (pt, pb), (pl, pr) = am.geometry.padding
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf)
        expected = F.max_pool2d(torch.from_numpy(xp), k, s).numpy()
        np.testing.assert_array_equal(y, expected)
        assert y.shape[2:] == (-(-h // s), -(-w // s))
