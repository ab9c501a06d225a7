"""Plans: everything a call needs that depends only on its configuration.

A plan is built once per (input shape, dtype, geometry, layout, memory) and
cached, so repeated calls skip geometry, kernel selection and argument
packing.  It knows the physical shapes, the compiled kernels and their
constant arguments, and runs them (serially or in parallel, by the work
estimate of :mod:`numba_pool._threading`).  One module for every rank and
op family: ranks differ only in their row tables (:mod:`numba_pool._rows`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import _kernels, _threading
from ._layout import CHANNELS_LAST, Layout, readonly
from ._rows import row_tables
from .geometry import PoolGeometry

# Backward for windows that do not overlap: few-channel images smaller than
# this (NCHW planes up to ~128x128 float32) use the scatter (they stay in
# cache between its zeroing and scatter passes; measured 1.6-3x faster than
# the gather there), larger ones the gather (each dx element written once).
SCATTER_MAX_IMAGE_BYTES = 64 * 1024
# ... except windows tiling every axis on rows of at least this many elements (see
# gather_tiles).
GATHER_TILES_MIN_ROW = 16
# ... and large windows, whose gather visits every dx element for one write in
# `taps` (measured, 2 threads: k5 s5 / k7 s7 on 1-3 channels 2.2 -> 0.5 ms,
# 1.5 -> 0.4 ms; with many channels the gather still wins up to 4x4 windows).
SCATTER_MIN_TAPS_FEW_CHANNELS = 16
SCATTER_MIN_TAPS = 25
# ... and few-channel windows whose row spans more than this many elements
# (window width x channels; see gather_window_row_fits).
GATHER_MAX_WINDOW_ROW = 8

# Max pooling forwards over channels-first planes (C = 1 in the kernels) without
# a specialised kernel run in blocks of _kernels.PLANE_LANES planes interleaved
# as channels where the per-plane code would be scalar or strided: adaptive
# windows and rows of at most PLANE_BLOCK_MAX_WIDTH columns (a block's input
# within PLANE_BLOCK_MAX_BYTES), and width strides of 2 or more (within
# PLANE_BLOCK_STRIDED_MAX_BYTES); see uses_plane_blocks for the measurements.
PLANE_BLOCK_MAX_BYTES = 256 * 1024
PLANE_BLOCK_MAX_WIDTH = 16
PLANE_BLOCK_STRIDED_MAX_BYTES = 896 * 1024
# ... where windows do not overlap along the width, only rows of at most this many
# columns; and never fewer than this many planes (a vector's worth of float32).
PLANE_BLOCK_MAX_TILING_WIDTH = 48
PLANE_BLOCK_MIN_PLANES = 8
# Adaptive average pooling's blocks (uses_adaptive_avg_blocks) up to this size.
ADAPTIVE_AVG_BLOCK_MAX_BYTES = 4 << 20
# Channels-last average pooling with width stride 1 and 2 to AVG_RUN_MAX_CHANNELS
# channels adds whole runs of (columns x channels) per window tap (AvgPlan.runs);
# else each output column sums its window's taps, vectorised over channels.
# Measured, float32 k3 s1 p1, 1 thread, columns -> runs: forward 8x56x56x3
# 1.1-1.3 -> 0.16 ms, 32x28x28x32 1.4 -> 0.75, 8x56x56x64 1.7-1.8 -> 1.5;
# backward 1.2-1.4 -> 0.17-0.20, 1.7-1.8 -> 0.77-0.83, 2.0-2.1 -> 1.5-1.75.
# From 128 channels on the columns won: 8x40x40x128 forward 1.2-1.4 vs 1.5,
# Inception 32x35x35x192 forward 6.2 vs 7.5-9.0, backward 7.1-7.5 vs 8.8-9.0.
AVG_RUN_MAX_CHANNELS = 64

# Max backward with width stride 1: each dx element's windows summed in a register
# (see uses_tap_gather) where (output rows reading a dx row) x window width is at
# most this, and a row has at least this many elements whose every column tap
# lies in the output row per element that has one outside.
TAP_GATHER_MAX_TAPS = 9
TAP_GATHER_MIN_INTERIOR_PER_EDGE = 28
TAP_GATHER_MIN_INTERIOR = _kernels.TAP_GATHER_BLOCK  # fewer: all checked (tap_gather_interior)
# Max backward of overlapping windows with width stride 1: the gather in runs
# (see uses_stride1_gather) where window taps x element bytes are at most this,
# and an output row holds at least this many elements.
STRIDE1_GATHER_MAX_TAP_BYTES = 20
STRIDE1_GATHER_MIN_RUN = 128
# Max backward of channels-first planes with stride 1 on every axis: whole-plane
# gathers (see uses_plane_gather) for windows of at most this many taps, where
# taps x padded plane bytes are at most this, for data of these dtypes.
PLANE_GATHER_MAX_TAPS = 9
PLANE_GATHER_MAX_TAP_BYTES = 160 * 1024
PLANE_GATHER_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# ... and at most this many taps x element bytes (float64: 4 taps).
PLANE_GATHER_MAX_TAPS_X_BYTES = 36
# Average pooling of channels-first planes with stride 1 on every axis: whole-plane
# passes (see uses_stride1_planes) for padded planes of at most this many bytes.
STRIDE1_PLANE_MAX_BYTES = 512 * 1024

_SPECIAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Max forwards with 5+ channels and no specialised kernel run window by window
# (see uses_direct_forward) where each input element is in at most this many
# windows (the product over axes of window / stride).
DIRECT_FORWARD_MAX_VISITS = 6.0


# The generic max forward keeps each element's winning tap as an int32 (64-bit
# taps made it 1.5-1.8x slower), so one window must hold fewer than 2**31
# elements (a 46341 x 46341 plane).
MAX_WINDOW_ELEMENTS = 1 << 31


def offsets_dtype(window_elements: int) -> np.dtype:
    """Smallest unsigned dtype that holds every tap index of a window."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if window_elements <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16 is held in float32 by the max kernels: exact for max, and the
    backward rounds every sum to float16 where windows overlap (the only
    place a sum has more than one term; ``_kernels.scatter_kernels``)."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


class Shapes:
    """Logical and physical shapes of one configuration."""

    def __init__(self, in_shape, geom: PoolGeometry, lay: Layout, memory: str):
        n, c, spatial = lay.split(in_shape)
        out_spatial = geom.output_size
        self.lay, self.memory, self.geom = lay, memory, geom
        self.in_shape = tuple(in_shape)
        self.n, self.c = n, c
        self.B, self.C = (n, c) if memory == CHANNELS_LAST else (n * c, 1)
        self.phys_in = lay.physical_shape(n, c, spatial, memory)
        self.phys_out = lay.physical_shape(n, c, out_spatial, memory)
        self.out_shape = lay.join(n, c, out_spatial)
        self.perm = lay.perm(memory)
        self.empty = 0 in self.phys_in or 0 in self.phys_out
        self.in_elements, self.out_elements = math.prod(self.phys_in), math.prod(self.phys_out)

    def physical(self, a: np.ndarray) -> np.ndarray:
        """A logical array already in this memory layout, in physical order (a view)."""
        return a if self.perm is None else a.transpose(self.perm)

    def logical(self, phys: np.ndarray) -> np.ndarray:
        """A physical result as the caller sees it."""
        if self.perm is None:
            return phys if self.memory == CHANNELS_LAST else phys.reshape(
                self.lay.join(self.n, self.c, phys.shape[1:-1]))
        return self.lay.to_logical(phys, self.n, self.c, self.memory)


