"""The backend interface every device implements.

A backend knows its array namespace ``xp`` (Array API standard, through ``array-api-compat``),
its device, how to move arrays between host and device, a seeded random generator on the
device, how to synchronise, and how to describe itself. Core code does all of its math with
``backend.xp``; what the standard lacks is a *named kernel* method here, written once with
standard functions, that a backend may specialise.
"""

from __future__ import annotations

import contextlib
import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

#: Floating dtypes a model may use.
FLOAT_DTYPES = ("float32", "float64")
#: The kinds of device a backend can serve.
DEVICE_TYPES = ("cpu", "cuda", "strict")


@dataclass(frozen=True)
class Device:
    """A device: ``type`` is ``"cpu"``, ``"cuda"`` or ``"strict"``; ``index`` the ordinal."""

    type: str
    index: int = 0

    def __post_init__(self) -> None:
        if self.type not in DEVICE_TYPES:
            raise ValueError(f"unknown device type {self.type!r}; expected one of {DEVICE_TYPES}")
        if self.index < 0 or (self.type != "cuda" and self.index != 0):
            raise ValueError(f"device {self.type!r} has no ordinal {self.index}")

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.type == "cuda" else self.type

    @classmethod
    def parse(cls, spec: str | Device) -> Device:
        """Parse ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"strict"`` (``"auto"`` is resolved
        by :func:`get_device`, not here)."""
        if isinstance(spec, Device):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"a device is a string like 'cpu' or 'cuda:0', got {spec!r}")
        text = spec.strip().lower()
        kind, colon, ordinal = text.partition(":")
        plain = not colon
        numbered = kind == "cuda" and ordinal.isascii() and ordinal.isdigit()
        if kind in DEVICE_TYPES and (plain or numbered):
            return cls(kind, int(ordinal) if numbered else 0)
        raise ValueError(
            f"cannot parse device {spec!r}: expected 'cpu', 'cuda', 'cuda:N', 'strict' or 'auto'"
        )


