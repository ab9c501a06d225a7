"""Numba kernels for max pooling of every rank.

Kernels see flat C-contiguous arrays of a physical (B, P, W, C) layout:
channels-last data as it is, channels-first data as B = N*C planes with
C = 1; ``P`` is the number of input rows per image (every spatial axis but
the last flattened, see :mod:`numba_pool._rows`, whose tables carry all
rank-dependence).  Input row ``(b, p)`` starts at ``(b * P + p) * W * C``;
output row ``(b, r)`` at ``(b * R + r) * Wo * C``.

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
  :func:`forward_kernel` / :func:`backward_kernel`, so LLVM unrolls the
  window and vectorises over channels (many channels) or over output
  columns (few channels).  Their windows touching padding go window by
  window; unusual configurations use the generic kernels.

Selection rule (forward): with tap index ``t = rt * kw + j`` in row-major
window order (``rt`` the row tap), the winner is the smallest ``t`` holding the maximum, or, if
the window holds NaN, the largest ``t`` holding NaN (PyTorch's CPU rule:
``val > max or isnan(val)`` scanned in window order).  Backward sums each
input element's contributions in output order (row-major).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

from ._inlining import InliningCompiler
from ._transpose import tile_side, transpose_tile


class _NoAliasCompiler(InliningCompiler):
    """Numba's pipeline with array arguments marked ``noalias`` for LLVM.

    Numba does this for the bodies of ``prange`` loops only; kernels without
    it vectorise behind run-time overlap checks on every row and measured
    2.5x slower (VGG k2 NCHW forward, 1 thread: 4.7 ms ->
    1.9 ms).  Valid because the Python layer never passes a written array
    that shares memory with another argument (``_layout.check_no_overlap``).
    """

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()


# Every kernel: cached on disk, runs without the GIL, no ZeroDivisionError checks.
_OPTS = dict(cache=True, nogil=True, error_model="numpy", pipeline_class=_NoAliasCompiler)


def kernel_jit(*constants: int):
    """``njit(**_OPTS)`` for a kernel made by a factory, named after the factory
    and its ``constants``.

    Numba names a function's machine code after its qualified name and argument
    types only, so two specialisations of one factory (``forward_kernel.<locals>
    .kernel``) would get the same symbol, and looking one up by name
    (``_driver.kernel_address``) could return the other."""

    def decorate(fn):
        factory = fn.__qualname__.split(".<locals>")[0]
        tag = "_".join(str(c).replace("-", "m") for c in constants)
        fn.__qualname__ = fn.__name__ = f"{factory}_{tag}" if tag else factory
        return njit(**_OPTS)(fn)

    return decorate

U = np.uint64
i64 = np.int64

# Padding on each side of a kernel's scratch arrays, in elements: a 64-byte cache
# line even of 1-byte elements (the uint8 offsets), see scratch().
SCRATCH_PAD = 64


@njit(inline="always")
def scratch(n, dtype):
    """An uninitialised array of ``n`` elements for one thread's running values,
    a view into a padded allocation that shares no cache line with any other.

    Measured on the Inception 32x192x35x35 NCHW k3 s1 p1 average forward at 2
    threads, replaying bench/family.py's earlier cases in one process first:
    with plain ``np.empty`` scratch 15.8-16.3 ms in four runs (8 ms in a fresh
    process, 15 ms at 1 thread); with this view 6.2-7.6 ms, and so also with
    padding 0 and 16.  So the padding (against false sharing between threads'
    arrays, the first suspicion) is not what removed the slowdown; why a view
    does is not known."""
    return np.empty(n + 2 * SCRATCH_PAD, dtype)[SCRATCH_PAD:SCRATCH_PAD + n]

# Windows with specialised kernels (see _plan.forward_key).
SPECIAL_WINDOWS = (2, 3)
# ... and, with 5+ channels on 1-D and 2-D data, these when windows overlap, at most
# LARGE_WINDOW_MAX_OVERLAP times (stride < window <= 2.5 x stride, see
# _plan.forward_key; windows that do not overlap take direct_forward_kernel).
LARGE_WINDOWS = (5, 7)
LARGE_WINDOW_MAX_OVERLAP = 2.5
# Loops over channels are vectorised from this many channels on; below,
# kernels vectorise over output columns (one channel) or use per-element code.
VECTOR_MIN_CHANNELS = 5


# --------------------------------------------------------------------------
# Generic forward: any window, any padding.
# --------------------------------------------------------------------------


@njit(**_OPTS)
def _forward_generic(x, y, off, xb, yb, WC, C, k0, k1, tap_row, tap_rt, cstart, clo, chi, dw,
                     kw, owa, owb, cia, cib, colv, colt):
    """Pool output columns ``owa <= ow < owb`` of one output row.

    ``xb``/``yb``: flat offsets of input row (b, 0) and of the output row;
    the row's valid row taps are entries ``k0 <= k < k1`` of the
    ``tap_row``/``tap_rt`` list (input row, row tap), in row-tap order.

    Phase A reduces the window's input rows element-wise over the contiguous
    span of the row these columns need, remembering the winning row tap.
    Phase B reduces the columns of each window, ties broken by tap index:
    vectorised over channels; or, over the columns ``cia <= ow < cib``
    whose windows are whole (evenly spaced), vectorised over columns with
    one channel, and over columns x channels with 2-4 channels at stride 1
    (the others one by one).  From 16x1x512x512 float32 k5 s1 at 1 thread,
    93 ms when every column went one by one through memory, to 14 ms.
    """
    # Input columns these windows read (not monotonic in ow when dilation >
    # stride): whole windows [cia, cib) are evenly spaced, so only their ends
    # count; the others are looked at one by one.
    a = max(owa, cia)
    e = max(a, min(owb, cib))
    first = cstart[owa] + clo[owa] * dw
    last = cstart[owa] + (chi[owa] - 1) * dw
    if e > a:
        first = min(first, cstart[a])
        last = max(last, cstart[e - 1] + (kw - 1) * dw)
    for ow in range(owa + 1, a):
        first = min(first, cstart[ow] + clo[ow] * dw)
        last = max(last, cstart[ow] + (chi[ow] - 1) * dw)
    for ow in range(e, owb):
        first = min(first, cstart[ow] + clo[ow] * dw)
        last = max(last, cstart[ow] + (chi[ow] - 1) * dw)
    qa = U(first * C)
    qb = U((last + 1) * C)
    r = U(xb + tap_row[k0] * WC)
    ti0 = np.int32(tap_rt[k0] * kw)  # flat tap of the row's column 0
    for q in range(qa, qb):
        colv[q] = x[r + q]
        colt[q] = ti0
    for k in range(k0 + 1, k1):
        r = U(xb + tap_row[k] * WC)
        ti = np.int32(tap_rt[k] * kw)
        for q in range(qa, qb):
            v = x[r + q]
            cur = colv[q]
            take = (v > cur) | (v != v)
            colv[q] = v if take else cur
            colt[q] = ti if take else colt[q]
    # Whole windows, evenly spaced, one channel or adjacent ones: vectorised
    # over columns (and channels); every other column one by one.  Each
    # helper has one call site: inlined code is typed once per site, and
    # compile time is a first call's cost.
    sw = cstart[a + 1] - cstart[a] if e - a >= 2 else 0
    if not (e - a >= 2 and (C == 1 or (sw == 1 and C < VECTOR_MIN_CHANNELS))):
        a = e = owb
    _window_columns(y, off, yb, colv, colt, cstart[a] if e > a else 0, sw, dw, kw, a, e, C)
    for part in range(2):
        lo, hi = (owa, a) if part == 0 else (e, owb)
        _channel_columns(y, off, yb, colv, colt, cstart, clo, chi, dw, kw, lo, hi, C)


@njit(**_OPTS)
def _forward_border(x, y, off, xb, yb, WC, C, k0, k1, tap_row, tap_rt, cstart, clo, chi, dw, kw,
                    owa, owb):
    """Output columns ``owa <= ow < owb`` of one output row, window by window,
    tap by tap in row-major order, vectorised over channels, the running
    maximum and its tap kept in the output row (the border windows of the
    specialised kernels, where :func:`_forward_generic`'s row pass would cost
    more to compile than it saves, and every window of
    :func:`direct_forward_kernel`).  Arguments as there."""
    Cu = U(C)
    for ow in range(owa, owb):
        ob = U(yb + ow * C)
        j0 = clo[ow]
        j1 = chi[ow]
        for k in range(k0, k1):
            xr = xb + tap_row[k] * WC + cstart[ow] * C
            t0 = tap_rt[k] * kw
            for j in range(j0, j1):
                q = U(xr + j * dw * C)
                t = np.int32(t0 + j)
                if k == k0 and j == j0:
                    for c in range(Cu):
                        y[ob + c] = x[q + c]
                        off[ob + c] = t
                    continue
                for c in range(Cu):
                    v = x[q + c]
                    cur = y[ob + c]
                    take = (v > cur) | (v != v)
                    y[ob + c] = v if take else cur
                    off[ob + c] = t if take else off[ob + c]


@njit(inline="always")
def _channel_columns(y, off, yb, colv, colt, cstart, clo, chi, dw, kw, owa, owb, C):
    """Phase B, output columns ``owa <= ow < owb`` one by one: vectorised
    over channels, or with one channel each window's maximum in registers."""
    if C == 1:
        for ow in range(owa, owb):
            j0 = clo[ow]
            q = U(cstart[ow] + j0 * dw)
            best = colv[q]
            bt = np.int64(colt[q]) + j0
            for j in range(j0 + 1, chi[ow]):
                q = U(cstart[ow] + j * dw)
                best, bt = _better(colv[q], np.int64(colt[q]) + j, best, bt)
            y[U(yb + ow)] = best
            off[U(yb + ow)] = bt
        return
    Cu = U(C)
    for ow in range(owa, owb):
        j0 = clo[ow]
        j1 = chi[ow]
        ob = U(yb + ow * C)
        base = U((cstart[ow] + j0 * dw) * C)
        for c in range(Cu):
            y[ob + c] = colv[base + c]
            off[ob + c] = colt[base + c] + j0
        for j in range(j0 + 1, j1):
            base = U((cstart[ow] + j * dw) * C)
            for c in range(Cu):
                v = colv[base + c]
                t = colt[base + c] + j
                cur = y[ob + c]
                ct = np.int64(off[ob + c])
                y[ob + c], off[ob + c] = _better(v, t, cur, ct)


