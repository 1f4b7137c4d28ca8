"""The backend interface every device implements.

A backend knows its array namespace ``xp`` (Array API standard, through ``array-api-compat``),
its device, how to move arrays between host and device, a seeded random generator on the
device, how to synchronise, and how to describe itself. Core code does all of its math with
``backend.xp``; what the standard lacks is a *named kernel* method here, written once with
standard functions, that a backend may specialise.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from xpnn.device import Device

#: Floating dtypes a model may use.
FLOAT_DTYPES = ("float32", "float64")


class RandomGenerator(ABC):
    """A seeded stream of random numbers drawn on one device."""

    @abstractmethod
    def uniform(self, shape: tuple[int, ...], dtype: str) -> Any:
        """Uniform samples in [0, 1) of ``shape`` and dtype name ``dtype``."""

    @abstractmethod
    def normal(self, shape: tuple[int, ...], dtype: str) -> Any:
        """Standard normal samples of ``shape`` and dtype name ``dtype``."""

    def get_state(self) -> dict[str, Any] | None:
        """The generator's position as JSON-compatible values, for checkpoints; None where
        the library offers no way to read it (CuPy)."""
        return None

    def set_state(self, state: dict[str, Any] | None) -> None:  # noqa: B027 - see get_state
        """Continue from a :meth:`get_state` (None: leave the generator as it is)."""


class HostRandomGenerator(RandomGenerator):
    """A NumPy generator (PCG64) whose samples are handed to a device by ``to_device``
    (the identity for the NumPy backend)."""

    def __init__(self, seed: int | None, to_device: Any) -> None:
        self.host = np.random.default_rng(seed)
        self.to_device = to_device

    def uniform(self, shape: tuple[int, ...], dtype: str) -> Any:
        """Uniform samples in [0, 1)."""
        return self.to_device(self.host.random(shape, dtype=np.dtype(dtype)))

    def normal(self, shape: tuple[int, ...], dtype: str) -> Any:
        """Standard normal samples."""
        return self.to_device(self.host.standard_normal(shape, dtype=np.dtype(dtype)))

    def get_state(self) -> dict[str, Any]:
        """The PCG64 state (plain ints and strings)."""
        return self.host.bit_generator.state

    def set_state(self, state: dict[str, Any] | None) -> None:
        """Continue from a :meth:`get_state`."""
        if state is not None:
            self.host.bit_generator.state = state


class Backend(ABC):
    """One device's array namespace, transfers, random numbers and kernels."""

    #: Short name: ``"numpy"``, ``"cupy"`` or ``"strict"``.
    name: ClassVar[str]
    #: The Array API namespace used for all math on this device.
    xp: Any
    #: The xpnn device this backend serves.
    device: Device
    #: The device object the namespace's ``device=`` arguments take.
    native_device: Any

    # -- transfers ---------------------------------------------------------------------------
    @abstractmethod
    def asarray(self, host_array: Any, dtype: str | None = None) -> Any:
        """Copy a host (NumPy) array or Python sequence to this device.

        ``dtype`` is a name such as ``"float32"``; the cast happens on the host, so one host
        array gives bit-identical device arrays on every backend.
        """

    @abstractmethod
    def to_host(self, array: Any) -> np.ndarray:
        """Copy a device array of this backend to a new NumPy array (synchronises); the
        result never shares memory with the device array."""

    @abstractmethod
    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend on this backend's device."""

    # -- execution ---------------------------------------------------------------------------
    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which new arrays and kernels go to this device (CuPy's current
        device); a no-op where there is only one device."""
        return contextlib.nullcontext()

    def synchronize(self) -> None:  # noqa: B027 - a no-op is right for synchronous backends
        """Wait until all queued work on the device has finished (a no-op on the CPU)."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming the library, its version and the device."""

    # -- random numbers on the device --------------------------------------------------------
    @abstractmethod
    def generator(self, seed: int | None) -> RandomGenerator:
        """A new random generator on this device, seeded with ``seed`` (None: fresh
        entropy). Each random layer owns one, so its draws do not depend on other models."""

    # -- helpers shared by all backends ------------------------------------------------------
    def dtype(self, name: str) -> Any:
        """The namespace's dtype object for a dtype name such as ``"float32"``."""
        return getattr(self.xp, name)

    def dtype_name(self, dtype: Any) -> str:
        """The name (``"float32"``, ``"int64"``, ...) of one of the namespace's dtypes."""
        for name in (*FLOAT_DTYPES, "float16", "int64", "int32", "int16", "int8", "uint8",
                     "bool"):
            if hasattr(self.xp, name) and dtype == getattr(self.xp, name):
                return name
        return str(dtype)

    def zeros(self, shape: tuple[int, ...], dtype: str) -> Any:
        """A zero-filled array on this device."""
        return self.xp.zeros(shape, dtype=self.dtype(dtype), device=self.native_device)

    # -- named kernels -----------------------------------------------------------------------
    #: The most entries of the one-hot block the generic ``scatter_add`` builds at once.
    SCATTER_ADD_BLOCK = 1 << 22

    def scatter_add(self, indices: Any, values: Any, num_rows: int) -> Any:
        """Sum the rows of ``values`` (n, d) into a new (num_rows, d) array of zeros by
        row index: ``out[k] = Σ_{j: indices[j] = k} values[j]`` (repeated indices add up;
        Embedding's backward). ``indices`` is a 1-D integer array of n entries in
        [0, num_rows); the caller checks the range.

        Generic version: one-hot rows times ``values``, ``out = onehot(indices)ᵀ values``,
        in blocks of at most ``SCATTER_ADD_BLOCK`` one-hot entries (O(n · num_rows · d)
        work: fine for a moderate vocabulary; backends specialise it).
        """
        xp = self.xp
        count, width = int(values.shape[0]), int(values.shape[1])
        rows = xp.reshape(xp.arange(num_rows, dtype=indices.dtype, device=self.native_device),
                          (num_rows, 1))
        total = xp.zeros((num_rows, width), dtype=values.dtype, device=self.native_device)
        block = max(1, self.SCATTER_ADD_BLOCK // num_rows)
        for start in range(0, count, block):
            stop = min(start + block, count)
            one_hot_t = xp.astype(rows == xp.reshape(indices[start:stop], (1, stop - start)),
                                  values.dtype)
            total = total + xp.matmul(one_hot_t, values[start:stop, :])
        return total

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device}>"

    # == training kernels: elementwise steps of layers and optimizers ========================
    # (the per-step hot spots of training; NumPy specialises them with ``out=`` buffers and
    # cheaper loops, CuPy runs these generic versions)

    def apply_mask(self, values: Any, mask: Any) -> Any:
        """A new array ``values ⊙ mask``: ``values`` where the boolean ``mask`` is True, 0
        elsewhere (ReLU's backward, dL/dx = G ⊙ [x > 0]). Specialisations may give NaN
        instead of 0 where ``values`` is NaN or infinite and ``mask`` is False.

        Generic version: ``where(mask, values, 0)``.
        """
        return self.xp.where(mask, values, self.xp.zeros((), dtype=values.dtype,
                                                         device=self.native_device))

    def momentum_step(self, value: Any, velocity: Any, grad: Any, learning_rate: float,
                      momentum: float, nesterov: bool = False) -> None:
        """One step of SGD with momentum μ and rate η, in place on ``value`` (w) and
        ``velocity`` (v), all three arrays of one shape::

            v ← μ v − η g
            w ← w + v              (classical, heavy ball)
            w ← w − η g + μ v      (Nesterov, with the new v)

        Generic version: in-place standard operators, in this order (specialisations do
        the same arithmetic, so their results are identical).
        """
        scaled = learning_rate * grad
        velocity *= momentum
        velocity -= scaled
        if nesterov:
            value -= scaled
            value += momentum * velocity
        else:
            value += velocity

    def adam_step(self, value: Any, m: Any, v: Any, grad: Any, beta_1: float, beta_2: float,
                  step_size: float, epsilon: float) -> None:
        """One Adam step, in place on ``value`` (w) and the moments ``m``, ``v``, all four
        arrays of one shape; ``step_size`` (η_t) and ``epsilon`` (ε̂) come bias-corrected
        from the optimizer::

            m ← β₁ m + (1 − β₁) g
            v ← β₂ v + (1 − β₂) g²
            w ← w − η_t · m / (√v + ε̂)

        Generic version: in-place standard operators, in this order (specialisations do
        the same arithmetic, so their results are identical).
        """
        m *= beta_1
        m += (1.0 - beta_1) * grad
        v *= beta_2
        v += (grad * grad) * (1.0 - beta_2)
        value -= (m / (self.xp.sqrt(v) + epsilon)) * step_size