# kernel(*arrays, *consts, lo, hi) over items [0, consts[-1]), serially or in parallel
_run = _threading.run


def forward_key(geom: PoolGeometry, channels: int, dtype: np.dtype) -> tuple[int, ...]:
    """Which specialised forward kernel fits (see ``_kernels.forward_kernel``).

    Each key is compiled (and cached) separately, so only the common windows
    (2 and 3 on every axis) on float32/float64 data are specialised: with
    many channels for any stride/dilation, with 1-4 channels (channels-first
    data, RGB images) for unit width dilation and width strides 1, 2 or k.

    The 1-4 channel keys are the most numerous (most of the suite's compile
    time) but were kept: on 16x256x256xC float32 at 1 thread the generic
    kernel's forward is 3-8x slower (C=1 k2 s2: 2.8 vs 0.34 ms; C=4 k3 s1
    p1: 36 vs 7.0 ms), and 2-4 channels are common in microscopy and
    satellite scenes.

    Windows of 5 and 7 with 5+ channels (1-D and 2-D) are specialised only where
    they overlap little (window <= 2.5 x stride on every axis): there the
    unrolled window beats the generic kernel (1 thread, float32: 8x96x96x64 k5
    s2 p2 4.0 -> 3.2 ms, k5 s3 2.3 -> 1.6, k5 s5 1.3 -> 0.9, k7 s7 1.19 -> 0.96;
    8x384x384x8 k5 s2 p2 18.1 -> 12.3; 1x14x14x512 k5 s5 p2 0.033 -> 0.025),
    while with more overlap the generic kernel, which shares each input row's
    column maxima between overlapping windows, wins (k7 s2 p3 5.9 vs 8.5 ms,
    k5 s1 9.4 vs 9.8, k7 s1 p3 on 8x32x32x512 17 vs 27).  Windows of 5 and 7
    that do not overlap (stride >= window) take the direct kernel instead
    (uses_direct_forward; AMD EPYC, 1 thread, 8x96x96x64 k5 s5 0.87 -> 0.65 ms,
    k7 s7 1.73 -> 0.89, float64 k5 s5 p2 4.4 -> 2.9; 8x32x32x512 k5 s5 p2 even).
    """
    if geom.adaptive or dtype not in _SPECIAL_DTYPES:
        return (0, 0, 0, 0, 0, 0)
    k = geom.cols.kernel
    if any(a.kernel != k for a in geom.axes):
        return (0, 0, 0, 0, 0, 0)
    kd = k if geom.rank == 3 else 1
    kh = k if geom.rank >= 2 else 1
    c = geom.cols
    if k in _kernels.LARGE_WINDOWS:
        if (channels >= _kernels.VECTOR_MIN_CHANNELS and geom.rank <= 2
                and any(a.kernel > a.stride for a in geom.axes)
                and all(a.kernel <= _kernels.LARGE_WINDOW_MAX_OVERLAP * a.stride
                        for a in geom.axes)):
            return (kd, kh, k, 0, 0, 0)
        return (0, 0, 0, 0, 0, 0)
    if k not in _kernels.SPECIAL_WINDOWS:
        return (0, 0, 0, 0, 0, 0)
    if channels >= _kernels.VECTOR_MIN_CHANNELS:
        return (kd, kh, k, 0, 0, 0)
    if c.dilation == 1 and c.stride in (1, 2, k):  # 1 to 4 channels
        return (kd, kh, k, c.stride, 1, channels)
    return (0, 0, 0, 0, 0, 0)


def has_borders(geom: PoolGeometry) -> bool:
    """Whether some window reaches outside x (padding, or ceil_mode's overhang):
    the specialised forward kernels then need their generic code for the
    windows at the borders (``_kernels.forward_kernel``'s ``BORDERS``)."""
    return any(a.interior != (0, a.out) for a in geom.axes)


def backward_key(geom: PoolGeometry, channels: int, dtype: np.dtype) -> tuple[int, ...]:
    """Which specialised gather backward kernel fits (see
    ``_kernels.backward_kernel``): few channels (1 to 4: channels-first
    data, RGB images), a common window tiling the width (stride = width, no
    dilation).  Only for windows that do not overlap: overlapping windows
    use the scatter kernels."""
    c = geom.cols
    if (channels < _kernels.VECTOR_MIN_CHANNELS and dtype in _SPECIAL_DTYPES
            and c.kernel in _kernels.SPECIAL_WINDOWS and c.stride == c.kernel
            and c.dilation == 1 and not c.adaptive):
        return (c.kernel, c.stride, 1, channels)
    return (0, 0, 0, 0)


def uses_stride1_gather(geom: PoolGeometry, channels: int, dtype: np.dtype) -> bool:
    """Whether the max backward of overlapping windows runs as the gather in
    runs of ``_kernels.stride1_gather_kernel`` (width stride 1) rather than the
    scatter.  ``dtype`` is the data's own (float16 sums need the scatter's
    rounding); ``channels`` the kernels' C (1 for channels-first memory).

    The gather spends one vector step per window tap on every dx element, the
    scatter one scalar read-modify-write per dy element, so the gather wins
    with few taps of narrow elements and long runs.  Measured (1 thread,
    scatter -> gather, ms): float32 k2 s1 NCHW 8x3x384x384 3.8 -> 1.9, NHWC
    8x384x384x3 4.1 -> 2.1, NHWC 8x96x96x64 4.1 -> 2.9; 1-D NCW 32x128x4000 k2
    24.7 -> 13.1, k3 27.5 -> 14.6, k5 29.2 -> 18.8.  Lost: runs of 31 output
    columns (NCHW 8x512x32x32 k2 5.6 -> 7.9), 3x3 windows (NHWC 8x96x96x64 4.9
    -> 6.5), 3-D k2 (NCDHW 2.4 -> 6.7), float64 k2 (NHWC 8x32x32x512 5.7 ->
    8.2); 1-D NWC with 128 channels keeps the channel gather (14.6 vs 14.8)."""
    c = geom.cols
    taps = geom.window_elements
    return (not geom.adaptive and dtype != np.float16 and c.stride == 1 and c.kernel > 1
            and any(a.overlapping for a in geom.axes)
            and taps * np.dtype(dtype).itemsize <= STRIDE1_GATHER_MAX_TAP_BYTES
            and c.out * channels >= STRIDE1_GATHER_MIN_RUN
            and not channel_gather_overlaps(geom, channels, dtype))


