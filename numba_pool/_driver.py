"""One parallel driver for every kernel.

Each kernel is compiled once, as a serial function over work items
``[lo, hi)`` (its last three arguments are ``nitems, lo, hi``).  The
parallel path does not compile a second, ``prange`` build of the same code:
:func:`drive` splits ``[0, nitems)`` into chunks in a ``prange`` loop and
calls the already compiled kernel in each chunk.

Why: a ``parallel=True`` build of a kernel re-types, re-inlines and re-optimises
the whole kernel body (Numba links every callee into its caller's module and
LLVM optimises it again there), which cost more than the serial build itself.
Measured on the 2-core machine, the first 3x3/2 NHWC forward of a process:
serial build 1.3 s, old parallel build 3.0 s, driver 0.8 s (0.01 s from the
cache); run times equal within noise (ResNet stem NCHW 2 threads 14.7 vs
14.0 ms; 8x32x32x64 NHWC 2 threads 62 vs 65 us).

One driver, whatever the kernel's arguments: :func:`drive` has a single
signature, so it is compiled once per Numba cache, not once per kernel family
(each ``prange`` build cost 0.5-0.6 s: a cold first forward + backward paid two).
It calls a *trampoline*, a few LLVM instructions made per kernel
(:func:`_trampoline`, about a millisecond to build) that loads the kernel's
arguments from an int64 word block and calls the kernel's native entry point.
The block holds each argument as Numba passes it: an array as its seven
fields (meminfo, parent, size, itemsize, data pointer, shape, strides; no
meminfo, so nothing is reference counted), an integer or boolean as itself,
a float as its bit pattern.  :func:`prepare` packs the block; the words of a
plan's constant arguments are packed once and cached with the trampoline.
"""

from __future__ import annotations

import os
import struct
import threading

import numba.experimental.function_type  # noqa: F401  (FunctionType's data model)
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.compiler_lock import global_compiler_lock
from numba.core.typing.typeof import Purpose, typeof
from numba.extending import intrinsic

# The trampolines' type: (word block address, lo, hi), Numba's calling convention.
_ENTRY_SIG = types.void(types.int64, types.int64, types.int64)


