"""The CuPy backend: CUDA GPUs.

Install with ``pip install 'xpnn[cuda12]'`` or ``'xpnn[cuda13]'`` (matching the driver's CUDA
major version); the ``[ctk]`` extra of CuPy brings the CUDA runtime and NVRTC from PyPI. Math
goes through ``array_api_compat.cupy``, because the raw ``cupy`` namespace is not Array API
compliant. Every public model entry point runs inside :meth:`CupyBackend.scope`, so ``cuda:1``
allocates and launches on GPU 1.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
from xpnn.backends import strided
from xpnn.backends.base import Backend, Device, RandomGenerator, Window

from xpnn.errors import DeviceUnavailableError

_INSTALL_HINT = (
    "install CuPy with pip install 'xpnn[cuda12]' (CUDA 12 driver) or 'xpnn[cuda13]' "
    "(CUDA 13 driver), or choose device='cpu' (or 'auto', which falls back to the CPU)"
)


def _import_cupy() -> Any:
    try:
        import cupy
    except ImportError as error:
        raise DeviceUnavailableError(f"CUDA needs CuPy, which is not installed: {_INSTALL_HINT}") \
            from error
    return cupy


class CupyBackend(Backend):
    """CuPy arrays on GPU ``index``."""

    name = "cupy"

    def __init__(self, index: int = 0) -> None:
        cupy = _import_cupy()
        try:
            usable = cupy.is_available()
        except Exception:  # a broken driver install can raise instead of returning False
            usable = False
        if not usable:
            raise DeviceUnavailableError(
                "CUDA is not usable here: CuPy is installed but finds no NVIDIA driver or no "
                "GPU (cupy.is_available() is False). Check `nvidia-smi`, or choose device='cpu'."
            )
        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            note = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
            raise DeviceUnavailableError(
                f"cuda:{index} was requested but only {count} GPU(s) are visible{note}: "
                f"use an ordinal from 0 to {count - 1}"
            )
        import array_api_compat.cupy as xp_cupy

        self._cupy = cupy
        self.xp = xp_cupy
        self.device = Device("cuda", index)
        self.native_device = cupy.cuda.Device(index)

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """Make this GPU the current CUDA device."""
        return self.native_device

    def asarray(self, host_array: Any, dtype: str | None = None) -> Any:
        """Copy a host array to this device, cast to ``dtype`` on the host."""
        host = np.asarray(host_array, dtype=dtype, order="C")
        with self.native_device:
            return self._cupy.asarray(host)

    def to_host(self, array: Any) -> np.ndarray:
        """Copy a device array to a NumPy array."""
        return self._cupy.asnumpy(array)

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend on its device."""
        return isinstance(array, self._cupy.ndarray) and array.device.id == self.device.index

    def synchronize(self) -> None:
        """Wait for all queued work on this GPU."""
        self.native_device.synchronize()

    def describe(self) -> str:
        """Library, version and device in one line."""
        props = self._cupy.cuda.runtime.getDeviceProperties(self.device.index)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        runtime = self._cupy.cuda.runtime.runtimeGetVersion()
        return (f"cupy {self._cupy.__version__} on {self.device} ({gpu}, "
                f"CUDA runtime {runtime // 1000}.{runtime % 1000 // 10})")

    def generator(self, seed: int | None) -> CupyRandomGenerator:
        """A seeded CuPy generator drawing on this GPU."""
        return CupyRandomGenerator(self._cupy, self.native_device, seed)

    def scatter_add(self, indices: Any, values: Any, num_rows: int) -> Any:
        """``out[k] = Σ_{j: indices[j] = k} values[j]`` (see ``Backend.scatter_add``) with
        ``cupyx.scatter_add``, atomic adds on the GPU (float32 and float64)."""
        import cupyx

        with self.native_device:
            total = self._cupy.zeros((num_rows, values.shape[1]), dtype=values.dtype)
            cupyx.scatter_add(total, indices, values)
        return total

    def unfold(self, x: Any, window: Window, fill: float = 0.0) -> Any:
        """The windows of ``x`` (see ``Backend.unfold``) as a CuPy ``sliding_window_view``
        (no copy; see :mod:`xpnn.backends.strided`); the generic version where this CuPy
        has no ``sliding_window_view``."""
        stride_tricks = self._cupy.lib.stride_tricks
        if not hasattr(stride_tricks, "sliding_window_view"):
            return super().unfold(x, window, fill)
        with self.native_device:
            return strided.unfold(self._cupy, stride_tricks.sliding_window_view, x, window,
                                  fill)

    def fold(self, windows: Any, input_shape: tuple[int, int, int, int], window: Window) -> Any:
        """Sum the windows back into an input-shaped array (see ``Backend.fold``): one
        in-place strided add kernel per tap, into a channels-last array."""
        with self.native_device:
            return strided.fold(self._cupy, windows, input_shape, window)

    def fold_product(self, rows: Any, taps: Any, input_shape: tuple[int, int, int, int],
                     window: Window) -> Any:
        """Convolution's dL/dx (see ``Backend.fold_product``) tap by tap: one thin product
        per tap added in place, the windows never stored."""
        with self.native_device:
            return strided.fold_product(self._cupy, rows, taps, input_shape, window)

    def max_pool(self, x: Any, window: Window) -> tuple[Any, Any]:
        """Max pooling (see ``Backend.max_pool``) tap by tap over strided views."""
        with self.native_device:
            return strided.max_pool(self._cupy, x, window)

    def max_pool_backward(self, grad_output: Any, winner: Any,
                          input_shape: tuple[int, int, int, int], window: Window) -> Any:
        """Max pooling's dL/dx (see ``Backend.max_pool_backward``) tap by tap."""
        with self.native_device:
            return strided.max_pool_backward(self._cupy, grad_output, winner, input_shape,
                                             window)


class CupyRandomGenerator(RandomGenerator):
    """``cupy.random.default_rng(seed)`` on one GPU: samples are drawn on the device (a
    different stream of numbers from the NumPy generator with the same seed). CuPy offers no
    way to read its position, so checkpoints cannot restore it (``get_state`` is None)."""

    def __init__(self, cupy: Any, native_device: Any, seed: int | None) -> None:
        self.native_device = native_device
        with native_device:
            self.device_rng = cupy.random.default_rng(seed)

    def uniform(self, shape: tuple[int, ...], dtype: str) -> Any:
        """Uniform samples in [0, 1) on the GPU."""
        with self.native_device:
            return self.device_rng.random(shape, dtype=np.dtype(dtype))

    def normal(self, shape: tuple[int, ...], dtype: str) -> Any:
        """Standard normal samples on the GPU."""
        with self.native_device:
            return self.device_rng.standard_normal(shape, dtype=np.dtype(dtype))
