"""The CuPy backend: CUDA GPUs.

Install with ``pip install 'xpnn[cuda12]'`` or ``'xpnn[cuda13]'`` (matching the driver's CUDA
major version); the ``[ctk]`` extra of CuPy brings the CUDA runtime and NVRTC from PyPI. Math
goes through ``array_api_compat.cupy``, because the raw ``cupy`` namespace is not Array API
compliant. Every public model entry point runs inside :meth:`CupyBackend.scope`, so ``cuda:1``
allocates and launches on GPU 1.

The training kernels (optimizer steps, ReLU's mask, the softmax cross-entropy gradient, max
pooling) are CUDA kernels of our own, whose sources live in :mod:`xpnn.backends.cuda_kernels`;
each source is compiled by NVRTC on its first use on a device (CuPy caches the binary on
disk). Element-wise kernels run over the arrays' memory, so they need arrays laid out alike
and densely (C order, or any one axis order as in channels-last storage); for any other
layout or dtype they fall back to the generic version of :class:`~xpnn.backends.base.Backend`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
from xpnn.backends import cuda_kernels, layout, strided
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
        self._modules: dict[str, Any] = {}  # source name -> cupy.RawModule
        self._functions: dict[str, Any] = {}  # kernel name -> its RawKernel

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

    def device_collectives(self, communicator: Any) -> Any | None:
        """NCCL sums over the ranks of ``communicator`` when every rank can load NCCL
        (:mod:`xpnn.backends.nccl`), else None: arrays are then staged through the host."""
        from xpnn.backends import nccl

        return nccl.NcclCollectives.create(self._cupy, communicator, self.native_device)

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
        (no copy; see :mod:`xpnn.backends.strided`)."""
        with self.native_device:
            return strided.unfold(self._cupy, self._cupy.lib.stride_tricks.sliding_window_view,
                                  x, window, fill)

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

    # == training kernels (see the section of the same name in Backend) ======================

    def apply_mask(self, values: Any, mask: Any) -> Any:
        """``values ⊙ mask`` (see ``Backend.apply_mask``) by the ``apply_mask`` CUDA kernel:
        ``out = mask ? values : 0``, in a new array laid out as ``values``."""
        order = layout.common_dense_order(values, mask)
        if order is None or not layout.is_float(values) or mask.dtype != self._cupy.bool_:
            return super().apply_mask(values, mask)
        with self.native_device:
            out = layout.empty_in_order(self._cupy, values.shape, values.dtype, order)
            self._launch("apply_mask", _name("apply_mask", values), values.size,
                         values, mask, out, np.int64(values.size))
        return out

    def momentum_step(self, value: Any, velocity: Any, grad: Any, learning_rate: float,
                      momentum: float, nesterov: bool = False) -> None:
        """``Backend.momentum_step`` as one CUDA kernel (one read of w, v, g and one write of
        w, v per entry)."""
        if not layout.same_float_layout(value, velocity, grad):
            super().momentum_step(value, velocity, grad, learning_rate, momentum, nesterov)
            return
        cast = value.dtype.type
        with self.native_device:
            self._launch("optimizers", _name("momentum_step", value), value.size, value,
                         velocity, grad, cast(learning_rate), cast(momentum),
                         np.int32(nesterov), np.int64(value.size))

    def adam_step(self, value: Any, m: Any, v: Any, grad: Any, beta_1: float, beta_2: float,
                  step_size: float, epsilon: float, decoupled_decay: float = 0.0) -> None:
        """``Backend.adam_step`` (AdamW's decay included) as one CUDA kernel."""
        if not layout.same_float_layout(value, m, v, grad):
            super().adam_step(value, m, v, grad, beta_1, beta_2, step_size, epsilon,
                              decoupled_decay)
            return
        cast = value.dtype.type
        with self.native_device:
            self._launch("optimizers", _name("adam_step", value), value.size, value, m, v,
                         grad, cast(beta_1), cast(1.0 - beta_1), cast(beta_2),
                         cast(1.0 - beta_2), cast(step_size), cast(epsilon),
                         cast(1.0 - decoupled_decay), np.int64(value.size))

    def rmsprop_step(self, value: Any, mean_square: Any, grad: Any, learning_rate: float,
                     rho: float, epsilon: float) -> None:
        """``Backend.rmsprop_step`` as one CUDA kernel."""
        if not layout.same_float_layout(value, mean_square, grad):
            super().rmsprop_step(value, mean_square, grad, learning_rate, rho, epsilon)
            return
        cast = value.dtype.type
        with self.native_device:
            self._launch("optimizers", _name("rmsprop_step", value), value.size, value,
                         mean_square, grad, cast(learning_rate), cast(rho), cast(1.0 - rho),
                         cast(epsilon), np.int64(value.size))

    def adagrad_step(self, value: Any, sum_squares: Any, grad: Any, learning_rate: float,
                     epsilon: float) -> None:
        """``Backend.adagrad_step`` as one CUDA kernel."""
        if not layout.same_float_layout(value, sum_squares, grad):
            super().adagrad_step(value, sum_squares, grad, learning_rate, epsilon)
            return
        cast = value.dtype.type
        with self.native_device:
            self._launch("optimizers", _name("adagrad_step", value), value.size, value,
                         sum_squares, grad, cast(learning_rate), cast(epsilon),
                         np.int64(value.size))

    def softmax_cross_entropy_grad(self, log_probs: Any, target: Any, count: Any,
                                   ignore_index: int | None = None) -> Any:
        """(exp(log_probs) − y) / M (see ``Backend.softmax_cross_entropy_grad``) as one CUDA
        kernel over C-contiguous log-probabilities; M is read on the device when it is a
        device scalar (no synchronisation)."""
        cupy = self._cupy
        integral = target.dtype.kind in "iu"
        if (not layout.is_float(log_probs) or not log_probs.flags.c_contiguous or log_probs.ndim < 1
                or not (integral or target.dtype == log_probs.dtype)
                or (isinstance(count, cupy.ndarray) and count.ndim != 0)):
            return super().softmax_cross_entropy_grad(log_probs, target, count, ignore_index)
        cast = log_probs.dtype.type
        with self.native_device:
            if isinstance(count, cupy.ndarray):  # the kernel reads it: no copy to the host
                value, pointer = cast(0), count.astype(log_probs.dtype, copy=False)
            else:
                value, pointer = cast(count), np.uintp(0)  # a null pointer: use the value
            out = cupy.empty(log_probs.shape, dtype=log_probs.dtype)
            if integral:
                labels = cupy.ascontiguousarray(target, dtype=cupy.int64)
                classes = log_probs.shape[-1]
                self._launch("softmax_cross_entropy",
                             _name("softmax_cross_entropy_grad_labels", log_probs),
                             log_probs.size, log_probs, labels, value, pointer,
                             np.int64(0 if ignore_index is None else ignore_index),
                             np.int32(ignore_index is not None), out,
                             np.int64(log_probs.size // max(classes, 1)), np.int64(classes))
            else:
                self._launch("softmax_cross_entropy",
                             _name("softmax_cross_entropy_grad_rows", log_probs),
                             log_probs.size, log_probs, cupy.ascontiguousarray(target), value,
                             pointer, out, np.int64(log_probs.size))
        return out

    def max_pool(self, x: Any, window: Window) -> tuple[Any, Any]:
        """Max pooling (see ``Backend.max_pool``) by the ``max_pool`` CUDA kernel, one
        thread per output, on inputs of any strides. The outputs are stored channels-last
        when ``x`` is (as inside a network), else in C order; ``winner`` is int8 for windows
        of at most 127 taps, else int32."""
        if not layout.is_float(x) or layout.element_strides(x) is None:
            return super().max_pool(x, window)
        cupy = self._cupy
        n, c, height, width = (int(size) for size in x.shape)
        out_h, out_w = window.output_size(height, width)
        area = window.size[0] * window.size[1]
        index_dtype = "int8" if area <= 127 else "int32"
        channels_last = _is_channels_last(x)
        order = (0, 2, 3, 1) if channels_last else (0, 1, 2, 3)
        with self.native_device:
            y = layout.empty_in_order(cupy, (n, c, out_h, out_w), x.dtype, order)
            winner = layout.empty_in_order(cupy, (n, c, out_h, out_w), np.dtype(index_dtype), order)
            self._launch("max_pool", _name("max_pool", x, index_dtype), y.size, x, y, winner,
                         *_geometry(x.shape, (out_h, out_w), window),
                         *layout.element_strides(x), *layout.element_strides(y),
                         np.int32(channels_last))
        return y, winner

    def max_pool_backward(self, grad_output: Any, winner: Any,
                          input_shape: tuple[int, int, int, int], window: Window) -> Any:
        """Max pooling's dL/dx (see ``Backend.max_pool_backward``) by the
        ``max_pool_backward`` CUDA kernel: one thread per input entry gathers the gradients
        of the windows it won, in tap order (no atomic adds); the result is stored
        channels-last."""
        cupy = self._cupy
        if (not layout.is_float(grad_output) or layout.element_strides(grad_output) is None
                or winner.dtype.kind not in "iu"):
            return super().max_pool_backward(grad_output, winner, input_shape, window)
        with self.native_device:
            if winner.dtype.name not in cuda_kernels.INDEX_SUFFIX or (
                    layout.element_strides(winner) is None):
                winner = winner.astype(cupy.int32)
            out = layout.empty_in_order(cupy, input_shape, grad_output.dtype, (0, 2, 3, 1))
            self._launch("max_pool", _name("max_pool_backward", grad_output,
                                           winner.dtype.name),
                         out.size, grad_output, winner, out,
                         *_geometry(input_shape, grad_output.shape[2:], window),
                         *layout.element_strides(grad_output), *layout.element_strides(winner),
                         *layout.element_strides(out), np.int32(1))
        return out

    def _launch(self, source: str, kernel: str, count: int, *args: Any) -> None:
        """Run ``kernel`` of ``source`` over ``count`` entries (nothing when ``count`` is
        0), compiling the source on its first use (inside ``with self.native_device``)."""
        if count == 0:
            return
        function = self._functions.get(kernel)
        if function is None:
            module = self._modules.get(source)
            if module is None:
                module = self._modules[source] = self._cupy.RawModule(
                    code=cuda_kernels.SOURCES[source], options=cuda_kernels.NVRTC_OPTIONS)
            function = self._functions[kernel] = module.get_function(kernel)
        function((cuda_kernels.blocks_for(count),), (cuda_kernels.THREADS_PER_BLOCK,), args)


def _name(base: str, array: Any, index_dtype: str | None = None) -> str:
    return cuda_kernels.kernel_name(base, array.dtype.name, index_dtype)


def _is_channels_last(x: Any) -> bool:
    """Whether the (N, C, H, W) array ``x`` steps through channels faster than through
    columns (channels-last storage, as inside a network)."""
    return x.shape[1] > 1 and abs(x.strides[1]) < abs(x.strides[3])


def _geometry(input_shape: tuple[int, ...], output_size: tuple[int, ...],
              window: Window) -> tuple[Any, ...]:
    """The max-pooling kernels' geometry arguments: n, c, height, width, out_h, out_w
    (int64), then k_h, k_w, s_h, s_w, d_h, d_w, top, left (int32)."""
    (top, _), (left, _) = window.padding
    sizes = (*input_shape, *output_size)
    small = (*window.size, *window.stride, *window.dilation, top, left)
    return (*(np.int64(size) for size in sizes), *(np.int32(value) for value in small))


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