def uses_tap_gather(geom: PoolGeometry, channels: int, dtype: np.dtype) -> bool:
    """Whether the max backward runs as ``_kernels.tap_gather_kernel``: width
    stride 1, windows wider than 1, at most TAP_GATHER_MAX_TAPS taps summed per
    dx element (row slots x width), rows with at least TAP_GATHER_MIN_INTERIOR
    elements whose every column tap lies in the output row, and at most one in
    TAP_GATHER_MIN_INTERIOR_PER_EDGE elements with a tap outside it (summed
    element by element, every tap checked); not float16 (its sums round
    after each addition: the scatter).  ``channels``: the kernels' C.

    Measured (1 thread, ms, the kernel used before -> tap gather; AMD EPYC,
    old and new code alternating in fresh processes): float32 NCHW
    8x64x96x96 k3 s1 p1 scatter 6.4 -> 4.7; NHWC 8x384x384x3 k3 p1 scatter
    5.7-6.2 -> 2.6; NCHW 16x1x512x512 k3x2 p1 scatter 6.5-6.7 -> 2.0; NCHW
    8x64x96x96 k2 plane gather 4.8-5.8 -> 3.0; 8x64x64x64 k3 p1 plane gather
    2.5 -> 1.9; NCHW 8x3x384x384 k3 s2x1 p1 scatter 2.45 -> 1.6; NHWC
    2x128x128x3 k3 p1 0.144 -> 0.064; stride-1 gather -> tap gather: NCHW
    8x3x384x384 k2 1.9-2.0 -> 1.3-2.3, NHWC 8x384x384x3 k2 2.0-3.5 -> 1.5,
    1-D NCW 32x128x4000 k3 8.9-9.5 -> 5.8-6.3, k5 12.6-17.8 -> 7.1-7.8; 1-D NWC
    32x4000x128 k3 (the channel gather) 9.2-9.4 -> 5.5-8.6; float64 NCHW
    8x3x384x384 k2 scatter 5.7 -> 2.2, k3 p1 6.8 -> 4.5, 16x1x512x512 k3x2 p1
    7.7 -> 3.5.  Lost: 25 and 15 taps (NCHW 8x3x384x384 k5 p2 5.3 -> 5.8,
    k5 s2x1 p2 2.5 -> 3.1; NHWC 8x96x96x64 k5 p2 4.5 -> 8.3), 49 taps (k7
    p3, not vectorised: 5.6 -> 190); short rows, whose edges dominate
    (8x512x32x32 k3 p1, 2 edge elements in 32: plane gather 4.4 -> 6.0,
    8x64x48x48 1.1 -> 1.3, 1x512x14x14 0.15 -> 0.8); even or slightly lost:
    float64 NHWC 8x96x96x64 k3 p1 7.1 -> 7.9, NHWC 8x32x32x512 k2 2.3 ->
    2.5-3.2 (rows of 64 KB)."""
    c = geom.cols
    if (geom.adaptive or np.dtype(dtype) == np.float16 or c.stride != 1 or c.kernel < 2
            or geom.window_elements > np.iinfo(offsets_dtype(geom.window_elements)).max):
        return False  # (the last: the dtype's largest value marks unused slots)
    qa, qe = tap_gather_interior(geom, channels)
    return (tap_gather_slots(geom)[0] * c.kernel <= TAP_GATHER_MAX_TAPS
            and qe - qa >= TAP_GATHER_MIN_INTERIOR
            and qe - qa >= TAP_GATHER_MIN_INTERIOR_PER_EDGE * (c.size * channels - (qe - qa)))


def tap_gather_interior(geom: PoolGeometry, channels: int) -> tuple[int, int]:
    """``(qa, qe)``: the elements ``qa <= q < qe`` of a dx row (``channels``, the
    kernels' C, per column) whose every column tap lands inside the output row,
    which ``_kernels.tap_gather_kernel`` sums in vectorised blocks; empty
    (``qe == qa``) when they are fewer than one block."""
    c = geom.cols
    row = c.size * channels
    qa = min(max(0, (c.kernel - 1) * c.dilation - c.pad_before) * channels, row)
    qe = min(row, (c.out - c.pad_before) * channels)
    return (qa, qe) if qe - qa >= _kernels.TAP_GATHER_BLOCK else (qa, qa)


@functools.lru_cache(maxsize=256)
def tap_gather_slots(geom: PoolGeometry) -> tuple:
    """``(NR, slot_out, slot_tap)`` of ``_kernels.tap_gather_kernel``: NR, the
    most output rows reading one input row (at least 1); per input row, NR
    slots of the output row and the taps of each column (``NR x kw`` taps in
    the offsets' dtype), in increasing output row, unused slots (output row 0,
    the dtype's largest value, no tap of the window) after them."""
    rows, kw = row_tables(geom), geom.cols.kernel
    odtype = offsets_dtype(geom.window_elements)
    counts = np.diff(rows.cover_ptr)
    nr = max(1, int(counts.max(initial=0)))
    slot_out = np.zeros((rows.P, nr), np.int64)
    slot_tap = np.full((rows.P, nr, kw), np.iinfo(odtype).max, odtype)
    entry = np.arange(rows.cover_out.size) - np.repeat(rows.cover_ptr[:-1], counts)
    p = np.repeat(np.arange(rows.P), counts)
    slot_out[p, entry] = rows.cover_out
    slot_tap[p, entry] = rows.cover_rt[:, None] * kw + np.arange(kw)
    for a in (slot_out, slot_tap):
        a.flags.writeable = False
    return nr, slot_out.reshape(-1), slot_tap.reshape(-1)