@njit(inline="always")
def _better(v, t, cur, ct):
    """(value, tap) of the winner between candidate ``v`` at flat tap ``t``
    and the current ``cur`` at ``ct``: PyTorch's row-major scan, where a
    larger value or any NaN replaces the maximum (so the last NaN wins, and
    among equal values the first tap)."""
    take = _takes(v, t, cur, ct)
    return (v if take else cur), (t if take else ct)


@njit(inline="always")
def _takes(v, t, cur, ct):
    """Whether candidate ``v`` at flat tap ``t`` replaces ``cur`` at ``ct``
    (see :func:`_better`)."""
    return (v > cur) | ((v == cur) & (t < ct)) | ((v != v) & ((cur == cur) | (t > ct)))


@njit(inline="always")
def _window_columns(y, off, yb, colv, colt, q0, sw, dw, kw, owa, owb, C):
    """Phase B, output columns ``owa <= ow < owb`` whose windows hold all
    ``kw`` columns, window ``ow`` starting at input column ``q0 + (ow - owa)
    * sw``: column taps outer, (columns x channels) inner.  With ``C`` > 1
    channels only for ``sw == 1``: then output element ``m`` of the run and
    its tap-``j`` input are ``m`` elements from their starts."""
    n = U((owb - owa) * C)
    ob = U(yb + owa * C)
    for m in range(n):
        q = U(q0 * C) + m * U(sw)
        y[ob + m] = colv[q]
        off[ob + m] = colt[q]
    for j in range(1, kw):
        qj = U((q0 + j * dw) * C)
        j32 = np.int32(j)
        for m in range(n):
            q = qj + m * U(sw)
            v = colv[q]
            t = colt[q] + j32
            cur = y[ob + m]
            ct = np.int32(off[ob + m])
            take = _takes(v, t, cur, ct)
            y[ob + m] = v if take else cur
            off[ob + m] = t if take else ct


@njit(inline="always")
def _row_offset(rt, ds, dh, KH, KD):
    """Rows from row tap 0 to row tap ``rt = a * KH + i`` (depth a, height i);
    without a depth axis (KD == 1, a compile-time constant) the depth term
    is left out entirely, which keeps 2-D loops as LLVM vectorises them."""
    if KD == 1:
        return rt * dh
    a = rt // KH
    return a * ds + (rt - a * KH) * dh


