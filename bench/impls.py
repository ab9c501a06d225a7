"""Implementations under comparison, each prepared for one case.

``prepare(impl, case, x)`` returns ``(forward, backward)`` callables (either
may be None when the implementation lacks the operation) after one warm-up
call, so timings exclude compilation and the first allocation.
"""

from __future__ import annotations

import os

import numpy as np

import numba_pool as npool
from numba_pool import reference

from cases import Case


def seed_max_pool_naive_backward(dY, X, S):
    """The seed notebook's loops (window = stride = S, NHWC): its yardstick."""
    N_batch, H_in, W_in, C_in = X.shape
    H_out, W_out = H_in // S, W_in // S
    dX = np.zeros_like(X)
    for n_batch in range(N_batch):
        for h in range(H_out):
            for w in range(W_out):
                X_slice = X[n_batch, h * S:h * S + S, w * S:w * S + S, :]
                X_slice_mask = X_slice == np.max(X_slice, axis=(0, 1))
                dX[n_batch, h * S:h * S + S, w * S:w * S + S, :] = X_slice_mask * dY[n_batch, h, w, :]
    return dX


def seed_forward(X, S):
    """The seed's MaxPoolingLayer.forward."""
    N_batch, H_in, W_in, C_in = X.shape
    H_out, W_out = H_in // S, W_in // S
    Y = np.zeros((N_batch, H_out, W_out, C_in))
    for h in range(H_out):
        for w in range(W_out):
            Y[:, h, w, :] = np.max(X[:, h * S:h * S + S, w * S:w * S + S, :], axis=(1, 2))
    return Y


def available() -> list[str]:
    """Implementations installed here (BENCH_IMPLS="a,b" restricts the list)."""
    names = _installed()
    only = [n.strip() for n in os.environ.get("BENCH_IMPLS", "").split(",") if n.strip()]
    return [n for n in names if n in only] if only else names


def _installed() -> list[str]:
    import importlib.util

    names = ["numba_pool", "numba_pool out=", "reference", "seed loops"]
    # find_spec: know whether a framework is installed without importing it
    if importlib.util.find_spec("torch") is not None:
        names.append("pytorch")
    if importlib.util.find_spec("tensorflow") is not None:
        names.append("tensorflow")
    return names


def applies(impl: str, case: Case) -> bool:
    if impl == "seed loops":
        return case.name == "seed"
    if impl == "reference":
        return not case.large  # seconds per call on the large cases
    if impl == "tensorflow":
        return case.data_format == "NHWC"
    return True


def pytorch_callables(x: np.ndarray, data_format: str, pool_size, strides, padding):
    """(forward, backward) of PyTorch's max_pool2d on ``x``; NHWC data as a
    channels-last tensor (the same memory), backward through autograd."""
    import torch

    F = torch.nn.functional
    xt = torch.from_numpy(x)
    if data_format == "NHWC":
        xt = xt.permute(0, 3, 1, 2)  # NCHW view in channels-last memory
    xg = xt.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    args = (pool_size, strides, padding)
    yt = F.max_pool2d(xg, *args)
    g = torch.ones_like(yt)

    def fwd():
        with torch.no_grad():
            return F.max_pool2d(xt, *args)

    def bwd():
        xg.grad = None
        yt.backward(g, retain_graph=True)

    return fwd, bwd


def prepare(impl: str, case: Case, x: np.ndarray):
    kw = case.kwargs
    if impl in ("numba_pool", "numba_pool out="):
        y, am = npool.max_pool2d(x, **kw)
        dy = np.ones_like(y)
        if impl == "numba_pool":
            fwd = lambda: npool.max_pool2d(x, **kw)  # noqa: E731
            bwd = lambda: npool.max_pool2d_backward(dy, am)  # noqa: E731
        else:
            dx = np.empty_like(x)
            fwd = lambda: npool.max_pool2d(x, **kw, out=(y, am))  # noqa: E731
            bwd = lambda: npool.max_pool2d_backward(dy, am, out=dx)  # noqa: E731
    elif impl == "reference":
        y, am = reference.max_pool2d(x, **kw)
        dy = np.ones_like(y)
        fwd = lambda: reference.max_pool2d(x, **kw)  # noqa: E731
        bwd = lambda: reference.max_pool2d_backward(dy, am)  # noqa: E731
    elif impl == "seed loops":
        S = case.pool_size
        dy = np.ones((x.shape[0], x.shape[1] // S, x.shape[2] // S, x.shape[3]), x.dtype)
        fwd = lambda: seed_forward(x, S)  # noqa: E731
        bwd = lambda: seed_max_pool_naive_backward(dy, x, S)  # noqa: E731
    elif impl == "pytorch":
        fwd, bwd = pytorch_callables(x, case.data_format, case.pool_size, case.strides,
                                     case.padding)
    elif impl == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        padding = "VALID" if case.padding == 0 else "SAME"  # TF has no symmetric pad 1
        k, s = case.pool_size, case.strides
        yt = tf.nn.max_pool2d(xt, k, s, padding)
        g = tf.ones_like(yt)
        fwd = lambda: tf.nn.max_pool2d(xt, k, s, padding).numpy()  # noqa: E731
        bwd = lambda: tf.raw_ops.MaxPoolGrad(orig_input=xt, orig_output=yt, grad=g,  # noqa: E731
                                             ksize=[1, k, k, 1], strides=[1, s, s, 1],
                                             padding=padding).numpy()
    else:
        raise ValueError(impl)
    fwd()
    bwd()
    return fwd, bwd


def traffic_bytes(case: Case) -> dict[str, tuple[int, int]]:
    """(read, write) bytes of one forward and one backward with 1-byte offsets."""
    x = np.empty(case.shape, case.dtype)
    y, _ = npool.max_pool2d(np.zeros((1,) + case.shape[1:], case.dtype), **case.kwargs)
    n_out = y.size * case.shape[0]
    item = x.itemsize
    return {
        "fwd": (x.size * item, n_out * (item + 1)),
        "bwd": (n_out * (item + 1), x.size * item),
    }
