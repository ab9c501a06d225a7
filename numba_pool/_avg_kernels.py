"""Numba kernels for average pooling of every rank (and adaptive average pooling).

Same physical layout and row tables as :mod:`numba_pool._kernels`.  Data
arrive in the compute dtype (float32 or float64).  Summation order is
PyTorch's: each window's elements are added from zero in row-major window
order (row taps, then columns), then divided once by the window's divisor
(``sum / (rows * cols)``), or, for adaptive pooling, by each axis's window
length in turn (``sum / kd / kh / kw``), as ATen does.  The backward adds
``dy / divisor`` to every tap of the window, output positions in row-major
order (a gather over dx rows: race-free, same order).

Divisor arguments (compute dtype): ``override > 0`` replaces the divisor;
otherwise ``adaptive`` selects the per-axis divisions by ``rf1[r]``,
``rf2[r]``, ``cf[ow]``, and regular pooling divides by ``rf1[r] * cf[ow]``.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from ._kernels import _OPTS, _SERIAL_OPTS, U


@njit(inline="always")
def _divide(s, r, ow, rf1, rf2, cf, override, adaptive):
    """``s`` over its window's divisor; ``rf1, rf2, cf`` and ``override`` are
    in the compute dtype (small integers, exact; their product too)."""
    if override > 0:
        return s / override
    if adaptive:
        return s / rf1[r] / rf2[r] / cf[ow]
    return s / (rf1[r] * cf[ow])


@njit(inline="always")
def _avg_rows(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia, cib,
              rf1, rf2, cf, override, adaptive, item_lo, item_hi):
    WC = W * C
    WoC = Wo * C
    acc = np.empty(WoC, y.dtype)
    zero = y.dtype.type(0)
    Cu = U(C)
    for item in range(item_lo, item_hi):
        b = item // R
        r = item - b * R
        xb = b * P * WC
        for q in range(WoC):
            acc[q] = zero
        for k in range(tap_ptr[r], tap_ptr[r + 1]):  # row taps in row-major order
            xr = xb + tap_row[k] * WC
            for part in range(2):  # columns touching the padding (or adaptive windows)
                if cib > cia:
                    owa, owb = (0, cia) if part == 0 else (cib, Wo)
                else:
                    owa, owb = (0, Wo) if part == 0 else (Wo, Wo)
                for ow in range(owa, owb):
                    ab = U(ow * C)
                    for j in range(clo[ow], chi[ow]):
                        xq = U(xr + (cstart[ow] + j * dw) * C)
                        for c in range(Cu):
                            acc[ab + c] += x[xq + c]
            if cib > cia:  # interior columns: all kw taps, vectorised over columns
                base = xr + cstart[cia] * C
                for j in range(kw):
                    for ow in range(cia, cib):
                        xq = U(base + ((ow - cia) * sw + j * dw) * C)
                        ab = U(ow * C)
                        for c in range(Cu):
                            acc[ab + c] += x[xq + c]
        yb = U(item * WoC)
        for ow in range(Wo):
            for c in range(C):
                q = ow * C + c
                y[yb + U(q)] = _divide(acc[q], r, ow, rf1, rf2, cf, override, adaptive)


@njit(inline="always")
def _avg_backward_rows(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw, rf1,
                       rf2, cf, override, adaptive, item_lo, item_hi):
    """dx rows ``item_lo <= b * P + p < item_hi``: zero, then add the share
    of every window reading the row, output rows (then columns) in order."""
    WC = W * C
    WoC = Wo * C
    Cu = U(C)
    zero = dx.dtype.type(0)
    for item in range(item_lo, item_hi):
        b = item // P
        p = item - b * P
        xr = U(item * WC)
        for q in range(U(WC)):
            dx[xr + q] = zero
        for k in range(cover_ptr[p], cover_ptr[p + 1]):  # output rows in order
            r = cover_out[k]
            yr = (b * R + r) * WoC
            for ow in range(Wo):
                ob = U(yr + ow * C)
                for j in range(clo[ow], chi[ow]):
                    xq = xr + U((cstart[ow] + j * dw) * C)
                    for c in range(Cu):
                        dx[xq + c] += _divide(dy[ob + c], r, ow, rf1, rf2, cf, override,
                                              adaptive)


@functools.lru_cache(maxsize=None)
def avg_forward_kernels():
    """(serial, parallel) average pooling forward kernels (one compile per dtype)."""

    @njit(**_SERIAL_OPTS)
    def serial(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia, cib,
               rf1, rf2, cf, override, adaptive, nitems, nchunks):
        _avg_rows(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia, cib,
                  rf1, rf2, cf, override, adaptive, 0, nitems)

    @njit(parallel=True, **_OPTS)
    def parallel(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia, cib,
                 rf1, rf2, cf, override, adaptive, nitems, nchunks):
        for chunk in prange(nchunks):
            _avg_rows(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia,
                      cib, rf1, rf2, cf, override, adaptive, chunk * nitems // nchunks,
                      (chunk + 1) * nitems // nchunks)

    return serial, parallel


@functools.lru_cache(maxsize=None)
def avg_backward_kernels():
    """(serial, parallel) average pooling backward kernels (gather over dx rows)."""

    @njit(**_SERIAL_OPTS)
    def serial(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw, rf1, rf2, cf,
               override, adaptive, nitems, nchunks):
        _avg_backward_rows(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw,
                           rf1, rf2, cf, override, adaptive, 0, nitems)

    @njit(parallel=True, **_OPTS)
    def parallel(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw, rf1, rf2,
                 cf, override, adaptive, nitems, nchunks):
        for chunk in prange(nchunks):
            _avg_backward_rows(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw,
                               rf1, rf2, cf, override, adaptive, chunk * nitems // nchunks,
                               (chunk + 1) * nitems // nchunks)

    return serial, parallel