@njit(inline="always")
def _forward_interior(x, y, off, xr, yb, WC, C, ds, dh, dw, cstart, owa, owb, KD, KH, KW, SW,
                      DW, NC):
    """Output columns [owa, owb) of a row whose every tap is inside x.

    ``xr``: flat offset of the input row of row tap 0; row tap ``(a, i)``
    (depth, height) is ``a * ds + i * dh`` rows further.  KD, KH, KW, SW, DW,
    NC are compile-time constants (see :func:`forward_kernel`).
    """
    if NC == 0:  # any channel count: vectorised over channels
        Cu = U(C)
        for ow in range(owa, owb):
            cb = U(xr + cstart[ow] * C)
            ob = U(yb + ow * C)
            for c in range(Cu):
                best = x[cb + c]
                bt = np.int32(0)
                for rt in range(KD * KH):
                    for j in range(KW):
                        if rt + j > 0:
                            v = x[cb + U(_row_offset(rt, ds, dh, KH, KD) * WC + j * dw * C) + c]
                            take = (v > best) | (v != v)
                            best = v if take else best
                            bt = np.int32(rt * KW + j) if take else bt
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
                bt = np.int32(0)
                for rt in range(KD * KH):
                    for j in range(KW):
                        if rt + j > 0:
                            v = x[cb + U(_row_offset(rt, ds, dh, KH, KD) * WC + (j * DW) * NC + c)]
                            take = (v > best) | (v != v)
                            best = v if take else best
                            bt = np.int32(rt * KW + j) if take else bt
                y[ob + U(c)] = best
                off[ob + U(c)] = bt


@njit(inline="always")
def _forward_rows(x, y, off, P, R, W, Wo, C, first, full, tap_ptr, tap_row, tap_rt, ds, dh,
                  cstart, clo, chi, dw, kw, cia, cib, item_lo, item_hi, KD, KH, KW, SW, DW, NC):
    """Output rows ``item_lo <= b * R + r < item_hi``.  Output columns
    ``cia <= ow < cib`` have every tap inside x; KH == 0 means no
    specialised interior kernel (every row through :func:`_forward_generic`);
    a specialised kernel's rows and columns whose windows reach outside x go
    window by window (:func:`_forward_border`)."""
    WC = W * C
    WoC = Wo * C
    if KH == 0:
        colv = scratch(WC, x.dtype)
        colt = scratch(WC, np.int32)
    for item in range(item_lo, item_hi):
        b = item // R
        r = item - b * R
        xb = b * P * WC
        yb = item * WoC
        k0 = tap_ptr[r]
        k1 = tap_ptr[r + 1]
        if KH == 0:
            _forward_generic(x, y, off, xb, yb, WC, C, k0, k1, tap_row, tap_rt, cstart, clo, chi,
                             dw, kw, i64(0), i64(Wo), cia, cib, colv, colt)
        elif full[r] != 0 and cib > cia:
            _forward_interior(x, y, off, xb + first[r] * WC, yb, WC, C, ds, dh, dw, cstart, cia,
                              cib, KD, KH, KW, SW, DW, NC)
            if cia > 0:
                _forward_border(x, y, off, xb, yb, WC, C, k0, k1, tap_row, tap_rt, cstart, clo,
                                chi, dw, kw, i64(0), cia)
            if cib < Wo:
                _forward_border(x, y, off, xb, yb, WC, C, k0, k1, tap_row, tap_rt, cstart, clo,
                                chi, dw, kw, cib, i64(Wo))
        else:
            _forward_border(x, y, off, xb, yb, WC, C, k0, k1, tap_row, tap_rt, cstart, clo, chi,
                            dw, kw, i64(0), i64(Wo))


@njit(inline="always")
def _interior_rows(x, y, off, P, R, W, Wo, C, first, ds, dh, dw, cstart, item_lo, item_hi, KD,
                   KH, KW, SW, DW, NC):
    """Output rows ``item_lo <= b * R + r < item_hi`` of a geometry whose every
    window has every tap inside x: the specialised interior code only."""
    WC = W * C
    for item in range(item_lo, item_hi):
        b = item // R
        r = item - b * R
        _forward_interior(x, y, off, b * P * WC + first[r] * WC, item * Wo * C, WC, C, ds, dh,
                          dw, cstart, i64(0), i64(Wo), KD, KH, KW, SW, DW, NC)


def forward_kernel(KD: int, KH: int, KW: int, SW: int, DW: int, NC: int, BORDERS: int = 1):
    """Forward kernel specialised for a window shape: output rows ``lo <= b * R
    + r < hi`` (the work items; ``_driver.drive`` runs chunks of them in parallel).

    ``KD, KH, KW`` window (KD = 1 for 2-D, KD = KH = 1 for 1-D); ``NC > 0``
    means "exactly NC channels, stride SW, dilation DW" (vectorised over
    output columns); ``NC == 0`` means "any channel count" (vectorised over
    channels; SW, DW unused).  ``KH == 0`` gives the fully generic kernel.
    ``BORDERS == 0``: for geometries whose every window lies inside x (no
    padding reached, see ``_plan.has_borders``): the kernel holds only the
    specialised code.  Otherwise windows reaching outside x go window by
    window (:func:`_forward_border`), not through the generic row pass
    (:func:`_forward_generic`), whose compilation was most of a cold first
    call: measured, empty cache, first forward + backward, s: the seed's
    128x28x28x3 k2 s2 3.5-3.6 -> 2.0, NCHW 8x16x32x32 k2 s2 3.4-3.7 -> 1.9-2.1,
    NHWC 8x32x32x16 k3 s2 p1 3.3-3.4 -> 2.1 (the forward alone 2.5-2.9 ->
    1.0 and 1.6).  The border windows' tap-by-tap loop is scalar for one
    channel: small channels-first planes lost some speed (1x512x14x14 k3 s2 p1
    0.36-0.38 -> 0.43 ms, 8x64x32x32 k2 s2 p1 1.17 -> 1.30), many channels
    gained (float64 16x56x56x64 k3 s2 p1 2.7-2.95 -> 2.4).

    The constants are closure variables (plain ints, so Numba's on-disk
    cache keys stay stable across processes) and the row code is inlined
    into the kernel, so LLVM sees them as constants.
    """
    assert BORDERS or KH > 0, "only specialised kernels leave the border code out"
    return _forward_kernel(KD, KH, KW, SW, DW, NC, int(bool(BORDERS)))


