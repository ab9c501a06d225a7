"""Numba kernels for 2-D max pooling.

Kernels see plain C-contiguous 2-D arrays: an input of physical layout
(B, H, W, C) is passed as ``x2 = x.reshape(B * H, W * C)`` and likewise for
outputs, so the innermost axis of every loop is contiguous memory (channels,
or a whole row's W*C when pooling over rows).  NCHW data is passed as
B = N*C planes with C = 1.

All bounds come from :mod:`numba_pool.geometry`: tap ranges are clipped to
the input there, so no kernel index can leave its array whatever the data.
The backward kernel writes only positions that are valid taps, whatever the
stored offsets say, so corrupted offsets can at worst credit nothing.

Each kernel has a serial and a parallel driver around one row worker; both
are compiled lazily per dtype and cached on disk.

Selection rule (forward): with tap index ``t = i * kw + j`` in row-major
window order, the winner is the smallest ``t`` holding the maximum, or, if
the window holds NaN, the largest ``t`` holding NaN (PyTorch's CPU rule:
``val > max or isnan(val)`` scanned in window order).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_OPTS = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_OPTS)
def _forward_rows(x2, y2, off2, H, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi,
                  dh, dw, kw, item_lo, item_hi, colv, colt):
    """Pool output rows ``item_lo <= b * Ho + oh < item_hi``.

    Phase A reduces the window's input rows element-wise over the whole
    contiguous row (W*C), remembering the winning row tap.  Phase B reduces
    the columns of each window, breaking ties by the full tap index.
    """
    WC = x2.shape[1]
    for item in range(item_lo, item_hi):
        b = item // Ho
        oh = item - b * Ho
        i0 = rlo[oh]
        i1 = rhi[oh]
        row = b * H + rstart[oh] + i0 * dh
        ti0 = np.int32(i0)
        for q in range(WC):
            colv[q] = x2[row, q]
            colt[q] = ti0
        for i in range(i0 + 1, i1):
            row = b * H + rstart[oh] + i * dh
            ti = np.int32(i)
            for q in range(WC):
                v = x2[row, q]
                cur = colv[q]
                take = (v > cur) | (v != v)
                colv[q] = v if take else cur
                colt[q] = ti if take else colt[q]
        for ow in range(Wo):
            j0 = clo[ow]
            j1 = chi[ow]
            ob = ow * C
            base = (cstart[ow] + j0 * dw) * C
            for c in range(C):
                y2[item, ob + c] = colv[base + c]
                off2[item, ob + c] = colt[base + c] * kw + j0
            for j in range(j0 + 1, j1):
                base = (cstart[ow] + j * dw) * C
                for c in range(C):
                    v = colv[base + c]
                    t = colt[base + c] * kw + j
                    cur = y2[item, ob + c]
                    ct = np.int64(off2[item, ob + c])
                    vnan = v != v
                    cnan = cur != cur
                    take = (vnan & ((not cnan) | (t > ct))) | (
                        (not vnan) & (not cnan) & ((v > cur) | ((v == cur) & (t < ct))))
                    y2[item, ob + c] = v if take else cur
                    off2[item, ob + c] = t if take else ct


@njit(**_OPTS)
def forward_serial(x2, y2, off2, H, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi,
                   dh, dw, kw, nchunks):
    colv = np.empty(x2.shape[1], x2.dtype)
    colt = np.empty(x2.shape[1], np.int32)
    _forward_rows(x2, y2, off2, H, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi,
                  dh, dw, kw, 0, y2.shape[0], colv, colt)


@njit(parallel=True, **_OPTS)
def forward_parallel(x2, y2, off2, H, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi,
                     dh, dw, kw, nchunks):
    n = y2.shape[0]
    for chunk in prange(nchunks):
        lo = chunk * n // nchunks
        hi = (chunk + 1) * n // nchunks
        colv = np.empty(x2.shape[1], x2.dtype)
        colt = np.empty(x2.shape[1], np.int32)
        _forward_rows(x2, y2, off2, H, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi,
                      dh, dw, kw, lo, hi, colv, colt)


@njit(**_OPTS)
def _backward_rows(dy2, off2, dx2, H, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart,
                   clo, chi, dh, dw, kw, zero, item_lo, item_hi):
    """Write input rows ``item_lo <= b * H + ih < item_hi`` of dx.

    A gather: each dx row is owned by one iteration, which sums the
    contributions of every output window covering it in window order
    (output row, then output column), so results do not depend on threads.
    """
    WC = dx2.shape[1]
    for item in range(item_lo, item_hi):
        b = item // H
        ih = item - b * H
        for q in range(WC):
            dx2[item, q] = zero
        for oh in range(cover_lo[ih], cover_hi[ih]):
            di = ih - rstart[oh]
            i = di // dh
            if i * dh != di:
                continue
            yrow = b * Ho + oh
            for ow in range(Wo):
                ob = ow * C
                for j in range(clo[ow], chi[ow]):
                    t = i * kw + j
                    base = (cstart[ow] + j * dw) * C
                    for c in range(C):
                        g = dy2[yrow, ob + c]
                        dx2[item, base + c] += g if off2[yrow, ob + c] == t else zero


@njit(**_OPTS)
def backward_serial(dy2, off2, dx2, H, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart,
                    clo, chi, dh, dw, kw, zero, nchunks):
    _backward_rows(dy2, off2, dx2, H, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart,
                   clo, chi, dh, dw, kw, zero, 0, dx2.shape[0])


@njit(parallel=True, **_OPTS)
def backward_parallel(dy2, off2, dx2, H, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart,
                      clo, chi, dh, dw, kw, zero, nchunks):
    n = dx2.shape[0]
    for chunk in prange(nchunks):
        lo = chunk * n // nchunks
        hi = (chunk + 1) * n // nchunks
        _backward_rows(dy2, off2, dx2, H, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart,
                       clo, chi, dh, dw, kw, zero, lo, hi)
