"""The NumPy backend: CPU, and the reference every other backend is tested against."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from xpnn.backends import strided
from xpnn.backends.base import Backend, HostRandomGenerator, Window

from xpnn.device import Device


class NumpyBackend(Backend):
    """CPU arrays: ``numpy.ndarray``, with NumPy itself as the namespace (NumPy >= 2.1
    implements the Array API standard in its main namespace; the ``array_api_compat`` wrapper
    would add a few microseconds per call)."""

    name = "numpy"

    def __init__(self) -> None:
        self.xp = np
        self.device = Device("cpu")
        self.native_device = "cpu"

    def asarray(self, host_array: Any, dtype: str | None = None) -> np.ndarray:
        """Copy a host array to this device, cast to ``dtype`` on the host."""
        # No copy when the host array already has the right dtype and layout: it *is* on
        # this device, and layers never write into their inputs.
        return np.asarray(host_array, dtype=dtype, order="C")

    def to_host(self, array: Any) -> np.ndarray:
        """Copy a device array to a NumPy array.

        A real copy: parameters are updated in place, so a view would change under the caller.
        """
        return np.array(array, copy=True)

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend on its device."""
        return isinstance(array, np.ndarray)

    def describe(self) -> str:
        """Library, version and device in one line."""
        return f"numpy {np.__version__} on cpu"

    def generator(self, seed: int | None) -> HostRandomGenerator:
        """A seeded NumPy generator; its samples are already on this device."""
        return HostRandomGenerator(seed, lambda host: host)

    def scatter_add(self, indices: Any, values: Any, num_rows: int) -> np.ndarray:
        """``out[k] = Σ_{j: indices[j] = k} values[j]`` (see ``Backend.scatter_add``) by one
        ``np.bincount`` over the flattened (row, column) positions, accumulated in float64:
        measured faster than ``np.add.at``, per-column bincounts and sort + ``reduceat``
        (NumPy 2.4; n = 6400 rows of 64 into 65 or 10,000 rows)."""
        width = values.shape[1]
        positions = (indices.astype(np.intp)[:, None] * width + np.arange(width)).ravel()
        sums = np.bincount(positions, weights=values.ravel(), minlength=num_rows * width)
        return sums.reshape(num_rows, width).astype(values.dtype, copy=False)

    def unfold(self, x: Any, window: Window, fill: float = 0.0) -> np.ndarray:
        """The windows of ``x`` (see ``Backend.unfold``) as a ``sliding_window_view``: no
        copy (see :mod:`xpnn.backends.strided`)."""
        return strided.unfold(np, sliding_window_view, x, window, fill)

    def fold(self, windows: Any, input_shape: tuple[int, int, int, int],
             window: Window) -> np.ndarray:
        """Sum the windows back into an input-shaped array (see ``Backend.fold``), with
        in-place strided adds into a channels-last array."""
        return strided.fold(np, windows, input_shape, window)

    def max_pool(self, x: Any, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Max pooling (see ``Backend.max_pool``) tap by tap over strided views."""
        return strided.max_pool(np, x, window)

    def max_pool_backward(self, grad_output: Any, winner: Any,
                          input_shape: tuple[int, int, int, int], window: Window) -> np.ndarray:
        """Max pooling's dL/dx (see ``Backend.max_pool_backward``) tap by tap."""
        return strided.max_pool_backward(np, grad_output, winner, input_shape, window)

    def fold_product(self, rows: Any, taps: Any, input_shape: tuple[int, int, int, int],
                     window: Window) -> np.ndarray:
        """Convolution's dL/dx (see ``Backend.fold_product``) tap by tap: one thin product
        per tap added in place, the windows never stored."""
        return strided.fold_product(np, rows, taps, input_shape, window)
