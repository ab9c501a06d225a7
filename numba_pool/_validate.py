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

DATA_FORMATS = {
    "NHWC": "NHWC",
    "CHANNELS_LAST": "NHWC",
    "NCHW": "NCHW",
    "CHANNELS_FIRST": "NCHW",
}


def _as_int(value, name: str) -> int:
    """An int from an int-like scalar (not bool, not float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return operator.index(value)


def int_pair(value, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of ints, each ``>= minimum``."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            value = value.item() if value.dtype.kind in "iu" else value
        else:
            value = tuple(value.tolist())
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {len(value)} values")
        pair = (_as_int(value[0], name), _as_int(value[1], name))
    else:
        v = _as_int(value, name)
        pair = (v, v)
    for v in pair:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
        if v > MAX_WINDOW_SIDE:
            raise ValueError(f"{name} must be at most {MAX_WINDOW_SIDE}, got {value!r}")
    return pair


def normalise_padding(padding, pool_size: tuple[int, int]):
    """Return "valid", "same" or ((top, bottom), (left, right)).

    Accepted forms: "valid"/"same" (any case); an int or (ph, pw) pair of
    symmetric paddings, each at most half the pool size (PyTorch's rule);
    or ((top, bottom), (left, right)) of non-negative ints.
    """
    if isinstance(padding, str):
        word = padding.lower()
        if word not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or pairs of ints, got {padding!r}")
        return word
    if isinstance(padding, np.ndarray):
        padding = padding.tolist() if padding.ndim else padding.item()
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list, np.ndarray)) for p in padding
    ):
        out = []
        for axis, pair in zip(("height", "width"), padding):
            pair = tuple(pair.tolist() if isinstance(pair, np.ndarray) else pair)
            if len(pair) != 2:
                raise ValueError(f"padding for the {axis} must be a (before, after) pair, got {pair!r}")
            before, after = (_as_int(p, "padding") for p in pair)
            if before < 0 or after < 0:
                raise ValueError(f"padding must be non-negative, got {padding!r}")
            out.append((before, after))
        return tuple(out)
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        raise ValueError(f"padding must be ((top, bottom), (left, right)), got {padding!r}")
    if padding is None or isinstance(padding, (float, complex, bytes)):
        raise TypeError(f"padding must be 'valid', 'same', an int or pairs of ints, got {padding!r}")
    ph, pw = int_pair(padding, "padding", minimum=0)
    for p, k, axis in ((ph, pool_size[0], "height"), (pw, pool_size[1], "width")):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half the pool size ({axis}: padding {p}, pool_size {k}); "
                "use ((top, bottom), (left, right)) for explicit asymmetric padding"
            )
    return ((ph, ph), (pw, pw))


def normalise_data_format(data_format) -> str:
    if not isinstance(data_format, str):
        raise TypeError(f"data_format must be a string ('NHWC' or 'NCHW'), got {data_format!r}")
    try:
        return DATA_FORMATS[data_format.upper()]
    except KeyError:
        raise ValueError(f"data_format must be 'NHWC' or 'NCHW', got {data_format!r}") from None


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


def check_input_shape(x: np.ndarray, data_format: str) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"x must be 4-D ({data_format}), got {x.ndim}-D with shape {x.shape}; "
            "add batch/channel axes with x[None, ..., None]"
        )
    h, w = (x.shape[1], x.shape[2]) if data_format == "NHWC" else (x.shape[2], x.shape[3])
    if h == 0 or w == 0:
        raise ValueError(f"x has zero-size spatial dimensions (height {h}, width {w})")
