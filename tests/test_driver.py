"""The parallel driver (numba_pool._driver): one compiled kernel per
specialisation, run in chunks through its native address."""

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


def test_address_is_cached_per_plan_and_array_types():
    x = np.random.default_rng(1).standard_normal((2, 11, 11, 8)).astype(np.float32)
    _, am = npool.max_pool2d(x, 3, 2, 1)
    plan = am._plan
    arrays = (x.reshape(-1), np.empty(plan.phys_out, np.float32).reshape(-1),
              np.empty(plan.phys_out, plan.odtype).reshape(-1))
    first = _driver.kernel_address(plan.fwd, arrays, plan.fwd_const)
    assert first > 0
    assert _driver.kernel_address(plan.fwd, arrays, plan.fwd_const) == first
    # a read-only input is another type: another compiled overload, another address
    ro = x.reshape(-1).copy()
    ro.flags.writeable = False
    other = _driver.kernel_address(plan.fwd, (ro,) + arrays[1:], plan.fwd_const)
    assert other > 0 and other != first


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
        address = _driver.kernel_address(plan.fwd, arrays, plan.fwd_const)
        _driver.drive(address, arrays + plan.fwd_const, nitems, nchunks)
        assert_same_bits(y.reshape(y_serial.shape), y_serial, f"{nchunks} chunks")


def test_missing_machine_code_is_an_error_not_a_crash():
    """An address of 0 would crash the process in the driver: refused instead."""
    from types import SimpleNamespace

    from numba import types

    arrays, consts = (np.zeros(3, np.float32),), (np.int64(3),)
    sig = (types.float32[::1], types.int64, types.int64, types.int64)
    cres = SimpleNamespace(library=SimpleNamespace(get_pointer_to_function=lambda name: 0),
                           fndesc=SimpleNamespace(llvm_func_name="nowhere"))
    kernel = type("Kernel", (), {"overloads": {sig: cres}})()
    with pytest.raises(RuntimeError, match="no machine code for nowhere"):
        _driver.kernel_address(kernel, arrays, consts)
