"""Cheaper ``inline="always"`` while Numba compiles numba_pool's kernels.

Numba inlines a helper by deep-copying the helper's IR (twice per call site,
``InlineWorker.inline_ir``), one block at a time, each block with a memo of
its own.  Every block refers to the function's variable scope, so every
block's copy deep-copies the whole scope again: the cost grows with blocks x
variables (numba/numba#8989, open).  The kernels' row helpers are large and
inlined at several sites, and this copying was the largest single item of a
cold first call's compile time.

While one of numba_pool's kernels compiles (:class:`InliningCompiler`,
inside Numba's global compiler lock, so no other compilation sees it), each
such copy shares one memo across the blocks of one IR, so the scope is
copied once per IR, as ``copy.deepcopy(blocks)`` of the whole dictionary
would (what Numba itself does elsewhere, e.g. ``untyped_passes``).  The
copies are otherwise the same objects Numba made before, and every inlining
site still gets its own.

Measured, first ``max_pool2d(x, 3, 2, 1)`` + backward of a process with an
empty cache (2-core machine): 3.33 s -> 2.75 s.  Where Numba's internals are
not as expected, nothing is changed.
"""

from __future__ import annotations

import contextlib
import copy as _copy

from numba.core import ir as _ir
from numba.core.compiler import Compiler

# (inline_closurecall module, InlineWorker, its own inline_ir), False where the
# inliner is not as expected, None until the first compilation (importing the
# inliner costs ~35 ms, which an import of numba_pool should not pay).
_inliner_state = None


def _inliner():
    global _inliner_state
    if _inliner_state is None:
        try:
            from numba.core import inline_closurecall as icc

            worker = icc.InlineWorker
            _inliner_state = ((icc, worker, worker.inline_ir)
                              if getattr(icc, "copy", None) is _copy else False)
        except (ImportError, AttributeError):  # pragma: no cover - another Numba
            _inliner_state = False
    return _inliner_state or None


def active() -> bool:
    """Whether the patch applies to this Numba (its inliner copies blocks through
    the module's ``copy``, in ``InlineWorker.inline_ir``)."""
    return _inliner() is not None


class _SharedScopeCopy:
    """Stands in for the ``copy`` module inside one ``inline_ir`` call: a
    deep copy of an ``ir.Block`` uses one memo per (original) scope, so blocks
    of one IR share one copy of it."""

    def __init__(self):
        self.memos: dict[int, tuple[object, dict]] = {}
        self.block_copies = 0

    def deepcopy(self, x, memo=None):
        if memo is None and isinstance(x, _ir.Block):
            entry = self.memos.get(id(x.scope))
            if entry is None:  # the scope is held, so its id is not reused
                entry = self.memos[id(x.scope)] = (x.scope, {})
            memo = entry[1]
            self.block_copies += 1
        return _copy.deepcopy(x, memo)

    def __getattr__(self, name):
        return getattr(_copy, name)


# Blocks copied with a shared memo so far (tests check the patch is in use).
stats = {"block_copies": 0}


def _inline_ir(self, *args, **kwargs):
    icc, _, original = _inliner()
    shim, previous = _SharedScopeCopy(), icc.copy
    icc.copy = shim
    try:
        return original(self, *args, **kwargs)
    finally:
        icc.copy = previous
        stats["block_copies"] += shim.block_copies


@contextlib.contextmanager
def shared_scope_copies():
    """Within: Numba's inliner copies each IR's scope once (see the module
    docstring).  Call only under Numba's global compiler lock."""
    state = _inliner()
    if state is None or state[1].inline_ir is not state[2]:  # unknown, or nested
        yield
        return
    worker, original = state[1], state[2]
    worker.inline_ir = _inline_ir
    try:
        yield
    finally:
        worker.inline_ir = original


class InliningCompiler(Compiler):
    """Numba's pipeline, with :func:`shared_scope_copies` around the whole
    compilation (the dispatcher holds the global compiler lock throughout)."""

    def compile_extra(self, func):
        with shared_scope_copies():
            return super().compile_extra(func)