@functools.lru_cache(maxsize=None)
def _forward_kernel(KD, KH, KW, SW, DW, NC, BORDERS):
    @kernel_jit(KD, KH, KW, SW, DW, NC, BORDERS)
    def kernel(x, y, off, P, R, W, Wo, C, first, full, tap_ptr, tap_row, tap_rt, ds, dh, cstart,
               clo, chi, dw, kw, cia, cib, nitems, lo, hi):
        if BORDERS:
            _forward_rows(x, y, off, P, R, W, Wo, C, first, full, tap_ptr, tap_row, tap_rt, ds,
                          dh, cstart, clo, chi, dw, kw, cia, cib, lo, hi, KD, KH, KW, SW, DW, NC)
        else:
            _interior_rows(x, y, off, P, R, W, Wo, C, first, ds, dh, dw, cstart, lo, hi, KD, KH,
                           KW, SW, DW, NC)

    return kernel


@functools.lru_cache(maxsize=None)
def direct_forward_kernel():
    """Generic forward over many channels (channels-last memory), output rows ``lo
    <= b * R + r < hi``: each output's window visited tap by tap in row-major
    order straight from x, vectorised over channels, the running maximum and
    its tap kept in the output row itself (``C`` values, in L1), as PyTorch's
    channels-last kernel does.  For windows that overlap little, where the
    generic kernel's row pass (``_forward_generic``: a scratch row of the
    window rows' maxima, then the columns) shares little and streams a scratch
    row the size of an input row through the cache.  Same scan order and rule
    (a larger value or a NaN replaces the maximum), so the same results bit for
    bit; windows clipped by padding visit only their taps inside x."""

    @kernel_jit()
    def kernel(x, y, off, P, R, W, Wo, C, tap_ptr, tap_row, tap_rt, cstart, clo, chi, dw, kw,
               nitems, lo, hi):
        WC = W * C
        for item in range(lo, hi):
            b = item // R
            r = item - b * R
            _forward_border(x, y, off, b * P * WC, item * Wo * C, WC, C, tap_ptr[r],
                            tap_ptr[r + 1], tap_row, tap_rt, cstart, clo, chi, dw, kw, i64(0),
                            i64(Wo))

    return kernel


# --------------------------------------------------------------------------
# Channels-first planes in blocks: the channel-vectorised code on small planes.
# --------------------------------------------------------------------------

# Planes interleaved per block (the vectorised channel loops' width).
PLANE_LANES = 16


@njit(inline="always")
def _tiles(planes, base, V, lanes, to_lanes):
    """A full block of :data:`PLANE_LANES` planes of ``V`` elements
    (``planes[base + m * V + q]``) and its interleaved copy (``lanes[q *
    PLANE_LANES + m]``): elements ``q`` below the returned bound copied tile by
    tile (:mod:`numba_pool._transpose`) into ``lanes`` (``to_lanes``) or back
    into ``planes``; the bound is 0 for elements without tiles."""
    T = tile_side(planes)
    q0 = U(0)
    if T > 0:
        while q0 + U(T) <= U(V):
            for m0 in range(0, PLANE_LANES, T):
                at_planes = U(base) + U(m0) * U(V) + q0
                at_lanes = q0 * U(PLANE_LANES) + U(m0)
                if to_lanes:
                    transpose_tile(planes, at_planes, U(V), lanes, at_lanes, U(PLANE_LANES))
                else:
                    transpose_tile(lanes, at_lanes, U(PLANE_LANES), planes, at_planes, U(V))
            q0 += U(T)
    return q0


@njit(inline="always")
def _planes_to_lanes(src, base, V, n, dst):
    """``n`` planes of ``V`` elements from ``src[base:]``, interleaved into
    ``dst`` as channels-last data: ``dst[q * n + m]`` is element ``q`` of
    plane ``m``.  A full block of 4- or 8-byte elements goes tile by tile
    (:mod:`numba_pool._transpose`, where the measurements are), anything else
    element by element."""
    nu = U(n)
    q0 = _tiles(src, base, V, dst, True) if n == PLANE_LANES else U(0)
    for q in range(q0, U(V)):  # writes in order; n read streams
        sq = U(base) + q
        for m in range(nu):
            dst[q * nu + m] = src[sq + m * U(V)]


@njit(inline="always")
def _lanes_to_planes(src, V, n, dst, base):
    """The inverse of :func:`_planes_to_lanes`: ``n`` interleaved planes of
    ``V`` elements from ``src``, written plane after plane to ``dst[base:]``
    (tile by tile where :func:`_planes_to_lanes` uses tiles)."""
    nu = U(n)
    q0 = _tiles(dst, base, V, src, False) if n == PLANE_LANES else U(0)
    for q in range(q0, U(V)):  # reads in order; n write streams
        dq = U(base) + q
        for m in range(nu):
            dst[dq + m * U(V)] = src[q * nu + m]


