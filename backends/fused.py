"""Fused, threaded element-wise kernels of the NumPy backend, compiled by Numba.

NumPy's element-wise loops run on one core and a chain of them streams memory once per
operation, writing a temporary each time. The kernels here do each step of training that
is element-wise — ReLU and its mask, the mask's product with a gradient, the bias add, the
optimizers' updates, the convolution's window gather and its fold, max pooling — in one
pass over memory, large arrays split across threads (``numba.prange``, OpenMP's threads
where ``libgomp`` is present; see :class:`Kernel` and :class:`Threads`). Each performs the
generic version's operations in the generic version's order, in the arrays' dtype
(scalars are cast to it first, as NumPy does with Python floats), with no fused
multiply-add (Numba leaves ``fastmath`` off), so the results are bit-identical to
:class:`~xpnn.backends.base.Backend`'s; ``tests/test_kernels.py`` and
``tests/test_conv.py`` check that.

Threads follow the BLAS: a kernel on ``Kernel.PARALLEL_FROM`` entries or more runs on as
many threads as NumPy's BLAS uses now (``threadpoolctl``'s count, so
``threadpool_limits`` and ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` apply), at most
Numba's own maximum (``NUMBA_NUM_THREADS``).

Compiled on first use per dtype and layout, cached on disk (``cache=True``). Without
Numba (not installed, or too old for this NumPy) :data:`UNAVAILABLE` says why and the
NumPy backend runs its NumPy versions.
"""

from __future__ import annotations

import os
import threading
import types
from typing import Any

import numpy as np

try:
    import numba
    from numba import prange
except ImportError as error:  # pragma: no cover - numba is a dependency; see UNAVAILABLE
    numba = None
    prange = range
    #: Why the fused kernels cannot run here, or None when they can.
    UNAVAILABLE: str | None = f"numba cannot be imported ({error})"
else:
    UNAVAILABLE = None


class Kernel:
    """A kernel compiled twice by Numba from one function, GIL-free: ``serial`` (one
    thread; ``prange`` is ``range``) and ``parallel`` (``prange`` split across Numba's
    threads). Calling it runs the parallel version on arrays of ``PARALLEL_FROM`` entries
    or more when the BLAS has several threads, else the serial one (without Numba, the
    plain Python function: the module still imports)."""

    #: Entries from which a kernel runs on several threads. Waking the threads costs
    #: 10-50 µs on this project's 2-core VM (more when another process holds a core), and
    #: threads that have just run compete with OpenBLAS's for the cores, so only kernels
    #: of a few hundred µs are split: measured for ReLU with another process busy, 64 Ki
    #: float32 took 25 µs on one thread and 70 µs on two, 1 Mi 356 against 226 µs.
    PARALLEL_FROM = 1 << 20

    def __init__(self, function: Any) -> None:
        self.__doc__, self.__name__ = function.__doc__, function.__name__
        if numba is None:  # pragma: no cover
            self.serial = self.parallel = function
            return
        # NumPy's error model: x/0 gives ±inf or NaN as in NumPy, not an exception (whose
        # check per division also kept the serial loops from being vectorised: 4x slower)
        self.serial = numba.njit(nogil=True, cache=True, error_model="numpy")(function)
        self.parallel = numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")(
            _renamed(function, f"{function.__qualname__}_parallel"))

    def __call__(self, size: int, *args: Any) -> None:
        """Run on ``args`` (``size``: the entries the kernel goes over)."""
        if size < self.PARALLEL_FROM or not THREADS.use_several():
            return self.serial(*args)
        return self.parallel(*args)