@dataclass(frozen=True)
class Window:
    """The geometry of a 2-D sliding window over (N, C, H, W) arrays: convolution and
    pooling.

    ``size`` (k_h, k_w) taps spaced ``dilation`` (d_h, d_w) apart, moved by ``stride``
    (s_h, s_w) over the input padded by ``padding`` ((top, bottom), (left, right)). The
    window covers a span of d·(k − 1) + 1 pixels per axis, and the output has
    ⌊(in + pad_before + pad_after − span) / s⌋ + 1 positions per axis: output position
    (i, j), tap (p, q) reads padded pixel (i·s_h + p·d_h, j·s_w + q·d_w).
    """

    size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))

    @property
    def span(self) -> tuple[int, int]:
        """The extent d·(k − 1) + 1 of the dilated window along each axis."""
        return (self.dilation[0] * (self.size[0] - 1) + 1,
                self.dilation[1] * (self.size[1] - 1) + 1)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of the padded input."""
        (top, bottom), (left, right) = self.padding
        return height + top + bottom, width + left + right

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of the output for an input of (height, width); a size below
        1 means the window does not fit in the padded input."""
        padded, span = self.padded_size(height, width), self.span
        return ((padded[0] - span[0]) // self.stride[0] + 1,
                (padded[1] - span[1]) // self.stride[1] + 1)

    def interior(self, height: int, width: int) -> tuple[slice, ...]:
        """The index of the unpadded (height, width) input inside the padded (N, C, ·, ·)
        array: where padding writes the input, and what folding crops back out."""
        (top, _), (left, _) = self.padding
        return (slice(None), slice(None), slice(top, top + height), slice(left, left + width))

    def tap_regions(self, height: int, width: int) -> list[tuple[slice, ...]]:
        """One index per tap (p, q), in row-major order, selecting from the *padded*
        (N, C, ·, ·) array the pixel that tap reads in every window: an
        (N, C, H_out, W_out) strided region starting at (p·d_h, q·d_w), step s."""
        (k_h, k_w), (s_h, s_w), (d_h, d_w) = self.size, self.stride, self.dilation
        out_h, out_w = self.output_size(height, width)
        return [(slice(None), slice(None), slice(p * d_h, p * d_h + s_h * (out_h - 1) + 1, s_h),
                 slice(q * d_w, q * d_w + s_w * (out_w - 1) + 1, s_w))
                for p in range(k_h) for q in range(k_w)]


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
    #: Whether the arrays are NumPy arrays in host memory, which MPI reads and writes in
    #: place (data-parallel training reduces them without a copy, see ``xpnn.distributed``).
    host_memory: ClassVar[bool] = False

    # -- transfers ---------------------------------------------------------------------------
    @abstractmethod
    def asarray(self, host_array: Any, dtype: str | None = None) -> Any:
        """A host (NumPy) array or Python sequence on this device: a copy, except on the
        NumPy backend, where an array of the right dtype and layout already *is* on the
        device and is returned as it is (inputs, which layers never write into).

        ``dtype`` is a name such as ``"float32"``; the cast happens on the host, so one host
        array gives bit-identical device arrays on every backend.
        """

    def to_device(self, host_array: Any, dtype: str | None = None) -> Any:
        """Like :meth:`asarray`, but always a new array that shares no memory with
        ``host_array``: for parameters and optimizer state, which are updated in place."""
        return self.asarray(host_array, dtype)

    def take_rows(self, data: Any, indices: np.ndarray | slice) -> Any:
        """Rows ``indices`` (a host integer array, or a slice) of ``data`` (a host array or an
        array of this device), as an array of this device: one mini-batch. Host rows are
        copied to the device; a device array is gathered in place (all of it for
        ``slice(None)``)."""
        if isinstance(data, np.ndarray) and not self.owns(data):
            return self.asarray(data[indices])
        if isinstance(indices, slice):
            return data if indices == slice(None) else data[indices, ...]
        return self.xp.take(data, self.asarray(indices), axis=0)

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

    def device_collectives(self, communicator: Any) -> Any | None:
        """Collectives that sum this device's arrays over the ranks of ``communicator`` (an
        ``xpnn.distributed.Communicator``) without a host copy: an object with
        ``allreduce(array) -> array``. None (the default) where the device has none; then
        ``xpnn.distributed`` stages each array through host memory. A collective call:
        every rank of the communicator calls it, and all get the same kind of answer."""
        return None

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

    def unfold(self, x: Any, window: Window, fill: float = 0.0) -> Any:
        """The windows of ``x`` (N, C, H, W), as an array of shape (N, H_out, W_out, k_h,
        k_w, C): ``out[n, i, j, p, q, c] = x_pad[n, c, i·s_h + p·d_h, j·s_w + q·d_w]``,
        where ``x_pad`` is ``x`` padded with ``fill`` (im2col: one row of the convolution's
        matrix product per output position once the last three axes are flattened).

        The channel axis comes last so that a row of C values is contiguous when ``x`` is
        stored channels-last (which the NumPy backend keeps inside a network). Generic
        version: one strided slice of the padded input per tap, stacked (k_h · k_w slices;
        no loop over the batch). The result may be a read-only view.
        """
        xp = self.xp
        n, c, height, width = (int(size) for size in x.shape)
        (k_h, k_w), (out_h, out_w) = window.size, window.output_size(height, width)
        padded = self._pad(x, window, fill)
        taps = [padded[region] for region in window.tap_regions(height, width)]
        stacked = xp.stack(taps, axis=0)  # (k_h·k_w, N, C, H_out, W_out)
        stacked = xp.reshape(stacked, (k_h, k_w, n, c, out_h, out_w))
        return xp.permute_dims(stacked, (2, 4, 5, 0, 1, 3))

    def unfold_rows(self, x: Any, window: Window) -> Any:
        """The windows of ``x`` (N, C, H, W) as the rows of a convolution's matrix product:
        a new (N·H_out·W_out, k_h·k_w·C) array, row (n, i, j), columns ordered (p, q, c) as
        :meth:`unfold`'s (im2col).

        Generic version: :meth:`unfold`, reshaped (a copy of the strided windows).
        """
        n, _, height, width = (int(size) for size in x.shape)
        out_h, out_w = window.output_size(height, width)
        return self.xp.reshape(self.unfold(x, window),
                               (n * out_h * out_w, window.size[0] * window.size[1]
                                * int(x.shape[1])))

    def fold(self, windows: Any, input_shape: tuple[int, int, int, int], window: Window) -> Any:
        """The adjoint of :meth:`unfold` (col2im): an (N, C, H, W) array in which every
        input pixel holds the sum of the window entries that read it (padding dropped):
        ``out[n, c, y, x] = Σ windows[n, i, j, p, q, c]`` over i·s_h + p·d_h = y + top,
        j·s_w + q·d_w = x + left. Convolution's dL/dx and pooling's backward.

        Generic version: one strided slice-add per tap into a zero padded array.
        """
        xp = self.xp
        n, c, height, width = input_shape
        total = xp.zeros((n, c, *window.padded_size(height, width)), dtype=windows.dtype,
                         device=self.native_device)
        by_tap = xp.permute_dims(windows, (3, 4, 0, 5, 1, 2))  # (k_h, k_w, N, C, H_out, W_out)
        for index, region in enumerate(window.tap_regions(height, width)):
            p, q = divmod(index, window.size[1])
            total[region] = total[region] + by_tap[p, q, :, :, :, :]
        return total[window.interior(height, width)]

    def fold_product(self, rows: Any, taps: Any, input_shape: tuple[int, int, int, int],
                     window: Window) -> Any:
        """:meth:`fold` of the windows ``rows`` · ``taps``: convolution's dL/dx without the
        windows as an array. ``rows`` is (N·H_out·W_out, F) (dL/dz, one row per output
        position), ``taps`` is (k_h, k_w, F, C) (the kernel, one F×C matrix per tap), and
        the result is ``fold(W)`` for ``W[n, i, j, p, q, c] = Σ_f rows[(n, i, j), f] ·
        taps[p, q, f, c]``.

        Generic version: exactly that, one (N·H_out·W_out, F) × (F, k_h·k_w·C) product, then
        :meth:`fold`.
        """
        xp = self.xp
        k_h, k_w, filters, channels = (int(n) for n in taps.shape)
        n, _, height, width = input_shape
        out_h, out_w = window.output_size(height, width)
        matrix = xp.reshape(xp.permute_dims(taps, (2, 0, 1, 3)), (filters, k_h * k_w * channels))
        windows = xp.reshape(xp.matmul(rows, matrix), (n, out_h, out_w, k_h, k_w, channels))
        return self.fold(windows, input_shape, window)

    def max_pool(self, x: Any, window: Window) -> tuple[Any, Any]:
        """Max pooling of ``x`` (N, C, H, W): ``y`` (N, C, H_out, W_out), the largest value of
        each window (padding at −∞), and ``winner``, the integer index (row-major, p·k_w + q)
        of the tap that holds it, the *first* such tap where several tie.

        Generic version: ``argmax`` and ``max`` over the unfolded windows.
        """
        xp = self.xp
        n, c, height, width = (int(size) for size in x.shape)
        out_h, out_w = window.output_size(height, width)
        area = window.size[0] * window.size[1]
        windows = xp.reshape(self.unfold(x, window, -math.inf), (n, out_h, out_w, area, c))
        winner = xp.argmax(windows, axis=3)  # argmax returns the first maximum
        return (xp.permute_dims(xp.max(windows, axis=3), (0, 3, 1, 2)),
                xp.permute_dims(winner, (0, 3, 1, 2)))

    def max_pool_backward(self, grad_output: Any, winner: Any,
                          input_shape: tuple[int, int, int, int], window: Window) -> Any:
        """dL/dx of max pooling: each output's gradient added at the input its window's
        ``winner`` tap (from :meth:`max_pool`) reads; zero elsewhere.

        Generic version: the gradient placed at the winning tap of each window, the other
        taps zero, then :meth:`fold`.
        """
        xp = self.xp
        n, c, out_h, out_w = (int(size) for size in grad_output.shape)
        area = window.size[0] * window.size[1]
        taps = xp.reshape(xp.arange(area, dtype=winner.dtype, device=self.native_device),
                          (1, 1, 1, area, 1))
        won = taps == xp.expand_dims(xp.permute_dims(winner, (0, 2, 3, 1)), axis=3)
        grad = xp.expand_dims(xp.permute_dims(grad_output, (0, 2, 3, 1)), axis=3)
        routed = xp.reshape(xp.where(won, grad, 0.0), (n, out_h, out_w, *window.size, c))
        return self.fold(routed, input_shape, window)

    def _pad(self, x: Any, window: Window, fill: float) -> Any:
        """``x`` (N, C, H, W) inside a border of ``fill`` given by ``window.padding``."""
        if window.padding == ((0, 0), (0, 0)):
            return x
        n, c, height, width = (int(size) for size in x.shape)
        padded = self.xp.full((n, c, *window.padded_size(height, width)), fill,
                              dtype=x.dtype, device=self.native_device)
        padded[window.interior(height, width)] = x
        return padded

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device}>"

    # == training kernels: elementwise steps of layers, losses and optimizers ================
    # (the per-step hot spots of training; NumPy specialises some of them with ``out=``
    # buffers and cheaper loops, CuPy runs every one as a CUDA kernel of its own,
    # ``backends/cuda_kernels.py``). The optimizer kernels update their arrays in place;
    # scalar arguments are Python floats, which every array library applies in the arrays'
    # dtype.

    def relu(self, x: Any) -> tuple[Any, Any]:
        """ReLU's forward: new arrays ``(y, mask)`` with y = max(x, 0) (NaN stays NaN) and
        the boolean mask [x > 0] that its backward (:meth:`apply_mask`) needs.

        Generic version: ``maximum(x, 0)`` and one comparison.
        """
        return self.xp.maximum(x, 0.0), x > 0

    def apply_mask(self, values: Any, mask: Any) -> Any:
        """A new array ``values ⊙ mask``: ``values`` where the boolean ``mask`` is True, 0
        elsewhere (ReLU's backward, dL/dx = G ⊙ [x > 0]). Specialisations may give NaN
        instead of 0 where ``values`` is NaN or infinite and ``mask`` is False.

        Generic version: ``where(mask, values, 0)``.
        """
        return self.xp.where(mask, values, self.xp.zeros((), dtype=values.dtype,
                                                         device=self.native_device))

    def add_bias(self, z: Any, bias: Any) -> None:
        """z ← z + b in place: ``bias`` (F,) added to every row of the fresh (rows, F)
        product ``z`` of a Dense or convolution layer.

        Generic version: ``z += bias``.
        """
        z += bias

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
                  step_size: float, epsilon: float, decoupled_decay: float = 0.0) -> None:
        """One Adam (or AdamW) step, in place on ``value`` (w) and the moments ``m``, ``v``,
        all four arrays of one shape; ``step_size`` (η_t) and ``epsilon`` (ε̂) come
        bias-corrected from the optimizer, ``decoupled_decay`` is AdamW's ηλ (0: Adam)::

            w ← w · (1 − ηλ)            (only when ηλ ≠ 0)
            m ← β₁ m + (1 − β₁) g
            v ← β₂ v + (1 − β₂) g²
            w ← w − η_t · m / (√v + ε̂)

        Generic version: in-place standard operators, in this order (specialisations do
        the same arithmetic, so their results are identical).
        """
        if decoupled_decay:
            value *= 1.0 - decoupled_decay
        m *= beta_1
        m += (1.0 - beta_1) * grad
        v *= beta_2
        v += (grad * grad) * (1.0 - beta_2)
        value -= (m / (self.xp.sqrt(v) + epsilon)) * step_size

    def rmsprop_step(self, value: Any, mean_square: Any, grad: Any, learning_rate: float,
                     rho: float, epsilon: float) -> None:
        """One RMSProp step with decay ρ and rate η, in place on ``value`` (w) and
        ``mean_square`` (h), all three arrays of one shape::

            h ← ρ h + (1 − ρ) g²
            w ← w − η g / (√h + ε)

        Generic version: in-place standard operators, in this order.
        """
        mean_square *= rho
        mean_square += (1.0 - rho) * (grad * grad)
        value -= learning_rate * grad / (self.xp.sqrt(mean_square) + epsilon)

    def adagrad_step(self, value: Any, sum_squares: Any, grad: Any, learning_rate: float,
                     epsilon: float) -> None:
        """One AdaGrad step with rate η, in place on ``value`` (w) and ``sum_squares`` (h),
        all three arrays of one shape::

            h ← h + g²
            w ← w − η g / (√h + ε)

        Generic version: in-place standard operators, in this order.
        """
        sum_squares += grad * grad
        value -= learning_rate * grad / (self.xp.sqrt(sum_squares) + epsilon)

    def softmax_cross_entropy_grad(self, log_probs: Any, target: Any, count: Any,
                                   ignore_index: int | None = None) -> Any:
        """The gradient of softmax cross-entropy with respect to the logits z, from the
        log-probabilities ``log_probs`` = log softmax(z) (rows along every axis but the
        last, K classes along the last), as a new array::

            dL/dz = (softmax(z) − y) / M = (exp(log_probs) − y) / M

        ``target`` is either integer class labels of shape ``log_probs.shape[:-1]`` (y the
        one-hot rows e_label) or float rows y of ``log_probs``' shape and dtype (one-hot or
        probabilities). ``count`` is M, a Python number or a 0-d array of ``log_probs``'
        dtype on this device. With integer labels and ``ignore_index``, rows whose label
        equals it get 0 (their label may lie outside [0, K)).

        Generic version: ``exp``, the one-hot rows by comparison with ``arange(K)``, one
        subtraction and one division, then ``where`` for the ignored rows.
        """
        xp = self.xp
        probs = xp.exp(log_probs)
        if not xp.isdtype(target.dtype, "integral"):
            return (probs - target) / count
        labels = xp.expand_dims(target, axis=-1)
        classes = xp.arange(log_probs.shape[-1], dtype=target.dtype, device=self.native_device)
        grad = (probs - xp.astype(labels == classes, log_probs.dtype)) / count
        if ignore_index is None:
            return grad
        return xp.where(labels != ignore_index, grad, 0.0)

    # == attention kernels: GELU's erf and scaled dot-product attention ====================

    def erf(self, x: Any) -> Any:
        """erf(x) = (2/√π) ∫₀ˣ e^{−t²} dt elementwise, in ``x``'s dtype (GELU's exact form);
        the Array API standard has no erf.

        Generic version: two polynomials (:func:`erf_polynomials`) and ``where``::

            |x| < 2:        erf(x) = x · P(x²)
            2 ≤ |x| < c:    erf(x) = sign(x) · (1 − e^{−x²} R(|x|))
            |x| ≥ c:        erf(x) = sign(x)     (erfc(c) is below the dtype's resolution)

        with P ≈ erf(√u)/√u on u ∈ [0, 4] and R ≈ erfc(x)·e^{x²} on [2, c], c = 6 in float64
        and 4 in float32; each argument is clipped to its polynomial's interval first, so no
        branch overflows. Error below 3e-15 in float64 (a few float32 ulps in float32).
        """
        xp = self.xp
        name = self.dtype_name(x.dtype)
        small, large, cutoff = erf_polynomials(name)
        magnitude = xp.abs(x)
        near = xp.minimum(magnitude, 2.0)
        inner = x * _horner(small, (near * near - 2.0) * 0.5)
        clipped = xp.clip(magnitude, 2.0, cutoff)
        half = (cutoff - 2.0) * 0.5
        tail = 1.0 - xp.exp(-clipped * clipped) * _horner(large, (clipped - (2.0 + half))
                                                          * (1.0 / half))
        outer = xp.where(magnitude >= cutoff, 1.0, tail)
        outer = xp.where(x < 0, -outer, outer)
        return xp.where(magnitude < 2.0, inner, outer)

    def attention(self, q: Any, k: Any, v: Any, scale: float, mask: Any = None,
                  keep: Any = None) -> tuple[Any, Any]:
        """Scaled dot-product attention over the last two axes, any leading (batch, head)
        axes: ``q`` (..., T_q, d_k), ``k`` (..., T_k, d_k), ``v`` (..., T_k, d_v)::

            S = s · Q Kᵀ                              s = ``scale`` (1/√d_k)
            A_ij = e^{S_ij − m_i} / Σ_{j'} e^{S_ij' − m_i}   over the allowed j (m_i: row max)
            O = (A ⊙ D) V                              D = ``keep`` (dropout), else 1

        ``mask``: booleans broadcastable to (..., T_q, T_k), True where query i may attend
        key j (None: everywhere); a row with no allowed key gets weights 0 (and output 0),
        not NaN. ``keep``: the scaled dropout mask m/(1 − p) of A's shape, or None. Returns
        ``(O, A)``; A (before dropout) is what :meth:`attention_backward` needs.

        Generic version: the formulas with standard functions, masked scores set to −∞
        before the row maximum.
        """
        xp = self.xp
        scores = xp.matmul(q, xp.matrix_transpose(k)) * scale
        if mask is not None:
            scores = xp.where(mask, scores, -math.inf)
        row_max = xp.max(scores, axis=-1, keepdims=True)
        if mask is not None:  # a fully masked row: shift by 0, so e^{−∞} = 0 everywhere
            row_max = xp.where(row_max == -math.inf, 0.0, row_max)
        exponentials = xp.exp(scores - row_max)
        total = xp.sum(exponentials, axis=-1, keepdims=True)
        if mask is not None:
            total = xp.where(total == 0.0, 1.0, total)
        weights = exponentials / total
        dropped = weights if keep is None else weights * keep
        return xp.matmul(dropped, v), weights

    def attention_backward(self, grad_output: Any, q: Any, k: Any, v: Any, weights: Any,
                           scale: float, keep: Any = None, grad_weights: Any = None
                           ) -> tuple[Any, Any, Any]:
        """dL/dQ, dL/dK, dL/dV of :meth:`attention`, given G = dL/dO, the weights A it
        returned, the same ``scale`` and ``keep``, and optionally dL/dA from elsewhere
        (``grad_weights``: the attention scores as an output of their own)::

            dL/dV = (A ⊙ D)ᵀ G
            dL/dA = (G Vᵀ) ⊙ D (+ grad_weights)
            dL/dS = A ⊙ (dL/dA − Σ_j dL/dA_ij A_ij)        (softmax's Jacobian, row by row)
            dL/dQ = s · dL/dS K        dL/dK = s · dL/dSᵀ Q

        Masked entries have A = 0, hence dL/dS = 0: no gradient flows through them.

        Generic version: these formulas with standard functions.
        """
        xp = self.xp
        dropped = weights if keep is None else weights * keep
        grad_v = xp.matmul(xp.matrix_transpose(dropped), grad_output)
        grad_weights_total = xp.matmul(grad_output, xp.matrix_transpose(v))
        if keep is not None:
            grad_weights_total = grad_weights_total * keep
        if grad_weights is not None:
            grad_weights_total = grad_weights_total + grad_weights
        row_dot = xp.sum(grad_weights_total * weights, axis=-1, keepdims=True)
        grad_scores = weights * (grad_weights_total - row_dot)
        grad_q = xp.matmul(grad_scores, k) * scale
        grad_k = xp.matmul(xp.matrix_transpose(grad_scores), q) * scale
        return grad_q, grad_k, grad_v