@functools.lru_cache(maxsize=None)
def plane_block_forward_kernel():
    """Generic forward of channels-first planes, blocks ``lo <= blk < hi`` of
    :data:`PLANE_LANES` planes: each block is interleaved into a channels-last
    scratch image, pooled there by the generic kernel vectorised over its
    ``n`` channels, and the result (values and offsets) written back plane by
    plane.  On small planes the per-plane code runs its column loops over too
    few elements to vectorise (a row of 30 is all remainder), while the
    interleaved block vectorises over planes (where that wins is measured in
    ``_plan.uses_plane_blocks``).  Same windows, same scan order, so the same
    results bit for bit."""

    @kernel_jit()
    def kernel(x, y, off, P, R, W, Wo, first, full, tap_ptr, tap_row, tap_rt, ds, dh, cstart,
               clo, chi, dw, kw, cia, cib, B, nitems, lo, hi):
        V = P * W
        Vo = R * Wo
        xs = scratch(V * PLANE_LANES, x.dtype)
        ys = scratch(Vo * PLANE_LANES, y.dtype)
        offs = scratch(Vo * PLANE_LANES, off.dtype)
        for blk in range(lo, hi):
            b0 = blk * PLANE_LANES
            n = min(PLANE_LANES, B - b0)
            _planes_to_lanes(x, b0 * V, V, n, xs)
            _forward_rows(xs, ys, offs, P, R, W, Wo, n, first, full, tap_ptr, tap_row, tap_rt,
                          ds, dh, cstart, clo, chi, dw, kw, cia, cib, 0, R, 0, 0, 0, 0, 0, 0)
            _lanes_to_planes(ys, Vo, n, y, b0 * Vo)
            _lanes_to_planes(offs, Vo, n, off, b0 * Vo)

    return kernel


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
    """``dx[d] += g``, rounded to float16 after the addition when HALF;
    ``dx[d] = g`` when HALF is -1 (unpooling)."""
    if HALF == -1:
        dx[d] = g
    elif HALF:
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
def _backward_rows(dy, off, dx, P, R, W, Wo, C, cover_ptr, cover_out, cover_rt, cstart, clo, chi,
                   dw, kw, zero, cia, cib, cols_tiled, item_lo, item_hi, KW, SW, DW, NC):
    """Write dx rows ``item_lo <= b * P + p < item_hi``: contributions of
    every window row reading the row (``cover_*`` lists, in output order),
    summed in output order."""
    WC = W * C
    WoC = Wo * C
    Cu = U(C)
    for item in range(item_lo, item_hi):
        b = item // P
        p = item - b * P
        xr = item * WC
        xru = U(xr)
        k0 = cover_ptr[p]
        k1 = cover_ptr[p + 1]
        # One window row reads this dx row and the windows tile the width
        # exactly: every element is written once, no zeroing needed.
        direct = (C >= VECTOR_MIN_CHANNELS or NC > 0) and cols_tiled and k1 - k0 == 1
        if not direct:
            for q in range(U(WC)):
                dx[xru + q] = zero
        for k in range(k0, k1):
            i = cover_rt[k]
            yr = (b * R + cover_out[k]) * WoC
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
def backward_kernel(KW: int, SW: int, DW: int, NC: int):
    """Gather backward kernel over dx rows ``lo <= b * P + p < hi``, for
    windows that do not overlap (each dx element receives at most one
    contribution, so float16 held in float32 needs no rounding).

    ``NC > 0``: exactly NC channels, window width KW, stride SW, dilation
    DW: output columns whose taps are all inside x are vectorised over
    output columns.  ``NC == 0``: generic.  Constants as in
    :func:`forward_kernel`.
    """

    @kernel_jit(KW, SW, DW, NC)
    def kernel(dy, off, dx, P, R, W, Wo, C, cover_ptr, cover_out, cover_rt, cstart, clo, chi, dw,
               kw, zero, cia, cib, cols_tiled, nitems, lo, hi):
        _backward_rows(dy, off, dx, P, R, W, Wo, C, cover_ptr, cover_out, cover_rt, cstart, clo,
                       chi, dw, kw, zero, cia, cib, cols_tiled, lo, hi, KW, SW, DW, NC)

    return kernel


# --------------------------------------------------------------------------
# Backward for overlapping windows of width stride 1: a gather in runs.
# --------------------------------------------------------------------------


# dx elements per chunk of the stride-1 gather (8-16 KB: stays in L1 across taps).
GATHER_CHUNK = 2048


@njit(inline="always")
def tap_run(first, W, Wo, C, ca, ce):
    """``(a, e)``: the elements ``a <= q < e`` of an image row (``W`` columns x
    ``C`` channels), within ``[ca, ce)``, that windows ``0 <= ow < Wo`` of width
    stride 1 reach through one column tap, whose input column for window 0 is
    ``first`` (window ``ow`` reaches column ``first + ow``; columns outside the
    row are left out).  Empty when ``e <= a``."""
    return max(max(first, 0) * C, ca), min(min(first + Wo, W) * C, ce)


@functools.lru_cache(maxsize=None)
def stride1_gather_kernel():
    """Backward over dx rows ``lo <= b * P + p < hi`` for windows of width
    stride 1 (any window, dilation, padding, channels, rank; overlapping).

    With width stride 1, the windows of one output row that pass column tap
    ``j`` to the input row do so at consecutive input columns: for each
    (output row, row tap) reading dx row ``p`` and each column tap ``j``, one
    contiguous run of (columns x channels) elements gets
    ``dy if offset == tap else 0`` added, vectorised over the whole run.  The
    output rows come in increasing order and the column taps in decreasing
    order, so each dx element receives its windows' contributions in
    row-major window order (PyTorch's scatter order), and the zeros added for
    the other windows leave a sum unchanged: results bitwise equal to the
    scatter's.  No float16 (its sums round after each addition: the scatter).

    ``c0``: input column of tap 0 of output column 0 (minus the left
    padding).  Work per dx element: one vector step per window tap, against
    the scatter's one scalar read-modify-write per dy element.
    """

    @kernel_jit()
    def kernel(dy, off, dx, P, R, W, Wo, C, cover_ptr, cover_out, cover_rt, c0, dw, kw, zero,
               nitems, lo, hi):
        WC = W * C
        WoC = Wo * C
        for item in range(lo, hi):
            b = item // P
            p = item - b * P
            xr = item * WC
            k0 = cover_ptr[p]
            k1 = cover_ptr[p + 1]
            # the row in chunks that stay in L1 while every tap adds to them
            for ca in range(0, WC, GATHER_CHUNK):
                ce = min(WC, ca + GATHER_CHUNK)
                for q in range(U(xr + ca), U(xr + ce)):
                    dx[q] = zero
                for k in range(k0, k1):
                    yr = (b * R + cover_out[k]) * WoC
                    t0 = cover_rt[k] * kw
                    for jj in range(kw):
                        j = kw - 1 - jj
                        first = c0 + j * dw  # input column of output column 0's tap j
                        a, e = tap_run(first, W, Wo, C, ca, ce)
                        if e <= a:
                            continue
                        d0 = U(xr + a)
                        o0 = U(yr - first * C + a)  # dy element of dx element a
                        t = np.int32(t0 + j)
                        for m in range(U(e - a)):
                            g = dy[o0 + m]  # loaded unconditionally: a select, vectorised
                            dx[d0 + m] += g if np.int32(off[o0 + m]) == t else zero

    return kernel


# Elements per block of tap_gather_kernel's vectorised loop.
TAP_GATHER_BLOCK = 16