def uses_plane_gather(geom: PoolGeometry, channels: int, dtype: np.dtype) -> bool:
    """Whether the max backward runs as whole-plane gathers
    (``_kernels.plane_gather_kernel``): channels-first planes (``channels``, the
    kernels' C, is 1), stride 1 on every axis, overlapping windows of at most
    PLANE_GATHER_MAX_TAPS taps and PLANE_GATHER_MAX_TAPS_X_BYTES taps x element
    bytes, small padded planes, data in one of
    PLANE_GATHER_DTYPES (the data's own dtype: float16 sums need the scatter's
    rounding).

    One vector step per (tap, padded-plane element) and three copies, against
    the scatter's scalar read-modify-write per dy element.  Measured (float32,
    ms, scatter -> plane gather, 1 thread): 8x512x32x32 k2 s1 p1 9.75 -> 4.51,
    k3 p1 6.52 -> 5.83; 8x64x96x96 k2 p1 6.53 -> 4.67; 3-D 8x64x8x16x16 k2
    1.44 -> 1.18, k2 p1 2.90 -> 1.65; 1-D 32x128x50 k3 p1 0.32 -> 0.27,
    32x128x100 k5 p2 0.56 -> 0.50; 8x128x28x28 k3 p1 1.20 -> 1.08.  2 threads:
    8x512x32x32 k2 p1 3.43 -> 2.36, k2 p0 2.53 -> 1.69, k3 p1 3.21 -> 2.86;
    8x64x96x96 k2 p1 2.92 -> 2.34.  Lost or even (a standalone prototype, 1
    thread): 8x512x32x32 k5 p2 9.2 vs 12.8, 8x64x96x96 k3 7.5 vs 7.8,
    8x64x64x64 k3 p1 2.8 vs 2.7; float64 8x512x32x32 k2 p1 9.9 vs 10.6, k3 p1
    9.6 vs 14.2.  Where the stride-1 gather takes the rows it is faster (1-D
    32x128x200 k3 p1 0.47 vs 0.57).  float64 with at most 4 taps (AMD EPYC, 1
    thread, scatter -> plane gather, ms): 1x512x14x14 k2 p1 0.19 -> 0.13,
    1x64x40x40 k2 0.15 -> 0.11; with 9 taps it lost (1x512x14x14 k3 p1 0.17
    -> 0.21, 8x512x32x32 k3 p1 6.3 -> 11.6)."""
    padded = stride1_padded_plane(geom, channels, 1)
    if (padded is None or np.dtype(dtype) not in PLANE_GATHER_DTYPES
            or not any(a.overlapping for a in geom.axes)):
        return False
    taps = geom.window_elements
    itemsize = np.dtype(dtype).itemsize
    return (taps <= PLANE_GATHER_MAX_TAPS and taps * itemsize <= PLANE_GATHER_MAX_TAPS_X_BYTES
            and taps * padded * itemsize <= PLANE_GATHER_MAX_TAP_BYTES)


def stride1_padded_plane(geom: PoolGeometry, channels: int, sides: int) -> int | None:
    """Elements of a channels-first plane (``channels``, the kernels' C, is 1)
    padded on ``sides`` (1 or 2) sides of every axis by a window's reach, as
    the whole-plane kernels lay it out; None where they do not apply (more
    channels, adaptive windows, a stride other than 1)."""
    if channels != 1 or geom.adaptive or any(a.stride != 1 for a in geom.axes):
        return None
    return math.prod(a.out + sides * (a.kernel - 1) * a.dilation for a in geom.axes)


def plane_dims(geom: PoolGeometry) -> tuple:
    """Sizes, outputs, windows, dilations and leading padding of the depth,
    height and width axes (unit axes in front for 1-D and 2-D): the whole-plane
    kernels' geometry arguments."""
    axes = [None] * (3 - geom.rank) + list(geom.axes)
    size = [a.size if a else 1 for a in axes]
    out = [a.out if a else 1 for a in axes]
    kernel = [a.kernel if a else 1 for a in axes]
    dilation = [a.dilation if a else 1 for a in axes]
    pad = [a.pad_before if a else 0 for a in axes]
    return (*size, *out, *kernel, *dilation, *pad)


def uses_stride1_planes(geom: PoolGeometry, channels: int, itemsize: int) -> bool:
    """Whether average pooling of channels-first planes (``channels``, the
    kernels' C, is 1) runs as whole-plane passes
    (``_avg_kernels.stride1_plane_kernel`` and its backward): stride 1 on every
    axis, padded planes of at most STRIDE1_PLANE_MAX_BYTES (the padded plane
    here has a window's reach of padding on both sides of every axis, as the
    backward's shares plane).

    Measured (float32 unless said, ms, per-row kernels -> whole planes, forward
    / backward, 1 thread): 32x32x28x28 k3 s1 p1 (the training step's) 2.12 /
    2.97 -> 0.74 / 0.77; Inception 32x192x35x35 16.7 / 25.8 -> 7.7 / 8.4;
    8x64x56x56 k5 p2 10.6 / 8.4 -> 2.2 / 2.4, k7 p3 22.2 / 17.7 -> 3.7 / 4.2,
    k3 float64 3.8 / 4.5 -> 2.6 / 2.9; 3-D 4x32x16x28x28 k3 11.3 / 13.4 -> 2.9
    / 3.5; 1-D 32x128x400 k3 0.79 / 0.87 -> 0.74 / 0.75; 8x3x320x320 (420 KB
    padded) 2.25 / 2.57 -> 2.02 / 1.94, 2 threads 1.37 / 1.45 -> 1.13 / 1.08;
    4x3x400x400 (650 KB) 1.86 / 1.93 -> 1.72 / 1.66.  Lost: 4x3x512x512 (1 MB
    padded) 3.05 / 3.09 -> 3.63 / 3.36."""
    padded = stride1_padded_plane(geom, channels, 2)
    return padded is not None and padded * itemsize <= STRIDE1_PLANE_MAX_BYTES


def uses_masked_scatter(geom: PoolGeometry, dtype: np.dtype) -> bool:
    """Whether a max backward on the scatter takes ``_kernels.masked_scatter_kernel``
    (either layout): windows of at most MASKED_SCATTER_MAX_TAPS taps, not float16
    (its sums round after each addition: the general scatter)."""
    return (geom.window_elements <= _kernels.MASKED_SCATTER_MAX_TAPS
            and np.dtype(dtype) != np.float16)


def gather_tiles(geom: PoolGeometry, channels: int) -> bool:
    """Whether the max backward of few-channel images too small for the gather
    otherwise (SCATTER_MAX_IMAGE_BYTES) takes it all the same: windows that tile
    every axis exactly (each dx element written once, no zeroing pass), on rows
    of at least GATHER_TILES_MIN_ROW elements.

    Measured on the AMD EPYC (Zen 4) of 2026-12-07, float32, ms, scatter ->
    gather, 1 / 2 threads: the seed's 128x28x28x3 k2 0.192 -> 0.102 / 0.103 ->
    0.057; NCHW 32x64x56x56 k2 2.85 -> 1.53 / 1.40 -> 0.73, 8x64x32x32 k2 0.255
    -> 0.154, 16x3x64x64 k2 0.090 -> 0.041; 16x32x32x4 k2 0.035 -> 0.021; even
    on 8x64x48x48 k3 (0.285 vs 0.281).  Rows of 14 (1x512x14x14 k2) kept the
    scatter faster (0.070 vs 0.094), and so did padded windows (8x64x64x3 k3 s3
    p1: 0.039 vs 0.095).  The scatter's rule was measured on an Intel Xeon, where
    it won 1.6-3x on small images; these tiling windows were not measured there."""
    return (all(a.tiles_exactly for a in geom.axes)
            and geom.cols.size * channels >= GATHER_TILES_MIN_ROW)


