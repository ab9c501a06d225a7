"""``torch.nn`` pooling modules on numba_pool's kernels, and :func:`convert` /
:func:`restore` to switch a whole model.

Each class subclasses its ``torch.nn`` counterpart (same constructor,
attributes, ``repr``, empty state dict; ``isinstance(m, nn.MaxPool2d)`` stays
true) and only replaces ``forward`` by :mod:`numba_pool.torch.functional`.
"""

from __future__ import annotations

from torch import nn

from . import functional as nf

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
    "convert", "restore",
]


def _max(rank):
    fn = getattr(nf, f"max_pool{rank}d")

    def forward(self, input):
        return fn(input, self.kernel_size, self.stride, self.padding, self.dilation,
                  ceil_mode=self.ceil_mode, return_indices=self.return_indices)
    return forward


def _avg(rank):
    fn = getattr(nf, f"avg_pool{rank}d")

    def forward(self, input):
        if rank == 1:
            return fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                      self.count_include_pad)
        return fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                  self.count_include_pad, self.divisor_override)
    return forward


def _adaptive_max(rank):
    fn = getattr(nf, f"adaptive_max_pool{rank}d")

    def forward(self, input):
        return fn(input, self.output_size, self.return_indices)
    return forward


def _adaptive_avg(rank):
    fn = getattr(nf, f"adaptive_avg_pool{rank}d")

    def forward(self, input):
        return fn(input, self.output_size)
    return forward


def _unpool(rank):
    fn = getattr(nf, f"max_unpool{rank}d")

    def forward(self, input, indices, output_size=None):
        return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)
    return forward


def _make(base: type, forward) -> type:
    doc = (f"As :class:`torch.nn.{base.__name__}` (same constructor), computed by "
           "numba_pool's kernels where they apply (see :mod:`numba_pool.torch.functional`).")
    return type(base.__name__, (base,), {"forward": forward, "__doc__": doc,
                                        "__module__": __name__})


MaxPool1d = _make(nn.MaxPool1d, _max(1))
MaxPool2d = _make(nn.MaxPool2d, _max(2))
MaxPool3d = _make(nn.MaxPool3d, _max(3))
AvgPool1d = _make(nn.AvgPool1d, _avg(1))
AvgPool2d = _make(nn.AvgPool2d, _avg(2))
AvgPool3d = _make(nn.AvgPool3d, _avg(3))
AdaptiveMaxPool1d = _make(nn.AdaptiveMaxPool1d, _adaptive_max(1))
AdaptiveMaxPool2d = _make(nn.AdaptiveMaxPool2d, _adaptive_max(2))
AdaptiveMaxPool3d = _make(nn.AdaptiveMaxPool3d, _adaptive_max(3))
AdaptiveAvgPool1d = _make(nn.AdaptiveAvgPool1d, _adaptive_avg(1))
AdaptiveAvgPool2d = _make(nn.AdaptiveAvgPool2d, _adaptive_avg(2))
AdaptiveAvgPool3d = _make(nn.AdaptiveAvgPool3d, _adaptive_avg(3))
MaxUnpool1d = _make(nn.MaxUnpool1d, _unpool(1))
MaxUnpool2d = _make(nn.MaxUnpool2d, _unpool(2))
MaxUnpool3d = _make(nn.MaxUnpool3d, _unpool(3))

_OURS = {getattr(nn, cls.__name__): cls for cls in (
    MaxPool1d, MaxPool2d, MaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d, AdaptiveMaxPool1d,
    AdaptiveMaxPool2d, AdaptiveMaxPool3d, AdaptiveAvgPool1d, AdaptiveAvgPool2d,
    AdaptiveAvgPool3d, MaxUnpool1d, MaxUnpool2d, MaxUnpool3d)}
_THEIRS = {ours: theirs for theirs, ours in _OURS.items()}


def _swap(model: nn.Module, table: dict) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for m in model.modules():
        cls = table.get(type(m))
        if cls is not None:
            m.__class__ = cls  # same attributes, hooks and (empty) state
    return model


def convert(model: nn.Module) -> nn.Module:
    """Switch every ``torch.nn`` pooling module of ``model`` (nested ones
    included, the model itself too) to numba_pool's; returns ``model``.

    The modules are changed in place (their class, nothing else: parameters,
    hooks, the state dict and modules shared between parents stay as they
    are).  Only the exact ``torch.nn`` classes are switched (MaxPool, AvgPool,
    AdaptiveMaxPool, AdaptiveAvgPool 1d/2d/3d and MaxUnpool 1d/2d/3d), not
    subclasses with their own ``forward``.

    >>> import torch, numba_pool.torch as nt
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.MaxPool2d(2))
    >>> type(nt.convert(model)[1]).__module__
    'numba_pool.torch.modules'
    >>> type(nt.restore(model)[1]) is torch.nn.MaxPool2d
    True
    """
    return _swap(model, _OURS)


def restore(model: nn.Module) -> nn.Module:
    """Undo :func:`convert`: numba_pool's pooling modules back to ``torch.nn``'s."""
    return _swap(model, _THEIRS)