@functools.lru_cache(maxsize=None)
def tap_gather_kernel(NR: int, KW: int):
    """Backward over dx rows ``lo <= b * P + p < hi`` for windows of width
    stride 1 and width ``KW``, each dx row read by at most ``NR`` output rows
    (any height/depth stride, dilation, padding, channels, rank).

    Each dx element sums, in a register, every window that can reach it:
    for each of its row's (output row, row tap) slots ``s`` (``slot_out``: NR
    per dx row, increasing output row) and each column tap ``j``, the dy
    element of that window if its offset is ``slot_tap[s * KW + j]`` (that
    tap, in the offsets' dtype, so the comparison is as narrow as they are;
    unused slots name a tap no offset holds), else zero; then one store.  Slots in
    increasing output row and column taps in decreasing order give each dx
    element its windows in row-major order (PyTorch's scatter order), and
    the zeros added for other windows leave a sum from +0 unchanged: bitwise
    the scatter's result.  With NR and KW compile-time constants the tap
    loops unroll and the element loop vectorises: one vector step per tap
    and no read-modify-write of dx, against the scatter's scalar
    read-modify-write per dy element (or :func:`stride1_gather_kernel`'s
    read-modify-write of dx per tap).

    ``padl``: the width's leading padding; element ``q`` of a dx row
    (column ``q // C``) is reached through column tap ``j`` by the dy
    element ``q + (padl - j * dw) * C`` of the output row, where that lies
    in ``[0, Wo * C)``.  Elements ``qa <= q < qe`` (``_plan.tap_gather_interior``:
    every column tap inside the output row, at least one block of them, or
    none) go in vectorised blocks, the others with every tap checked.  No
    float16 (its sums round after each addition).
    """

    @kernel_jit(NR, KW)
    def kernel(dy, off, dx, P, R, W, Wo, C, slot_out, slot_tap, padl, dw, qa, qe, zero, nitems,
               lo, hi):
        WC = W * C
        WoC = Wo * C
        for item in range(lo, hi):
            b = item // P
            p = item - b * P
            xr = U(item * WC)
            yb = b * R * WoC
            sp = p * NR
            for part in range(2):  # the two edges, every tap checked
                ea = 0 if part == 0 else qe
                ee = qa if part == 0 else WC
                for q in range(ea, ee):
                    acc = zero
                    for s in range(NR):
                        yr = yb + slot_out[sp + s] * WoC
                        for jj in range(KW):
                            j = KW - 1 - jj
                            m = q + (padl - j * dw) * C
                            if m >= 0 and m < WoC:
                                g = dy[U(yr + m)]
                                acc += g if off[U(yr + m)] == slot_tap[(sp + s) * KW + j] else zero
                    dx[xr + U(q)] = acc
            # the interior in blocks of TAP_GATHER_BLOCK, the last one ending at qe
            # (overlapping the one before: the same values written again), so
            # that no row ends in a scalar remainder loop
            nblk = (qe - qa + TAP_GATHER_BLOCK - 1) // TAP_GATHER_BLOCK
            for blk in range(nblk):
                q0 = U(min(qa + blk * TAP_GATHER_BLOCK, qe - TAP_GATHER_BLOCK))
                for qq in range(TAP_GATHER_BLOCK):
                    q = q0 + U(qq)
                    acc = zero
                    for s in range(NR):
                        yq = U(yb + slot_out[sp + s] * WoC + padl * C) + q
                        for jj in range(KW):
                            j = KW - 1 - jj
                            m = yq - U(j * dw * C)
                            g = dy[m]  # loaded unconditionally: a select, vectorised
                            acc += g if off[m] == slot_tap[(sp + s) * KW + j] else zero
                    dx[xr + q] = acc

    return kernel


# --------------------------------------------------------------------------
# Backward of small channels-first planes, stride 1 on every axis: whole-plane
# gathers.
# --------------------------------------------------------------------------


@njit(inline="always")
def into_padded(src, sb, dst, D, H, W, Dp, Hp, Wp, pd, ph, pw):
    """The part of plane ``src[sb:]`` (``D x H x W``) inside the padded plane
    (``Dp x Hp x Wp``, leading padding ``pd, ph, pw``) copied into ``dst``;
    ``dst``'s padding is left as it is (zero)."""
    ww = U(max(0, min(W, Wp - pw)))
    for a in range(min(D, Dp - pd)):
        for i in range(min(H, Hp - ph)):
            s0 = sb + U((a * H + i) * W)
            d0 = U(((a + pd) * Hp + i + ph) * Wp + pw)
            for m in range(ww):
                dst[d0 + m] = src[s0 + m]


@njit(inline="always")
def from_padded(src, dst, db, D, H, W, Dp, Hp, Wp, Hpitch, Wpitch, pd, ph, pw):
    """The inverse of :func:`into_padded`: plane ``dst[db:]`` (``D x H x W``)
    read from the padded plane ``src`` (``Dp x Hp x Wp`` elements used, laid
    out ``Hpitch`` rows of ``Wpitch`` per depth step, leading padding ``pd, ph,
    pw``); elements outside it (no window reaches them) are zero."""
    zero = dst.dtype.type(0)
    ww = U(max(0, min(W, Wp - pw)))
    for a in range(D):
        for i in range(H):
            d0 = db + U((a * H + i) * W)
            n = ww if a + pd < Dp and i + ph < Hp else U(0)
            s0 = U(((a + pd) * Hpitch + i + ph) * Wpitch + pw)
            for m in range(n):
                dst[d0 + m] = src[s0 + m]
            for m in range(n, U(W)):
                dst[d0 + m] = zero


@njit(**_OPTS)
def _plane_gather(dy, off, dx, S, dyp, offp, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd,
                  ph, pw, lo, hi):
    """dx of planes ``lo <= b < hi`` (see :func:`plane_gather_kernel`).  A
    function of its own so that the scratch arrays ``S``, ``dyp``, ``offp``
    arrive as arguments, which the pipeline marks ``noalias``: allocated in
    the loops' function, LLVM left the tap loop scalar (23 ms instead of 4 on
    8x512x32x32 k2 s1 p1 float32 at 1 thread)."""
    Wp = Wo + (KW - 1) * dw
    Hp = Ho + (KH - 1) * dh
    Dp = Do + (KD - 1) * dd
    n = U(((Do - 1) * Hp + Ho - 1) * Wp + Wo)  # dyp elements up to the last output
    zero = dx.dtype.type(0)
    for b in range(lo, hi):
        yb = b * Do * Ho * Wo
        for a in range(Do):  # dy and offsets at the padded input's pitch
            for i in range(Ho):
                d0 = U((a * Hp + i) * Wp)
                s0 = U(yb + (a * Ho + i) * Wo)
                for m in range(U(Wo)):
                    dyp[d0 + m] = dy[s0 + m]
                    offp[d0 + m] = off[s0 + m]
        for q in range(U(Dp * Hp * Wp)):
            S[q] = zero
        # taps last to first: every dx element receives its windows in
        # row-major output order (a later window reaches it through an
        # earlier tap), as the scatter adds them
        for tt in range(KD * KH * KW - 1, -1, -1):
            ta, tj = divmod(tt, KW)
            ta, ti = divmod(ta, KH)
            sh = U((ta * dd * Hp + ti * dh) * Wp + tj * dw)
            t = np.int32(tt)
            for q in range(n):
                g = dyp[q]  # loaded unconditionally: a select, vectorised
                S[sh + q] += g if np.int32(offp[q]) == t else zero
        from_padded(S, dx, U(b * D * H * W), D, H, W, Dp, Hp, Wp, Hp, Wp, pd, ph, pw)