def gather_window_row_fits(geom: PoolGeometry, channels: int) -> bool:
    """Whether the few-channel gather (``_kernels.backward_kernel``, fewer than
    VECTOR_MIN_CHANNELS channels) suits this window: one window row spans at
    most GATHER_MAX_WINDOW_ROW elements (width x channels).  Wider ones ran
    3-4x slower than the masked scatter on the AMD EPYC (Zen 4) of 2026-12-07
    (float32 k3 s3, 1 thread, ms, gather vs scatter: 8x384x384x3 4.5 vs 1.1,
    8x384x384x4 5.7 vs 1.7, 32x112x112x3 1.6 vs 0.39, 2x128x128x3 0.14 vs
    0.041; p1 3.4 vs 1.3; float64 6.3 vs 1.7), while narrower ones kept the
    gather ahead (k3 s3 8x384x384x2 0.5 vs 1.0; k2 s2 8x384x384x3 0.95-1.24
    vs 3.1, 8x384x384x4 1.4-1.7 vs 3.0)."""
    return geom.cols.kernel * channels <= GATHER_MAX_WINDOW_ROW


def channel_gather_overlaps(geom: PoolGeometry, channels: int, dtype: np.dtype) -> bool:
    """Whether the max backward's gather over dx rows (``_kernels.backward_kernel``)
    serves windows that overlap: along the width only (1-D, or rows that do not
    overlap), with many channels.  Vectorised over channels, it still visits each
    dx element once per window (measured 1-D NWC k3 s2 C128: 13.8 -> 10.3 ms at
    1 thread, 6.6 -> 4.8 at 2, against the scatter); where rows overlap too it
    measured up to 1.4x slower than the scatter.  ``dtype`` is the data's own:
    float16 sums need the scatter's rounding."""
    return (channels >= _kernels.VECTOR_MIN_CHANNELS and dtype != np.float16
            and not any(a.overlapping for a in geom.axes[:-1]))


def uses_plane_blocks(geom: PoolGeometry, channels: int, planes: int, plane_bytes: int) -> bool:
    """Whether the generic max forward over ``planes`` channels-first planes
    (``channels`` is the kernels' C: 1 for channels-first memory) of
    ``plane_bytes`` bytes each runs in interleaved blocks.

    Measured (float32, 1 thread, per-plane kernel -> blocks): adaptive max
    32x256x30x30 -> 7x7 13.4 -> 5.2 ms; 1x512x14x14 k5 s1 p2 1.0 -> 0.56 ms,
    k7 s7 0.153 -> 0.093 ms; 3-D 8x32x8x16x16 k5 s2 p2 1.40 -> 0.71 ms.  With
    regular windows on wider rows the per-plane kernel, vectorised over
    columns, wins and stays: 8x512x32x32 k5 s1 12.5 vs 17.5 ms, k3x2 s2 4.6
    vs 6.1, 8x64x48x48 k5 s1 2.8 vs 4.1; 1-D 32x128x1000 k5 s1 9.6 vs 19.5.
    (Average pooling measured no gain: adaptive 32x256x30x30 -> 7x7 5.0 vs 5.4
    ms against its own interleaved plane kernel, k3 s1 p1 14.7 vs 29 ms.)

    With a width stride of 2 or more the per-plane kernel's columns are strided,
    and blocks won on every shape measured (float32, 1 / 2 threads, per-plane ->
    blocks, ms): 8x512x32x32 k5 s2 p2 12.7 -> 5.4 / 6.3 -> 2.8, k5 s5 p2 3.45 ->
    2.48 / 1.71 -> 1.30, k7 s2 p3 19.2 -> 7.2 (1 thread); 8x64x112x112 k5 s2 p2
    17.9 -> 8.6 / 9.4 -> 4.2 (800 KB blocks); 8x64x56x56 k3x2 s2 1.68 -> 1.35 /
    0.89 -> 0.75; 1-D 32x128x4000 k5 s2 p2 86.9 -> 41.2 / 42.5 -> 20.3; 3-D
    4x32x8x32x32 k5 s2 p2 2.2 -> 1.8 / 1.1 -> 0.95; float64 8x512x32x32 k5 s2
    p2 15.3 -> 9.3 (1 thread).

    Where blocks lost (float32, ms, per-plane vs blocks; 1 / 2 threads): fewer
    than PLANE_BLOCK_MIN_PLANES planes, whose block has too few lanes to vectorise
    and is one work item (2x3x128x128 k7 s7 0.050 vs 0.093 / 0.036 vs 0.093, k5
    s5 p2 0.058 vs 0.105); windows that do not overlap along rows wider than
    PLANE_BLOCK_MAX_TILING_WIDTH, where the per-plane kernel's work is light
    against the interleaving (1x16x64x64 k5 s5 0.045 vs 0.090, k7 s7 0.056 vs
    0.087; 1x16x96x96 k5 s5 p2 0.108 vs 0.196; 1x16x128x128 k5 s5 0.163 vs
    0.333; 1x32x48x48 k7 s7 p3 still won, 0.057 vs 0.070); blocks of 1 MB
    (1x16x128x128 k5 s2 p2 0.72 vs 0.91; 784 KB, 112 wide: 0.57 vs 0.35)."""
    if channels != 1 or planes < PLANE_BLOCK_MIN_PLANES:
        return False
    block = plane_bytes * _kernels.PLANE_LANES
    cols = geom.cols
    if geom.adaptive or cols.size <= PLANE_BLOCK_MAX_WIDTH:
        return block <= PLANE_BLOCK_MAX_BYTES
    return (cols.stride >= 2 and block <= PLANE_BLOCK_STRIDED_MAX_BYTES
            and (cols.overlapping or cols.size <= PLANE_BLOCK_MAX_TILING_WIDTH))


def uses_direct_forward(geom: PoolGeometry, channels: int) -> bool:
    """Whether a max forward without a specialised kernel runs window by window
    (``_kernels.direct_forward_kernel``) rather than by the generic row pass:
    ``channels`` (the kernels' C) at least VECTOR_MIN_CHANNELS, regular windows,
    each input element in at most DIRECT_FORWARD_MAX_VISITS windows.

    Measured on the AMD EPYC (Zen 4) of 2026-12-07, float32 unless said, ms,
    generic -> direct, 1 thread: NHWC 8x96x96x64 k3x2 s3x2 2.47 -> 1.06 (2
    threads 1.36 -> 0.61), float64 p1 3.56 -> 2.66; 8x32x32x512 k3x2 s3x2 p1
    2.53 -> 0.81; 8x96x96x64 k4 s4 1.47 -> 0.95, k4 s2 p1 3.64 -> 2.42; k3x2
    s2 p1 on 8x32x32x512 2.42 -> 1.33; k3x2 s1 p1 (6 visits) 5.8-6.2 -> 5.6-6.2,
    on 8x32x32x512 5.0 -> 3.6; 1-D NWC 32x4000x128 k4 s4 7.8 -> 4.3, k6 s2
    19.3 -> 8.2, k5 s1 p2 26.4 -> 11.2, k6 s1 31.2 -> 13.6; 3-D NDHWC
    4x16x32x32x64 (2,3,3) 1.34 -> 0.86; 1x14x14x512 k4 s4 (2 threads) 0.025 ->
    0.013 ms.  Lost, with more visits: k6 s2 (9) 4.5 -> 7.1, k4 s1 (16) 8.1
    -> 12.8; and against the specialised kernels of overlapping windows (k5 s3
    2.0 vs 2.9, k3 s2 p1 1.8 vs 2.3, k3 s3 0.61 vs 0.88, float64 k2 s2 2.8 vs
    3.1), which keep them.  Windows of 5 and 7 that do not overlap come here
    (see forward_key).  Tried and dropped inside the channels-first plane blocks
    (16 interleaved planes as channels): slower there (NCHW 8x512x32x32 k7 s7 5.3
    -> 6.0 ms, k3x2 s2 8.8 -> 12.3, 3-D 4x32x8x32x32 k5 s2 p2 2.5 -> 3.4)."""
    if channels < _kernels.VECTOR_MIN_CHANNELS or geom.adaptive:
        return False
    return math.prod(a.kernel / a.stride for a in geom.axes) <= DIRECT_FORWARD_MAX_VISITS


