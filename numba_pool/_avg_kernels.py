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
from numba import njit

from ._kernels import (PLANE_LANES, _OPTS, U, _lanes_to_planes, _planes_to_lanes, from_padded,
                       into_padded, kernel_jit, scratch, tap_run)


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
def _divide_channel(s, r, ow, c, rf1, rf2, cf, override, adaptive, lanes):
    """:func:`_divide` for channel ``c`` of channels-last data: the first
    ``lanes`` channels of an adaptive window are divided once by the window's
    size, as PyTorch's vectorised channels-last kernel does for the channels
    its SIMD vectors cover (the rest in turn by each axis's length)."""
    if adaptive and override <= 0 and c < lanes:
        return s / (rf1[r] * rf2[r] * cf[ow])
    return _divide(s, r, ow, rf1, rf2, cf, override, adaptive)


# Channels-last average pooling with width stride 1 and few channels
# (_plan.AVG_RUN_MAX_CHANNELS) adds whole runs of (columns x channels) per
# window tap, in chunks of about RUN_CHUNK elements (_avg_runs,
# _avg_backward_rows).
RUN_CHUNK = 2048
# The most taps a channels-last window summed in one pass has (_window_mean: 3x3).
WINDOW_SUM_TAPS = 9

SHARE_ROWS_MAX = 1 << 18  # largest image (outputs) whose backward shares are divided once
# Planes summed side by side by the global-pooling forward (channels-first
# memory).  Each plane is still summed element by element; 8 interleaved sums
# keep the loads busy without spilling: 64x2048x7x7 float32 at 1 thread
# measured 1.5 ms with 6-8 planes, 1.8 ms with 16, 2.0 ms with 32.
PLANE_BLOCK = 8


@njit(**_OPTS)
def _sum_planes(x, y, V, divisor, item_lo, item_hi):
    """Global pooling of single-channel planes ``item_lo <= b < item_hi``
    (channels-first memory): every plane of ``V`` elements summed in its own
    order (element by element, as every window is), PLANE_BLOCK planes side
    by side, then divided once by ``divisor``."""
    acc = scratch(PLANE_BLOCK, y.dtype)
    zero = y.dtype.type(0)
    Vu = U(V)
    for b0 in range(item_lo, item_hi, PLANE_BLOCK):
        n = min(PLANE_BLOCK, item_hi - b0)
        for m in range(PLANE_BLOCK):
            acc[m] = zero
        base = U(b0) * Vu
        if n == PLANE_BLOCK:
            for q in range(Vu):
                for m in range(PLANE_BLOCK):
                    acc[m] += x[base + U(m) * Vu + q]
        else:
            for q in range(Vu):
                for m in range(n):
                    acc[m] += x[base + U(m) * Vu + q]
        for m in range(n):
            y[b0 + m] = acc[m] / divisor


@functools.lru_cache(maxsize=None)
def global_plane_kernel():
    """Global average pooling of channels-first planes ``lo <= b < hi``: a
    small kernel of its own (inside the general one LLVM kept the plane sums
    in memory: 2.5 ms instead of 1.5 ms on the case above)."""

    @kernel_jit()
    def kernel(x, y, V, divisor, nitems, lo, hi):
        _sum_planes(x, y, V, divisor, lo, hi)

    return kernel


# --------------------------------------------------------------------------
# Channels-first planes with stride 1 on every axis: whole-plane passes.
# --------------------------------------------------------------------------


@njit(**_OPTS)
def _stride1_plane_sums(x, y, xp, acc, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd, ph, pw,
                        rf1, cf, override, lo, hi):
    """Forward of planes ``lo <= b < hi`` (see :func:`stride1_plane_kernel`).
    The scratch arrives as arguments, marked ``noalias`` (as
    ``_kernels._plane_gather``'s)."""
    Wp = Wo + (KW - 1) * dw
    Hp = Ho + (KH - 1) * dh
    Dp = Do + (KD - 1) * dd
    n = U(((Do - 1) * Hp + Ho - 1) * Wp + Wo)  # acc elements up to the last output
    for b in range(lo, hi):
        into_padded(x, U(b * D * H * W), xp, D, H, W, Dp, Hp, Wp, pd, ph, pw)
        # every window's taps in row-major order, four per pass: padding adds +0,
        # which changes no sum from +0
        _zero(acc, U(0), n)
        g = 0
        slots = (U(0), U(0), U(0), U(0))
        for tt in range(KD * KH * KW):
            ta, tj = divmod(tt, KW)
            ta, ti = divmod(ta, KH)
            o = U((ta * dd * Hp + ti * dh) * Wp + tj * dw)
            slots, g = _push_tap(acc, U(0), xp, slots, g, o, n)
        _flush_taps(acc, U(0), xp, slots, g, n)
        yb = U(b * Do * Ho * Wo)
        for a in range(Do):
            for i in range(Ho):
                r = a * Ho + i
                s0 = U((a * Hp + i) * Wp)
                d0 = yb + U(r * Wo)
                for ow in range(Wo):
                    v = acc[s0 + U(ow)]  # over its divisor, as _divide
                    y[d0 + U(ow)] = v / override if override > 0 else v / (rf1[r] * cf[ow])


