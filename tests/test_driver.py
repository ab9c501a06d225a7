"""The parallel driver (numba_pool._driver): one compiled kernel per
specialisation, run in chunks through a trampoline that unpacks its arguments
from a word block; one driver for every kernel."""

import numba
import numpy as np
import pytest

import numba_pool as npool
from numba_pool import _driver, reference

from helpers import assert_same_bits, parallel_threshold

# Specialisations whose kernels take the same argument types (float32 NHWC, 8
# channels): only their compile-time constants (window, stride) differ.
SAME_TYPES = [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (5, 1, 2), (4, 3, 1)]


def _run_all(threshold):
    x = np.random.default_rng(7).standard_normal((2, 11, 11, 8)).astype(np.float32)
    out = []
    with parallel_threshold(threshold):
        for k, s, p in SAME_TYPES:
            y, am = npool.max_pool2d(x, k, s, p)
            dx = npool.max_pool2d_backward(np.ones_like(y), am)
            out.append((x, (k, s, p), y, am, dx))
    return out


def test_every_specialisation_runs_its_own_code_in_parallel():
    """Several kernels with identical argument types, all through the driver in one
    process, each bitwise equal to the reference (a lookup that mixed them up
    would run one window's code for another)."""
    for x, (k, s, p), y, am, dx in _run_all(0):
        yr, amr = reference.max_pool2d(x, k, s, p)
        assert_same_bits(y, yr, f"k{k} s{s} p{p} y")
        assert_same_bits(am.offsets, amr.offsets, f"k{k} s{s} p{p} offsets")
        assert_same_bits(dx, reference.max_pool2d_backward(np.ones_like(y), amr),
                         f"k{k} s{s} p{p} dx")


def test_kernel_symbols_are_unique():
    """kernel_address finds a kernel's machine code by its symbol name, so no two
    kernels may share one."""
    owners = {}
    for *_, am, _dx in _run_all(2**62):
        for kernel in (am._plan.fwd, am._plan.bwd):
            for cres in kernel.overloads.values():
                name = cres.fndesc.llvm_func_name
                assert owners.setdefault(name, kernel) is kernel, name
    assert len(set(map(id, owners.values()))) >= 3  # kernels that share argument types


def test_trampoline_is_cached_per_plan_and_array_types():
    x = np.random.default_rng(1).standard_normal((2, 11, 11, 8)).astype(np.float32)
    _, am = npool.max_pool2d(x, 3, 2, 1)
    plan = am._plan
    arrays = (x.reshape(-1), np.empty(plan.phys_out, np.float32).reshape(-1),
              np.empty(plan.phys_out, plan.odtype).reshape(-1))
    first, block = _driver.prepare(plan.fwd, arrays, plan.fwd_const)
    assert first > 0 and block.dtype == np.int64
    again, block2 = _driver.prepare(plan.fwd, arrays, plan.fwd_const)
    assert again == first and block2 is not block  # a block per call: threads never share one
    assert_same_bits(block2, block, "block")
    # the block is the arrays' fields, then the constants' words
    assert list(block[:7]) == [0, 0, x.size, 4, x.__array_interface__["data"][0], x.size, 4]
    # a read-only input is another type: another compiled overload, another trampoline
    ro = x.reshape(-1).copy()
    ro.flags.writeable = False
    other, _ = _driver.prepare(plan.fwd, (ro,) + arrays[1:], plan.fwd_const)
    assert other > 0 and other != first


def test_every_kernel_shares_one_driver():
    """Forward, backward (with a float argument), scatter and average kernels of
    several dtypes all run through one compiled driver: a second build of it would
    cost every kernel family 0.5 s of cold compile time."""
    rng = np.random.default_rng(3)
    with parallel_threshold(0):
        for dtype in (np.float32, np.float64, np.float16):
            x = rng.standard_normal((2, 9, 9, 8)).astype(dtype)
            for k, s in ((2, 2), (3, 1)):
                y, am = npool.max_pool2d(x, k, s)
                dx = npool.max_pool2d_backward(np.ones_like(y), am)
                assert_same_bits(dx, reference.max_pool2d_backward(
                    np.ones_like(y), reference.max_pool2d(x, k, s)[1]), f"{dtype} k{k} s{s}")
            npool.avg_pool2d(x, 3, 1, 1, data_format="NCHW")
    if numba.config.NUMBA_NUM_THREADS > 1:
        assert len(_driver.drive.overloads) == 1


def test_float_and_bool_words_keep_their_bits():
    from numba import types

    assert _driver._words(np.float32(-0.0), types.float32) == [-(1 << 31)]
    assert _driver._words(np.float64(1.5), types.float64) == [0x3FF8000000000000]
    assert _driver._words(True, types.boolean) == [1]
    assert _driver._words(np.int64(-3), types.int64) == [-3]
    with pytest.raises(TypeError, match="cannot pass a complex128 argument"):
        _driver._words(1j, types.complex128)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
def test_items_are_split_exactly_once():
    """Every item runs once whatever the chunk count, also with more chunks than items."""
    x = np.random.default_rng(2).standard_normal((1, 3, 5, 8)).astype(np.float32)
    y_serial, _ = npool.max_pool2d(x, 2, 1)
    _, am = npool.max_pool2d(x, 2, 1)
    plan = am._plan
    nitems = plan.fwd_const[-1]
    for nchunks in (1, 2, 3, nitems, nitems + 5, 64):
        y = np.full(plan.phys_out, np.nan, np.float32)
        off = np.zeros(plan.phys_out, plan.odtype)
        arrays = (x.reshape(-1), y.reshape(-1), off.reshape(-1))
        entry, block = _driver.prepare(plan.fwd, arrays, plan.fwd_const)
        _driver.drive(entry, block, nitems, nchunks)
        assert_same_bits(y.reshape(y_serial.shape), y_serial, f"{nchunks} chunks")


def test_missing_machine_code_is_an_error_not_a_crash():
    """An address of 0 would crash the process in the driver: refused instead."""
    from types import SimpleNamespace

    from numba import types

    arrays, consts = (np.zeros(3, np.float32), np.zeros(3, np.float32)), (np.int64(3),)
    sig = (types.float32[::1], types.float32[::1], types.int64, types.int64, types.int64)
    from numba.core.registry import cpu_target

    cres = SimpleNamespace(library=SimpleNamespace(get_pointer_to_function=lambda name: 0),
                           fndesc=SimpleNamespace(llvm_func_name="nowhere"),
                           target_context=cpu_target.target_context, signature=types.void(*sig))
    kernel = type("Kernel", (), {"overloads": {sig: cres}})()
    with pytest.raises(RuntimeError, match="no machine code for nowhere"):
        _driver.prepare(kernel, arrays, consts)
    # the block's layout is checked against the kernel's native arguments
    cres.signature = types.void(*sig[:1], *sig[2:])
    with pytest.raises(RuntimeError, match="takes 10 native arguments, the block holds 15"):
        _driver.prepare(kernel, arrays, consts)
    with pytest.raises(TypeError, match="two or three one-dimensional arrays"):
        _driver.prepare(kernel, arrays[:1], consts)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX only")
def test_fork_while_another_thread_holds_the_lock():
    """A child forked while another thread prepared a kernel (holding the driver's
    lock) can still prepare kernels."""
    from helpers import fork_while_held

    def take_the_lock():
        with _driver._lock:
            pass

    assert fork_while_held(_driver._lock, take_the_lock) == 0, \
        "the forked child hung on the driver's lock"