def uses_adaptive_avg_blocks(planes: int, plane_bytes: int) -> bool:
    """Whether adaptive average pooling of ``planes`` channels-first planes of
    ``plane_bytes`` bytes each runs in interleaved blocks
    (``_avg_kernels.adaptive_plane_block_kernel`` and its backward) rather than
    :data:`~numba_pool._avg_kernels.PLANE_BLOCK` planes side by side, element by
    element: from :data:`PLANE_BLOCK_MIN_PLANES` planes on, with blocks of up to
    :data:`ADAPTIVE_AVG_BLOCK_MAX_BYTES`, whatever the windows.

    Measured (float32, ms, forward / backward, side by side -> blocks; 1 thread
    in a slow phase of the machine): 32x256x30x30 -> 7x7 9.4 -> 7.1 / 13.0 ->
    7.8 (2 threads 4.8 -> 3.7 / 6.6 -> 3.9); 8x64x56x56 -> 5x9 0.96 -> 0.94 /
    1.59 -> 1.16 (2 threads 0.76 -> 0.53 / 1.23 -> 0.60).  Windows that tile the
    input lost then (8x64x56x56 -> 7x7 0.80 -> 0.90, 1-D 32x128x1000 -> 50 2.5 ->
    3.1 / 2.1 -> 3.3), and so did blocks past 256 KB, with the planes interleaved
    element by element.  Since the interleaving goes tile by tile
    (``numba_pool._transpose``) both win, two alternating runs each (an even
    slower phase, 2026-12-08): 8x64x56x56 -> 7x7 2.65-2.71 -> 0.74-0.91 / 1.35-1.69
    -> 0.83-1.05 (2 threads 1.18-1.20 -> 0.52-0.63 / 0.70-0.72 -> 0.56-0.74); 1-D
    32x128x1000 -> 50 5.4-5.8 -> 2.4-2.9 / 4.5-6.9 -> 3.0-3.9; 32x256x14x14 -> 7x7
    5.4-5.5 -> 2.3-3.5 / 2.8-3.8 -> 1.6-2.8; 64x512x28x28 -> 7x7 49-56 -> 20-26 /
    30-35 -> 25-27; blocks of 800 KB, 8x64x112x112 -> 7x7 16.7-17.5 -> 5.0-5.6 /
    6.7-7.9 -> 5.1-6.0; 3.2 MB, 2x32x224x224 -> 3x5 4.5-5.4 -> 1.9-2.6 / 3.5-4.4 ->
    2.4-2.9 (2 threads 2.5 -> 1.3 / 1.7 -> 1.6).  Larger blocks lost some passes:
    5.8 MB, 1x16x300x300 -> 7x7 backward 0.70-0.89 -> 0.94-1.44 (forward 1.4-1.9 ->
    0.8-1.6); 16 MB, 2x16x512x512 -> 7x7 forward 9.7-9.9 -> 8.8-12.2, backward
    10.4-13.0 -> 10.9-15.8.  (AMD EPYC.)"""
    return (planes >= PLANE_BLOCK_MIN_PLANES
            and plane_bytes * _kernels.PLANE_LANES <= ADAPTIVE_AVG_BLOCK_MAX_BYTES)