def _renamed(function: Any, qualname: str) -> Any:
    """A copy of ``function`` under another qualified name. Numba's disk cache names its
    files by the function's qualified name and line and does not tell a parallel
    compilation from a serial one: without a name of its own, the serial version loaded
    the parallel one's code from the cache (and ran it on threads that spin)."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)
    copy.__qualname__ = qualname
    return copy


class Threads:
    """The thread count of the parallel kernels: the BLAS's, read on every call (a C call
    through ``threadpoolctl``, about 1 µs) and handed to Numba when it changes (Numba's
    setting is per calling thread and costs about 9 µs).

    Numba's threads are started with OpenMP's passive wait policy unless the user set
    ``OMP_WAIT_POLICY``: waiting threads sleep instead of spinning. Spinning threads
    took a whole time slice (about 7 ms per kernel, against 70 µs passive) whenever
    another process held one of the two cores, as they fought OpenBLAS's own threads.
    The variable is set only while Numba loads its OpenMP layer and then restored. An
    OpenMP runtime that another library loaded first (PyTorch's ``libgomp``) is shared
    and keeps its own policy, spinning by default: then the kernels stay serial (an MLP
    step took 5x longer with its threads spinning beside OpenBLAS's), unless the user
    set ``OMP_WAIT_POLICY`` themselves."""

    def __init__(self) -> None:
        self._blas: Any = None
        self._local = threading.local()
        self._started = False
        #: Why the parallel versions never run in this process, or None.
        self.serial_only: str | None = None

    def count(self) -> int:
        """The BLAS's current thread count, at most Numba's maximum (1 without a BLAS that
        ``threadpoolctl`` knows)."""
        if self._blas is None:
            import threadpoolctl

            found = threadpoolctl.ThreadpoolController().select(user_api="blas")
            self._blas = found.lib_controllers[:1]
        if not self._blas:
            return 1
        return max(1, min(self._blas[0].num_threads, numba.config.NUMBA_NUM_THREADS))

    def use_several(self) -> bool:
        """Whether the parallel kernels should run now (the BLAS has several threads);
        if so, Numba's thread count in this thread is made the BLAS's."""
        wanted = self.count()
        if wanted == 1:
            return False
        if not self._started:
            self._start()
        if self.serial_only:
            return False
        if getattr(self._local, "numba_threads", None) != wanted:
            numba.set_num_threads(wanted)
            self._local.numba_threads = wanted
        return True

    def _start(self) -> None:
        """Start Numba's threads (see the class docstring for the wait policy)."""
        user_policy = os.environ.get("OMP_WAIT_POLICY")
        foreign = _openmp_loaded()
        if user_policy is None:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            numba.get_num_threads()  # loads the threading layer
        finally:
            if user_policy is None:
                del os.environ["OMP_WAIT_POLICY"]
        if foreign and user_policy is None and numba.threading_layer() == "omp":
            self.serial_only = _FOREIGN_OPENMP
        self._started = True

    def describe(self) -> str:
        """The kernels' threads in a few words (before they start, as they will start)."""
        reason = self.serial_only
        if (not self._started and os.environ.get("OMP_WAIT_POLICY") is None
                and _openmp_loaded()):
            reason = _FOREIGN_OPENMP
        if reason:
            return f"fused kernels on 1 thread ({reason})"
        return f"fused kernels on {self.count()} threads"


#: Why the kernels stay serial beside another library's OpenMP runtime.
_FOREIGN_OPENMP = ("an OpenMP runtime loaded by another library spins; set "
                   "OMP_WAIT_POLICY=PASSIVE to thread the kernels")


def _openmp_loaded() -> bool:
    """Whether an OpenMP runtime (``libgomp``) is already loaded in this process (read from
    ``/proc/self/maps``; False where that does not exist)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


THREADS = Threads()

# == element-wise kernels on flat arrays (the memory of arrays that share one dense layout)


@Kernel
def relu(x: Any, y: Any, mask: Any) -> None:  # pragma: no cover - compiled
    """mask = [x > 0], y = max(x, 0) as NumPy's ``maximum(x, 0)``: NaN stays NaN, ±0
    gives +0."""
    for i in prange(x.size):
        value = x[i]
        positive = value > 0
        mask[i] = positive
        y[i] = value if positive or value != value else 0


@Kernel
def apply_mask(values: Any, mask: Any, out: Any) -> None:  # pragma: no cover - compiled
    """out = values where mask, else 0 (``where(mask, values, 0)``)."""
    for i in prange(values.size):
        out[i] = values[i] if mask[i] else 0


@Kernel
def momentum_step(value: Any, velocity: Any, grad: Any, learning_rate: Any,
                  momentum: Any, nesterov: bool) -> None:  # pragma: no cover - compiled
    """s = η g; v ← μ v − s; w ← w + v, or w ← (w − s) + μ v (Nesterov)."""
    for i in prange(value.size):
        scaled = learning_rate * grad[i]
        v = velocity[i] * momentum - scaled
        velocity[i] = v
        if nesterov:
            value[i] = (value[i] - scaled) + momentum * v
        else:
            value[i] = value[i] + v


@Kernel
def adam_step(value: Any, m: Any, v: Any, grad: Any, kept: Any, beta_1: Any,
              one_minus_beta_1: Any, beta_2: Any, one_minus_beta_2: Any, step_size: Any,
              epsilon: Any) -> None:  # pragma: no cover - compiled
    """w ← w·(1 − ηλ); m ← β₁ m + (1 − β₁) g; v ← β₂ v + (g g)(1 − β₂);
    w ← w − (m / (√v + ε̂)) η_t. Without decay ``kept`` is 1, and w·1 = w exactly."""
    for i in prange(value.size):
        g = grad[i]
        w = value[i] * kept
        m_i = m[i] * beta_1 + one_minus_beta_1 * g
        v_i = v[i] * beta_2 + (g * g) * one_minus_beta_2
        m[i] = m_i
        v[i] = v_i
        value[i] = w - (m_i / (np.sqrt(v_i) + epsilon)) * step_size


@Kernel
def rmsprop_step(value: Any, mean_square: Any, grad: Any, learning_rate: Any, rho: Any,
                 one_minus_rho: Any, epsilon: Any) -> None:  # pragma: no cover - compiled
    """h ← ρ h + (1 − ρ)(g g); w ← w − η g / (√h + ε)."""
    for i in prange(value.size):
        g = grad[i]
        h = mean_square[i] * rho + one_minus_rho * (g * g)
        mean_square[i] = h
        value[i] = value[i] - learning_rate * g / (np.sqrt(h) + epsilon)


@Kernel
def adagrad_step(value: Any, sum_squares: Any, grad: Any, learning_rate: Any,
                 epsilon: Any) -> None:  # pragma: no cover - compiled
    """h ← h + g g; w ← w − η g / (√h + ε)."""
    for i in prange(value.size):
        g = grad[i]
        h = sum_squares[i] + g * g
        sum_squares[i] = h
        value[i] = value[i] - learning_rate * g / (np.sqrt(h) + epsilon)


@Kernel
def add_bias(rows: Any, bias: Any) -> None:  # pragma: no cover - compiled
    """rows[r, f] += bias[f], row by row (C-contiguous rows)."""
    width = bias.size
    for r in prange(rows.shape[0]):
        for f in range(width):
            rows[r, f] += bias[f]


# == window kernels on (N, H, W, C) views (any strides): split over the images ============


@Kernel
def gather_windows(padded: Any, rows: Any, s_h: int, s_w: int, d_h: int,
                   d_w: int) -> None:  # pragma: no cover - compiled
    """rows[n, i, j, p, q, c] = padded[n, i·s_h + p·d_h, j·s_w + q·d_w, c]: the windows of
    the padded (N, H, W, C) input copied into the contiguous rows of the convolution's
    product (N, H_out, W_out, k_h, k_w, C), image by image."""
    n, out_h, out_w, k_h, k_w, c = rows.shape
    for image in prange(n):
        for i in range(out_h):
            for j in range(out_w):
                for p in range(k_h):
                    row = i * s_h + p * d_h
                    for q in range(k_w):
                        column = j * s_w + q * d_w
                        for channel in range(c):
                            rows[image, i, j, p, q, channel] = padded[image, row, column,
                                                                      channel]


@Kernel
def gather_runs(padded: Any, rows: Any, s_h: int, step: int,
                d_h: int) -> None:  # pragma: no cover - compiled
    """:func:`gather_windows` for windows without dilation along the width, on flattened
    views: padded (N, H, W·C) and rows (N, H_out, W_out, k_h, k_w·C), ``step`` = s_w·C.
    Each window row is then one run of k_w·C contiguous numbers (for a one-channel image,
    3 runs of 3 numbers instead of 9 runs of 1: 0.7 against 1.1 ms at batch 64 on 28×28
    with a 3×3 window)."""
    n, out_h, out_w, k_h, run = rows.shape
    for image in prange(n):
        for i in range(out_h):
            for j in range(out_w):
                start = j * step
                for p in range(k_h):
                    row = i * s_h + p * d_h
                    for t in range(run):
                        rows[image, i, j, p, t] = padded[image, row, start + t]


@Kernel
def add_tap(total: Any, product: Any, top: int, s_h: int, left: int,
            s_w: int) -> None:  # pragma: no cover - compiled
    """total[n, top + i·s_h, left + j·s_w, c] += product[n, i, j, c]: one tap's product
    added into the padded (N, H, W, C) sum of a convolution's dL/dx, image by image."""
    n, out_h, out_w, c = product.shape
    for image in prange(n):
        for i in range(out_h):
            for j in range(out_w):
                for channel in range(c):
                    total[image, top + i * s_h, left + j * s_w, channel] += \
                        product[image, i, j, channel]


@Kernel
def max_pool(padded: Any, best: Any, winner: Any, taps: Any, k_w: int, s_h: int, s_w: int,
             d_h: int, d_w: int) -> None:  # pragma: no cover - compiled
    """best[n, i, j, c] = the maximum over the taps (p, q) of padded[n, i·s_h + p·d_h,
    j·s_w + q·d_w, c] and winner[n, i, j, c] the first tap (row-major) that holds it: the
    strided kernel's running maximum, tap by tap within each window (the channels
    innermost): top ← maximum(top, value) (``value`` unless ``top`` is NaN or larger) and
    winner ← t where value > top. ``taps`` = 0, 1, …, k_h·k_w − 1 in the winners' dtype
    (selects between values of one type vectorise)."""
    n, out_h, out_w, c = best.shape
    for image in prange(n):
        for i in range(out_h):
            for j in range(out_w):
                for channel in range(c):
                    best[image, i, j, channel] = padded[image, i * s_h, j * s_w, channel]
                    winner[image, i, j, channel] = taps[0]
                for tap in range(1, taps.size):
                    row = i * s_h + (tap // k_w) * d_h
                    column = j * s_w + (tap % k_w) * d_w
                    index = taps[tap]
                    for channel in range(c):
                        top = best[image, i, j, channel]
                        value = padded[image, row, column, channel]
                        held = winner[image, i, j, channel]
                        winner[image, i, j, channel] = index if value > top else held
                        best[image, i, j, channel] = top if top > value or top != top \
                            else value


@Kernel
def max_pool_backward(grad: Any, winner: Any, total: Any, k_h: int, k_w: int, s_h: int,
                      s_w: int, d_h: int, d_w: int,
                      overlapping: bool) -> None:  # pragma: no cover - compiled
    """For each tap t = (p, q) in order, total[n, i·s_h + p·d_h, j·s_w + q·d_w, c] is set
    to (or, with ``overlapping`` windows, added) G[n, i, j, c] · [winner = t]: the
    strided kernel's arithmetic, in its order for every pixel."""
    n, out_h, out_w, c = grad.shape
    for image in prange(n):
        for tap in range(k_h * k_w):
            p, q = tap // k_w, tap % k_w
            for i in range(out_h):
                for j in range(out_w):
                    row, column = i * s_h + p * d_h, j * s_w + q * d_w
                    for channel in range(c):
                        routed = grad[image, i, j, channel] * (winner[image, i, j, channel]
                                                                == tap)
                        if overlapping:
                            total[image, row, column, channel] += routed
                        else:
                            total[image, row, column, channel] = routed
