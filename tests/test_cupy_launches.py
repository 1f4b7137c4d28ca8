"""The CuPy backend's kernel launches, checked on a machine without a GPU.

``CupyBackend``'s kernel methods run here on NumPy arrays through a stand-in for the
``cupy`` module whose ``RawModule`` compiles the real source with NVRTC, reads each
kernel's parameter list from the PTX, checks every launch against it (the number of
arguments, pointer or scalar width, float or double) and then performs the kernel's
arithmetic in NumPy on the memory the pointers and strides designate, entry by entry as the
CUDA code does. So the host side (layouts, output allocation, argument order and types,
the fallbacks to the generic versions) is tested against ``Backend``'s generic kernels
without a GPU; the CUDA arithmetic itself is tested on a GPU by the ``cupy`` lane of
``tests/test_kernels.py`` and ``tests/test_conv.py``. Marked ``nvrtc``: skipped with the
reason where NVRTC is missing.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided
from xpnn.backends import cuda_kernels
from xpnn.backends.base import Backend, Window
from xpnn.backends.cupy import CupyBackend
from xpnn.backends.numpy import NumpyBackend

from xpnn.device import Device

pytestmark = pytest.mark.nvrtc

PTX_TYPE = {np.float32: "f32", np.float64: "f64", np.int32: "u32", np.int64: "u64",
            np.uintp: "u64"}


@pytest.fixture(scope="module")
def signatures():
    """Kernel name -> its PTX parameter types, from every source compiled by NVRTC."""
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as error:
        pytest.skip(f"NVRTC is not available ({type(error).__name__}: {error}): pip install "
                    "'cupy-cuda12x>=14' 'nvidia-cuda-nvrtc-cu12==12.*'")
    found: dict[str, list[str]] = {}
    for name, source in cuda_kernels.SOURCES.items():
        program = nvrtc.createProgram(source, f"{name}.cu", (), ())
        try:
            nvrtc.compileProgram(program, [*cuda_kernels.NVRTC_OPTIONS,
                                           "--gpu-architecture=compute_80"])
            ptx = nvrtc.getPTX(program)
        finally:
            nvrtc.destroyProgram(program)
        text = ptx.decode() if isinstance(ptx, bytes) else ptx
        for entry in re.finditer(r"\.entry\s+(\w+)\(([^)]*)\)", text):
            found[entry.group(1)] = re.findall(r"\.param\s+\.(\w+)\s", entry.group(2))
    return found


# -- the kernels' arithmetic in NumPy, on the memory their arguments point at ----------------

def _flat(pointer: np.ndarray, count: int) -> np.ndarray:
    """``count`` entries from the array's first element on, as a C pointer sees them."""
    return as_strided(pointer, (int(count),), (pointer.itemsize,))


def _view(pointer: np.ndarray, shape: tuple, strides: tuple) -> np.ndarray:
    """The (N, C, H, W) entries at the given element strides from the first element."""
    return as_strided(pointer, tuple(int(s) for s in shape),
                      tuple(int(s) * pointer.itemsize for s in strides))


def _momentum_step(value, velocity, grad, learning_rate, momentum, nesterov, count):
    w, v, g = (_flat(a, count) for a in (value, velocity, grad))
    scaled = learning_rate * g
    v[...] = v * momentum - scaled
    w[...] = (w - scaled) + momentum * v if nesterov else w + v


def _adam_step(value, m, v, grad, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2,
               step_size, epsilon, keep, count):
    w, m_, v_, g = (_flat(a, count) for a in (value, m, v, grad))
    decayed = w * keep
    m_[...] = m_ * beta_1 + one_minus_beta_1 * g
    v_[...] = v_ * beta_2 + (g * g) * one_minus_beta_2
    w[...] = decayed - (m_ / (np.sqrt(v_) + epsilon)) * step_size


def _rmsprop_step(value, mean_square, grad, learning_rate, rho, one_minus_rho, epsilon, count):
    w, h, g = (_flat(a, count) for a in (value, mean_square, grad))
    h[...] = h * rho + one_minus_rho * (g * g)
    w[...] = w - (learning_rate * g) / (np.sqrt(h) + epsilon)


