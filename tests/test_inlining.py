"""numba_pool._inlining: Numba's inliner copies each helper's scope once while
numba_pool's kernels compile, and nothing else changes."""

import copy

import numpy as np
import pytest
from numba import njit
from numba.core import inline_closurecall

from numba_pool import _inlining


@njit(inline="always")
def _clipped_sum(a, lo, hi, step):
    """Loops, branches and locals enough to give the helper several blocks."""
    total = 0.0
    for i in range(lo, hi):
        v = a[i]
        if v > 0:
            total += v * step
        elif v != v:
            total += 100.0
        else:
            total -= 1.0
    return total


def _two_sites(a, n):
    left = _clipped_sum(a, 0, n // 2, 1.0)
    right = _clipped_sum(a, n // 2, n, 2.0)
    both = 0.0
    for k in range(3):
        both += _clipped_sum(a, k, n - k, 0.5)
    return left, right, both


def test_the_patch_applies_to_this_numba():
    """If Numba's inliner changes shape the patch turns itself off; that costs
    every cold first call ~0.6 s, so it must not go unnoticed."""
    assert _inlining.active()


def test_inlined_code_is_the_same_and_the_patch_is_scoped():
    a = np.array([1.5, -2.0, np.nan, 3.0, 0.0, 4.25, -1.0, 2.0])
    plain = njit(_two_sites)
    patched = njit(pipeline_class=_inlining.InliningCompiler)(_two_sites)
    before = _inlining.stats["block_copies"]
    expected = plain(a, len(a))
    got = patched(a, len(a))
    assert got == expected
    # five inlining sites, each copying the helper's blocks twice
    assert _inlining.stats["block_copies"] - before >= 10
    assert inline_closurecall.copy is copy
    assert inline_closurecall.InlineWorker.inline_ir is _inlining._inliner()[2]


def test_python_semantics_at_every_site():
    a = np.array([1.5, -2.0, np.nan, 3.0, 0.0, 4.25, -1.0, 2.0])
    patched = njit(pipeline_class=_inlining.InliningCompiler)(_two_sites)

    def python_sum(lo, hi, step):
        t = 0.0
        for v in a[lo:hi]:
            t += v * step if v > 0 else (100.0 if v != v else -1.0)
        return t

    left, right, both = patched(a, len(a))
    assert left == python_sum(0, 4, 1.0)
    assert right == python_sum(4, 8, 2.0)
    assert both == sum(python_sum(k, 8 - k, 0.5) for k in range(3))


def test_a_failing_compile_leaves_numba_as_it_was():
    def bad(a):
        return _clipped_sum(a, 0, 2, 1.0) + "text"

    with pytest.raises(Exception):
        njit(pipeline_class=_inlining.InliningCompiler)(bad)(np.ones(3))
    assert inline_closurecall.copy is copy
    assert inline_closurecall.InlineWorker.inline_ir is _inlining._inliner()[2]


def test_importing_numba_pool_leaves_the_inliner_unimported():
    """The inliner module (~35 ms to import) loads with the first compilation."""
    import subprocess
    import sys

    code = ("import sys, numba_pool; "
            "print('numba.core.inline_closurecall' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["False"]


def test_the_kernels_compile_through_it():
    from numba_pool import _kernels

    assert issubclass(_kernels._NoAliasCompiler, _inlining.InliningCompiler)