@njit(**_OPTS)
def _stride1_plane_shares(dy, dx, sp, dxp, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd, ph,
                          pw, rf1, cf, override, lo, hi):
    """Backward of planes ``lo <= b < hi`` (see :func:`stride1_plane_backward_kernel`)."""
    md = (KD - 1) * dd
    mh = (KH - 1) * dh
    mw = (KW - 1) * dw
    Wq = Wo + 2 * mw  # the shares' plane, a window's reach of zeros all round
    Hq = Ho + 2 * mh
    Dp = Do + md  # the padded input
    Hp = Ho + mh
    Wp = Wo + mw
    n = U(((Dp - 1) * Hq + Hp - 1) * Wq + Wp)  # dxp elements up to the padded input's last
    for b in range(lo, hi):
        yb = U(b * Do * Ho * Wo)
        for a in range(Do):
            for i in range(Ho):
                r = a * Ho + i
                s0 = yb + U(r * Wo)
                d0 = U(((a + md) * Hq + i + mh) * Wq + mw)
                for ow in range(Wo):
                    g = dy[s0 + U(ow)]  # over its divisor, as _divide
                    sp[d0 + U(ow)] = g / override if override > 0 else g / (rf1[r] * cf[ow])
        # padded element q sums the shares of the windows reading it, in output
        # order: taps last to first, four per pass
        _zero(dxp, U(0), n)
        g = 0
        slots = (U(0), U(0), U(0), U(0))
        K = KD * KH * KW
        for jj in range(K):
            tt = K - 1 - jj
            ta, tj = divmod(tt, KW)
            ta, ti = divmod(ta, KH)
            o = U(((md - ta * dd) * Hq + mh - ti * dh) * Wq + mw - tj * dw)
            slots, g = _push_tap(dxp, U(0), sp, slots, g, o, n)
        _flush_taps(dxp, U(0), sp, slots, g, n)
        from_padded(dxp, dx, U(b * D * H * W), D, H, W, Dp, Hp, Wp, Hq, Wq, pd, ph, pw)


@functools.lru_cache(maxsize=None)
def stride1_plane_kernel():
    """Average pooling forward of channels-first planes ``lo <= b < hi`` (each
    ``D x H x W``; 1-D and 2-D with unit axes), stride 1 on every axis, not
    adaptive.

    With stride 1 every window's tap ``t`` reads the padded plane at the
    window's own position shifted by a constant, so with the plane copied into
    a zero-padded one, each tap is one vectorised pass over all the plane's
    windows (four taps per pass, :func:`_add_taps`), in row-major window order
    (PyTorch's; the padding's zeros change no sum), then each sum is divided
    by its window's divisor.  Per-row loops of narrow planes spent their time
    on loop overhead and edge columns (see _plan.uses_stride1_planes)."""

    @kernel_jit()
    def kernel(x, y, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd, ph, pw, rf1, cf, override,
               nitems, lo, hi):
        Wp = Wo + (KW - 1) * dw
        Hp = Ho + (KH - 1) * dh
        Dp = Do + (KD - 1) * dd
        xp = scratch(Dp * Hp * Wp, y.dtype)
        acc = scratch(Do * Hp * Wp, y.dtype)
        for q in range(Dp * Hp * Wp):
            xp[q] = y.dtype.type(0)
        _stride1_plane_sums(x, y, xp, acc, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd, ph,
                            pw, rf1, cf, override, lo, hi)

    return kernel