def _horner(coefficients: tuple[float, ...], s: Any) -> Any:
    """Σ_n c_n sⁿ by Horner's rule (``coefficients`` from the constant term up)."""
    total = coefficients[-1] * s + coefficients[-2]
    for c in reversed(coefficients[:-2]):
        total = total * s + c
    return total


@functools.cache
def erf_polynomials(dtype: str) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """The polynomials of the generic :meth:`Backend.erf` for ``dtype``, in powers of the
    variable mapped onto [−1, 1]: P(u) ≈ erf(√u)/√u for u ∈ [0, 4] with s = (u − 2)/2, and
    R(x) ≈ erfc(x)·e^{x²} for x ∈ [2, c] with s = (x − (2 + c)/2)/((c − 2)/2); and the
    cutoff c beyond which erf(x) = ±1 in ``dtype``.

    Computed once, on the host, by interpolating Python's ``math.erf`` / ``math.erfc`` at
    Chebyshev points (degrees 19 and 20 in float64, where they reach the interpolated
    functions' own accuracy, about 1e-15; 10 and 10 in float32, on [2, 4]) and converting to
    powers of s, which is well conditioned here (the coefficients stay below 1).
    """
    from numpy.polynomial import chebyshev

    double = dtype == "float64"
    cutoff = 6.0 if double else 4.0
    small_degree, large_degree = (19, 20) if double else (10, 10)
    erf, erfc = np.vectorize(math.erf), np.vectorize(math.erfc)

    def scaled_erf(s: np.ndarray) -> np.ndarray:  # erf(√u)/√u, u = 2s + 2 ∈ (0, 4]
        root = np.sqrt(2.0 * s + 2.0)
        return erf(root) / root

    centre, half = (2.0 + cutoff) / 2.0, (cutoff - 2.0) / 2.0

    def scaled_erfc(s: np.ndarray) -> np.ndarray:  # erfc(x) e^{x²}, x = centre + half·s
        x = centre + half * s
        return erfc(x) * np.exp(x * x)

    # Chebyshev points of the first kind never touch s = −1 (u = 0), where erf(√u)/√u is 0/0
    small = chebyshev.cheb2poly(chebyshev.chebinterpolate(scaled_erf, small_degree))
    large = chebyshev.cheb2poly(chebyshev.chebinterpolate(scaled_erfc, large_degree))
    return tuple(map(float, small)), tuple(map(float, large)), cutoff
