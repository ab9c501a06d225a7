"""One parallel driver for every kernel.

Each kernel is compiled once, as a serial function over work items
``[lo, hi)`` (its last three arguments are ``nitems, lo, hi``).  The
parallel path does not compile a second, ``prange`` build of the same code:
:func:`drive` splits ``[0, nitems)`` into chunks in a ``prange`` loop and
calls the already compiled kernel through its address in each chunk.

Why: a ``parallel=True`` build of a kernel re-types, re-inlines and re-optimises
the whole kernel body (Numba links every callee into its caller's module and
LLVM optimises it again there), which cost more than the serial build itself.
The driver is compiled once per argument-type tuple (one per kernel family
and dtype, shared by every window specialisation) and cached on disk.
Measured on the 2-core machine, the first 3x3/2 NHWC forward of a process:
serial build 1.3 s, old parallel build 3.0 s, driver 0.8 s (0.01 s from the
cache); run times equal within noise (ResNet stem NCHW 2 threads 14.7 vs
14.0 ms; 8x32x32x64 NHWC 2 threads 62 vs 65 us).
"""

from __future__ import annotations

import threading

import numba.experimental.function_type  # noqa: F401  (FunctionType's data model)
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.typing.typeof import Purpose, typeof
from numba.extending import intrinsic


@intrinsic
def _kernel_at(typingctx, address, args):
    """The compiled kernel at ``address`` as a callable, for arguments ``args`` then
    ``(lo, hi)``.  ``address`` is the kernel's native entry point (Numba's calling
    convention), so the call is a plain indirect call: no Python, no GIL."""
    fnty = types.FunctionType(types.void(*args.types, types.int64, types.int64))

    def codegen(context, builder, signature, llargs):
        fn = cgutils.create_struct_proxy(fnty)(context, builder)
        voidptr = context.get_value_type(types.voidptr)
        entry = builder.inttoptr(llargs[0], voidptr)
        fn.c_addr = entry  # never used: jit_addr is set
        fn.jit_addr = entry
        fn.py_addr = voidptr(None)
        return fn._getvalue()

    return fnty(address, args), codegen


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def drive(address, args, nitems, nchunks):
    """Items ``[0, nitems)`` of the kernel at ``address`` in ``nchunks`` parallel chunks."""
    kernel = _kernel_at(address, args)
    for chunk in prange(nchunks):
        kernel(*args, np.int64(chunk * nitems // nchunks),
               np.int64((chunk + 1) * nitems // nchunks))


_ADDRESSES: dict = {}
_ADDRESSES_MAX = 1024
_lock = threading.Lock()


def kernel_address(kernel, arrays: tuple, consts: tuple) -> int:
    """Native entry point of ``kernel`` compiled for ``arrays + consts + (lo, hi)``.

    Cached per (kernel, constant tuple, array dtypes and flags): the constant
    tuples belong to cached plans, so their element types never change; full typing
    (~90 us for 23 arguments) runs once per key, the key itself costs ~0.6 us."""
    # flags.num holds contiguity, alignment and writeability in one int
    key = (kernel, id(consts), *[(a.dtype, a.ndim, a.flags.num) for a in arrays])
    hit = _ADDRESSES.get(key)
    if hit is not None and hit[0] is consts:
        return hit[1]
    sig = tuple(typeof(a, Purpose.argument) for a in arrays + consts) + (types.int64,
                                                                          types.int64)
    with _lock:
        cres = kernel.overloads.get(sig)
        if cres is None:
            kernel.compile(sig)
            cres = kernel.overloads[sig]
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        if not address:  # never seen; calling it would crash the process
            raise RuntimeError(f"numba_pool: no machine code for {cres.fndesc.llvm_func_name}")
        if len(_ADDRESSES) >= _ADDRESSES_MAX:
            _ADDRESSES.clear()
        _ADDRESSES[key] = (consts, address)  # holds consts, so its id is not reused
    return address