@functools.lru_cache(maxsize=None)
def stride1_plane_backward_kernel():
    """Backward of :func:`stride1_plane_kernel`, planes ``lo <= b < hi``: each
    output's share (dy over its divisor) placed in a plane with a window's
    reach of zeros all round; then each element of the padded input gathers
    the shares of the windows reading it, taps last to first (windows in
    output order, as the scatter adds them; the zeros change no sum from +0),
    four per pass; then the input's part is copied to dx."""

    @kernel_jit()
    def kernel(dy, dx, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd, ph, pw, rf1, cf,
               override, nitems, lo, hi):
        md = (KD - 1) * dd
        mh = (KH - 1) * dh
        mw = (KW - 1) * dw
        Wq = Wo + 2 * mw
        Hq = Ho + 2 * mh
        sp = scratch((Do + 2 * md) * Hq * Wq, dx.dtype)
        dxp = scratch((Do + md) * Hq * Wq, dx.dtype)
        for q in range((Do + 2 * md) * Hq * Wq):
            sp[q] = dx.dtype.type(0)
        _stride1_plane_shares(dy, dx, sp, dxp, D, H, W, Do, Ho, Wo, KD, KH, KW, dd, dh, dw, pd,
                              ph, pw, rf1, cf, override, lo, hi)

    return kernel


@njit(inline="always")
def _planes(src, dst, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf,
            override, item_lo, item_hi, backward):
    """Adaptive pooling of single-channel planes ``item_lo <= b < item_hi``
    (channels-first memory), PLANE_BLOCK planes side by side, so that the
    planes' sums run as independent chains instead of one sum waiting on the
    last (adaptive windows have no evenly spaced interior to vectorise over
    columns).

    Forward (``src`` x, ``dst`` y): each window summed in its own order (row
    taps, then columns), then divided.  Backward (``src`` dy, ``dst`` dx): the
    dx planes zeroed, then every output's share added to its window's taps,
    outputs in row-major order.  ``backward`` is a constant of each caller,
    so each compiles only its own branches."""
    buf = scratch(PLANE_BLOCK, dst.dtype)
    zero = dst.dtype.type(0)
    V = U(P * W)
    Vo = U(R * Wo)
    for b0 in range(item_lo, item_hi, PLANE_BLOCK):
        n = min(PLANE_BLOCK, item_hi - b0)
        xb = U(b0) * V
        yb = U(b0) * Vo
        if backward:
            for q in range(U(n) * V):
                dst[xb + q] = zero
        for r in range(R):
            for ow in range(Wo):
                q = U(r * Wo + ow)
                for m in range(n):
                    if backward:
                        buf[m] = _divide(src[yb + U(m) * Vo + q], r, ow, rf1, rf2, cf, override,
                                         True)
                    else:
                        buf[m] = zero
                for k in range(tap_ptr[r], tap_ptr[r + 1]):
                    xr = xb + U(tap_row[k] * W + cstart[ow])
                    for j in range(clo[ow], chi[ow]):
                        t = xr + U(j * dw)
                        if n == PLANE_BLOCK:  # a constant trip count: unrolled
                            for m in range(PLANE_BLOCK):
                                _plane_tap(src, dst, buf, t + U(m) * V, m, backward)
                        else:
                            for m in range(n):
                                _plane_tap(src, dst, buf, t + U(m) * V, m, backward)
                if not backward:
                    for m in range(n):
                        dst[yb + U(m) * Vo + q] = _divide(buf[m], r, ow, rf1, rf2, cf, override,
                                                          True)


@njit(inline="always")
def _plane_tap(src, dst, buf, i, m, backward):
    if backward:
        dst[i] += buf[m]
    else:
        buf[m] += src[i]


@njit(**_OPTS)
def _window_planes(x, y, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf,
                   override, item_lo, item_hi):
    """Forward of :func:`_planes`."""
    _planes(x, y, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf, override,
            item_lo, item_hi, False)


@njit(**_OPTS)
def _window_planes_backward(dy, dx, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1,
                            rf2, cf, override, item_lo, item_hi):
    """Backward of :func:`_planes` (a kernel of its own: one kernel with a
    run-time ``backward`` flag measured slower, 2-thread backward of
    32x256x30x30 -> 7x7 2.9 -> 4.3 ms)."""
    _planes(dy, dx, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf, override,
            item_lo, item_hi, True)


@functools.lru_cache(maxsize=None)
def adaptive_plane_kernel():
    """Adaptive average pooling of channels-first planes ``lo <= b < hi``."""

    @kernel_jit()
    def kernel(x, y, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf, override,
               nitems, lo, hi):
        _window_planes(x, y, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf,
                       override, lo, hi)

    return kernel


