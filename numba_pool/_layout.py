"""Data formats and memory layouts, for every rank.

A *logical* array is what the caller sees, in ``data_format`` order:
channels last (``NWC``, ``NHWC``, ``NDHWC``) or channels first (``NCW``,
``NCHW``, ``NCDHW``).  A *physical* array is what the kernels see: C-contiguous
``(B, *spatial, C)`` with either

* ``CHANNELS_LAST`` memory: ``B = N`` images of ``C`` interleaved channels, or
* ``PLANAR`` memory (channels-first data): ``B = N * C`` planes, ``C = 1``.

Inputs already contiguous in either memory layout are used in place, and
outputs come back in the memory layout of the input, as PyTorch does for
channels_last tensors.  Output buffers (``out=``) are checked here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _buffers

CHANNELS_LAST = "channels_last"  # physical (N, *spatial, C)
PLANAR = "planar"  # physical (N*C, *spatial, 1), i.e. channels-first memory

# Canonical data formats by rank: (channels last, channels first).
FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


class Layout(NamedTuple):
    """How a logical array of one rank and data format maps to memory."""

    rank: int
    data_format: str
    channels_last: bool  # the logical order has channels last

    @property
    def natural(self) -> str:
        """The memory layout a contiguous array in this data format has."""
        return CHANNELS_LAST if self.channels_last else PLANAR

    def split(self, shape) -> tuple[int, int, tuple]:
        """(N, C, spatial sizes) of a logical shape."""
        if self.channels_last:
            return shape[0], shape[-1], tuple(shape[1:-1])
        return shape[0], shape[1], tuple(shape[2:])

    def join(self, n: int, c: int, spatial) -> tuple:
        """Logical shape from (N, C, spatial sizes)."""
        spatial = tuple(spatial)
        return (n,) + spatial + (c,) if self.channels_last else (n, c) + spatial

    def perm(self, memory: str) -> tuple | None:
        """Axes permutation taking a logical array to its physical order
        (None when they are the same)."""
        r = self.rank
        if memory == CHANNELS_LAST:
            return None if self.channels_last else (0,) + tuple(range(2, r + 2)) + (1,)
        return None if not self.channels_last else (0, r + 1) + tuple(range(1, r + 1))

    def memory_of(self, a: np.ndarray) -> str | None:
        """Physical layout of a logical array if it is contiguous in one."""
        for memory in (self.natural, PLANAR if self.natural == CHANNELS_LAST else CHANNELS_LAST):
            p = self.perm(memory)
            if (a if p is None else a.transpose(p)).flags.c_contiguous:
                return memory
        return None

    def physical_shape(self, n: int, c: int, spatial, memory: str) -> tuple:
        spatial = tuple(spatial)
        return (n,) + spatial + (c,) if memory == CHANNELS_LAST else (n * c,) + spatial + (1,)

    def to_physical(self, a: np.ndarray, memory: str) -> np.ndarray:
        """Logical array -> C-contiguous physical array (a view if possible)."""
        n, c, spatial = self.split(a.shape)
        p = self.perm(memory)
        v = np.ascontiguousarray(a if p is None else a.transpose(p))
        return v if memory == CHANNELS_LAST else v.reshape(self.physical_shape(n, c, spatial,
                                                                                memory))

    def to_logical(self, phys: np.ndarray, n: int, c: int, memory: str) -> np.ndarray:
        """Physical array -> logical view in this data format."""
        spatial = phys.shape[1:-1]
        if memory == CHANNELS_LAST:
            v = phys
        else:
            v = phys.reshape((n, c) + spatial).transpose(
                (0,) + tuple(range(2, self.rank + 2)) + (1,))
        # v is now (N, *spatial, C)
        if self.channels_last:
            return v
        return v.transpose((0, self.rank + 1) + tuple(range(1, self.rank + 1)))


def layout(rank: int, data_format: str) -> Layout:
    """The :class:`Layout` of a canonical data format (see ``_validate``)."""
    return Layout(rank, data_format, data_format == FORMATS[rank][0])


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: kernels then see one array type whatever the caller's
    flags, so each kernel compiles once per dtype, not once per flag combination."""
    a = a.view()  # never change the flags of the caller's array itself
    a.setflags(write=False)  # (cheaper than through a.flags: no flags object)
    return a


def check_out(buf, name: str, shape, dtype, lay: Layout, memory: str) -> np.ndarray:
    """Physical view of a caller-provided output buffer, or a ValueError/TypeError."""
    if not isinstance(buf, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(buf).__name__}")
    if buf.shape != tuple(shape):
        raise ValueError(f"{name} has shape {buf.shape}, expected {tuple(shape)}")
    if buf.dtype != dtype:
        raise TypeError(f"{name} has dtype {buf.dtype}, expected {dtype}")
    if not buf.flags.writeable:
        raise ValueError(f"{name} is read-only")
    if lay.memory_of(buf) != memory:
        formats = FORMATS[lay.rank]
        raise ValueError(
            f"{name} must be contiguous in the same memory layout as the input "
            f"({formats[0] if memory == CHANNELS_LAST else formats[1]} memory)"
        )
    return lay.to_physical(buf, memory)


def kernel_buffer(out, shape, phys_shape, dtype, kernel_dtype, lay: Layout, memory: str,
                  inputs: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(buffer the kernel writes, the caller's physical ``out`` view or None).

    ``out`` (if given) is checked (shape ``shape``, ``dtype``, layout) and may not
    share memory with ``inputs``; the kernel writes into it directly when it
    computes in ``dtype``, else into a fresh buffer that :func:`deliver` copies.
    """
    user = None
    if out is not None:
        user = check_out(out, "out", shape, dtype, lay, memory)
        check_no_overlap({"out": out}, inputs)
    if user is not None and np.dtype(kernel_dtype) == np.dtype(dtype):
        return user, user
    return _buffers.empty(phys_shape, kernel_dtype), user


def deliver(buf: np.ndarray, user, out, dtype, lay: Layout, n: int, c: int, memory: str):
    """The result the caller sees: ``out`` (filled from ``buf`` if needed) or
    ``buf`` cast to ``dtype`` as a logical view."""
    if out is not None:
        if buf is not user:
            user[...] = buf
        return out
    if buf.dtype != dtype:
        buf = buf.astype(dtype)
    return lay.to_logical(buf, n, c, memory)


_TooHard = getattr(getattr(np, "exceptions", np), "TooHardError", Exception)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share memory (conservatively True when NumPy cannot tell)."""
    try:
        return bool(np.shares_memory(a, b, max_work=10_000))
    except _TooHard:
        return True


def check_no_overlap(outputs: dict, inputs: dict) -> None:
    """ValueError if an output buffer shares memory with an input or with
    another output; keys are the parameter names used in the message."""
    named = list(outputs.items())
    for i, (oname, obuf) in enumerate(named):
        for iname, ibuf in list(inputs.items()) + named[i + 1:]:
            if _overlap(obuf, ibuf):
                raise ValueError(f"{oname} must not share memory with {iname}")
