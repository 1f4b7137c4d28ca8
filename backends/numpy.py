"""The NumPy backend: CPU, and the reference every other backend is tested against."""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as xp_numpy
import numpy as np
from xpnn.backends.base import Backend

from xpnn.device import Device


class NumpyBackend(Backend):
    """CPU arrays: ``numpy.ndarray`` through the ``array_api_compat.numpy`` namespace."""

    name = "numpy"

    def __init__(self) -> None:
        self.xp = xp_numpy
        self.device = Device("cpu")
        self.native_device = "cpu"
        self._rng = np.random.default_rng()

    def asarray(self, host_array: Any, dtype: str | None = None) -> np.ndarray:
        """Copy a host array to this device, cast to ``dtype`` on the host."""
        # No copy when the host array already has the right dtype and layout: it *is* on
        # this device, and layers never write into their inputs.
        return np.ascontiguousarray(host_array, dtype=dtype)

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

    def seed(self, seed: int | None) -> None:
        """Re-seed the device's generator."""
        self._rng = np.random.default_rng(seed)

    def random_uniform(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        """Uniform samples in [0, 1) on the device."""
        return self._rng.random(shape, dtype=np.dtype(dtype))

    def random_normal(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        """Standard normal samples on the device."""
        return self._rng.standard_normal(shape, dtype=np.dtype(dtype))