@functools.lru_cache(maxsize=None)
def adaptive_plane_backward_kernel():
    """Backward of :func:`adaptive_plane_kernel`, planes ``lo <= b < hi``."""

    @kernel_jit()
    def kernel(dy, dx, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf,
               override, nitems, lo, hi):
        _window_planes_backward(dy, dx, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw,
                                rf1, rf2, cf, override, lo, hi)

    return kernel


@functools.lru_cache(maxsize=None)
def adaptive_plane_block_kernel():
    """Adaptive average pooling of channels-first planes in blocks ``lo <= blk <
    hi`` of :data:`~numba_pool._kernels.PLANE_LANES` planes: each block is
    interleaved into a channels-last scratch image, pooled there by the
    channels-last column code vectorised over its ``n`` planes (each window's
    taps in row-major order, the sum divided by each axis's length in turn), and
    written back plane by plane.  The same additions and divisions as
    :func:`adaptive_plane_kernel`, so the same results bit for bit."""

    @kernel_jit()
    def kernel(x, y, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf, override,
               B, nitems, lo, hi):
        V = P * W
        Vo = R * Wo
        xs = scratch(V * PLANE_LANES, x.dtype)
        ys = scratch(Vo * PLANE_LANES, y.dtype)
        acc = scratch(PLANE_LANES, y.dtype)
        taps = scratch(WINDOW_SUM_TAPS, np.uint64)  # (unused: adaptive windows)
        for blk in range(lo, hi):
            b0 = blk * PLANE_LANES
            n = min(PLANE_LANES, B - b0)
            _planes_to_lanes(x, b0 * V, V, n, xs)
            for r in range(R):
                _avg_columns(xs, ys, U(0), U(r * Wo * n), r, Wo, W * n, U(n), acc, taps,
                             tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf, override,
                             True, 0)
            _lanes_to_planes(ys, Vo, n, y, b0 * Vo)

    return kernel


@functools.lru_cache(maxsize=None)
def adaptive_plane_block_backward_kernel():
    """Backward of :func:`adaptive_plane_block_kernel`: a block's dy interleaved,
    its dx built in a zeroed channels-last scratch image (every output's share
    added to its window's taps, outputs in row-major order, vectorised over the
    block's planes), then written back plane by plane."""

    @kernel_jit()
    def kernel(dy, dx, P, R, W, Wo, tap_ptr, tap_row, cstart, clo, chi, dw, rf1, rf2, cf,
               override, B, nitems, lo, hi):
        V = P * W
        Vo = R * Wo
        dys = scratch(Vo * PLANE_LANES, dy.dtype)
        dxs = scratch(V * PLANE_LANES, dx.dtype)
        share = scratch(PLANE_LANES, dx.dtype)
        for blk in range(lo, hi):
            b0 = blk * PLANE_LANES
            n = min(PLANE_LANES, B - b0)
            nu = U(n)
            _planes_to_lanes(dy, b0 * Vo, Vo, n, dys)
            _zero(dxs, U(0), U(V) * nu)
            for r in range(R):
                for ow in range(Wo):
                    q = U(r * Wo + ow) * nu
                    for m in range(nu):
                        share[m] = _divide(dys[q + m], r, ow, rf1, rf2, cf, override, True)
                    for k in range(tap_ptr[r], tap_ptr[r + 1]):
                        xr = tap_row[k] * W + cstart[ow]
                        for j in range(clo[ow], chi[ow]):
                            t = U(xr + j * dw) * nu
                            for m in range(nu):
                                dxs[t + m] += share[m]
            _lanes_to_planes(dxs, V, n, dx, b0 * V)

    return kernel


@njit(inline="always")
def _add_taps(dst, d, src, slots, n, Cu):
    """``dst[d + c]`` plus ``src[slots[0] + c]``, ..., ``src[slots[n - 1] + c]``,
    added in that order, for every channel ``c < Cu``: up to four taps per pass over
    ``dst``, which otherwise went through memory once per tap (Inception
    32x35x35x192 k3 s1 p1 float32, 1 thread: forward 5.9-7.5 -> 5.2-6.2 ms; in
    the backward's column gather, with each share divided once, 13.4-13.8 ->
    7.0-7.7 ms).  Callers zero ``dst`` first: variants starting from zero
    themselves doubled the loops inlined at each call site (compile time);
    compiled apart instead of inlined, the calls made Inception's forward 3x
    slower.  Use through :func:`_push_tap` and :func:`_flush_taps`."""
    o0, o1, o2, o3 = slots
    if n == 4:
        for c in range(Cu):
            dst[d + c] = dst[d + c] + src[o0 + c] + src[o1 + c] + src[o2 + c] + src[o3 + c]
    elif n == 3:
        for c in range(Cu):
            dst[d + c] = dst[d + c] + src[o0 + c] + src[o1 + c] + src[o2 + c]
    elif n == 2:
        for c in range(Cu):
            dst[d + c] = dst[d + c] + src[o0 + c] + src[o1 + c]
    elif n == 1:
        for c in range(Cu):
            dst[d + c] = dst[d + c] + src[o0 + c]