def _adagrad_step(value, sum_squares, grad, learning_rate, epsilon, count):
    w, h, g = (_flat(a, count) for a in (value, sum_squares, grad))
    h[...] = h + g * g
    w[...] = w - (learning_rate * g) / (np.sqrt(h) + epsilon)


def _apply_mask(values, mask, out, count):
    _flat(out, count)[...] = np.where(_flat(mask, count), _flat(values, count), 0)


def _divisor(count, pointer):
    return _flat(pointer, 1)[0] if isinstance(pointer, np.ndarray) else count


def _sce_labels(log_probs, labels, count, pointer, ignore_index, has_ignore, out, rows,
                classes):
    lp = _flat(log_probs, rows * classes).reshape(int(rows), int(classes))
    label = _flat(labels, rows)
    target = (label[:, None] == np.arange(classes)).astype(lp.dtype)
    result = (np.exp(lp) - target) / _divisor(count, pointer)
    if has_ignore:
        result[label == ignore_index] = 0
    _flat(out, rows * classes)[...] = result.reshape(-1)


def _sce_rows(log_probs, target, count, pointer, out, size):
    result = (np.exp(_flat(log_probs, size)) - _flat(target, size)) / _divisor(count, pointer)
    _flat(out, size)[...] = result


def _window(geometry) -> tuple[Window, tuple[int, ...]]:
    n, c, height, width, out_h, out_w, k_h, k_w, s_h, s_w, d_h, d_w, top, left = (
        int(v) for v in geometry)
    bottom = max(0, (out_h - 1) * s_h + (k_h - 1) * d_h + 1 - top - height)
    right = max(0, (out_w - 1) * s_w + (k_w - 1) * d_w + 1 - left - width)
    window = Window((k_h, k_w), (s_h, s_w), (d_h, d_w), ((top, bottom), (left, right)))
    return window, (n, c, height, width)


def _max_pool(x, y, winner, *rest):
    geometry, x_strides, y_strides = rest[:14], rest[14:18], rest[18:22]
    window, shape = _window(geometry)
    out_shape = (*shape[:2], *(int(v) for v in geometry[4:6]))
    padded = np.full((*shape[:2], *window.padded_size(*shape[2:])), -np.inf, x.dtype)
    padded[window.interior(*shape[2:])] = _view(x, shape, x_strides)
    taps = [padded[region] for region in window.tap_regions(*shape[2:])]
    best, win = taps[0].copy(), np.zeros(out_shape, winner.dtype)
    for index, tap in enumerate(taps[1:], start=1):
        win[tap > best] = index
        best = np.where((tap > best) | np.isnan(tap), tap, best)
    _view(y, out_shape, y_strides)[...] = best
    _view(winner, out_shape, y_strides)[...] = win


def _max_pool_backward(grad, winner, out, *rest):
    geometry = rest[:14]
    grad_strides, winner_strides, out_strides = rest[14:18], rest[18:22], rest[22:26]
    window, shape = _window(geometry)
    out_shape = (*shape[:2], *(int(v) for v in geometry[4:6]))
    g = _view(grad, out_shape, grad_strides)
    won_by = _view(winner, out_shape, winner_strides)
    total = np.zeros((*shape[:2], *window.padded_size(*shape[2:])), grad.dtype)
    for index, region in enumerate(window.tap_regions(*shape[2:])):
        total[region] += np.where(won_by == index, g, 0)
    _view(out, shape, out_strides)[...] = total[window.interior(*shape[2:])]


EMULATORS = {
    "momentum_step": _momentum_step, "adam_step": _adam_step, "rmsprop_step": _rmsprop_step,
    "adagrad_step": _adagrad_step, "apply_mask": _apply_mask,
    "softmax_cross_entropy_grad_labels": _sce_labels,
    "softmax_cross_entropy_grad_rows": _sce_rows,
    "max_pool": _max_pool, "max_pool_backward": _max_pool_backward,
}


# -- a stand-in for the cupy module ----------------------------------------------------------

