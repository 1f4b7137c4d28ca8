"""The NumPy backend: CPU, and the reference every other backend is tested against."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from xpnn.backends import fused, layout, memory, strided
from xpnn.backends.base import Backend, Device, HostRandomGenerator, Window, erf_polynomials


class NumpyBackend(Backend):
    """CPU arrays: ``numpy.ndarray``, with NumPy itself as the namespace (NumPy >= 2.1
    implements the Array API standard in its main namespace; the ``array_api_compat`` wrapper
    would add a few microseconds per call)."""

    name = "numpy"
    host_memory = True
    #: Arrays with fewer entries take the NumPy versions of the kernels even when the fused
    #: kernels are on: below this a Numba call with its layout checks (5-7 µs) costs more
    #: than the few NumPy passes it saves. Measured per call, NumPy against fused: the
    #: momentum update 4.3 against 5.7 µs on 8 × 16 float32, 48 against 25 µs on 128 ×
    #: 512; ReLU 2.9 against 7.7 µs and 53 against 17 µs.
    FUSED_FROM = 1 << 12

    def __init__(self) -> None:
        self.xp = np
        self.device = Device("cpu")
        self.native_device = "cpu"
        self._local = threading.local()  # per-thread scratch buffers of the kernels
        memory.keep_freed_memory()  # steps reuse freed memory instead of faulting it back in
        #: Whether the fused, threaded kernels of :mod:`xpnn.backends.fused` run (on the
        #: BLAS's thread count): on unless ``XPNN_FAST_KERNELS=0`` or Numba is missing.
        #: Off, every kernel is a NumPy version (one core, as before them). Either way the
        #: results are the same bits. ``XPNN_FAST_KERNELS=all`` runs them on arrays of any
        #: size (``FUSED_FROM = 0``), for the test lane that checks them in every layer.
        switch = os.environ.get("XPNN_FAST_KERNELS", "1").strip().lower()
        self.fast_kernels = fused.UNAVAILABLE is None and switch != "0"
        if switch == "all":
            self.FUSED_FROM = 0

    def asarray(self, host_array: Any, dtype: str | None = None) -> np.ndarray:
        """Copy a host array to this device, cast to ``dtype`` on the host."""
        # No copy when the host array already has the right dtype and layout: it *is* on
        # this device, and layers never write into their inputs.
        return np.asarray(host_array, dtype=dtype, order="C")

    def to_device(self, host_array: Any, dtype: str | None = None) -> np.ndarray:
        """A new C-contiguous array (a copy even when ``host_array`` needs no cast)."""
        return np.array(host_array, dtype=dtype, order="C", copy=True)

    def take_rows(self, data: Any, indices: np.ndarray | slice) -> np.ndarray:
        """Rows ``indices`` of a host array, contiguous (a copy for an index array; the data
        itself for ``slice(None)``, which layers never write into)."""
        return np.ascontiguousarray(data[indices])

    def to_host(self, array: Any) -> np.ndarray:
        """Copy a device array to a NumPy array.

        A real copy: parameters are updated in place, so a view would change under the caller.
        """
        return np.array(array, copy=True)

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend on its device."""
        return isinstance(array, np.ndarray)

    def describe(self) -> str:
        """Library, version and device in one line, and whether the fused kernels run
        (on how many threads)."""
        if self.fast_kernels:
            kernels = fused.THREADS.describe()
        else:
            kernels = "fused kernels off" + (f" ({fused.UNAVAILABLE})" if fused.UNAVAILABLE
                                             else "")
        return f"numpy {np.__version__} on cpu, {kernels}"

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

    def unfold_rows(self, x: Any, window: Window) -> np.ndarray:
        """The convolution's rows (see ``Backend.unfold_rows``): the fused kernels copy the
        strided windows image by image on the BLAS's threads; else NumPy's reshape copies
        them on one."""
        n, c, height, width = x.shape
        out_h, out_w = window.output_size(height, width)
        shape = (n, out_h, out_w, *window.size, c)
        if not self._fused(math.prod(shape), x):
            return self.unfold(x, window).reshape(n * out_h * out_w, -1)
        gathered = np.empty(shape, dtype=x.dtype)
        padded = strided.pad(np, x, window, 0.0).transpose(0, 2, 3, 1)
        (s_h, s_w), (d_h, d_w) = window.stride, window.dilation
        # few channels, no dilation along the width: copy each window row as one run
        # (measured: 1 channel 0.7 against 1.1 ms; 32 channels, runs slower, 2.5 against
        # 1.0 ms, so many channels keep the copy per tap)
        if c < 8 and d_w == 1 and padded.flags.c_contiguous:
            fused.gather_runs(gathered.size, padded.reshape(n, padded.shape[1], -1),
                              gathered.reshape(*shape[:4], -1), s_h, s_w * c, d_h)
        else:
            fused.gather_windows(gathered.size, padded, gathered, s_h, s_w, d_h, d_w)
        return gathered.reshape(n * out_h * out_w, -1)

    def max_pool(self, x: Any, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Max pooling (see ``Backend.max_pool``): window by window in one fused pass split
        over the images, outputs stored channels-last; else tap by tap over strided views
        (:func:`strided.max_pool`). The same values and winners either way."""
        if not self._fused(x.size, x):
            return strided.max_pool(np, x, window)
        n, c, height, width = x.shape
        out_h, out_w = window.output_size(height, width)
        padded = strided.pad(np, x, window, -math.inf)
        area = window.size[0] * window.size[1]
        taps = np.arange(area, dtype=np.int8 if area <= 127 else np.int64)
        best = np.empty((n, out_h, out_w, c), dtype=x.dtype)
        winner = np.empty((n, out_h, out_w, c), dtype=taps.dtype)
        fused.max_pool(best.size, padded.transpose(0, 2, 3, 1), best, winner, taps, window.size[1],
                       *window.stride, *window.dilation)
        return best.transpose(0, 3, 1, 2), winner.transpose(0, 3, 1, 2)

    def max_pool_backward(self, grad_output: Any, winner: Any,
                          input_shape: tuple[int, int, int, int], window: Window) -> np.ndarray:
        """Max pooling's dL/dx (see ``Backend.max_pool_backward``): tap by tap, in one fused
        kernel split over the images, or in NumPy (:func:`strided.max_pool_backward`)."""
        if not self._fused(grad_output.size, grad_output):
            return strided.max_pool_backward(np, grad_output, winner, input_shape, window)
        height, width = input_shape[2:]
        total = strided.zeros(np, input_shape, window, grad_output.dtype)
        overlapping = any(stride < span for stride, span in
                          zip(window.stride, window.span, strict=True))
        # contiguous (N, H, W, C) operands: the loops then vectorise over the channels (the
        # gradient of a padded convolution input is a strided view: 4.5 ms against 0.85 ms
        # for (64, 32, 14, 14), more than the copy costs)
        fused.max_pool_backward(grad_output.size,
                                np.ascontiguousarray(grad_output.transpose(0, 2, 3, 1)),
                                np.ascontiguousarray(winner.transpose(0, 2, 3, 1)),
                                total.transpose(0, 2, 3, 1), *_geometry(window), overlapping)
        return total[window.interior(height, width)]

    def fold_product(self, rows: Any, taps: Any, input_shape: tuple[int, int, int, int],
                     window: Window) -> np.ndarray:
        """Convolution's dL/dx (see ``Backend.fold_product``) tap by tap: one thin product
        per tap added in place, the windows never stored; the adds split over the images
        by a fused kernel when it runs."""
        if not self._fused(rows.size, rows):
            return strided.fold_product(np, rows, taps, input_shape, window)
        return strided.fold_product(np, rows, taps, input_shape, window, add=_fused_add)

    # == training kernels (see the section of the same name in Backend) ======================

    def relu(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ReLU's ``(y, mask)`` (see ``Backend.relu``): one fused pass writing both, laid out
        as ``x``; else the generic ``maximum`` and comparison."""
        order = self._fused_order(x)
        if order is None:
            return Backend.relu(self, x)
        y = _empty(x.shape, x.dtype, order)
        mask = _empty(x.shape, np.bool_, order)
        fused.relu(x.size, _flat(x, order), _flat(y, order), _flat(mask, order))
        return y, mask

    def apply_mask(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``values ⊙ mask``: the fused ``where`` when the two share a layout; else one
        multiplication with the boolean mask: NumPy's ``where`` with a random mask
        mispredicts a branch per entry and was measured ten times slower (NumPy 2.4,
        128 × 512 float32: 313 µs against 23 µs)."""
        order = self._fused_order(values, mask)
        if order is None or mask.dtype != np.bool_:
            return np.multiply(values, mask)
        out = _empty(values.shape, values.dtype, order)
        fused.apply_mask(values.size, _flat(values, order), _flat(mask, order), _flat(out, order))
        return out

    def add_bias(self, z: np.ndarray, bias: np.ndarray) -> None:
        """``z += bias`` (see ``Backend.add_bias``), rows split over the threads when the
        fused kernels run."""
        if (self._fused(z.size, z) and z.ndim == 2 and z.flags.c_contiguous
                and bias.dtype == z.dtype):
            fused.add_bias(z.size, z, bias)
        else:
            z += bias

    #: Bytes per array and block of the blocked kernels below: one block of each array (and
    #: of the scratch) stays in the CPU caches from one pass to the next, so an update of
    #: several passes reads and writes memory about once (measured on this project's 2-core
    #: CPU, 1 MiB L2: 128 Ki float32 per block beat 16-64 Ki).
    BLOCK_BYTES = 1 << 19
    #: Arrays with fewer entries take the generic kernels: their temporaries come from the
    #: allocator's caches and cost less than the bookkeeping of blocks. From 64 Ki float32
    #: on, blocks win: Adam's five temporaries are slow (glibc's malloc hands the freed
    #: memory back to the OS and faults it in again on every call; with trimming switched
    #: off the generic step is as fast as the blocked one), and inside training, where the
    #: matrix products evict the optimizer's arrays from the caches, blocked momentum reads
    #: and writes memory once instead of about twice. Measured here: blocked Adam 3x faster
    #: at 64 Ki entries, 1.1x slower at 32 Ki; blocked momentum alone as fast as the generic
    #: kernel at 64-256 Ki and 1.3x faster at 1 Mi, and in the batch-32 MLP's training
    #: (single-threaded CPU time) 1.075x -> 1.04x hand NumPy.
    BLOCKED_FROM = 1 << 16

    def momentum_step(self, value: np.ndarray, velocity: np.ndarray, grad: np.ndarray,
                      learning_rate: float, momentum: float, nesterov: bool = False) -> None:
        """``Backend.momentum_step`` in one fused pass; without the fused kernels, block by
        block with one scratch buffer for η g, for arrays of ``BLOCKED_FROM`` entries or more
        (10 M float32 parameters: 1.5x faster than the generic version)."""
        if (order := self._fused_order(value, velocity, grad)) is not None:
            cast = value.dtype.type
            fused.momentum_step(value.size, *_flat_all(order, value, velocity, grad),
                                cast(learning_rate), cast(momentum), nesterov)
            return
        if value.size < self.BLOCKED_FROM:
            Backend.momentum_step(self, value, velocity, grad, learning_rate, momentum,
                                  nesterov)
            return
        for w, v, g, scaled in self._blocks(value, velocity, grad):
            np.multiply(g, learning_rate, out=scaled)
            v *= momentum
            v -= scaled
            if nesterov:
                w -= scaled
                np.multiply(v, momentum, out=scaled)
                w += scaled
            else:
                w += v

    def adam_step(self, value: np.ndarray, m: np.ndarray, v: np.ndarray, grad: np.ndarray,
                  beta_1: float, beta_2: float, step_size: float, epsilon: float,
                  decoupled_decay: float = 0.0) -> None:
        """``Backend.adam_step`` in one fused pass; without the fused kernels, block by
        block with one scratch buffer, for arrays of ``BLOCKED_FROM`` entries or more (10 M
        float32 parameters: 2x faster than the generic version; 0.67 M in the benchmark
        MLP's shapes: 1.7x)."""
        if (order := self._fused_order(value, m, v, grad)) is not None:
            cast = value.dtype.type
            fused.adam_step(value.size, *_flat_all(order, value, m, v, grad),
                            cast(1.0 - decoupled_decay), cast(beta_1), cast(1.0 - beta_1),
                            cast(beta_2), cast(1.0 - beta_2), cast(step_size), cast(epsilon))
            return
        if value.size < self.BLOCKED_FROM:
            Backend.adam_step(self, value, m, v, grad, beta_1, beta_2, step_size, epsilon,
                              decoupled_decay)
            return
        for w, m_block, v_block, g, scratch in self._blocks(value, m, v, grad):
            if decoupled_decay:
                w *= 1.0 - decoupled_decay
            m_block *= beta_1
            np.multiply(g, 1.0 - beta_1, out=scratch)
            m_block += scratch
            v_block *= beta_2
            np.multiply(g, g, out=scratch)
            scratch *= 1.0 - beta_2
            v_block += scratch
            np.sqrt(v_block, out=scratch)
            scratch += epsilon
            np.divide(m_block, scratch, out=scratch)
            scratch *= step_size
            w -= scratch

    def rmsprop_step(self, value: np.ndarray, mean_square: np.ndarray, grad: np.ndarray,
                     learning_rate: float, rho: float, epsilon: float) -> None:
        """``Backend.rmsprop_step`` in one fused pass, else the generic version."""
        if (order := self._fused_order(value, mean_square, grad)) is None:
            Backend.rmsprop_step(self, value, mean_square, grad, learning_rate, rho, epsilon)
            return
        cast = value.dtype.type
        fused.rmsprop_step(value.size, *_flat_all(order, value, mean_square, grad),
                           cast(learning_rate), cast(rho), cast(1.0 - rho), cast(epsilon))

    def adagrad_step(self, value: np.ndarray, sum_squares: np.ndarray, grad: np.ndarray,
                     learning_rate: float, epsilon: float) -> None:
        """``Backend.adagrad_step`` in one fused pass, else the generic version."""
        if (order := self._fused_order(value, sum_squares, grad)) is None:
            Backend.adagrad_step(self, value, sum_squares, grad, learning_rate, epsilon)
            return
        cast = value.dtype.type
        fused.adagrad_step(value.size, *_flat_all(order, value, sum_squares, grad),
                           cast(learning_rate), cast(epsilon))

    def _fused(self, size: int, array: np.ndarray) -> bool:
        """Whether a fused kernel should run on ``size`` entries of ``array``'s dtype."""
        return size >= self.FUSED_FROM and self.fast_kernels and layout.is_float(array)

    def _fused_order(self, *arrays: np.ndarray) -> tuple[int, ...] | None:
        """The memory order an element-wise fused kernel runs ``arrays`` in (one shape,
        one dense layout, the first array of a floating dtype and the others of its dtype
        or boolean), or None when the NumPy version should run. C-contiguous arrays take
        a short path (C_ORDER): the general layout check costs a few µs, as much as the
        kernel on a small array."""
        first = arrays[0]
        if not self._fused(first.size, first) or any(
                array.dtype not in (first.dtype, np.bool_) for array in arrays):
            return None
        if all(array.flags.c_contiguous and array.shape == first.shape for array in arrays):
            return C_ORDER
        return layout.common_dense_order(*arrays)

    def _blocks(self, *arrays: np.ndarray) -> Iterator[list[np.ndarray]]:
        """Matching blocks of arrays of one shape, each list ending with a scratch block of
        the same size and the first array's dtype. Blocks are flat slices of C-contiguous
        arrays (views: writes reach the arrays); other layouts come as one whole block."""
        first = arrays[0]
        if not all(array.flags.c_contiguous for array in arrays):
            yield [*arrays, np.empty_like(first)]
            return
        flat = [array.reshape(-1) for array in arrays]
        size, step = first.size, self.BLOCK_BYTES // first.itemsize
        scratch = self._scratch(min(size, step), first.dtype)
        for start in range(0, size, step):
            stop = min(start + step, size)
            yield [*(array[start:stop] for array in flat), scratch[:stop - start]]

    def _scratch(self, size: int, dtype: np.dtype) -> np.ndarray:
        """A flat scratch array of ``size`` entries, reused between kernel calls (one per
        thread and dtype, grown when needed). Not state: its contents mean nothing between
        calls."""
        buffers = self._local.__dict__.setdefault("scratch", {})
        buffer = buffers.get(dtype)
        if buffer is None or buffer.size < size:
            buffer = buffers[dtype] = np.empty(size, dtype)
        return buffer[:size]

    # == attention kernels (see the section of the same name in Backend) ===================

    def erf(self, x: Any) -> np.ndarray:
        """``Backend.erf`` by the same polynomials, evaluated in place (Horner's rule with
        ``*=`` and ``+=`` on one buffer per polynomial): about half the generic version's
        time, which allocates a new array per operation."""
        small, large, cutoff = erf_polynomials(self.dtype_name(x.dtype))
        magnitude = np.abs(x)
        inner = np.minimum(magnitude, 2.0)
        np.multiply(inner, inner, out=inner)
        inner -= 2.0
        inner *= 0.5
        inner = _horner_in_place(small, inner)
        inner *= x
        tail = np.clip(magnitude, 2.0, cutoff)
        half = (cutoff - 2.0) * 0.5
        decay = np.multiply(tail, tail)
        np.negative(decay, out=decay)
        np.exp(decay, out=decay)
        tail -= 2.0 + half
        tail *= 1.0 / half
        tail = _horner_in_place(large, tail)
        tail *= decay
        np.subtract(1.0, tail, out=tail)
        tail[magnitude >= cutoff] = 1.0
        np.copysign(tail, x, out=tail)
        return np.where(magnitude < 2.0, inner, tail)

    def attention(self, q: Any, k: Any, v: Any, scale: float, mask: Any = None,
                  keep: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``Backend.attention`` with the scores computed in place: scale, mask, shift, exp
        and normalise one (…, T_q, T_k) array, no temporaries of its size (the generic
        version makes six)."""
        scores = np.matmul(q, np.swapaxes(k, -1, -2))
        scores *= scale
        if mask is not None:
            np.copyto(scores, -math.inf, where=np.logical_not(mask))
        row_max = scores.max(axis=-1, keepdims=True)
        if mask is not None:  # a fully masked row: shift by 0, so e^{−∞} = 0 everywhere
            row_max[row_max == -math.inf] = 0.0
        scores -= row_max
        np.exp(scores, out=scores)
        total = scores.sum(axis=-1, keepdims=True)
        if mask is not None:
            total[total == 0.0] = 1.0
        scores /= total
        dropped = scores if keep is None else scores * keep
        return np.matmul(dropped, v), scores

    def attention_backward(self, grad_output: Any, q: Any, k: Any, v: Any, weights: Any,
                           scale: float, keep: Any = None, grad_weights: Any = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Backend.attention_backward`` with dL/dA turned into dL/dS in place, and the
        scale applied to the (…, T, d) results rather than the (…, T_q, T_k) scores."""
        dropped = weights if keep is None else weights * keep
        grad_v = np.matmul(np.swapaxes(dropped, -1, -2), grad_output)
        grad_scores = np.matmul(grad_output, np.swapaxes(v, -1, -2))
        if keep is not None:
            grad_scores *= keep
        if grad_weights is not None:
            grad_scores += grad_weights
        row_dot = np.einsum("...ij,...ij->...i", grad_scores, weights)[..., None]
        grad_scores -= row_dot
        grad_scores *= weights
        grad_q = np.matmul(grad_scores, k)
        grad_q *= scale
        grad_k = np.matmul(np.swapaxes(grad_scores, -1, -2), q)
        grad_k *= scale
        return grad_q, grad_k, grad_v


#: The memory order of C-contiguous arrays, whatever their rank: no transpose.
C_ORDER = ()


def _flat(array: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """The memory of a dense ``array`` as a flat view, its axes taken in ``order``."""
    return (array if order == C_ORDER else array.transpose(order)).reshape(-1)


def _empty(shape: tuple[int, ...], dtype: Any, order: tuple[int, ...]) -> np.ndarray:
    """An uninitialised array of ``shape`` stored in the memory ``order``."""
    if order == C_ORDER:
        return np.empty(shape, dtype=dtype)
    return layout.empty_in_order(np, shape, dtype, order)


def _flat_all(order: tuple[int, ...], *arrays: np.ndarray) -> list[np.ndarray]:
    """Flat views of arrays that share one dense layout, their axes taken in ``order``."""
    return [_flat(array, order) for array in arrays]


def _geometry(window: Window) -> tuple[int, ...]:
    """The pooling kernels' window arguments: k_h, k_w, s_h, s_w, d_h, d_w."""
    return (*window.size, *window.stride, *window.dilation)


def _fused_add(total: np.ndarray, product: np.ndarray, region: tuple[slice, ...]) -> None:
    """total[region] += product, for the channels-last (N, C, H, W) views of
    :func:`strided.fold_product`; the kernel takes the whole of ``total`` and the region's
    start and step, so every operand is contiguous along the channels (a strided region
    view kept the loop from being vectorised)."""
    rows, columns = region[2:]
    fused.add_tap(product.size, total.transpose(0, 2, 3, 1), product.transpose(0, 2, 3, 1),
                  rows.start, rows.step, columns.start, columns.step)


def _horner_in_place(coefficients: tuple[float, ...], s: np.ndarray) -> np.ndarray:
    """Σ_n c_n sⁿ by Horner's rule in one new buffer (``s`` is left as it is)."""
    total = s * coefficients[-1]
    total += coefficients[-2]
    for c in reversed(coefficients[:-2]):
        total *= s
        total += c
    return total