@intrinsic
def _entry_at(typingctx, address):
    """The trampoline at ``address`` as a callable ``(block, lo, hi)``: a plain
    indirect call in Numba's calling convention (no Python, no GIL)."""
    fnty = types.FunctionType(_ENTRY_SIG)

    def codegen(context, builder, signature, llargs):
        fn = cgutils.create_struct_proxy(fnty)(context, builder)
        voidptr = context.get_value_type(types.voidptr)
        entry = builder.inttoptr(llargs[0], voidptr)
        fn.c_addr = entry  # never used: jit_addr is set
        fn.jit_addr = entry
        fn.py_addr = voidptr(None)
        return fn._getvalue()

    return fnty(address), codegen


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def drive(entry, block, nitems, nchunks):
    """Items ``[0, nitems)`` of the kernel whose trampoline is at ``entry``, with
    its arguments packed in ``block``, in ``nchunks`` parallel chunks."""
    kernel = _entry_at(entry)
    words = np.int64(block.ctypes.data)
    for chunk in prange(nchunks):
        kernel(words, np.int64(chunk * nitems // nchunks),
               np.int64((chunk + 1) * nitems // nchunks))


# --------------------------------------------------------------------------
# Word blocks
# --------------------------------------------------------------------------


def _array_words(a: np.ndarray) -> list[int]:
    return [0, 0, a.size, a.itemsize, a.__array_interface__["data"][0], *a.shape, *a.strides]


def _words(value, nbtype) -> list[int]:
    """``value`` (of Numba type ``nbtype``) as the int64 words of its native arguments."""
    if isinstance(nbtype, types.Array):
        return _array_words(value)
    if isinstance(nbtype, (types.Integer, types.Boolean)):
        return [int(value)]
    if nbtype == types.float32:
        return [struct.unpack("<i", struct.pack("<f", value))[0]]
    if nbtype == types.float64:
        return [struct.unpack("<q", struct.pack("<d", value))[0]]
    raise TypeError(f"numba_pool: the parallel driver cannot pass a {nbtype} argument")


def _trampoline(cres, nwords: int):
    """``(library, address)`` of a function of type :data:`_ENTRY_SIG` that calls
    the compiled kernel ``cres`` with the ``nwords`` words of its block, then
    ``lo, hi``."""
    ctx = cres.target_context
    kernel_fnty = ctx.call_conv.get_function_type(cres.signature.return_type,
                                                  cres.signature.args)
    params = kernel_fnty.args[2:]  # after the return slot and exception pointer
    i64 = ir.IntType(64)
    if len(params) != nwords + 2 or list(params[-2:]) != [i64, i64]:
        raise RuntimeError(f"numba_pool: {cres.fndesc.llvm_func_name} takes {len(params)} "
                           f"native arguments, the block holds {nwords} + (lo, hi)")
    address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    if not address:  # never seen; calling it would crash the process
        raise RuntimeError(f"numba_pool: no machine code for {cres.fndesc.llvm_func_name}")

    entry_fnty = ctx.call_conv.get_function_type(_ENTRY_SIG.return_type, _ENTRY_SIG.args)
    name = f"numba_pool_trampoline_{cres.fndesc.llvm_func_name}"
    library = ctx.codegen().create_library(name)
    module = library.create_ir_module(name)
    fn = ir.Function(module, entry_fnty, name=name)
    retptr, excinfo, block, lo, hi = fn.args
    builder = ir.IRBuilder(fn.append_basic_block())
    words = builder.inttoptr(block, i64.as_pointer())
    args = []
    for k, param in enumerate(params[:-2]):
        word = builder.load(builder.gep(words, [ir.Constant(i64, k)]))
        if isinstance(param, ir.PointerType):
            args.append(builder.inttoptr(word, param))
        elif isinstance(param, ir.IntType):
            args.append(word if param.width == 64 else builder.trunc(word, param))
        elif isinstance(param, ir.FloatType):
            args.append(builder.bitcast(builder.trunc(word, ir.IntType(32)), param))
        elif isinstance(param, ir.DoubleType):
            args.append(builder.bitcast(word, param))
        else:
            raise RuntimeError(f"numba_pool: cannot pass a native {param} argument")
    kernel = builder.inttoptr(ir.Constant(i64, address), kernel_fnty.as_pointer())
    status = builder.call(kernel, [builder.bitcast(retptr, kernel_fnty.args[0]), excinfo,
                                   *args, lo, hi])
    builder.ret(status)
    library.add_ir_module(module)
    library.finalize()
    entry = library.get_pointer_to_function(name)
    if not entry:
        raise RuntimeError(f"numba_pool: no machine code for {name}")
    return library, entry


# --------------------------------------------------------------------------
# Per-call preparation
# --------------------------------------------------------------------------

# llvm name of a kernel overload -> (trampoline library, entry address)
_TRAMPOLINES: dict = {}
# (kernel, id(consts), each array's dtype, flags, shape, strides) ->
#     (consts, trampoline entry, the block's words with the first call's data pointers)
_PREPARED: dict = {}
_PREPARED_MAX = 1024
_lock = threading.Lock()


def _fresh_lock_in_child() -> None:
    """A lock another thread held at fork time stays locked forever in the child."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_in_child)


@njit(cache=True, nogil=True)
def _pointers2(block, a0, a1):
    block[4] = a0.ctypes.data
    block[11] = a1.ctypes.data


@njit(cache=True, nogil=True)
def _pointers3(block, a0, a1, a2):
    block[4] = a0.ctypes.data
    block[11] = a1.ctypes.data
    block[18] = a2.ctypes.data


# Per call, the arrays' data pointers are written by compiled code: reading them
# in Python (``a.ctypes.data``) cost 0.9 us each, this 0.4 us for all three.
_POINTERS = {2: _pointers2, 3: _pointers3}


def prepare(kernel, arrays: tuple, consts: tuple) -> tuple[int, np.ndarray]:
    """``(entry, block)`` for ``drive(entry, block, nitems, nchunks)``: the
    trampoline of ``kernel`` compiled for ``arrays + consts + (lo, hi)``, and
    its argument words.

    ``arrays`` (two or three, one-dimensional: the kernels' flat data) change
    from call to call, ``consts`` belong to a cached plan (so their element types
    never change).  Cached per (kernel, constant tuple, the arrays' dtypes,
    flags, shapes and strides): a hit copies the cached block and writes the
    arrays' data pointers into it (~1.5 us); full typing (~90 us for 23
    arguments) runs once per key."""
    # flags.num holds contiguity, alignment and writeability in one int
    key = (kernel, id(consts), *[(a.dtype, a.flags.num, a.shape, a.strides) for a in arrays])
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not consts:
        hit = _prepare_slow(key, kernel, arrays, consts)
    block = hit[2].copy()
    _POINTERS[len(arrays)](block, *arrays)
    return hit[1], block


def kernel_overload(kernel, arrays: tuple, consts: tuple):
    """The compile result of ``kernel`` for ``arrays + consts + (lo, hi)``, compiled
    if needed."""
    sig = tuple(typeof(a, Purpose.argument) for a in arrays + consts) + (types.int64,
                                                                          types.int64)
    cres = kernel.overloads.get(sig)
    if cres is None:
        kernel.compile(sig)
        cres = kernel.overloads[sig]
    return sig, cres


def _prepare_slow(key, kernel, arrays, consts):
    if len(arrays) not in _POINTERS or any(a.ndim != 1 for a in arrays):
        raise TypeError("numba_pool: the parallel driver takes two or three "
                        "one-dimensional arrays before the constants")
    with _lock:
        sig, cres = kernel_overload(kernel, arrays, consts)
        flat = [w for value, nbtype in zip(arrays + consts, sig) for w in _words(value, nbtype)]
        name = cres.fndesc.llvm_func_name
        made = _TRAMPOLINES.get(name)
        if made is None:
            with global_compiler_lock:  # Numba's codegen requires it
                made = _TRAMPOLINES[name] = _trampoline(cres, len(flat))
        hit = (consts, made[1], np.array(flat, np.int64))
        if len(_PREPARED) >= _PREPARED_MAX:
            _PREPARED.clear()
        _PREPARED[key] = hit  # holds consts, so its id is not reused
    return hit