class FakeKernel:
    def __init__(self, name: str, params: list[str], launches: list[str]) -> None:
        self.name, self.params, self.launches = name, params, launches

    def __call__(self, grid: tuple[int], block: tuple[int], args: tuple[Any, ...]) -> None:
        assert block == (cuda_kernels.THREADS_PER_BLOCK,)
        assert len(grid) == 1 and 1 <= grid[0] <= cuda_kernels.MAX_BLOCKS
        assert len(args) == len(self.params), (self.name, len(args), self.params)
        for position, (arg, param) in enumerate(zip(args, self.params, strict=True)):
            kind = "u64" if isinstance(arg, np.ndarray) else PTX_TYPE.get(type(arg))
            assert kind == param, (f"{self.name} argument {position}: "
                                   f"{type(arg).__name__} for a .{param} parameter")
        base = re.sub(r"_f(32|64)(_i(8|32))?$", "", self.name)
        EMULATORS[base](*args)
        self.launches.append(self.name)


class FakeModule:
    def __init__(self, code: str, options: tuple[str, ...], signatures: dict[str, list[str]],
                 launches: list[str]) -> None:
        assert code in cuda_kernels.SOURCES.values()
        assert options == cuda_kernels.NVRTC_OPTIONS
        self.signatures, self.launches = signatures, launches

    def get_function(self, name: str) -> FakeKernel:
        return FakeKernel(name, self.signatures[name], self.launches)


class FakeCupy:
    """What the CuPy backend's kernel methods take from ``cupy``, over NumPy."""

    ndarray = np.ndarray
    int32 = np.int32
    int64 = np.int64
    bool_ = np.bool_
    empty = staticmethod(np.empty)
    ascontiguousarray = staticmethod(np.ascontiguousarray)

    def __init__(self, signatures: dict[str, list[str]]) -> None:
        self.signatures = signatures
        self.launches: list[str] = []

    def RawModule(self, code: str, options: tuple[str, ...]) -> FakeModule:  # noqa: N802
        return FakeModule(code, options, self.signatures, self.launches)


class HostDevice(str):
    """NumPy's device name ("cpu"), usable as ``with backend.native_device:``."""

    def __enter__(self) -> HostDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def backend(signatures):
    """A CupyBackend whose ``cupy`` is the stand-in (its arrays are NumPy's)."""
    fake = CupyBackend.__new__(CupyBackend)
    fake._cupy = FakeCupy(signatures)
    fake.xp = np
    fake.device = Device("cuda", 0)
    fake.native_device = HostDevice("cpu")
    fake._modules, fake._functions = {}, {}
    return fake


GENERIC = NumpyBackend()  # the generic kernels, run by NumPy
DTYPES = ("float32", "float64")