def plane_blocks(planes: int) -> int:
    """Number of interleaved blocks ``planes`` planes make (the work items)."""
    return -(-planes // _kernels.PLANE_LANES)


class MaxPlan(Shapes):
    """Kernels and arguments of one max pooling configuration (forward and backward)."""

    def __init__(self, in_shape, dtype, geom: PoolGeometry, lay: Layout, memory: str):
        super().__init__(in_shape, geom, lay, memory)
        self.dtype = np.dtype(dtype)
        self.cdtype = compute_dtype(self.dtype)
        if geom.window_elements >= MAX_WINDOW_ELEMENTS:
            name = "output_size" if geom.adaptive else "pool_size"
            raise ValueError(
                f"{name}: a window of {geom.window_elements} elements; max pooling supports "
                f"windows of fewer than 2**31 elements")
        self.odtype = offsets_dtype(geom.window_elements)
        # bytes of y, the offsets and dx (for _buffers.empty_sized)
        self.y_bytes = self.out_elements * self.dtype.itemsize
        self.offsets_bytes = self.out_elements * self.odtype.itemsize
        self.dx_bytes = self.in_elements * self.dtype.itemsize
        rows = row_tables(geom)
        cl = geom.cols
        B, C = self.B, self.C
        W, Wo = cl.size, cl.out
        fkey = forward_key(geom, C, self.cdtype)
        self.fwd = _kernels.forward_kernel(*fkey, int(not fkey[2] or has_borders(geom)))
        self.fwd_const = (rows.P, rows.R, W, Wo, C, rows.first, rows.full, rows.tap_ptr,
                          rows.tap_row, rows.tap_rt, rows.depth_step, rows.dh, cl.start, cl.lo,
                          cl.hi, cl.dilation, cl.kernel, cl.interior[0], cl.interior[1],
                          B * rows.R)
        generic = not fkey[2]  # no specialised kernel: the direct one, blocks or the rows
        if generic and uses_direct_forward(geom, C):
            self.fwd = _kernels.direct_forward_kernel()
            self.fwd_const = (rows.P, rows.R, W, Wo, C, rows.tap_ptr, rows.tap_row, rows.tap_rt,
                              cl.start, cl.lo, cl.hi, cl.dilation, cl.kernel, B * rows.R)
        elif generic and uses_plane_blocks(geom, C, B, rows.P * W * self.cdtype.itemsize):
            self.fwd = _kernels.plane_block_forward_kernel()
            self.fwd_const = (rows.P, rows.R, W, Wo, rows.first, rows.full, rows.tap_ptr,
                              rows.tap_row, rows.tap_rt, rows.depth_step, rows.dh, cl.start,
                              cl.lo, cl.hi, cl.dilation, cl.kernel, cl.interior[0],
                              cl.interior[1], B, plane_blocks(B))
        # Elements touched, weighted by the kernel's cost per element, decide
        # serial or parallel (bench/threshold.py measured the weights).
        touched = B * (rows.P * W + 2 * rows.R * Wo) * C
        self.fwd_work = touched * (8 if generic else 1)
        few_channels = C < _kernels.VECTOR_MIN_CHANNELS
        small_image = rows.P * W * C * self.cdtype.itemsize < SCATTER_MAX_IMAGE_BYTES
        taps = geom.window_elements
        if uses_tap_gather(geom, C, self.dtype):
            self.backward_kind = "tap gather"
            nr, slot_out, slot_tap = tap_gather_slots(geom)
            self.bwd = _kernels.tap_gather_kernel(nr, cl.kernel)
            self.bwd_const = (rows.P, rows.R, W, Wo, C, slot_out, slot_tap, cl.pad_before,
                              cl.dilation, *tap_gather_interior(geom, C), self.cdtype.type(0),
                              B * rows.P)
            self.bwd_work = touched * 2
        elif uses_stride1_gather(geom, C, self.dtype):
            self.backward_kind = "stride-1 gather"
            self.bwd = _kernels.stride1_gather_kernel()
            self.bwd_const = (rows.P, rows.R, W, Wo, C, rows.cover_ptr, rows.cover_out,
                              rows.cover_rt, int(cl.start[0]), cl.dilation, cl.kernel,
                              self.cdtype.type(0), B * rows.P)
            self.bwd_work = touched * 2
        elif uses_plane_gather(geom, C, self.dtype):  # (rows too short for the above)
            self.backward_kind = "plane gather"
            self.bwd = _kernels.plane_gather_kernel()
            self.bwd_const = plane_dims(geom) + (B,)
            self.bwd_work = touched * 2
        elif ((any(a.overlapping for a in geom.axes)
               and not channel_gather_overlaps(geom, C, self.dtype))
                or taps >= SCATTER_MIN_TAPS
                or (few_channels and ((small_image and not gather_tiles(geom, C))
                                      or taps >= SCATTER_MIN_TAPS_FEW_CHANNELS
                                      or not gather_window_row_fits(geom, C)))):
            # Scatter in output order: the work is one pass over dy (and dx
            # rows zeroed as the scatter reaches them), whatever the window size.
            self.backward_kind = "scatter"
            if uses_masked_scatter(geom, self.dtype):
                self.bwd = _kernels.masked_scatter_kernel()
                self.bwd_const = self.masked_scatter_const
            else:
                self.bwd = _kernels.scatter_kernel(int(self.dtype == np.float16),
                                                   int(geom.rank == 3))
                self.bwd_const = self.scatter_const
            self.bwd_work = touched * 4
        else:
            # Gather over dx rows: vectorised, each element written once.
            self.backward_kind = "gather"
            bkey = backward_key(geom, C, self.cdtype)
            narrow_cost = 4 if bkey[0] else 8
            self.bwd_work = touched * (1 if not few_channels else narrow_cost)
            self.bwd = _kernels.backward_kernel(*bkey)
            self.bwd_const = (rows.P, rows.R, W, Wo, C, rows.cover_ptr, rows.cover_out,
                              rows.cover_rt, cl.start, cl.lo, cl.hi, cl.dilation, cl.kernel,
                              self.cdtype.type(0), cl.interior[0], cl.interior[1],
                              cl.tiles_exactly, B * rows.P)

    @functools.cached_property
    def window_taps(self) -> tuple:
        """Each window tap's depth, height and width index (``tap_a, tap_i,
        tap_j``) and its offset from tap 0 in input elements of one channel
        (``delta``), for the scatter kernels."""
        rows, cl = row_tables(self.geom), self.geom.cols
        tap_rt, tap_j = np.divmod(np.arange(self.geom.window_elements, dtype=np.int64),
                                  cl.kernel)
        tap_a, tap_i = np.divmod(tap_rt, rows.KH)
        return tap_a, tap_i, tap_j, rows.rel[tap_rt] * cl.size + tap_j * cl.dilation

    @functools.cached_property
    def scatter_const(self) -> tuple:
        """Constant arguments of the scatter kernels (backward, unpooling)."""
        geom, rows, cl = self.geom, row_tables(self.geom), self.geom.cols
        tap_a, tap_i, tap_j, delta = self.window_taps
        return (rows.P, rows.R, cl.size, cl.out, self.C, rows.first, rows.full, rows.a_lo,
                rows.a_hi, rows.i_lo, rows.i_hi, rows.zero_upto, cl.start, cl.lo, cl.hi, tap_a,
                tap_i, tap_j, delta, geom.window_elements, cl.interior[0], cl.interior[1],
                self.B)

    @functools.cached_property
    def masked_scatter_const(self) -> tuple:
        """Constant arguments of ``_kernels.masked_scatter_kernel``: the scatter's
        tables, with each output row's and column's valid taps as bit masks."""
        rows, cl, taps = row_tables(self.geom), self.geom.cols, self.geom.window_elements
        tap_a, tap_i, tap_j, delta = self.window_taps
        bits = np.left_shift(np.uint64(1), np.arange(taps, dtype=np.uint64))

        def mask(valid):  # (rows, taps) booleans -> one uint64 per row
            return np.bitwise_or.reduce(np.where(valid, bits, np.uint64(0)), axis=1,
                                        dtype=np.uint64)

        ok_rows = (tap_i >= rows.i_lo[:, None]) & (tap_i < rows.i_hi[:, None])
        if self.geom.rank == 3:
            ok_rows &= (tap_a >= rows.a_lo[:, None]) & (tap_a < rows.a_hi[:, None])
        ok_cols = (tap_j >= cl.lo[:, None]) & (tap_j < cl.hi[:, None])
        return (rows.P, rows.R, cl.size, cl.out, self.C, rows.first, rows.zero_upto, cl.start,
                delta * self.C, mask(ok_rows), mask(ok_cols), taps, self.B)

    def unpool(self, yf, offp, outp) -> None:
        """Write ``yf`` (flattened physical y) at the winners, zeros elsewhere."""
        if not self.empty:
            _run(_kernels.scatter_kernel(-1, int(self.geom.rank == 3)),
                 (readonly(yf), readonly(offp.reshape(-1)), outp.reshape(-1)),
                 self.scatter_const, self.fwd_work)

    def forward(self, xf, yp, offp) -> None:
        """Run the forward kernel: ``xf`` is x flattened in physical order."""
        if not self.empty:
            _run(self.fwd, (readonly(xf), yp.reshape(-1), offp.reshape(-1)), self.fwd_const,
                 self.fwd_work)

    def backward(self, dyf, offp, dxp) -> None:
        """Run the backward kernel: ``dyf`` is dy flattened in physical order."""
        if not self.empty:
            _run(self.bwd, (readonly(dyf), readonly(offp.reshape(-1)), dxp.reshape(-1)),
                 self.bwd_const, self.bwd_work)


@functools.lru_cache(maxsize=256)
def max_plan(in_shape, dtype, geom, lay, memory) -> MaxPlan:
    return MaxPlan(in_shape, dtype, geom, lay, memory)


def avg_dtypes(dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """(compute dtype, result dtype) of average pooling: float16 computed in
    float32, integers in and to float64 (as ``np.mean``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return np.dtype(np.float64), np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32), dtype
    return dtype, dtype


class AvgPlan(Shapes):
    """Kernels and arguments of one average pooling configuration."""

    def __init__(self, in_shape, dtype, geom: PoolGeometry, lay: Layout, memory: str,
                 count_include_pad: bool, divisor_override: int | None, lanes: int = 0):
        from . import _avg_kernels

        super().__init__(in_shape, geom, lay, memory)
        self.cdtype, self.rdtype = avg_dtypes(dtype)
        # bytes of the kernels' y and dx (for _buffers.empty_sized)
        self.y_bytes = self.out_elements * self.cdtype.itemsize
        self.dx_bytes = self.in_elements * self.cdtype.itemsize
        rows = row_tables(geom)
        cl = geom.cols
        ct = self.cdtype.type
        # ATen divides adaptive windows by each axis's length in turn (sum / kh / kw),
        # except global pooling (every output size 1): one division by the volume.
        self.sequential_division = geom.adaptive and any(a.out != 1 for a in geom.axes)
        if self.sequential_division:
            counts = [a.counts for a in geom.axes[:-1]]
            counts = [np.ones(1, np.int64)] * (2 - len(counts)) + counts
            ho = geom.axes[-2].out if geom.rank >= 2 else 1
            rf1 = np.repeat(counts[0], ho) if geom.rank == 3 else np.ones(rows.R, np.int64)
            rf2 = np.tile(counts[1], rows.R // len(counts[1])) if geom.rank >= 2 else \
                np.ones(rows.R, np.int64)
            cf = cl.counts
        else:  # one division by the window's size
            rf1 = rows.padded_count if count_include_pad else rows.count
            rf2 = np.ones(rows.R, np.int64)
            cf = cl.padded_counts if count_include_pad else cl.counts
        rf1, rf2, cf = (np.ascontiguousarray(a, self.cdtype) for a in (rf1, rf2, cf))
        override = ct(divisor_override or 0)
        B, C, W, Wo = self.B, self.C, cl.size, cl.out
        # One window holding the whole image, each element once (global pooling):
        # the kernels' fast path (planes side by side; backward a fill).
        self.whole = bool(rows.R == 1 and Wo == 1 and np.array_equal(rows.tap_row, np.arange(rows.P))
                          and cl.start[0] + cl.lo[0] * cl.dilation == 0
                          and cl.hi[0] - cl.lo[0] == W and (cl.dilation == 1 or W == 1))
        # Channels-last, width stride 1, few channels: whole runs of (columns x
        # channels) per window tap (see AVG_RUN_MAX_CHANNELS); else each
        # column's window taps (and in the backward each dx column's windows).
        self.runs = bool(1 < C <= AVG_RUN_MAX_CHANNELS and cl.stride == 1
                         and not self.sequential_division)
        # arguments of the adaptive kernels for channels-first planes (both passes)
        planes_const = (rows.P, rows.R, W, Wo, rows.tap_ptr, rows.tap_row, cl.start, cl.lo,
                        cl.hi, cl.dilation, rf1, rf2, cf, override, B)
        if self.whole and C == 1:  # global pooling of channels-first planes
            divisor = override if override > 0 else ct(rf1[0] * cf[0])
            self.fwd = _avg_kernels.global_plane_kernel()
            self.fwd_const = (rows.P * W, divisor, B)
        elif uses_stride1_planes(geom, C, self.cdtype.itemsize):
            self.fwd = _avg_kernels.stride1_plane_kernel()
            self.fwd_const = plane_dims(geom) + (rf1, cf, override, B)
        elif C == 1 and self.sequential_division and uses_adaptive_avg_blocks(
                B, rows.P * W * self.cdtype.itemsize):
            self.fwd = _avg_kernels.adaptive_plane_block_kernel()
            self.fwd_const = planes_const + (plane_blocks(B),)
        elif C == 1 and self.sequential_division:  # adaptive, channels-first planes:
            # PLANE_BLOCK planes side by side (32x256x30x30 -> 7x7 float32, 1 thread:
            # forward 14.3 -> 5.1 ms, backward 19-20 -> 5.7 ms; PyTorch 11 and 13 ms)
            self.fwd = _avg_kernels.adaptive_plane_kernel()
            self.fwd_const = planes_const
        else:
            self.fwd = _avg_kernels.avg_forward_kernel()
            self.fwd_const = (rows.P, rows.R, W, Wo, C, rows.tap_ptr, rows.tap_row, cl.start,
                              cl.lo, cl.hi, cl.dilation, cl.kernel, cl.stride, cl.interior[0],
                              cl.interior[1], rf1, rf2, cf, override, self.sequential_division,
                              lanes, self.runs, B * rows.R)
        if self.fwd is _avg_kernels.adaptive_plane_block_kernel():
            self.bwd = _avg_kernels.adaptive_plane_block_backward_kernel()
            self.bwd_const = self.fwd_const
        elif C == 1 and self.sequential_division:
            self.bwd = _avg_kernels.adaptive_plane_backward_kernel()
            self.bwd_const = planes_const
        elif self.fwd is _avg_kernels.stride1_plane_kernel():
            self.bwd = _avg_kernels.stride1_plane_backward_kernel()
            self.bwd_const = self.fwd_const
        else:
            self.bwd = _avg_kernels.avg_backward_kernel()
            # the whole-image backward fills each image as one row of P * W elements
            P_b, W_b = (1, rows.P * W) if self.whole else (rows.P, W)
            self.bwd_const = (P_b, rows.R, W_b, Wo, C, rows.cover_ptr, rows.cover_out, cl.start,
                              cl.lo, cl.hi, cl.dilation, cl.kernel, cl.stride, cl.interior[0],
                              cl.interior[1], rf1, rf2, cf, override, self.sequential_division,
                              lanes, self.whole, self.runs, B * P_b)
        taps = geom.window_elements
        self.fwd_work = B * rows.R * Wo * C * taps + B * rows.P * W * C
        self.bwd_work = self.fwd_work

    def forward(self, xf, yp) -> None:
        if not self.empty:
            _run(self.fwd, (readonly(xf), yp.reshape(-1)), self.fwd_const, self.fwd_work)

    def backward(self, dyf, dxp) -> None:
        if not self.empty:
            _run(self.bwd, (readonly(dyf), dxp.reshape(-1)), self.bwd_const, self.bwd_work)


@functools.lru_cache(maxsize=256)
def avg_plan(in_shape, dtype, geom, lay, memory, count_include_pad, divisor_override,
             lanes: int = 0) -> AvgPlan:
    """The (cached) plan of one average pooling configuration.  ``lanes``:
    channels-last adaptive pooling only, the leading channels divided once by
    the window's size (``numba_pool.torch``, to match PyTorch's vectorised
    kernel; 0 for the NumPy API)."""
    return AvgPlan(in_shape, dtype, geom, lay, memory, count_include_pad, divisor_override, lanes)
