"""The strict backend: array-api-strict arrays on its non-default device ``device1``.

A CPU stand-in with GPU manners for the test matrix: like CuPy it refuses NumPy arrays as
operands, refuses implicit conversion to NumPy and refuses mixing devices, and it offers only
what the Array API standard defines. If a test passes on ``numpy`` but fails here, the core
leaked a NumPy habit. array-api-strict is NumPy underneath, so random numbers are drawn by a
NumPy generator and copied to ``device1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xpnn.backends.base import Backend, Device, HostRandomGenerator

from xpnn.errors import DeviceUnavailableError


class StrictBackend(Backend):
    """array-api-strict on ``device1`` (install it with ``pip install 'xpnn[strict]'``)."""

    name = "strict"

    def __init__(self) -> None:
        try:
            import array_api_strict
        except ImportError as error:
            raise DeviceUnavailableError(
                "device 'strict' needs array-api-strict, which is not installed: "
                "pip install 'xpnn[strict]' (or 'xpnn[test]')"
            ) from error
        self._strict = array_api_strict
        self.xp = array_api_strict
        self.device = Device("strict")
        self.native_device = array_api_strict.Device("device1")
        self._host_device = array_api_strict.Device("CPU_DEVICE")

    def asarray(self, host_array: Any, dtype: str | None = None) -> Any:
        """Copy a host array to this device, cast to ``dtype`` on the host."""
        host = np.asarray(host_array, dtype=dtype, order="C")
        return self._strict.asarray(host, device=self.native_device, copy=True)

    def to_host(self, array: Any) -> np.ndarray:
        """Copy a device array to a NumPy array."""
        # The explicit route: move to the default device, then export through the buffer.
        return np.array(array.to_device(self._host_device), copy=True)

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend on its device."""
        return isinstance(array, self._strict._array_object.Array) and (
            array.device == self.native_device
        )

    def describe(self) -> str:
        """Library, version and device in one line."""
        return (f"array-api-strict {self._strict.__version__} on device1 "
                f"(standard {self._strict.__array_api_version__})")

    def generator(self, seed: int | None) -> HostRandomGenerator:
        """A seeded NumPy generator whose samples are copied to ``device1`` (the same
        numbers as the NumPy backend's generator with the same seed)."""
        return HostRandomGenerator(seed, self.asarray)
