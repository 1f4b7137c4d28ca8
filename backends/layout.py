"""Memory layouts of NumPy-like arrays (NumPy, CuPy), for kernels that run over the memory
of their arrays rather than over their indices: the CUDA kernels of the CuPy backend and the
fused kernels of the NumPy backend.

An array is *dense* when it fills its memory without gaps: C order seen through some
permutation of its axes, such as a channels-last (N, H, W, C) array seen as (N, C, H, W).
Arrays of one shape with the same strides in elements share one flat index: entry k of the
memory of each is the same (n, c, h, w), so an element-wise kernel may run over the memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xpnn.backends.base import FLOAT_DTYPES

#: The type characters of FLOAT_DTYPES.
_FLOAT_CHARS = tuple(np.dtype(name).char for name in FLOAT_DTYPES)


def is_float(array: Any) -> bool:
    """Whether ``array`` has one of the kernels' floating dtypes (float32 or float64: type
    characters ``f`` and ``d``; ``dtype.name`` builds a string, 3 µs a call)."""
    return array.dtype.char in _FLOAT_CHARS


def element_strides(array: Any) -> tuple[np.int64, ...] | None:
    """The strides of ``array`` in elements (as kernel arguments), or None when a byte
    stride is not a whole number of elements."""
    if any(stride % array.itemsize for stride in array.strides):
        return None
    return tuple(np.int64(stride // array.itemsize) for stride in array.strides)


def dense_order(array: Any) -> tuple[int, ...] | None:
    """The axes of ``array`` from the slowest to the fastest in memory, if the array fills
    its memory without gaps (C order seen through a permutation of the axes, such as a
    channels-last array seen as NCHW); else None."""
    order = tuple(sorted(range(array.ndim), key=lambda axis: -array.strides[axis]))
    return order if array.transpose(order).flags.c_contiguous else None


def common_dense_order(*arrays: Any) -> tuple[int, ...] | None:
    """:func:`dense_order` of the first array if every array has its shape and its
    strides in elements (so one flat index is the same entry of each); else None."""
    first = arrays[0]
    strides = element_strides(first)
    if strides is None or any(array.shape != first.shape or element_strides(array) != strides
                              for array in arrays[1:]):
        return None
    return dense_order(first)


def same_float_layout(*arrays: Any) -> bool:
    """Whether an element-wise kernel can run over the memory of ``arrays``: one floating
    dtype, one shape, one dense layout."""
    first = arrays[0]
    return (is_float(first) and all(array.dtype == first.dtype for array in arrays)
            and common_dense_order(*arrays) is not None)


def empty_in_order(lib: Any, shape: tuple[int, ...], dtype: Any,
                   order: tuple[int, ...]) -> Any:
    """An uninitialised array of ``shape`` whose axes are stored in ``order`` (slowest
    first): C order for the identity, channels-last for (0, 2, 3, 1) on NCHW."""
    stored = lib.empty(tuple(shape[axis] for axis in order), dtype=dtype)
    return stored.transpose(tuple(int(axis) for axis in np.argsort(order)))
