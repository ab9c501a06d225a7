"""Square tiles of 4- and 8-byte elements transposed in vector registers.

The interleaving passes of the channels-first plane blocks
(``_kernels._planes_to_lanes`` and its inverse) copy every element of a block
of planes once; element by element, one load and one store each, that was the
larger part of those kernels' time.  A tile of ``T x T`` elements (``T *
itemsize`` = 32 bytes: 8 x 8 float32, 4 x 4 float64) is read as ``T`` vector
rows, transposed by ``log2(T)`` rounds of vector shuffles, and written as ``T``
vector rows.  Numba has no vector types, so the tile is an intrinsic that emits
the LLVM IR directly; it moves bits, whatever the element type.

Measured (AMD EPYC, 2 cores, in a slow phase of the machine, 2026-12-07; float32
unless noted, ms, element by element -> tiles, three alternating runs each):

* interleaving the 8192 planes of 32x256x30x30 alone, 1 thread: 6.2-6.6 -> 1.9-3.0;
* adaptive average 32x256x30x30 -> 7x7 NCHW, 1 thread: forward 9.2-19.0 ->
  6.4-11.1, backward 14.6-16.8 -> 6.5-13.2; 2 threads: forward 4.9-5.7 -> 3.7-4.3,
  backward 6.5-7.4 -> 3.9-4.6 (PyTorch in the same phase: 15.3 / 17.9 ms at 1
  thread, 7.4 / 10.7 at 2); float64 forward, 2 threads: 7.0-7.4 -> 5.2-6.3;
* adaptive max 32x256x30x30 -> 7x7, 2 threads: 6.5-7.7 -> 4.5-5.3 (PyTorch 19.7);
* max 8x512x32x32 k5 s2 p2, 2 threads: 10.1-12.1 -> 7.5-8.0;
* 1x512x14x14 k5 s1 p2 (196-element planes): 0.59-0.65 -> 0.56-0.62 (no change).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# One AVX2 register; LLVM splits the vectors where registers are narrower (SSE,
# NEON), with the same results.
TILE_BYTES = 32


def tile_size(itemsize: int) -> int:
    """Tile side for elements of ``itemsize`` bytes; 0 where tiles are not used
    (1- and 2-byte elements: the interleaving stays element by element)."""
    return TILE_BYTES // itemsize if itemsize in (4, 8) else 0


def _shuffle_masks(n: int, d: int) -> tuple[list[int], list[int]]:
    """Shuffle masks of one round (distance ``d``) for rows ``i`` and ``i + d``:
    the block of ``d`` columns right of the diagonal in row ``i`` swaps with the
    block left of it in row ``i + d`` (indices ``>= n`` take the second row)."""
    low = [k if not k & d else n + k - d for k in range(n)]
    high = [k + d if not k & d else n + k for k in range(n)]
    return low, high


@intrinsic
def tile_side(typingctx, src):
    """:func:`tile_size` of ``src``'s elements, a compile-time constant."""
    if not isinstance(src, types.Array):
        return None
    side = tile_size(src.dtype.bitwidth // 8)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, side)

    return types.intp(src), codegen


@intrinsic
def transpose_tile(typingctx, src, sbase, sstride, dst, dbase, dstride):
    """``dst[dbase + j * dstride + i] = src[sbase + i * sstride + j]`` for ``i, j <
    T`` (``T = tile_side(src)``; both arrays 1-D and C-contiguous with the same
    element size).  Nothing is checked: callers keep every index in bounds.  For
    elements without tiles (``tile_side(src) == 0``) it compiles to nothing."""
    ok = (isinstance(src, types.Array) and isinstance(dst, types.Array)
          and src.ndim == dst.ndim == 1 and src.layout == dst.layout == "C"
          and src.dtype.bitwidth == dst.dtype.bitwidth)
    if not ok:
        return None
    n = tile_size(src.dtype.bitwidth // 8)
    sig = types.void(src, sbase, sstride, dst, dbase, dstride)

    def codegen(context, builder, signature, args):
        if n == 0:  # no tiles for these elements (tile_side 0): callers never get here
            return context.get_dummy_value()
        s_arr, s0, s_step, d_arr, d0, d_step = args
        s_ty, s0_ty, s_step_ty, d_ty, d0_ty, d_step_ty = signature.args
        i64 = ir.IntType(64)

        def as_i64(value, ty):
            return context.cast(builder, value, ty, types.int64)

        lane = ir.IntType(src.dtype.bitwidth)
        vec = ir.VectorType(lane, n)
        s_data = builder.bitcast(context.make_array(s_ty)(context, builder, s_arr).data,
                                 lane.as_pointer())
        d_data = builder.bitcast(context.make_array(d_ty)(context, builder, d_arr).data,
                                 lane.as_pointer())
        s0, s_step = as_i64(s0, s0_ty), as_i64(s_step, s_step_ty)
        d0, d_step = as_i64(d0, d0_ty), as_i64(d_step, d_step_ty)
        rows = []
        for i in range(n):
            at = builder.add(s0, builder.mul(s_step, ir.Constant(i64, i)))
            ptr = builder.bitcast(builder.gep(s_data, [at]), vec.as_pointer())
            rows.append(builder.load(ptr, align=1))
        d = 1
        while d < n:
            low, high = (ir.Constant(ir.VectorType(ir.IntType(32), n), m)
                         for m in _shuffle_masks(n, d))
            for i in range(n):
                if not i & d:
                    a, b = rows[i], rows[i + d]
                    rows[i] = builder.shuffle_vector(a, b, low)
                    rows[i + d] = builder.shuffle_vector(a, b, high)
            d *= 2
        for j in range(n):
            at = builder.add(d0, builder.mul(d_step, ir.Constant(i64, j)))
            ptr = builder.bitcast(builder.gep(d_data, [at]), vec.as_pointer())
            builder.store(rows[j], ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen
