"""Numba kernels for 2-D max pooling.

Kernels see flat C-contiguous arrays of a physical (B, H, W, C) layout:
NHWC data as it is, NCHW data as B = N*C planes with C = 1.  Input row
``(b, r)`` starts at ``(b * H + r) * W * C``; output row ``b * Ho + oh`` at
``(b * Ho + oh) * Wo * C``.

Every bound comes from :mod:`numba_pool.geometry` (tap ranges clipped to the
input), so no index can leave its array whatever the data.  The backward
kernels write only positions that are valid taps, whatever the stored
offsets say: corrupted offsets can at worst credit nothing.

Two implementation notes that decide speed:

* Inner-loop indices are ``uint64``.  Numba wraps negative signed indices
  around (``i < 0 -> i + n``); that select stops LLVM from vectorising.
  Unsigned indices need no wraparound.
* Window sizes (and, for few channels, stride, dilation and channel count)
  are compile-time constants in the specialised kernels made by
  :func:`forward_kernels` / :func:`backward_kernels`, so LLVM unrolls the
  window and vectorises over channels (many channels) or over output
  columns (few channels).  Windows touching padding and unusual
  configurations use the generic kernels.

Selection rule (forward): with tap index ``t = i * kw + j`` in row-major
window order, the winner is the smallest ``t`` holding the maximum, or, if
the window holds NaN, the largest ``t`` holding NaN (PyTorch's CPU rule:
``val > max or isnan(val)`` scanned in window order).  Backward sums each
input element's contributions in window order (output row, then column).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

_OPTS = dict(cache=True, nogil=True, error_model="numpy")

U = np.uint64
i64 = np.int64

# Square windows with specialised kernels (see pooling._forward_key).
SPECIAL_WINDOWS = (2, 3)
# Loops over channels are vectorised from this many channels on; below,
# kernels vectorise over output columns (one channel) or use per-element code.
VECTOR_MIN_CHANNELS = 5


# --------------------------------------------------------------------------
# Generic forward: any window, any padding.
# --------------------------------------------------------------------------


@njit(**_OPTS)
def _forward_generic(x, y, off, xb, yb, WC, C, rs, i0, i1, dh, cstart, clo, chi, dw, kw,
                     owa, owb, colv, colt):
    """Pool output columns ``owa <= ow < owb`` of one output row.

    ``xb``/``yb``: flat offsets of input row (b, 0) and of the output row;
    ``rs``: input row of tap 0; valid row taps ``i0 <= i < i1``.

    Phase A reduces the window's input rows element-wise over the contiguous
    span of the row these columns need, remembering the winning row tap.
    Phase B reduces the columns of each window, ties broken by tap index.
    """
    # input columns these windows read (not monotonic in ow when dilation > stride)
    first = cstart[owa] + clo[owa] * dw
    last = cstart[owa] + (chi[owa] - 1) * dw
    for ow in range(owa + 1, owb):
        first = min(first, cstart[ow] + clo[ow] * dw)
        last = max(last, cstart[ow] + (chi[ow] - 1) * dw)
    qa = U(first * C)
    qb = U((last + 1) * C)
    r = U(xb + (rs + i0 * dh) * WC)
    ti0 = np.int32(i0)
    for q in range(qa, qb):
        colv[q] = x[r + q]
        colt[q] = ti0
    for i in range(i0 + 1, i1):
        r = U(xb + (rs + i * dh) * WC)
        ti = np.int32(i)
        for q in range(qa, qb):
            v = x[r + q]
            cur = colv[q]
            take = (v > cur) | (v != v)
            colv[q] = v if take else cur
            colt[q] = ti if take else colt[q]
    Cu = U(C)
    for ow in range(owa, owb):
        j0 = clo[ow]
        j1 = chi[ow]
        ob = U(yb + ow * C)
        base = U((cstart[ow] + j0 * dw) * C)
        for c in range(Cu):
            y[ob + c] = colv[base + c]
            off[ob + c] = colt[base + c] * kw + j0
        for j in range(j0 + 1, j1):
            base = U((cstart[ow] + j * dw) * C)
            for c in range(Cu):
                v = colv[base + c]
                t = colt[base + c] * kw + j
                cur = y[ob + c]
                ct = np.int64(off[ob + c])
                vnan = v != v
                cnan = cur != cur
                take = (vnan & ((not cnan) | (t > ct))) | (
                    (not vnan) & (not cnan) & ((v > cur) | ((v == cur) & (t < ct))))
                y[ob + c] = v if take else cur
                off[ob + c] = t if take else ct


@njit(inline="always")
def _forward_interior(x, y, off, xr, yb, WC, C, dh, dw, cstart, owa, owb, KH, KW, SW, DW, NC):
    """Output columns [owa, owb) of a row whose every tap is inside x.

    ``xr``: flat offset of the input row of tap row 0.  KH, KW, SW, DW, NC
    are compile-time constants (see :func:`forward_kernels`).
    """
    if NC == 0:  # any channel count: vectorised over channels
        Cu = U(C)
        for ow in range(owa, owb):
            cb = U(xr + cstart[ow] * C)
            ob = U(yb + ow * C)
            for c in range(Cu):
                best = x[cb + c]
                bt = 0
                for i in range(KH):
                    for j in range(KW):
                        if i + j > 0:
                            v = x[cb + U(i * dh * WC + j * dw * C) + c]
                            take = (v > best) | (v != v)
                            best = v if take else best
                            bt = i * KW + j if take else bt
                y[ob + c] = best
                off[ob + c] = bt
    else:  # exactly NC channels: vectorised over output columns
        n = U(owb - owa)
        xb0 = U(xr + cstart[owa] * NC)
        ob0 = U(yb + owa * NC)
        for k in range(n):
            cb = xb0 + k * U(SW * NC)
            ob = ob0 + k * U(NC)
            for c in range(NC):
                best = x[cb + U(c)]
                bt = 0
                for i in range(KH):
                    for j in range(KW):
                        if i + j > 0:
                            v = x[cb + U(i * dh * WC + (j * DW) * NC + c)]
                            take = (v > best) | (v != v)
                            best = v if take else best
                            bt = i * KW + j if take else bt
                y[ob + U(c)] = best
                off[ob + U(c)] = bt


@njit(inline="always")
def _forward_rows(x, y, off, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi, dh, dw, kw,
                  cia, cib, item_lo, item_hi, KH, KW, SW, DW, NC):
    """Output rows ``item_lo <= b * Ho + oh < item_hi``.  Output columns
    ``cia <= ow < cib`` have every tap inside x; KH == 0 means no
    specialised interior kernel."""
    WC = W * C
    colv = np.empty(WC, x.dtype)
    colt = np.empty(WC, np.int32)
    WoC = Wo * C
    for item in range(item_lo, item_hi):
        b = item // Ho
        oh = item - b * Ho
        xb = b * H * WC
        yb = item * WoC
        if KH > 0 and rlo[oh] == 0 and rhi[oh] == KH and cib > cia:
            _forward_interior(x, y, off, xb + rstart[oh] * WC, yb, WC, C, dh, dw, cstart, cia,
                              cib, KH, KW, SW, DW, NC)
            # int64 (not literal) arguments: one compiled generic kernel per dtype
            if cia > 0:
                _forward_generic(x, y, off, xb, yb, WC, C, rstart[oh], i64(0), i64(KH), dh,
                                 cstart, clo, chi, dw, kw, i64(0), cia, colv, colt)
            if cib < Wo:
                _forward_generic(x, y, off, xb, yb, WC, C, rstart[oh], i64(0), i64(KH), dh,
                                 cstart, clo, chi, dw, kw, cib, i64(Wo), colv, colt)
        else:
            _forward_generic(x, y, off, xb, yb, WC, C, rstart[oh], rlo[oh], rhi[oh], dh,
                             cstart, clo, chi, dw, kw, i64(0), i64(Wo), colv, colt)


@functools.lru_cache(maxsize=None)
def forward_kernels(KH: int, KW: int, SW: int, DW: int, NC: int):
    """(serial, parallel) forward kernels specialised for a window shape.

    ``KH, KW`` window; ``NC > 0`` means "exactly NC channels, stride SW,
    dilation DW" (vectorised over output columns); ``NC == 0`` means "any
    channel count" (vectorised over channels; SW, DW unused).  ``KH == 0``
    gives the fully generic kernels.

    The constants are closure variables (plain ints, so Numba's on-disk
    cache keys stay stable across processes) and the row code is inlined
    into each driver, so LLVM sees them as constants.
    """

    @njit(**_OPTS)
    def serial(x, y, off, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi, dh, dw, kw,
               cia, cib, nitems, nchunks):
        _forward_rows(x, y, off, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi, dh, dw,
                      kw, cia, cib, 0, nitems, KH, KW, SW, DW, NC)

    @njit(parallel=True, **_OPTS)
    def parallel(x, y, off, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi, dh, dw, kw,
                 cia, cib, nitems, nchunks):
        for chunk in prange(nchunks):
            _forward_rows(x, y, off, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi, dh,
                          dw, kw, cia, cib, chunk * nitems // nchunks,
                          (chunk + 1) * nitems // nchunks, KH, KW, SW, DW, NC)

    return serial, parallel


# --------------------------------------------------------------------------
# Backward: a gather over dx rows, so overlapping windows never race.
# --------------------------------------------------------------------------


@njit(inline="always")
def round_to_half(v):
    """``v`` (float32) rounded to the nearest float16 value, ties to even,
    overflow to +-inf, returned as float32: what ``float16(v)`` does.

    PyTorch adds float16 gradients as ``Half(float(a) + float(b))``; the
    backward kernels for float16 data apply this after every addition so
    that their sums round exactly as PyTorch's do.
    """
    a = abs(np.float64(v))
    if not a < 65520.0:  # inf, NaN, or rounds to inf (65520 ties to the even 2**16)
        return v if a != a else np.float32(math.copysign(math.inf, v))
    if a < 6.103515625e-05:  # below 2**-14: subnormal half, spacing 2**-24
        ulp = 5.960464477539063e-08
    else:
        ulp = math.ldexp(1.0, math.frexp(a)[1] - 11)  # 11 significant bits
    t = a / ulp  # exact: power-of-two scaling
    r = ((t + 4503599627370496.0) - 4503599627370496.0) * ulp  # rint, ties to even
    return np.float32(math.copysign(r, v))


@njit(inline="always")
def _accumulate(dx, d, g, HALF):
    """``dx[d] += g``, rounded to float16 after the addition when HALF."""
    if HALF:
        dx[d] = round_to_half(dx[d] + g)
    else:
        dx[d] += g


@njit(inline="always")
def _backward_interior(dy, off, dx, xr, yr, i, cstart, cia, cib, zero, store, KW, SW, DW, NC):
    """One channel-narrow row segment: output columns [cia, cib), tap row i.

    ``store``: write instead of accumulate (the windows tile this row);
    ``zero + g`` so that a -0.0 gradient lands as +0.0, as a sum from zero
    does (and as PyTorch's ``+=`` into zeros does)."""
    n = U(cib - cia)
    xb0 = U(xr + cstart[cia] * NC)
    ob0 = U(yr + cia * NC)
    t0 = i * KW
    for k in range(n):
        db = xb0 + k * U(SW * NC)
        ob = ob0 + k * U(NC)
        for c in range(NC):
            o = off[ob + U(c)]
            g = dy[ob + U(c)]
            for j in range(KW):
                d = db + U(j * DW * NC + c)
                if store:
                    dx[d] = zero + g if o == t0 + j else zero
                else:
                    dx[d] += g if o == t0 + j else zero


@njit(inline="always")
def _backward_rows(dy, off, dx, H, W, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart, clo, chi,
                   dh, dw, kw, zero, cia, cib, cols_tiled, item_lo, item_hi, KW, SW, DW, NC):
    """Write dx rows ``item_lo <= b * H + ih < item_hi``: contributions of
    every window covering the row, summed in window order."""
    WC = W * C
    WoC = Wo * C
    Cu = U(C)
    for item in range(item_lo, item_hi):
        b = item // H
        ih = item - b * H
        xr = item * WC
        xru = U(xr)
        # One window row covers this dx row and the windows tile the width
        # exactly: every element is written once, no zeroing needed.
        oh0 = cover_lo[ih]
        direct = ((C >= VECTOR_MIN_CHANNELS or NC > 0) and cols_tiled
                  and cover_hi[ih] - oh0 == 1 and (ih - rstart[oh0]) % dh == 0)
        if not direct:
            for q in range(U(WC)):
                dx[xru + q] = zero
        for oh in range(cover_lo[ih], cover_hi[ih]):
            di = ih - rstart[oh]
            i = di // dh
            if i * dh != di:
                continue
            yr = (b * Ho + oh) * WoC
            if direct and NC > 0:  # tiled: every output column is interior
                _backward_interior(dy, off, dx, xr, yr, i, cstart, 0, Wo, zero, True,
                                   KW, SW, DW, NC)
                continue
            if direct:
                for ow in range(Wo):
                    ob = U(yr + ow * C)
                    for j in range(kw):
                        t = i * kw + j
                        db = U(xr + (ow * kw + j) * C)
                        for c in range(Cu):
                            dx[db + c] = zero + dy[ob + c] if off[ob + c] == t else zero
                continue
            if C >= VECTOR_MIN_CHANNELS:
                for ow in range(Wo):
                    ob = U(yr + ow * C)
                    for j in range(clo[ow], chi[ow]):
                        t = i * kw + j
                        db = U(xr + (cstart[ow] + j * dw) * C)
                        for c in range(Cu):
                            dx[db + c] += dy[ob + c] if off[ob + c] == t else zero
                continue
            # Few channels: columns left of, inside and right of the
            # interior, in this order so sums keep window order.
            use_interior = NC > 0 and cib > cia
            t0 = i * kw
            for part in range(3):
                if part == 1:
                    if use_interior:
                        _backward_interior(dy, off, dx, xr, yr, i, cstart, cia, cib, zero,
                                           False, KW, SW, DW, NC)
                    continue
                if use_interior:
                    owa, owb = (0, cia) if part == 0 else (cib, Wo)
                else:
                    owa, owb = (0, Wo) if part == 0 else (Wo, Wo)
                for ow in range(owa, owb):
                    j0 = clo[ow]
                    j1 = chi[ow]
                    for c in range(C):
                        o = U(yr + ow * C + c)
                        j = np.int64(off[o]) - t0
                        if j >= j0 and j < j1:
                            dx[U(xr + (cstart[ow] + j * dw) * C + c)] += dy[o]


@functools.lru_cache(maxsize=None)
def backward_kernels(KW: int, SW: int, DW: int, NC: int):
    """(serial, parallel) gather backward kernels, for windows that do not
    overlap (each dx element receives at most one contribution, so float16
    held in float32 needs no rounding).

    ``NC > 0``: exactly NC channels, window width KW, stride SW, dilation
    DW: output columns whose taps are all inside x are vectorised over
    output columns.  ``NC == 0``: generic.  Constants as in
    :func:`forward_kernels`.
    """

    @njit(**_OPTS)
    def serial(dy, off, dx, H, W, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart, clo, chi, dh,
               dw, kw, zero, cia, cib, cols_tiled, nitems, nchunks):
        _backward_rows(dy, off, dx, H, W, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart, clo,
                       chi, dh, dw, kw, zero, cia, cib, cols_tiled, 0, nitems, KW, SW, DW, NC)

    @njit(parallel=True, **_OPTS)
    def parallel(dy, off, dx, H, W, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart, clo, chi,
                 dh, dw, kw, zero, cia, cib, cols_tiled, nitems, nchunks):
        for chunk in prange(nchunks):
            _backward_rows(dy, off, dx, H, W, Ho, Wo, C, rstart, cover_lo, cover_hi, cstart,
                           clo, chi, dh, dw, kw, zero, cia, cib, cols_tiled,
                           chunk * nitems // nchunks, (chunk + 1) * nitems // nchunks,
                           KW, SW, DW, NC)

    return serial, parallel


# --------------------------------------------------------------------------
# Backward for overlapping windows: a scatter in window order.
# --------------------------------------------------------------------------


@njit(inline="always")
def _scatter_columns(dy, off, dx, ob0, xrow, W, C, c0, c1, cstart, clo, chi, tap_i, tap_j, delta,
                     dh, dw, K, r0, r1, owa, owb, checked, HALF):
    """Output columns [owa, owb) of one output row, channels [c0, c1).

    ``xrow``: flat index of input (row of tap row 0, column 0, channel 0),
    possibly negative in the padding.  ``checked``: test each winner's tap
    against the valid ranges (windows touching padding); unchecked columns
    only need ``t < K`` (every tap of theirs is inside x)."""
    if C == 1:  # NCHW memory: one plane, no channel loop
        for ow in range(owa, owb):
            ob = U(ob0 + ow)
            t = np.int64(off[ob])
            if t < K:
                if checked:
                    i = tap_i[t]
                    j = tap_j[t]
                    if i < r0 or i >= r1 or j < clo[ow] or j >= chi[ow]:
                        continue
                _accumulate(dx, U(xrow + cstart[ow] + delta[t]), dy[ob], HALF)
        return
    for ow in range(owa, owb):
        ob = ob0 + ow * C
        j0 = clo[ow]
        j1 = chi[ow]
        base = xrow + cstart[ow] * C
        for c in range(c0, c1):
            t = np.int64(off[U(ob + c)])
            if t < K:
                if checked:
                    i = tap_i[t]
                    j = tap_j[t]
                    if i < r0 or i >= r1 or j < j0 or j >= j1:
                        continue
                _accumulate(dx, U(base + delta[t] * C + c), dy[U(ob + c)], HALF)


@njit(inline="always")
def _scatter_image(dy, off, dx, b, c0, c1, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi,
                   tap_i, tap_j, delta, dh, dw, K, KH, cia, cib, HALF):
    """dx of image ``b``, channels [c0, c1): zero, then add every dy element
    to its winner, output positions in row-major order (PyTorch's order)."""
    xb = b * H * W * C
    zero = dx.dtype.type(0)
    if c0 == 0 and c1 == C:
        for q in range(U(H * W * C)):
            dx[U(xb) + q] = zero
    else:
        for p in range(H * W):
            for c in range(c0, c1):
                dx[U(xb + p * C + c)] = zero
    for oh in range(Ho):
        r0 = rlo[oh]
        r1 = rhi[oh]
        ob0 = (b * Ho + oh) * Wo * C
        xrow = xb + rstart[oh] * W * C
        # A row whose windows are all inside x vertically: left edge, interior
        # (no tap checks), right edge, in this order; any other row: checked.
        full = r0 == 0 and r1 == KH and cib > cia
        for part in range(3 if full else 1):
            owa = 0 if part == 0 else (cia if part == 1 else cib)
            owb = Wo if not full else (cia if part == 0 else (cib if part == 1 else Wo))
            _scatter_columns(dy, off, dx, ob0, xrow, W, C, c0, c1, cstart, clo, chi, tap_i,
                             tap_j, delta, dh, dw, K, r0, r1, owa, owb, part != 1, HALF)


@functools.lru_cache(maxsize=None)
def scatter_kernels(HALF: int):
    """(serial, parallel) backward kernels for overlapping windows.

    Each work item is one image (NCHW memory: one (n, c) plane, C = 1) or,
    when there are fewer images than chunks, one block of an image's
    channels: items never share a dx element, so there are no races, and
    within an item the sums run in window order, as PyTorch's scatter does.
    ``delta[t]`` is tap ``t``'s offset from tap 0 in input elements (of one
    channel); ``tap_i``/``tap_j`` its row and column.  ``HALF``: float16 data
    held in float32, every sum rounded to float16.
    """

    @njit(**_OPTS)
    def serial(dy, off, dx, B, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi, tap_i, tap_j,
               delta, dh, dw, K, KH, cia, cib, nchunks):
        for b in range(B):
            _scatter_image(dy, off, dx, b, 0, C, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo,
                           chi, tap_i, tap_j, delta, dh, dw, K, KH, cia, cib, HALF)

    @njit(parallel=True, **_OPTS)
    def parallel(dy, off, dx, B, H, W, Ho, Wo, C, rstart, rlo, rhi, cstart, clo, chi, tap_i,
                 tap_j, delta, dh, dw, K, KH, cia, cib, nchunks):
        # channel blocks of at least 16 channels when images are too few
        blocks = max(1, min(C // 16, -(-nchunks // B)))
        for item in prange(B * blocks):
            b = item // blocks
            k = item - b * blocks
            _scatter_image(dy, off, dx, b, k * C // blocks, (k + 1) * C // blocks, H, W, Ho, Wo,
                           C, rstart, rlo, rhi, cstart, clo, chi, tap_i, tap_j, delta, dh, dw, K,
                           KH, cia, cib, HALF)

    return serial, parallel