@njit(inline="always")
def _slot_tap(slots, g, o):
    """``slots`` with tap offset ``o`` in place ``g`` (0 to 3)."""
    o0, o1, o2, o3 = slots
    if g == 0:
        return (o, o1, o2, o3)
    if g == 1:
        return (o0, o, o2, o3)
    if g == 2:
        return (o0, o1, o, o3)
    return (o0, o1, o2, o)


@njit(inline="always")
def _push_tap(dst, d, src, slots, g, o, Cu):
    """Tap offset ``o`` joins the group ``slots[:g]``; a full group (four) is
    added to ``dst`` (:func:`_add_taps`).  Returns ``(slots, g)`` updated."""
    slots = _slot_tap(slots, g, o)
    if g < 3:
        return slots, g + 1
    _add_taps(dst, d, src, slots, 4, Cu)
    return slots, 0


@njit(inline="always")
def _flush_taps(dst, d, src, slots, g, Cu):
    """The last, partial group of :func:`_push_tap`."""
    if g > 0:
        _add_taps(dst, d, src, slots, g, Cu)


@njit(inline="always")
def _zero(dst, d, n):
    """``dst[d:d + n]`` = +0."""
    z = dst.dtype.type(0)
    for q in range(n):
        dst[d + q] = z


@njit(inline="always")
def _avg_rows(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia, cib,
              rf1, rf2, cf, override, adaptive, lanes, runs, item_lo, item_hi):
    """Output rows ``item_lo <= b * R + r < item_hi``.  Each output sums into
    its own accumulator, row taps in order and, within one, columns in
    order: every window's row-major order.  One channel (channels-first
    memory): the loops run over output columns, which LLVM vectorises; more
    channels: :func:`_avg_columns`, vectorised over channels."""
    WC = W * C
    WoC = Wo * C
    acc = scratch(WoC, y.dtype)
    taps = scratch(WINDOW_SUM_TAPS, np.uint64)  # for _avg_columns
    zero = y.dtype.type(0)
    Cu = U(C)
    has_interior = cib > cia
    for item in range(item_lo, item_hi):
        b = item // R
        r = item - b * R
        xb = b * P * WC
        if runs:
            _avg_runs(x, y, xb, U(item * WoC), r, W, Wo, C, acc, tap_ptr, tap_row, cstart, dw,
                      kw, rf1, cf, override)
            continue
        if C != 1:
            _avg_columns(x, y, xb, U(item * WoC), r, Wo, WC, Cu, acc, taps, tap_ptr, tap_row,
                         cstart, clo, chi, dw, rf1, rf2, cf, override, adaptive, lanes)
            continue
        for q in range(WoC):
            acc[q] = zero
        for k in range(tap_ptr[r], tap_ptr[r + 1]):  # row taps in row-major order
            xr = xb + tap_row[k] * WC
            for part in range(2):  # columns touching the padding (or adaptive windows)
                if has_interior:
                    owa, owb = (0, cia) if part == 0 else (cib, Wo)
                else:
                    owa, owb = (0, Wo) if part == 0 else (Wo, Wo)
                for ow in range(owa, owb):  # each column's taps in order, in a register
                    s = acc[ow]
                    xs = xr + cstart[ow]
                    for j in range(clo[ow], chi[ow]):
                        s += x[U(xs + j * dw)]
                    acc[ow] = s
            if has_interior:  # interior columns: all kw taps, vectorised over columns
                base = xr + cstart[cia]
                n = U(cib - cia)
                a0 = U(cia)
                for j in range(kw):
                    xs = U(base + j * dw)
                    for m in range(n):
                        acc[a0 + m] += x[xs + m * U(sw)]
        yb = U(item * WoC)
        for ow in range(U(Wo)):
            y[yb + ow] = _divide(acc[ow], r, ow, rf1, rf2, cf, override, adaptive)


