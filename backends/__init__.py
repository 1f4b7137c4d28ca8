"""Backends: everything device-specific in xpnn lives here (installed as ``xpnn.backends``).

One module per backend, each a subclass of :class:`~xpnn.backends.base.Backend`:

- :mod:`xpnn.backends.numpy` -- CPU through NumPy, the reference;
- :mod:`xpnn.backends.cupy` -- CUDA through CuPy (the ``cuda12`` / ``cuda13`` extras);
- :mod:`xpnn.backends.strict` -- array-api-strict on its non-default device ``device1``: a CPU
  stand-in that, like CuPy, refuses NumPy arrays, implicit host copies and mixed devices.

Backend modules are imported lazily, so ``import xpnn`` never needs CuPy or array-api-strict.
"""

from __future__ import annotations

import sys
from typing import Any

from xpnn.backends.base import Device

__all__ = ["BACKEND_NAMES", "backend_type_of"]

#: Backend name -> the device type it serves.
BACKEND_NAMES = {"numpy": "cpu", "strict": "strict", "cupy": "cuda"}


def backend_type_of(array: Any) -> Device | None:
    """The device holding ``array`` if it is an array of a known backend, else ``None``.

    Only modules that are already imported are consulted: an array of a library that was
    never imported cannot exist.
    """
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(array, numpy.ndarray):
        return Device("cpu")
    strict = sys.modules.get("array_api_strict")
    if strict is not None and isinstance(array, strict._array_object.Array):
        if array.device == strict.Device("device1"):
            return Device("strict")
        return None
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(array, cupy.ndarray):
        return Device("cuda", array.device.id)
    return None
