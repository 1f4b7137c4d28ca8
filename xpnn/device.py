"""Devices and how xpnn chooses one.

A :class:`Device` names a backend and an ordinal: ``cpu`` (NumPy), ``cuda:N`` (CuPy) and
``strict`` (array-api-strict on its non-default device, the CPU stand-in used by the tests).

The device used when none is given explicitly is, in order of precedence:

1. the explicit argument (``Sequential(..., device="cuda:1")``, ``model.to("cpu")``);
2. the innermost ``with xpnn.device(...):`` block of the current thread;
3. the process default set by :func:`set_device`;
4. the ``XPNN_DEVICE`` environment variable;
5. ``cpu``.

The process default is a plain module global on purpose: a ``contextvars`` value silently
reverts between Jupyter cells. ``"auto"`` means ``cuda:0`` when CuPy and a GPU are usable and
``cpu`` otherwise, and it says on stderr which one it chose and why.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from xpnn.backends.base import Device
from xpnn.errors import DeviceError, DeviceUnavailableError

if TYPE_CHECKING:
    from xpnn.backends.base import Backend

ENV_VAR = "XPNN_DEVICE"


DeviceLike = str | Device

_process_default: Device | str | None = None
_thread_state = threading.local()
_backends: dict[Device, Backend] = {}
_backends_lock = threading.Lock()


def _stack() -> list[Device | str]:
    if not hasattr(_thread_state, "stack"):
        _thread_state.stack = []
    return _thread_state.stack


def set_device(spec: DeviceLike | None) -> None:
    """Set the process-wide default device (``None`` clears it).

    The device is checked now, so asking for CUDA where it cannot work fails here.
    """
    global _process_default
    _process_default = None if spec is None else _resolve(spec)


@contextmanager
def device(spec: DeviceLike) -> Iterator[Device]:
    """Use ``spec`` as the default device inside a ``with`` block (per thread, nestable)."""
    resolved = _resolve(spec)
    stack = _stack()
    stack.append(resolved)
    try:
        yield resolved
    finally:
        stack.pop()


def get_device(spec: DeviceLike | None = None) -> Device:
    """The device to use: ``spec`` if given, else the current default (see module docs)."""
    if spec is not None:
        return _resolve(spec)
    stack = _stack()
    if stack:
        return _resolve(stack[-1])
    if _process_default is not None:
        return _resolve(_process_default)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            return _resolve(env)
        except ValueError as error:
            raise ValueError(f"{ENV_VAR}={env!r} is not a device: {error}") from None
    return Device("cpu")


def get_backend(spec: DeviceLike | None = None) -> Backend:
    """The backend object for a device (created once per device and cached)."""
    return _backend_for(get_device(spec))


def _backend_for(dev: Device) -> Backend:
    with _backends_lock:
        backend = _backends.get(dev)
        if backend is None:
            backend = _make_backend(dev)
            _backends[dev] = backend
    return backend


def backend_of(array: Any) -> Backend:
    """The backend whose device holds ``array``; raises :class:`DeviceError` if none does."""
    from xpnn.backends import backend_type_of

    found = backend_type_of(array)
    if found is None:
        raise DeviceError(f"{type(array).__module__}.{type(array).__name__} is not an array "
                          "of any xpnn backend (numpy, cupy, array-api-strict on 'device1')")
    return _backend_for(found)


def _resolve(spec: DeviceLike) -> Device:
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return _resolve_auto()
    dev = Device.parse(spec)
    if dev.type != "cpu":
        _backend_for(dev)  # fails now, with the reason, if the device cannot work
    return dev


_auto_reported: set[str] = set()


def _resolve_auto() -> Device:
    try:
        _backend_for(Device("cuda", 0))
        choice, reason = Device("cuda", 0), "CuPy and a CUDA GPU are usable"
    except DeviceUnavailableError as error:
        choice, reason = Device("cpu"), str(error).split("\n")[0]
    message = f"xpnn: device 'auto' chose {choice} ({reason})"
    if message not in _auto_reported:
        _auto_reported.add(message)
        print(message, file=sys.stderr)
    return choice


def _make_backend(dev: Device) -> Backend:
    if dev.type == "cpu":
        from xpnn.backends.numpy import NumpyBackend

        return NumpyBackend()
    if dev.type == "strict":
        from xpnn.backends.strict import StrictBackend

        return StrictBackend()
    from xpnn.backends.cupy import CupyBackend

    return CupyBackend(dev.index)