@njit(inline="always")
def _avg_runs(x, y, xb, yb, r, W, Wo, C, acc, tap_ptr, tap_row, cstart, dw, kw, rf1, cf,
              override):
    """One output row of channels-last data, width stride 1 (not adaptive): the
    windows passing column tap ``j`` read one contiguous run of (columns x
    channels), so each (row tap, column tap), in row-major window order, adds
    one vectorised run into ``acc``, in chunks of whole columns that stay in
    L1; then divided and stored.  The same additions in the same order as
    :func:`_avg_columns`."""
    zero = y.dtype.type(0)
    cols = max(1, RUN_CHUNK // C)
    for oa in range(0, Wo, cols):
        ob = min(Wo, oa + cols)
        ca = oa * C
        ce = ob * C
        for q in range(U(ca), U(ce)):
            acc[q] = zero
        for k in range(tap_ptr[r], tap_ptr[r + 1]):
            xr = xb + tap_row[k] * W * C
            for j in range(kw):
                first = cstart[0] + j * dw  # input column of output column 0's tap j
                a = max(max(0, -first) * C, ca)  # outputs whose tap j is inside x
                e = min(min(Wo, W - first) * C, ce)
                if e > a:
                    xs = U(xr + first * C + a)
                    for m in range(U(e - a)):
                        acc[U(a) + m] += x[xs + m]
        for ow in range(oa, ob):
            d = override if override > 0 else rf1[r] * cf[ow]
            o = U(ow * C)
            for c in range(U(C)):
                y[yb + o + c] = acc[o + c] / d


@njit(inline="always")
def _window_mean(y, ob, x, taps, n, d, Cu):
    """``y[ob + c]`` = ``(0 + x[taps[0] + c] + ... + x[taps[n - 1] + c]) / d`` for
    every channel ``c < Cu``, for windows of ``n`` = 4, 6 or 9 taps: added in
    order and divided in the same pass, no accumulator.  Measured (channels-last
    float32, 1 thread, ms, accumulator -> one pass): ResNet-D 32x56x56x256 k2 s2
    14.4 -> 8.9 (four taps, the first case done so); Inception 32x35x35x192 k3 s1
    p1, four alternating runs in a slow phase of the machine, best of 60 calls
    7.4-8.6 -> 6.0-7.4, median 9.1-11.3 -> 6.9-9.8.  Every other tap count takes
    the accumulator: each count here is one more vectorised loop to compile
    (all of 1 to 9 made a cold first call 2 s slower)."""
    zero = y.dtype.type(0)
    o0, o1, o2, o3, o4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    o5, o6, o7, o8 = taps[5], taps[6], taps[7], taps[8]
    if n == 9:
        for c in range(Cu):
            y[ob + c] = (zero + x[o0 + c] + x[o1 + c] + x[o2 + c] + x[o3 + c] + x[o4 + c]
                         + x[o5 + c] + x[o6 + c] + x[o7 + c] + x[o8 + c]) / d
    elif n == 6:
        for c in range(Cu):
            y[ob + c] = (zero + x[o0 + c] + x[o1 + c] + x[o2 + c] + x[o3 + c] + x[o4 + c]
                         + x[o5 + c]) / d
    else:
        for c in range(Cu):
            y[ob + c] = (zero + x[o0 + c] + x[o1 + c] + x[o2 + c] + x[o3 + c]) / d


@njit(inline="always")
def _avg_columns(x, y, xb, yb, r, Wo, WC, Cu, acc, taps, tap_ptr, tap_row, cstart, clo, chi,
                 dw, rf1, rf2, cf, override, adaptive, lanes):
    """One output row of channels-last data (``Cu`` > 1 channels), column by
    column: each column's window in row-major order (row taps, then columns)
    into ``acc[:Cu]``, which stays in L1 (an accumulator for the whole row,
    row taps outer, did not fit there: Inception 32x35x35x192 k3 s1 p1 took
    9.7 ms against PyTorch's 7.5 at 1 thread), up to four taps per pass
    (:func:`_add_taps`), then divided and stored; windows of 4, 6 or 9 taps
    in one pass instead (:func:`_window_mean`, their offsets in ``taps``)."""
    zero = y.dtype.type(0)
    for ow in range(Wo):
        ob = yb + U(ow) * Cu
        slots = (U(0), U(0), U(0), U(0))
        n = (tap_ptr[r + 1] - tap_ptr[r]) * (chi[ow] - clo[ow])
        if not adaptive and (n == 4 or n == 6 or n == 9):
            # 2x2 and 3x3 windows (ResNet-D, Inception; 3x3 windows clipped by
            # padding have 6 or 4 taps): summed and divided in one pass
            n = 0
            for k in range(tap_ptr[r], tap_ptr[r + 1]):
                xr = xb + tap_row[k] * WC
                for j in range(clo[ow], chi[ow]):
                    taps[n] = U(xr + (cstart[ow] + j * dw) * Cu)
                    n += 1
            d = override if override > 0 else rf1[r] * cf[ow]
            _window_mean(y, ob, x, taps, n, d, Cu)
            continue
        # the window's taps in row-major order, four at a time (_add_taps)
        _zero(acc, U(0), Cu)
        n = 0
        for k in range(tap_ptr[r], tap_ptr[r + 1]):
            xr = xb + tap_row[k] * WC
            for j in range(clo[ow], chi[ow]):
                o = U(xr + (cstart[ow] + j * dw) * Cu)
                slots, n = _push_tap(acc, U(0), x, slots, n, o, Cu)
        _flush_taps(acc, U(0), x, slots, n, Cu)
        if override > 0:
            for c in range(Cu):
                y[ob + c] = acc[c] / override
        elif adaptive:
            d1 = rf1[r]
            d2 = rf2[r]
            d3 = cf[ow]
            m = U(min(lanes, Cu))
            dv = d1 * d2 * d3  # the first `lanes` channels: see _divide_channel
            for c in range(m):
                y[ob + c] = acc[c] / dv
            for c in range(m, Cu):
                y[ob + c] = acc[c] / d1 / d2 / d3
        else:
            d = rf1[r] * cf[ow]
            for c in range(Cu):
                y[ob + c] = acc[c] / d


@njit(inline="always")
def _avg_backward_rows(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw, kw,
                       sw, cia, cib, rf1, rf2, cf, override, adaptive, lanes, whole, runs,
                       item_lo, item_hi):
    """dx rows ``item_lo <= b * P + p < item_hi``: zero, then add the share
    of every window reading the row, output rows (then columns) in order.

    One channel: taps are visited last to first and columns left to right
    inside each tap, which is still column order for every dx element (a
    later column reaches an element through an earlier tap) and lets LLVM
    vectorise over columns.  With ``runs`` (few channels, width stride 1):
    the same order over runs of (columns x channels), in chunks of RUN_CHUNK
    elements (unchunked runs were 20-40 % slower on rows of 6720-14336
    elements).  Other channels-last windows, not adaptive: each dx column
    gathers its windows' shares in that order (no zeroing, no read-modify-write
    of dx per tap); adaptive ones add each window's share to its taps."""
    WC = W * C
    WoC = Wo * C
    Cu = U(C)
    zero = dx.dtype.type(0)
    # Each output row's shares (dy over the divisor) are divided once per call
    # and thread, into row r of `shares` (kh dx rows read each), where the
    # image's outputs fit in SHARE_ROWS_MAX elements; else into one row per
    # output row reading the dx row, again for every dx row.
    keep = R * WoC <= SHARE_ROWS_MAX
    covers = 1  # most output rows reading one dx row
    for p in range(P):
        covers = max(covers, cover_ptr[p + 1] - cover_ptr[p])
    shares = scratch(max(R if keep else covers, 1) * WoC + C, dx.dtype)
    shares_of = scratch(R if keep else 0, np.int64)  # image whose row r is in `shares`
    for r in range(R if keep else 0):
        shares_of[r] = -1
    has_interior = cib > cia
    gather = C != 1 and not runs and not adaptive
    for item in range(item_lo, item_hi):
        b = item // P
        p = item - b * P
        xr = U(item * WC)
        if whole:  # one window holds the whole image: every element gets its share once
            yb = U(b * C)
            for c in range(C):
                shares[c] = zero + _divide(dy[yb + U(c)], 0, 0, rf1, rf2, cf, override, adaptive)
            if C == 1:
                s0 = shares[0]
                for w in range(U(W)):
                    dx[xr + w] = s0
            else:
                for w in range(U(W)):
                    for c in range(Cu):
                        dx[xr + w * Cu + c] = shares[c]
            continue
        k0 = cover_ptr[p]
        k1 = cover_ptr[p + 1]
        for k in range(k0, k1):  # the output rows reading this dx row: their shares
            r = cover_out[k]
            sb = U((r if keep else k - k0) * WoC)  # row r's shares: shares[sb:sb + WoC]
            if keep and shares_of[r] == b:
                continue
            yr = U((b * R + r) * WoC)
            if C == 1:
                for ow in range(Wo):
                    shares[sb + U(ow)] = _divide(dy[yr + U(ow)], r, ow, rf1, rf2, cf, override,
                                                 adaptive)
            else:
                for ow in range(Wo):
                    for c in range(C):
                        q = U(ow * C + c)
                        shares[sb + q] = _divide_channel(dy[yr + q], r, ow, c, rf1, rf2, cf,
                                                         override, adaptive, lanes)
            if keep:
                shares_of[r] = b
        if gather:
            # Several channels, not adaptive: each dx column gathers the shares of
            # the windows reading it, output rows then columns in order (column
            # taps last to first), four at a time (_add_taps).
            for w in range(W):
                d = xr + U(w * C)
                _zero(dx, d, Cu)  # (a column no window reads stays zero)
                n = 0
                slots = (U(0), U(0), U(0), U(0))
                for k in range(k0, k1):
                    sb = U((cover_out[k] if keep else k - k0) * WoC)
                    for jj in range(kw):
                        t = w - cstart[0] - (kw - 1 - jj) * dw  # ow * sw if tap jj reads w
                        if t >= 0 and t % sw == 0 and t // sw < Wo:
                            o = sb + U(t // sw * C)
                            slots, n = _push_tap(dx, d, shares, slots, n, o, Cu)
                _flush_taps(dx, d, shares, slots, n, Cu)
            continue
        for q in range(U(WC)):
            dx[xr + q] = zero
        for k in range(k0, k1):  # output rows in order
            sb = U((cover_out[k] if keep else k - k0) * WoC)
            if C == 1:
                # edge (or adaptive) columns one after the other; interior columns taps
                # last to first: each element still receives its columns in order
                e0 = cia if has_interior else Wo
                for ow in range(e0):
                    for j in range(clo[ow], chi[ow]):
                        dx[xr + U(cstart[ow] + j * dw)] += shares[sb + U(ow)]
                if has_interior:
                    a0 = sb + U(cia)
                    for j in range(kw - 1, -1, -1):
                        xs = xr + U(cstart[cia] + j * dw)
                        for m in range(U(cib - cia)):
                            dx[xs + m * U(sw)] += shares[a0 + m]
                    for ow in range(cib, Wo):
                        for j in range(clo[ow], chi[ow]):
                            dx[xr + U(cstart[ow] + j * dw)] += shares[sb + U(ow)]
            elif runs:
                # Width stride 1: the windows passing column tap j to this row touch
                # one contiguous run of (columns x channels); taps last to first keep
                # each element's columns in order (as for one channel above).
                # The row in chunks that stay in L1 across the taps.
                for ca in range(0, WC, RUN_CHUNK):
                    ce = min(WC, ca + RUN_CHUNK)
                    for jj in range(kw):
                        first = cstart[0] + (kw - 1 - jj) * dw  # column of window 0's tap
                        a, e = tap_run(first, W, Wo, C, ca, ce)
                        if e > a:
                            xs = xr + U(a)
                            ss = sb + U(a - first * C)  # the share of dx element a
                            for m in range(U(e - a)):
                                dx[xs + m] += shares[ss + m]
            else:  # adaptive windows, several channels
                for ow in range(Wo):
                    ab = sb + U(ow * C)
                    for j in range(clo[ow], chi[ow]):
                        xq = xr + U((cstart[ow] + j * dw) * C)
                        for c in range(Cu):
                            dx[xq + c] += shares[ab + c]


@functools.lru_cache(maxsize=None)
def avg_forward_kernel():
    """Average pooling forward kernel, output rows ``lo <= b * R + r < hi``
    (one compile per dtype)."""

    @kernel_jit()
    def kernel(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia, cib,
               rf1, rf2, cf, override, adaptive, lanes, runs, nitems, lo, hi):
        _avg_rows(x, y, P, R, W, Wo, C, tap_ptr, tap_row, cstart, clo, chi, dw, kw, sw, cia, cib,
                  rf1, rf2, cf, override, adaptive, lanes, runs, lo, hi)

    return kernel


@functools.lru_cache(maxsize=None)
def avg_backward_kernel():
    """Average pooling backward kernel (gather over dx rows ``lo <= b * P + p < hi``)."""

    @kernel_jit()
    def kernel(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw, kw, sw, cia,
               cib, rf1, rf2, cf, override, adaptive, lanes, whole, runs, nitems, lo, hi):
        _avg_backward_rows(dy, dx, P, R, W, Wo, C, cover_ptr, cover_out, cstart, clo, chi, dw,
                           kw, sw, cia, cib, rf1, rf2, cf, override, adaptive, lanes, whole, runs,
                           lo, hi)

    return kernel