def _permuted(host: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """``host``'s values, stored with the axes in ``order`` (a transposed view)."""
    stored = np.ascontiguousarray(np.transpose(host, order))
    return np.transpose(stored, tuple(int(a) for a in np.argsort(order)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", [(0, 1), (1, 0)], ids=["c_order", "transposed"])
def test_optimizer_launches_match_the_generic_kernels(backend, dtype, order):
    rng = np.random.default_rng(0)
    shape = (33, 20)

    def state(count):
        host = [rng.standard_normal(shape).astype(dtype) for _ in range(count)]
        host[-1] = host[-1] * host[-1]  # v, h: second moments and squares are not negative
        return [_permuted(h, order) for h in host], [h.copy() for h in host]

    calls = [
        ("momentum_step", 2, lambda k, a, g: k.momentum_step(*a, g, 0.05, 0.9)),
        ("momentum_step", 2, lambda k, a, g: k.momentum_step(*a, g, 0.05, 0.9, nesterov=True)),
        ("adam_step", 3, lambda k, a, g: k.adam_step(*a, g, 0.9, 0.999, 1e-3, 1e-8)),
        ("adam_step", 3, lambda k, a, g: k.adam_step(*a, g, 0.9, 0.999, 1e-3, 1e-8, 2e-3)),
        ("rmsprop_step", 2, lambda k, a, g: k.rmsprop_step(*a, g, 0.01, 0.9, 1e-7)),
        ("adagrad_step", 2, lambda k, a, g: k.adagrad_step(*a, g, 0.05, 1e-7)),
    ]
    for name, count, call in calls:
        arrays, expected = state(count)
        for _ in range(3):
            grad = rng.standard_normal(shape).astype(dtype)
            call(backend, arrays, _permuted(grad, order))
            call(GENERIC, expected, grad)  # the generic version: below the blocked size
        for got, want in zip(arrays, expected, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)
        assert backend._cupy.launches[-1] == cuda_kernels.kernel_name(name, dtype)


def test_optimizers_fall_back_to_the_generic_kernels_for_mixed_layouts(backend):
    rng = np.random.default_rng(1)
    value, velocity = rng.standard_normal((2, 6, 5))
    grad = np.asfortranarray(rng.standard_normal((6, 5)))
    expected_w, expected_v = value.copy(), velocity.copy()
    backend.momentum_step(value, velocity, grad, 0.1, 0.9)
    Backend.momentum_step(GENERIC, expected_w, expected_v, grad, 0.1, 0.9)
    np.testing.assert_array_equal(value, expected_w)
    assert backend._cupy.launches == []


@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_mask_launches_keep_the_layout(backend, dtype):
    rng = np.random.default_rng(2)
    host = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    mask = rng.standard_normal(host.shape) > 0
    for order in ((0, 1, 2, 3), (0, 2, 3, 1)):
        values = _permuted(host, order)
        out = backend.apply_mask(values, _permuted(mask, order))
        np.testing.assert_array_equal(out, np.where(mask, host, 0))
        assert out.strides == values.strides
    assert backend._cupy.launches == [cuda_kernels.kernel_name("apply_mask", dtype)] * 2
    backend.apply_mask(values, mask)  # laid out differently: the generic version
    assert len(backend._cupy.launches) == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["labels", "ignored", "probabilities"])
@pytest.mark.parametrize("count_on_device", [False, True], ids=["count_float", "count_array"])
def test_softmax_cross_entropy_launches_match_the_generic_kernel(backend, dtype, target_kind,
                                                                 count_on_device):
    rng = np.random.default_rng(3)
    shape = (4, 6, 5)
    logits = rng.standard_normal(shape) * 3
    log_probs = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(dtype)
    if target_kind == "probabilities":
        target = rng.dirichlet(np.ones(5), size=shape[:-1]).astype(dtype)
    else:
        target = rng.integers(0, 5, shape[:-1]).astype(np.int32)  # cast to int64 for CUDA
        if target_kind == "ignored":
            target[:, ::2] = -100
    ignore_index = -100 if target_kind == "ignored" else None
    count = np.asarray(17.0, dtype) if count_on_device else 17.0
    got = backend.softmax_cross_entropy_grad(log_probs, target, count, ignore_index)
    want = Backend.softmax_cross_entropy_grad(GENERIC, log_probs, target, count, ignore_index)
    np.testing.assert_array_equal(got, want)
    kind = "rows" if target_kind == "probabilities" else "labels"
    assert backend._cupy.launches == [
        cuda_kernels.kernel_name(f"softmax_cross_entropy_grad_{kind}", dtype)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_max_pool_launches_match_the_generic_kernels(backend, dtype, channels_last):
    rng = np.random.default_rng(4)
    windows = [Window((2, 2), (2, 2)), Window((3, 3), (1, 2), (1, 1), ((1, 1), (0, 1))),
               Window((2, 3), (2, 1), (2, 1), ((1, 0), (1, 1))),
               Window((12, 12), (1, 1), (1, 1), ((0, 0), (0, 0)))]  # 144 taps: int32 winner
    for window in windows:
        host = rng.integers(-2, 3, (2, 3, 13, 12)).astype(dtype)  # ties everywhere
        x = _permuted(host, (0, 2, 3, 1)) if channels_last else host
        y, winner = backend.max_pool(x, window)
        want_y, want_winner = Backend.max_pool(GENERIC, host, window)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(winner, want_winner)
        assert winner.dtype == (np.int8 if window.size[0] * window.size[1] <= 127 else np.int32)
        assert (y.strides[1] < y.strides[3]) == channels_last
        grad = rng.standard_normal(y.shape).astype(dtype)  # C order, winner maybe not
        got = backend.max_pool_backward(grad, winner, host.shape, window)
        want = Backend.max_pool_backward(GENERIC, grad, want_winner, host.shape, window)
        np.testing.assert_array_equal(got, want)
        int64_winner = backend.max_pool_backward(grad, want_winner, host.shape, window)
        np.testing.assert_array_equal(int64_winner, want)
    assert len(backend._cupy.launches) == 3 * len(windows)