@functools.lru_cache(maxsize=None)
def plane_gather_kernel():
    """Max backward of channels-first planes ``lo <= b < hi`` (each of ``D x H
    x W``; 1-D and 2-D with unit axes) whose windows overlap with stride 1 on
    every axis.

    Each plane's dx is built in a zeroed copy ``S`` of the padded plane: with
    stride 1 the windows reaching tap ``t`` read the padded plane at the
    output's own position shifted by a constant, so, with dy and the offsets
    copied to the padded plane's row pitch, one tap is one vectorised pass
    over the whole plane: ``S[shift + q] += dy if offset == t else 0``.  Taps
    go last to first, so each element sums its windows in output order (the
    scatter's, PyTorch's), and the zeros added for other taps leave a sum
    unchanged: bitwise the scatter's result.  Then the input's part of ``S``
    is copied to dx.  Work per plane: one vector step per (tap, padded
    element) and three copies, against the scatter's one scalar
    read-modify-write per dy element; see _plan.uses_plane_gather for where
    it wins."""

    @kernel_jit()
    def kernel(dy, off, dx, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd, ph, pw, nitems,
               lo, hi):
        Wp = Wo + (KW - 1) * dw
        Hp = Ho + (KH - 1) * dh
        Dp = Do + (KD - 1) * dd
        S = scratch(Dp * Hp * Wp, dx.dtype)
        dyp = scratch(Do * Hp * Wp, dx.dtype)
        offp = scratch(Do * Hp * Wp, off.dtype)
        # the pitch's padding: dy 0, whatever tap it names adds +0, and S, a sum
        # from +0, is never -0 (no other value changes when +0 is added)
        for q in range(Do * Hp * Wp):
            dyp[q] = dx.dtype.type(0)
            offp[q] = off.dtype.type(0)
        _plane_gather(dy, off, dx, S, dyp, offp, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw,
                      pd, ph, pw, lo, hi)

    return kernel


# --------------------------------------------------------------------------
# Backward for overlapping windows: a scatter in window order.
# --------------------------------------------------------------------------


@njit(inline="always")
def _scatter_columns(dy, off, dx, ob0, xrow, C, cstart, clo, chi, tap_a, tap_i, tap_j,
                     delta, a0, a1, i0, i1, K, owa, owb, checked, HALF, DEPTH):
    """Output columns [owa, owb) of one output row, every channel.

    ``xrow``: flat index of input (row tap 0, column 0, channel 0), possibly
    negative in the padding.  ``checked``: test each winner's tap against
    the valid ones (depth ``a0..a1`` when DEPTH, height ``i0..i1``, columns
    ``clo..chi``); unchecked columns only need ``t < K`` (every tap of
    theirs is inside x)."""
    if C == 1:  # channels-first memory: one plane, no channel loop
        for ow in range(owa, owb):
            ob = U(ob0 + ow)
            t = np.int64(off[ob])
            if t < K:
                if checked:
                    i = tap_i[t]
                    j = tap_j[t]
                    if i < i0 or i >= i1 or j < clo[ow] or j >= chi[ow]:
                        continue
                    if DEPTH:
                        a = tap_a[t]
                        if a < a0 or a >= a1:
                            continue
                _accumulate(dx, U(xrow + cstart[ow] + delta[t]), dy[ob], HALF)
        return
    for ow in range(owa, owb):
        ob = ob0 + ow * C
        j0 = clo[ow]
        j1 = chi[ow]
        base = xrow + cstart[ow] * C
        for c in range(C):
            t = np.int64(off[U(ob + c)])
            if t < K:
                if checked:
                    i = tap_i[t]
                    j = tap_j[t]
                    if i < i0 or i >= i1 or j < j0 or j >= j1:
                        continue
                    if DEPTH:
                        a = tap_a[t]
                        if a < a0 or a >= a1:
                            continue
                _accumulate(dx, U(base + delta[t] * C + c), dy[U(ob + c)], HALF)


@njit(inline="always")
def _zero_rows(dx, xb, p0, p1, WC):
    """dx rows ``p0 <= p < p1`` (of ``WC`` elements) of the image starting at ``xb``, zeroed."""
    zero = dx.dtype.type(0)
    for q in range(U(xb + p0 * WC), U(xb + p1 * WC)):
        dx[q] = zero


@njit(inline="always")
def _scatter_image(dy, off, dx, b, P, R, W, Wo, C, first, full, a_lo, a_hi, i_lo, i_hi,
                   zero_upto, cstart, clo, chi, tap_a, tap_i, tap_j, delta, K, cia, cib, HALF,
                   DEPTH):
    """dx of image ``b``: add every dy element to its
    winner, output positions in row-major order (PyTorch's order), each dx
    row zeroed just before the first output row that reads it (one pass over
    dx while it is in cache, not a zeroing pass over the image first)."""
    xb = b * P * W * C
    zeroed = 0
    for r in range(R):
        if zero_upto[r] > zeroed:
            _zero_rows(dx, xb, zeroed, zero_upto[r], W * C)
            zeroed = zero_upto[r]
        ob0 = (b * R + r) * Wo * C
        xrow = xb + first[r] * W * C
        # A row whose windows are all inside x vertically: left edge, interior
        # (no tap checks), right edge, in this order; any other row: checked.
        whole = full[r] != 0 and cib > cia
        for part in range(3 if whole else 1):
            owa = 0 if part == 0 else (cia if part == 1 else cib)
            owb = Wo if not whole else (cia if part == 0 else (cib if part == 1 else Wo))
            _scatter_columns(dy, off, dx, ob0, xrow, C, cstart, clo, chi, tap_a, tap_i,
                             tap_j, delta, a_lo[r], a_hi[r], i_lo[r], i_hi[r], K, owa, owb,
                             part != 1, HALF, DEPTH)
    _zero_rows(dx, xb, zeroed, P, W * C)  # rows no window reads


