"""The training kernels of the backends: every specialisation against the generic version
written with standard functions (``Backend.<kernel>``), on random inputs, on every lane.

On the ``numpy`` and ``strict`` lanes a kernel the backend does not specialise is the generic
one, and the tests hold it to the float64 textbook formula. On the ``cupy`` lane the CUDA
kernels (``backends/cuda_kernels.py``) run against the generic versions run by CuPy: the
element-wise updates, the ReLU mask and max pooling must give the same bits (the same
operations in the same order, no fused multiply-add), the softmax cross-entropy gradient
agrees within the parity tolerance (CUDA's ``exp``). ``tests/test_cupy_launches.py`` checks
the CuPy backend's launches without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from xpnn.backends.base import Backend, Window

DTYPES = ("float32", "float64")
#: Every test runs the NumPy backend's kernels both ways: fused and plain (see
#: ``conftest.kernel_mode``).
pytestmark = pytest.mark.usefixtures("kernel_mode")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (64, 33), (3, 4, 5)])
def test_apply_mask_matches_the_generic_kernel(lane, dtype, shape, rng):
    values = lane.asarray(rng.standard_normal(shape), dtype)
    mask = lane.asarray(rng.standard_normal(shape) > 0)
    specialised = lane.backend.apply_mask(values, mask)
    generic = Backend.apply_mask(lane.backend, values, mask)
    expected = np.where(lane.to_host(mask), lane.to_host(values), 0.0)
    lane.assert_close(generic, expected, dtype, what="generic apply_mask")
    lane.assert_close(specialised, expected, dtype, what=f"{lane.name} apply_mask")
    np.testing.assert_array_equal(lane.to_host(specialised), lane.to_host(generic))


def _state_arrays(lane, rng, shape, dtype, count):
    """``count`` random arrays of ``shape`` on the lane, twice: for the specialised and
    the generic kernel (each updates its own copies in place)."""
    hosts = [rng.standard_normal(shape) for _ in range(count)]

    def fresh(host):  # a copy: the NumPy backend's asarray may return the host array itself
        return lane.xp.asarray(lane.asarray(host, dtype), copy=True)

    return [fresh(h) for h in hosts], [fresh(h) for h in hosts]


@pytest.fixture(params=["whole", "blocks", "strided", "mixed"])
def layout(request, lane, monkeypatch):
    """How the specialisation sees the arrays: as one block, in many small blocks (the
    NumPy backend's block size made tiny), as non-contiguous views (all transposed alike),
    or C-contiguous state with a non-contiguous gradient (where the CUDA kernels fall back
    to the generic version). The NumPy backend's size threshold is lowered so that its
    blocked kernels run on these small arrays."""
    if hasattr(lane.backend, "BLOCK_BYTES"):
        monkeypatch.setattr(lane.backend, "BLOCKED_FROM", 0)
        if request.param == "blocks":
            monkeypatch.setattr(lane.backend, "BLOCK_BYTES", 256)  # 64 float32, 32 float64
    elif request.param == "blocks":
        pytest.skip(f"the {lane.name} backend has no blocked kernels")
    return request.param


def _shaped(lane, arrays, layout):
    """Transposed views for the strided layout (the arrays are (37, 50) then)."""
    if layout != "strided":
        return arrays
    return [lane.xp.permute_dims(array, (1, 0)) for array in arrays]


def _gradient(lane, host, dtype, layout):
    """The gradient ``host`` on the lane, laid out as the state views of ``layout`` are,
    except in the mixed layout: there a transposed view of a copy of its transpose (the
    same values, F order) beside C-contiguous state."""
    if layout == "mixed":
        return lane.xp.permute_dims(lane.asarray(host.T, dtype), (1, 0))
    return _shaped(lane, [lane.asarray(host, dtype)], layout)[0]


def _skip_unless_blocked(lane, layout, kernel):
    """Skip the blocks layout where the lane's backend does not specialise ``kernel``."""
    if layout == "blocks" and getattr(type(lane.backend), kernel) is getattr(Backend, kernel):
        pytest.skip(f"the {lane.name} backend has no blocked {kernel}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_momentum_step_matches_the_generic_kernel(lane, dtype, nesterov, layout, rng):
    """Five steps with fresh random gradients: bit-identical to ``Backend.momentum_step``
    and to the textbook update computed in float64."""
    shape = (37, 50)
    (value, velocity), (value_g, velocity_g) = _state_arrays(lane, rng, shape, dtype, 2)
    expected_w = lane.to_host(value).astype(np.float64)
    expected_v = lane.to_host(velocity).astype(np.float64)
    views = _shaped(lane, [value, velocity], layout)
    views_g = _shaped(lane, [value_g, velocity_g], layout)
    for _ in range(5):
        host_grad = rng.standard_normal(shape)
        grad = _gradient(lane, host_grad, dtype, layout)
        lane.backend.momentum_step(*views, grad, 0.05, 0.9, nesterov=nesterov)
        Backend.momentum_step(lane.backend, *views_g, grad, 0.05, 0.9, nesterov=nesterov)
        expected_v = 0.9 * expected_v - 0.05 * host_grad
        expected_w += (0.9 * expected_v - 0.05 * host_grad) if nesterov else expected_v
    lane.assert_close(value, expected_w, dtype, what="w")
    lane.assert_close(velocity, expected_v, dtype, what="v")
    np.testing.assert_array_equal(lane.to_host(value), lane.to_host(value_g))
    np.testing.assert_array_equal(lane.to_host(velocity), lane.to_host(velocity_g))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay", [0.0, 2e-3], ids=["adam", "adamw"])
def test_adam_step_matches_the_generic_kernel(lane, dtype, decay, layout, rng):
    """Five steps with fresh random gradients (with AdamW's decoupled decay ηλ or
    without): bit-identical to ``Backend.adam_step`` and close to the textbook update
    computed in float64."""
    shape = (37, 50)
    (value, m, v), (value_g, m_g, v_g) = _state_arrays(lane, rng, shape, dtype, 3)
    v, v_g = v * v, v_g * v_g  # second moments are not negative
    expected = [lane.to_host(a).astype(np.float64) for a in (value, m, v)]
    views = _shaped(lane, [value, m, v], layout)
    views_g = _shaped(lane, [value_g, m_g, v_g], layout)
    for step in range(1, 6):
        host_grad = rng.standard_normal(shape)
        grad = _gradient(lane, host_grad, dtype, layout)
        step_size, epsilon = 1e-3 / step, 1e-8 * step
        lane.backend.adam_step(*views, grad, 0.9, 0.999, step_size, epsilon, decay)
        Backend.adam_step(lane.backend, *views_g, grad, 0.9, 0.999, step_size, epsilon,
                          decay)
        w, m_host, v_host = expected
        w = w * (1.0 - decay)
        m_host = 0.9 * m_host + 0.1 * host_grad
        v_host = 0.999 * v_host + 0.001 * host_grad**2
        expected = [w - step_size * m_host / (np.sqrt(v_host) + epsilon), m_host, v_host]
    for got, got_g, want, name in zip((value, m, v), (value_g, m_g, v_g), expected, "wmv",
                                      strict=True):
        lane.assert_close(got, want, dtype, what=name)
        np.testing.assert_array_equal(lane.to_host(got), lane.to_host(got_g), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsprop_step_matches_the_generic_kernel(lane, dtype, layout, rng):
    """Five steps with fresh random gradients: bit-identical to ``Backend.rmsprop_step``
    and close to the textbook update computed in float64."""
    _skip_unless_blocked(lane, layout, "rmsprop_step")
    shape = (37, 50)
    (value, mean_square), (value_g, mean_square_g) = _state_arrays(lane, rng, shape, dtype, 2)
    mean_square, mean_square_g = mean_square * mean_square, mean_square_g * mean_square_g
    w_host = lane.to_host(value).astype(np.float64)
    h_host = lane.to_host(mean_square).astype(np.float64)
    views = _shaped(lane, [value, mean_square], layout)
    views_g = _shaped(lane, [value_g, mean_square_g], layout)
    for _ in range(5):
        host_grad = rng.standard_normal(shape)
        grad = _gradient(lane, host_grad, dtype, layout)
        lane.backend.rmsprop_step(*views, grad, 0.01, 0.9, 1e-7)
        Backend.rmsprop_step(lane.backend, *views_g, grad, 0.01, 0.9, 1e-7)
        h_host = 0.9 * h_host + 0.1 * host_grad**2
        w_host = w_host - 0.01 * host_grad / (np.sqrt(h_host) + 1e-7)
    lane.assert_close(value, w_host, dtype, what="w")
    lane.assert_close(mean_square, h_host, dtype, what="h")
    np.testing.assert_array_equal(lane.to_host(value), lane.to_host(value_g))
    np.testing.assert_array_equal(lane.to_host(mean_square), lane.to_host(mean_square_g))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_step_matches_the_generic_kernel(lane, dtype, layout, rng):
    """Five steps with fresh random gradients: bit-identical to ``Backend.adagrad_step``
    and close to the textbook update computed in float64."""
    _skip_unless_blocked(lane, layout, "adagrad_step")
    shape = (37, 50)
    (value, sums), (value_g, sums_g) = _state_arrays(lane, rng, shape, dtype, 2)
    sums, sums_g = sums * sums, sums_g * sums_g
    w_host = lane.to_host(value).astype(np.float64)
    h_host = lane.to_host(sums).astype(np.float64)
    views = _shaped(lane, [value, sums], layout)
    views_g = _shaped(lane, [value_g, sums_g], layout)
    for _ in range(5):
        host_grad = rng.standard_normal(shape)
        grad = _gradient(lane, host_grad, dtype, layout)
        lane.backend.adagrad_step(*views, grad, 0.05, 1e-7)
        Backend.adagrad_step(lane.backend, *views_g, grad, 0.05, 1e-7)
        h_host = h_host + host_grad**2
        w_host = w_host - 0.05 * host_grad / (np.sqrt(h_host) + 1e-7)
    lane.assert_close(value, w_host, dtype, what="w")
    lane.assert_close(sums, h_host, dtype, what="h")
    np.testing.assert_array_equal(lane.to_host(value), lane.to_host(value_g))
    np.testing.assert_array_equal(lane.to_host(sums), lane.to_host(sums_g))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", [(0, 2, 3, 1), (1, 0, 2, 3)], ids=["channels_last", "n_last"])
@pytest.mark.parametrize("mask_alike", [True, False], ids=["alike", "mask_c_order"])
def test_apply_mask_on_permuted_layouts(lane, dtype, order, mask_alike, rng):
    """Values stored in another axis order (a transposed view of a contiguous array, as
    inside a CNN), with the mask laid out alike (the CUDA kernel runs over the memory) or in
    C order (it falls back to the generic version): the same bits as ``where``."""
    shape = (3, 4, 5, 6)
    host = rng.standard_normal(shape)
    host_mask = rng.standard_normal(shape) > 0
    inverse = tuple(int(axis) for axis in np.argsort(order))

    def permuted(array):  # stored with its axes in ``order``, seen in ``shape``
        return lane.xp.permute_dims(lane.asarray(np.transpose(array, order), None), inverse)

    values = permuted(host.astype(dtype))
    mask = permuted(host_mask) if mask_alike else lane.asarray(host_mask)
    specialised = lane.backend.apply_mask(values, mask)
    generic = Backend.apply_mask(lane.backend, values, mask)
    lane.assert_close(specialised, np.where(host_mask, host, 0.0), dtype, what="apply_mask")
    np.testing.assert_array_equal(lane.to_host(specialised), lane.to_host(generic))


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(32, 10), (4, 6, 5)])
@pytest.mark.parametrize("target_kind", ["labels", "ignored", "probabilities"])
@pytest.mark.parametrize("count_on_device", [False, True], ids=["count_float", "count_array"])
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_softmax_cross_entropy_grad_matches_the_generic_kernel(
        lane, dtype, shape, target_kind, count_on_device, strided, rng):
    """(exp(log p) − y) / M for integer labels (some ignored), or probability rows, with M
    a Python float or a device scalar, from contiguous or transposed log-probabilities:
    close to the float64 formula on every lane, exactly 0 on ignored rows, and bit-identical
    to the generic kernel where the backend does not specialise it (CUDA's ``exp`` may
    differ in the last bits: the cupy lane is held to the parity tolerance)."""
    classes = shape[-1]
    log_probs_host = _log_softmax(rng.standard_normal(shape) * 3.0).astype(dtype)
    if target_kind == "probabilities":
        target_host = rng.dirichlet(np.ones(classes), size=shape[:-1]).astype(dtype)
        target = lane.asarray(target_host, dtype)
        onehot = target_host.astype(np.float64)
    else:
        target_host = rng.integers(0, classes, size=shape[:-1])
        if target_kind == "ignored":
            target_host[..., ::3] = -100
        target = lane.asarray(target_host, "int64")
        onehot = (target_host[..., None] == np.arange(classes)).astype(np.float64)
    ignore_index = -100 if target_kind == "ignored" else None
    kept = np.ones(shape[:-1], bool) if ignore_index is None else target_host != ignore_index
    count = float(max(kept.sum(), 1))
    count_arg = lane.asarray(np.asarray(count), dtype) if count_on_device else count
    if strided:  # the same values through a transposed view of a copy of the transpose
        axes = tuple(range(len(shape)))[::-1]
        log_probs = lane.xp.permute_dims(lane.asarray(np.transpose(log_probs_host, axes),
                                                      dtype), axes)
    else:
        log_probs = lane.asarray(log_probs_host, dtype)
    expected = (np.exp(log_probs_host.astype(np.float64)) - onehot) / count
    expected[~kept] = 0.0
    specialised = lane.backend.softmax_cross_entropy_grad(log_probs, target, count_arg,
                                                          ignore_index)
    generic = Backend.softmax_cross_entropy_grad(lane.backend, log_probs, target, count_arg,
                                                 ignore_index)
    lane.assert_close(generic, expected, dtype, what="generic gradient")
    lane.assert_close(specialised, expected, dtype, what=f"{lane.name} gradient")
    assert not lane.to_host(specialised)[~kept].any(), "ignored rows must get 0"
    if lane.name != "cupy":
        np.testing.assert_array_equal(lane.to_host(specialised), lane.to_host(generic))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_max_pool_matches_the_generic_kernel_bit_for_bit(lane, dtype, channels_last, rng):
    """Max pooling forward and backward on inputs stored as inside a network (channels-last)
    or in C order, with ties, overlapping windows, padding and dilation: the same maxima,
    winners and gradient sums (in tap order) as the generic version, to the last bit."""
    windows = [Window((2, 2), (2, 2)), Window((3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
               Window((3, 2), (2, 1), (2, 1), ((1, 0), (0, 1)))]
    for window in windows:
        host = np.round(rng.standard_normal((2, 5, 11, 9)) * 2) / 2  # ties
        if channels_last:
            x = lane.xp.permute_dims(lane.asarray(np.transpose(host, (0, 2, 3, 1)), dtype),
                                     (0, 3, 1, 2))
        else:
            x = lane.asarray(host, dtype)
        y, winner = lane.backend.max_pool(x, window)
        generic_y, generic_winner = Backend.max_pool(lane.backend, x, window)
        np.testing.assert_array_equal(lane.to_host(y), lane.to_host(generic_y))
        np.testing.assert_array_equal(lane.to_host(winner).astype(np.int64),
                                      lane.to_host(generic_winner).astype(np.int64))
        grad = lane.asarray(rng.standard_normal(tuple(y.shape)), dtype)
        dx = lane.backend.max_pool_backward(grad, winner, host.shape, window)
        generic_dx = Backend.max_pool_backward(lane.backend, grad, generic_winner, host.shape,
                                               window)
        lane.assert_close(dx, lane.to_host(generic_dx), dtype, what=f"dL/dx {window}")
        np.testing.assert_array_equal(lane.to_host(dx), lane.to_host(generic_dx))


def _bits(host):
    """The bit patterns of a float array (so +0 and −0, and NaNs, are told apart)."""
    return host.view(np.int32 if host.dtype == np.float32 else np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", [None, (0, 2, 3, 1)], ids=["c_order", "channels_last"])
def test_relu_matches_the_generic_kernel_bit_for_bit(lane, dtype, order, rng):
    """y = max(x, 0) and the mask [x > 0] on values with NaN, ±0 and ±∞, in C order and
    stored channels-last (kept so by the NumPy backend): the same bits as the generic
    ``maximum`` and comparison (NaN stays NaN, −0 gives +0)."""
    host = rng.standard_normal((3, 4, 5, 6))
    host.flat[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, -np.nan]
    if order is None:
        x = lane.asarray(host, dtype)
    else:
        stored = lane.asarray(np.transpose(host, order), dtype)
        x = lane.xp.permute_dims(stored, tuple(int(a) for a in np.argsort(order)))
    y, mask = lane.backend.relu(x)
    generic_y, generic_mask = Backend.relu(lane.backend, x)
    np.testing.assert_array_equal(_bits(lane.to_host(y)), _bits(lane.to_host(generic_y)))
    np.testing.assert_array_equal(lane.to_host(mask), lane.to_host(generic_mask))
    assert lane.to_host(mask).dtype == np.bool_
    with np.errstate(invalid="ignore"):
        expected = np.where(host > 0, host, np.where(np.isnan(host), host, 0.0))
    np.testing.assert_array_equal(lane.to_host(y), expected.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_bias_matches_the_generic_kernel(lane, dtype, rng):
    """z + b added in place to every row: the same bits as ``z += b``."""
    host_z, host_b = rng.standard_normal((70, 33)), rng.standard_normal(33)
    z = lane.xp.asarray(lane.asarray(host_z, dtype), copy=True)
    generic = lane.xp.asarray(lane.asarray(host_z, dtype), copy=True)
    bias = lane.asarray(host_b, dtype)
    lane.backend.add_bias(z, bias)
    Backend.add_bias(lane.backend, generic, bias)
    lane.assert_close(z, host_z + host_b, dtype, what="z + b")
    np.testing.assert_array_equal(lane.to_host(z), lane.to_host(generic))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("channels", [1, 3, 9])
def test_unfold_rows_matches_the_generic_kernel(lane, dtype, channels_last, channels, rng):
    """The convolution's rows (im2col) with padding, stride and dilation, for few channels
    (the NumPy backend copies window rows as runs) and more: the generic version's copy
    of the windows, entry for entry."""
    host = rng.standard_normal((2, channels, 9, 8))
    if channels_last:
        x = lane.xp.permute_dims(lane.asarray(np.transpose(host, (0, 2, 3, 1)), dtype),
                                 (0, 3, 1, 2))
    else:
        x = lane.asarray(host, dtype)
    for window in [Window((3, 3), padding=((1, 1), (1, 1))),
                   Window((3, 2), (2, 1), (2, 1), ((1, 0), (0, 1))),
                   Window((2, 3), (1, 2), (1, 2), ((0, 1), (1, 1)))]:
        rows = lane.backend.unfold_rows(x, window)
        generic = Backend.unfold_rows(lane.backend, x, window)
        assert tuple(rows.shape) == tuple(generic.shape)
        np.testing.assert_array_equal(lane.to_host(rows), lane.to_host(generic))


def test_the_serial_and_parallel_fused_kernels_give_the_same_bits(rng):
    """Each fused kernel is compiled twice (one thread, and split across threads): both
    give the same bits on the same inputs (each entry's arithmetic is the same)."""
    from xpnn.backends import fused

    if fused.UNAVAILABLE is not None:
        pytest.skip(fused.UNAVAILABLE)
    fused.THREADS.use_several()  # start Numba's threads as the backend does, first
    size = 3000
    x = rng.standard_normal(size).astype(np.float32)
    outputs = {}
    for version in ("serial", "parallel"):
        y, mask = np.empty_like(x), np.empty(size, np.bool_)
        getattr(fused.relu, version)(x, y, mask)
        state = [array.copy() for array in (x, np.abs(x), x * x, x[::-1].copy())]
        getattr(fused.adam_step, version)(*state, np.float32(0.99), np.float32(0.9),
                                          np.float32(0.1), np.float32(0.999),
                                          np.float32(0.001), np.float32(1e-3),
                                          np.float32(1e-7))
        outputs[version] = [y, mask, *state]
    for serial, parallel in zip(outputs["serial"], outputs["parallel"], strict=True):
        np.testing.assert_array_equal(serial, parallel)


@pytest.mark.usefixtures("kernel_mode")
def test_division_by_zero_gives_what_numpy_gives_not_an_error():
    """AdaGrad with ε = 0 on zero state and gradients divides 0 by 0: NaN, as the generic
    version computes it (the fused kernels use NumPy's error model, not Python's)."""
    import xpnn

    backend = xpnn.get_backend("cpu")
    state = [np.zeros((64, 80), np.float32) for _ in range(2)]
    generic = [array.copy() for array in state]
    grad = np.zeros((64, 80), np.float32)
    grad[0, :3] = [1.0, -1.0, 0.0]
    with np.errstate(divide="ignore", invalid="ignore"):
        backend.adagrad_step(*state, grad, 0.1, 0.0)
        Backend.adagrad_step(backend, *generic, grad, 0.1, 0.0)
    assert np.isnan(state[0][0, 2]) and np.isnan(state[0][1, 0])
    for got, want in zip(state, generic, strict=True):
        np.testing.assert_array_equal(got, want)
