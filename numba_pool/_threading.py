"""Running a kernel serially or in parallel, safely.

Every kernel is one compiled function over work items; in parallel,
:func:`numba_pool._driver.drive` runs chunks of items on Numba's threads.

Numba's threading layers differ in what they survive (Numba docs, "The
Threading Layers"):

* ``tbb``: safe with concurrent calls from Python threads and after fork.
* ``omp``: safe with concurrent calls; GNU OpenMP (Linux default) kills a
  child process started by fork after the parent ran a parallel region.
* ``workqueue``: safe after fork; two Python threads launching parallel
  regions at once abort the interpreter.

numba_pool works under any of them: a parallel call is made only where the
active layer is safe, and the kernel runs serially (bit-identical results)
otherwise:

* a process forked from a parent whose OpenMP layer was already running
  uses serial kernels (forever: its OpenMP runtime is unusable);
* under ``workqueue`` one parallel call runs at a time; a thread that finds
  another one running computes serially instead of waiting;
* the first parallel call of the process holds a lock, so two threads never
  race to start the threading layer;
* if no threading layer can be loaded (e.g. ``NUMBA_THREADING_LAYER=tbb``
  without TBB installed) a warning is issued once and everything runs
  serially.

Small problems never pay thread start-up: below ``PARALLEL_MIN_WORK``
(weighted elements touched), or with one thread, the kernel runs serially.  Thread counts follow
``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``.
"""

from __future__ import annotations

import os
import threading
import warnings

import numba

from . import _driver

# Work below which a call runs serially: elements touched (input + outputs)
# times the kernel's cost per element (1 for the vectorised kernels, 4-8 for
# the per-element ones; see _plan.MaxPlan).  bench/threshold.py on the 2-core
# machine: the parallel launch costs ~2 us, and the serial kernel stops
# winning at 50-100 K elements for vectorised kernels, 5-20 K for the others.
PARALLEL_MIN_WORK = 1 << 16

_FORK_UNSAFE_LAYERS = {"omp"}  # GNU OpenMP; Intel OpenMP is detected below

_state_lock = threading.Lock()  # guards the first launch and _workqueue_lock use
_workqueue_lock = threading.Lock()
_layer: str | None = None  # threading layer once known
_parallel_broken = False  # no threading layer loads, or fork made it unsafe
_warned = False


def _current_layer() -> str | None:
    try:
        return numba.threading_layer()
    except ValueError:  # not initialised yet
        return None


def _openmp_is_fork_safe() -> bool:
    try:
        from numba.np.ufunc import omppool  # type: ignore[attr-defined]

        return getattr(omppool, "openmp_vendor", "GNU") == "Intel"
    except Exception:  # pragma: no cover - depends on the numba build
        return False


def _after_fork_in_child() -> None:
    global _parallel_broken, _workqueue_lock, _state_lock
    # Locks held by other threads at fork time stay locked forever in the
    # child: give the child fresh ones.
    _state_lock = threading.Lock()
    _workqueue_lock = threading.Lock()
    layer = _current_layer()
    if layer in _FORK_UNSAFE_LAYERS and not _openmp_is_fork_safe():
        _parallel_broken = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_available() -> bool:
    """True unless this process must run serial kernels only."""
    return not _parallel_broken


def _warn_no_layer(exc: Exception) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"numba_pool: no Numba threading layer could be started ({exc}); "
            "running serial kernels",
            RuntimeWarning,
            stacklevel=4,
        )


def _start_layer() -> None:
    """Start Numba's threading layer once (``get_num_threads`` starts it)."""
    global _layer, _parallel_broken
    with _state_lock:
        if _layer is not None or _parallel_broken:
            return
        try:
            numba.get_num_threads()
        except ValueError as exc:  # "No threading layer could be loaded"
            if "threading layer" not in str(exc):
                raise
            _parallel_broken = True
            _warn_no_layer(exc)
        else:
            _layer = _current_layer()


def _parallel_ready() -> bool:
    """Whether parallel calls may run here, starting the threading layer on first use."""
    if _layer is None and not _parallel_broken:
        _start_layer()
    return not _parallel_broken


def follow_thread_count(n: int) -> None:
    """Run this Python thread's parallel calls on at most ``n`` threads (capped
    at ``NUMBA_NUM_THREADS``); ``numba_pool.torch`` passes
    ``torch.get_num_threads()`` so one setting governs both libraries."""
    if not _parallel_ready():
        return
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


def run(kernel, arrays: tuple, consts: tuple, work: int) -> None:
    """Run ``kernel(*arrays, *consts, lo, hi)`` over its items ``[0, consts[-1])``, in
    parallel where safe and worth it, else serially (bit-identical results).

    ``work`` is the number of elements the call reads and writes.  Small calls
    never start the threading layer.  A single work item (e.g. the scatter
    backward of one channels-last image) cannot be split: threads would only add
    their launch (1x14x14x512 k7 s7 backward, 2 threads: 18 us serially, 27 us
    through the driver).
    """
    nitems = consts[-1]
    if work >= PARALLEL_MIN_WORK and nitems >= 2 and _parallel_ready():
        threads = numba.get_num_threads()
        if threads > 1:
            args = (*_driver.prepare(kernel, arrays, consts), nitems, threads * 4)
            if _layer != "workqueue":
                _driver.drive(*args)
                return
            if _workqueue_lock.acquire(blocking=False):  # else: another thread's is running
                try:
                    _driver.drive(*args)
                finally:
                    _workqueue_lock.release()
                return
    kernel(*arrays, *consts, 0, nitems)