@functools.lru_cache(maxsize=None)
def scatter_kernel(HALF: int, DEPTH: int):
    """Backward kernel for overlapping windows, images ``lo <= b < hi``.

    Each work item is one image (channels-first memory: one (n, c) plane,
    C = 1): items never share a dx element, so there are no races, and
    within an item the sums run in output order, as PyTorch's scatter does.
    Splitting an image's channels between threads when images are fewer than
    threads was measured and dropped: each block streams the whole image, so
    at 2 threads it was slower in five of six single-image cases (NHWC
    1x40x40x64 float64 k7 s7: 87 us in 4 blocks, 18 us as one item;
    1x224x224x64 k3 s2: 2.9 ms vs 1.1 ms) and 11 % faster in one
    (1x20x20x512 k5 s1).

    Carrying a running sum in a register while consecutive windows pick the
    same element (stride 1 often does) was measured and dropped: on
    16x1x512x512 float32 k3 s1 at 1 thread the plain scatter took 4.4 ms,
    a branch-free carry 6.8 ms and a branching one 14.3 ms (mispredictions).

    Taking fresh outputs from ``np.zeros`` (calloc: pages the system zeroes
    anyway) and skipping the kernel's own zeroing was measured and dropped:
    slower in 9 of 10 cases at 1 thread (16x1x512x512 k3 s1 float32 5.1 ->
    6.2 ms; 8x512x32x32 k5 s1 float64 11.5 -> 17.2 ms): zeroing each row just
    before its first use keeps it in cache.

    ``delta[t]`` is tap ``t``'s offset from tap 0 in input elements (of one
    channel); ``tap_a``/``tap_i``/``tap_j`` its depth, height and width
    index.  ``HALF``: float16 data held in float32, every
    sum rounded to float16.  ``DEPTH``: 3-D windows (check depth taps too).
    """

    @kernel_jit(HALF, DEPTH)
    def kernel(dy, off, dx, P, R, W, Wo, C, first, full, a_lo, a_hi, i_lo, i_hi, zero_upto,
               cstart, clo, chi, tap_a, tap_i, tap_j, delta, K, cia, cib, B, lo, hi):
        for b in range(lo, hi):
            _scatter_image(dy, off, dx, b, P, R, W, Wo, C, first, full, a_lo, a_hi, i_lo, i_hi,
                           zero_upto, cstart, clo, chi, tap_a, tap_i, tap_j, delta, K, cia, cib,
                           HALF, DEPTH)

    return kernel


@functools.lru_cache(maxsize=None)
def masked_scatter_kernel():
    """The scatter of :func:`scatter_kernel` for windows of at most
    :data:`MASKED_SCATTER_MAX_TAPS` taps, images ``lo <= b < hi``: one loop over
    each output row, every output's tap checked against one bit mask
    (``rowmask[r] & colmask[ow]``: the taps of that window inside x) instead of
    the tap's row and column against their ranges on edge rows and columns.
    Same sums in the same order, and a tap outside x (only a tampered offset
    names one) credits nothing, as before.  ``delta`` holds the taps' offsets in
    elements of all ``C`` channels.

    Measured (NCHW 8x512x32x32 k7 s1 float32, 1 thread, AMD EPYC): a standalone
    scatter with the range checks on every output took 9.05 ms with padding 3
    (the kernel above 9.0), with the mask 6.1, with no check 5.4; without
    padding 6.0 / 3.8 / 3.5 (the kernel above 4.8)."""

    @kernel_jit()
    def kernel(dy, off, dx, P, R, W, Wo, C, first, zero_upto, cstart, delta, rowmask, colmask,
               K, B, lo, hi):
        one = U(1)
        WC = W * C
        for b in range(lo, hi):
            xb = b * P * WC
            zeroed = 0
            for r in range(R):
                if zero_upto[r] > zeroed:  # dx rows zeroed just before their first use
                    _zero_rows(dx, xb, zeroed, zero_upto[r], WC)
                    zeroed = zero_upto[r]
                ob0 = U((b * R + r) * Wo * C)
                xrow = xb + first[r] * WC
                rm = rowmask[r]
                if C == 1:  # channels-first planes: no channel loop
                    for ow in range(Wo):
                        ob = ob0 + U(ow)
                        t = np.int64(off[ob])
                        if t < K and ((rm & colmask[ow]) >> U(t)) & one:
                            dx[U(xrow + cstart[ow] + delta[t])] += dy[ob]
                    continue
                for ow in range(Wo):
                    ob = ob0 + U(ow * C)
                    m = rm & colmask[ow]
                    base = xrow + cstart[ow] * C
                    for c in range(C):
                        t = np.int64(off[ob + U(c)])
                        if t < K and (m >> U(t)) & one:
                            dx[U(base + delta[t] + c)] += dy[ob + U(c)]
            _zero_rows(dx, xb, zeroed, P, WC)  # rows no window reads

    return kernel


# Windows of up to this many taps (one bit each in a uint64 mask) take the masked scatter.
MASKED_SCATTER_MAX_TAPS = 64


# --------------------------------------------------------------------------
# Unpooling by flat indices (PyTorch's ``max_unpool`` with its own indices).
# --------------------------------------------------------------------------


@njit(**_OPTS)
def _flat_unpool_image(y, idx, out, b, So, Si, C):
    """Image ``b`` of physical (B, So, C) ``y`` placed at ``idx`` (positions
    in [0, Si), checked by the caller) of physical (B, Si, C) ``out``, zeros
    elsewhere; later outputs overwrite earlier ones (PyTorch's order)."""
    ib = U(b) * U(Si) * U(C)
    for k in range(U(Si) * U(C)):
        out[ib + k] = 0
    ob = U(b) * U(So) * U(C)
    for o in range(U(So)):
        for c in range(U(C)):
            p = ob + o * U(C) + c
            out[ib + U(idx[p]) * U(C) + c] = y[p]


@functools.lru_cache(maxsize=None)
def flat_unpool_kernel():
    """Unpooling by flat per-plane indices, images ``lo <= b < hi`` (channels-first
    memory: one (n, c) plane each)."""

    @kernel_jit()
    def kernel(y, idx, out, So, Si, C, B, lo, hi):
        for b in range(lo, hi):
            _flat_unpool_image(y, idx, out, b, So, Si, C)

    return kernel
