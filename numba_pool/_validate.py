"""Argument validation and normalisation for the public API.

Every check that protects a kernel lives here: after these functions return,
parameters are plain Python ints/strings and arrays have a dtype the kernels
were written for.  Errors are ``TypeError`` (wrong kind of thing) or
``ValueError`` (right kind, bad value) and always start with the name of the
offending parameter.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

# Largest window side accepted: tap indices are stored as int32 in kernels.
MAX_WINDOW_SIDE = 2**31 - 1

# Accepted spellings of each rank's data formats -> canonical name.
DATA_FORMATS = {
    1: {"NWC": "NWC", "NCW": "NCW"},
    2: {"NHWC": "NHWC", "NCHW": "NCHW"},
    3: {"NDHWC": "NDHWC", "NCDHW": "NCDHW"},
}
for _rank, (_last, _first) in ((1, ("NWC", "NCW")), (2, ("NHWC", "NCHW")), (3, ("NDHWC", "NCDHW"))):
    DATA_FORMATS[_rank]["CHANNELS_LAST"] = _last
    DATA_FORMATS[_rank]["CHANNELS_FIRST"] = _first
del _rank, _last, _first

_COUNT = {1: "a tuple of one int", 2: "a pair of ints", 3: "a triple of ints"}


def _as_int(value, name: str, rank: int = 2) -> int:
    """An int from an int-like scalar (not bool, not float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int or {_COUNT[rank]}, got {value!r}")
    return operator.index(value)


def int_tuple(value, name: str, rank: int, *, minimum: int = 1) -> tuple:
    """Normalise an int or one int per spatial axis, each ``>= minimum``."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            value = value.item() if value.dtype.kind in "iu" else value
        else:
            value = tuple(value.tolist())
    if isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(f"{name} must be an int or {_COUNT[rank]}, got {len(value)} values")
        out = tuple(_as_int(v, name, rank) for v in value)
    else:
        out = (_as_int(value, name, rank),) * rank
    for v in out:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
        if v > MAX_WINDOW_SIDE:
            raise ValueError(f"{name} must be at most {MAX_WINDOW_SIDE}, got {value!r}")
    return out


def int_pair(value, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of ints, each ``>= minimum``."""
    return int_tuple(value, name, 2, minimum=minimum)


_AXES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def normalise_padding(padding, pool_size: tuple, rank: int = 2):
    """Return "valid", "same" or one (before, after) pair per spatial axis.

    Accepted forms: "valid"/"same" (any case); an int or one int per axis of
    symmetric paddings, each at most half the pool size (PyTorch's rule);
    or one (before, after) pair of non-negative ints per axis (for 1-D also
    a bare (before, after) pair).
    """
    axes = _AXES[rank]
    explicit_form = {1: "(before, after)", 2: "((top, bottom), (left, right))",
                     3: "((front, back), (top, bottom), (left, right))"}[rank]
    if isinstance(padding, str):
        word = padding.lower()
        if word not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or pairs of ints, got {padding!r}")
        return word
    if isinstance(padding, np.ndarray):
        padding = padding.tolist() if padding.ndim else padding.item()
    if (rank == 1 and isinstance(padding, (tuple, list)) and len(padding) == 2
            and not any(isinstance(p, (tuple, list, np.ndarray)) for p in padding)):
        padding = (tuple(padding),)  # 1-D: a bare (before, after) pair
    if isinstance(padding, (tuple, list)) and len(padding) == rank and all(
        isinstance(p, (tuple, list, np.ndarray)) for p in padding
    ):
        out = []
        for axis, pair in zip(axes, padding):
            pair = tuple(pair.tolist() if isinstance(pair, np.ndarray) else pair)
            if len(pair) != 2:
                raise ValueError(f"padding for the {axis} must be a (before, after) pair, got {pair!r}")
            before, after = (_as_int(p, "padding", rank) for p in pair)
            if before < 0 or after < 0:
                raise ValueError(f"padding must be non-negative, got {padding!r}")
            out.append((before, after))
        return tuple(out)
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        raise ValueError(f"padding must be {explicit_form} for explicit padding, got {padding!r}")
    if padding is None or isinstance(padding, (float, complex, bytes)):
        raise TypeError(f"padding must be 'valid', 'same', an int or pairs of ints, got {padding!r}")
    sym = int_tuple(padding, "padding", rank, minimum=0)
    for p, k, axis in zip(sym, pool_size, axes):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half the pool size ({axis}: padding {p}, pool_size {k}); "
                f"use {explicit_form} for explicit asymmetric padding"
            )
    return tuple((p, p) for p in sym)


def normalise_data_format(data_format, rank: int = 2) -> str:
    names = [k for k in DATA_FORMATS[rank] if not k.startswith("CHANNELS")]
    if not isinstance(data_format, str):
        raise TypeError(f"data_format must be a string ({names[0]!r} or {names[1]!r}), "
                        f"got {data_format!r}")
    try:
        return DATA_FORMATS[rank][data_format.upper()]
    except KeyError:
        raise ValueError(f"data_format must be {names[0]!r} or {names[1]!r} (or 'channels_last', "
                         f"'channels_first') for {rank}-D pooling, got {data_format!r}") from None


def normalise_avg_options(padding, count_include_pad, divisor_override):
    """(count_include_pad, divisor_override) of average pooling.

    ``count_include_pad=None``: True for integer/explicit padding (PyTorch's
    default), False for "same" (TensorFlow's and Keras's behaviour).
    ``divisor_override``: None or an int from 1 to 2**24 (exact in float32).
    """
    if count_include_pad is None:
        count_include_pad = not (isinstance(padding, str) and padding.lower() == "same")
    count_include_pad = normalise_bool(count_include_pad, "count_include_pad")
    if divisor_override is not None:
        if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(
                divisor_override, (int, np.integer)):
            raise TypeError(f"divisor_override must be None or an int, got {divisor_override!r}")
        if divisor_override < 1:
            raise ValueError(f"divisor_override must be >= 1, got {divisor_override!r}")
        if divisor_override > 2**24:
            raise ValueError(f"divisor_override must be at most 2**24, got {divisor_override!r}")
        divisor_override = int(divisor_override)
    return count_include_pad, divisor_override


def normalise_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_dtype(dtype: np.dtype, name: str) -> None:
    kind = dtype.kind
    if kind == "b":
        raise TypeError(f"{name} has dtype bool; cast it to uint8 (max pooling of a mask is its OR)")
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {dtype}; complex numbers have no order")
    if kind not in "iuf" or dtype.itemsize > 8:
        raise TypeError(f"{name} must have a real numeric dtype (float or int), got {dtype}")


def as_input_array(x, name: str = "x") -> np.ndarray:
    """``np.asarray`` with a dtype check; native byte order guaranteed."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array; its mask would be ignored: pass "
                        f"{name}.filled(...) with a fill value that cannot win, e.g. -inf")
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    _check_dtype(arr.dtype, name)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def check_input_shape(x: np.ndarray, data_format: str, rank: int = 2) -> None:
    if x.ndim != rank + 2:
        raise ValueError(
            f"x must be {rank + 2}-D ({data_format}), got {x.ndim}-D with shape {x.shape}; "
            "add batch/channel axes with x[None, ..., None]"
        )
    spatial = x.shape[1:-1] if data_format[-1] == "C" else x.shape[2:]
    if 0 in spatial:
        names = ", ".join(f"{a} {n}" for a, n in zip(_AXES[rank], spatial))
        raise ValueError(f"x has zero-size spatial dimensions ({names})")
