"""Convolution and pooling on every lane: the window kernels against the generic versions and a
naive reference, float64 gradchecks over strides / paddings / dilations, forward and backward
parity with loop-by-output-position NumPy references (tests/reference_conv.py), shapes and
errors, saving, and a few training steps against the float64 NumPy run."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xpnn.backends.base import Backend, Window

import xpnn
from xpnn.layers.base import BuildContext

from . import reference_conv as ref
from .tolerances import GRADCHECK, TRAINING

DTYPES = ("float32", "float64")
#: Tests of the window kernels run the NumPy backend's kernels both ways: fused and plain
#: (see ``conftest.kernel_mode``).
both_kernel_modes = pytest.mark.usefixtures("kernel_mode")
NO_PAD = ((0, 0), (0, 0))


def _conv(stride=(1, 1), pads=NO_PAD, dilation=(1, 1)):
    return (lambda x, p: ref.conv2d_forward(x, p["kernel"], p.get("bias"), stride, pads,
                                            dilation),
            lambda x, p, g: _without_missing_bias(
                ref.conv2d_backward(x, p["kernel"], g, stride, pads, dilation), p))


def _without_missing_bias(result, params):
    grad_x, grads = result
    return grad_x, {k: v for k, v in grads.items() if k in params}


def _max(size, stride, pads=NO_PAD):
    return (lambda x, p: ref.max_pool_forward(x, size, stride, pads),
            lambda x, p, g: (ref.max_pool_backward(x, g, size, stride, pads), {}))


def _avg(size, stride, pads=NO_PAD):
    return (lambda x, p: ref.avg_pool_forward(x, size, stride, pads),
            lambda x, p, g: (ref.avg_pool_backward(x, g, size, stride, pads), {}))


# name -> (factory, input shape with batch, reference forward, reference backward)
LAYERS = {
    "conv": (lambda: xpnn.Conv2D(3, 3), (2, 2, 6, 5), *_conv()),
    "conv_stride_pad": (lambda: xpnn.Conv2D(2, (2, 3), stride=(2, 1), padding=1),
                        (2, 2, 6, 5), *_conv((2, 1), ((1, 1), (1, 1)))),
    # "same" with dilation 2: span 5, 4 pixels of padding per axis, 2 on each side
    "conv_same_dilated": (lambda: xpnn.Conv2D(2, 3, padding="same", dilation=2),
                          (2, 2, 7, 6), *_conv((1, 1), ((2, 2), (2, 2)), (2, 2))),
    # "same" at stride 2: ⌈7/2⌉ = 4 rows need 2 pixels (1, 1); ⌈6/2⌉ = 3 columns need 1 (0, 1)
    "conv_same_stride2": (lambda: xpnn.Conv2D(3, 3, stride=2, padding="same"),
                          (2, 2, 7, 6), *_conv((2, 2), ((1, 1), (0, 1)))),
    "conv_1x1_no_bias": (lambda: xpnn.Conv2D(4, 1, use_bias=False), (2, 3, 4, 4), *_conv()),
    "conv_stride3_dilation": (lambda: xpnn.Conv2D(2, 2, stride=3, dilation=(2, 1)),
                              (2, 2, 7, 6), *_conv((3, 3), NO_PAD, (2, 1))),
    "maxpool": (lambda: xpnn.MaxPool2D(2), (2, 3, 6, 5), *_max((2, 2), (2, 2))),
    "maxpool_overlap_pad": (lambda: xpnn.MaxPool2D(3, stride=1, padding=1), (2, 2, 5, 4),
                            *_max((3, 3), (1, 1), ((1, 1), (1, 1)))),
    "maxpool_same_stride2": (lambda: xpnn.MaxPool2D(3, 2, "same"), (2, 2, 7, 6),
                             *_max((3, 3), (2, 2), ((1, 1), (0, 1)))),
    "avgpool": (lambda: xpnn.AvgPool2D(2), (2, 3, 6, 5), *_avg((2, 2), (2, 2))),
    "avgpool_overlap_pad": (lambda: xpnn.AvgPool2D(3, 2, 1), (2, 2, 7, 6),
                            *_avg((3, 3), (2, 2), ((1, 1), (1, 1)))),
    "global_avgpool": (xpnn.GlobalAveragePool2D, (2, 3, 4, 5), lambda x, p: x.mean(axis=(2, 3)),
                       lambda x, p, g: (np.broadcast_to(g[:, :, None, None] / 20, x.shape), {})),
    "flatten": (xpnn.Flatten, (2, 3, 4, 5), lambda x, p: x.reshape(2, -1),
                lambda x, p, g: (g.reshape(x.shape), {})),
    "batchnorm2d": (xpnn.BatchNorm2D, (3, 2, 4, 5),
                    lambda x, p: ref.batchnorm2d_forward(x, p["gamma"], p["beta"]),
                    lambda x, p, g: ref.batchnorm2d_backward(x, p["gamma"], g)),
}


def _to_first(a):
    return np.transpose(a, (0, 3, 1, 2)) if a.ndim == 4 else a


def _to_last(a):
    return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def _nhwc(make, nchw_shape, forward, backward):
    """A case of a channels-last layer: its NHWC input and output transposed around the
    NCHW reference (the parameters are the same: the kernel is (F, C, k_h, k_w) in both
    formats)."""
    n, c, h, w = nchw_shape
    return (make, (n, h, w, c), lambda x, p: _to_last(forward(_to_first(x), p)),
            lambda x, p, g: (lambda dx, grads: (_to_last(dx), grads))(
                *backward(_to_first(x), p, _to_first(g))))


LAYERS.update({
    "conv_channels_last": _nhwc(lambda: xpnn.Conv2D(3, 3, data_format="channels_last"),
                                (2, 2, 6, 5), *_conv()),
    "conv_same_stride2_channels_last": _nhwc(
        lambda: xpnn.Conv2D(3, 3, stride=2, padding="same", data_format="channels_last"),
        (2, 2, 7, 6), *_conv((2, 2), ((1, 1), (0, 1)))),
    "conv_stride3_dilation_channels_last": _nhwc(
        lambda: xpnn.Conv2D(2, 2, stride=3, dilation=(2, 1), use_bias=False,
                            data_format="channels_last"),
        (2, 2, 7, 6), *_conv((3, 3), NO_PAD, (2, 1))),
    "maxpool_overlap_pad_channels_last": _nhwc(
        lambda: xpnn.MaxPool2D(3, stride=1, padding=1, data_format="channels_last"),
        (2, 2, 5, 4), *_max((3, 3), (1, 1), ((1, 1), (1, 1)))),
    "avgpool_overlap_pad_channels_last": _nhwc(
        lambda: xpnn.AvgPool2D(3, 2, 1, data_format="channels_last"), (2, 2, 7, 6),
        *_avg((3, 3), (2, 2), ((1, 1), (1, 1)))),
    "global_avgpool_channels_last": _nhwc(
        lambda: xpnn.GlobalAveragePool2D(data_format="channels_last"), *LAYERS[
            "global_avgpool"][1:]),
    "batchnorm2d_channels_last": _nhwc(
        lambda: xpnn.BatchNorm2D(data_format="channels_last"), *LAYERS["batchnorm2d"][1:]),
})


def _inputs(rng, shape):
    return rng.standard_normal(shape)


def _build(layer, lane, dtype, input_shape, seed=0):
    layer.build(input_shape, BuildContext(lane.backend, dtype, np.random.default_rng(seed)))
    return layer


# -- the window kernels -----------------------------------------------------------------------

def _naive_unfold(x, window, fill):
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = window.size, window.stride, window.dilation
    padded = np.pad(x, ((0, 0), (0, 0), *window.padding), constant_values=fill)
    out_h, out_w = window.output_size(*x.shape[2:])
    out = np.empty((x.shape[0], out_h, out_w, k_h, k_w, x.shape[1]))
    for i in range(out_h):
        for j in range(out_w):
            for p in range(k_h):
                for q in range(k_w):
                    out[:, i, j, p, q, :] = padded[:, :, i * s_h + p * d_h, j * s_w + q * d_w]
    return out


def _random_windows(rng, count):
    """Random (input shape, Window) pairs whose window fits."""
    found = []
    while len(found) < count:
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 10)),
                 int(rng.integers(1, 10)))
        window = Window(size=tuple(int(k) for k in rng.integers(1, 5, 2)),
                        stride=tuple(int(s) for s in rng.integers(1, 4, 2)),
                        dilation=tuple(int(d) for d in rng.integers(1, 3, 2)),
                        padding=tuple(tuple(int(p) for p in rng.integers(0, 3, 2))
                                      for _ in range(2)))
        if min(window.output_size(*shape[2:])) >= 1:
            found.append((shape, window))
    return found


@both_kernel_modes
def test_unfold_and_fold_match_the_generic_kernels_and_a_naive_reference(lane):
    """The lane's kernels (a specialisation on numpy and cupy) against the generic Array API
    versions on the same lane and against loops on the host, on random shapes, sizes,
    strides, dilations and asymmetric paddings; fold is checked as unfold's adjoint, and
    fold_product as fold of the product."""
    rng = np.random.default_rng(5)
    backend = lane.backend
    for shape, window in _random_windows(rng, 60):
        x = rng.standard_normal(shape)
        device_x = lane.asarray(x, "float64")
        expected = _naive_unfold(x, window, -2.5)
        unfolded = backend.unfold(device_x, window, -2.5)
        generic = Backend.unfold(backend, device_x, window, -2.5)
        lane.assert_close(unfolded, expected, "float64", what=f"unfold {shape} {window}")
        lane.assert_close(generic, expected, "float64", what=f"generic unfold {window}")

        filters = int(rng.integers(1, 4))
        rows = rng.standard_normal((int(np.prod(expected.shape[:3])), filters))
        taps = rng.standard_normal((*window.size, filters, shape[1]))
        product = lane.backend.fold_product(lane.asarray(rows, "float64"),
                                            lane.asarray(taps, "float64"), shape, window)
        generic_product = Backend.fold_product(backend, lane.asarray(rows, "float64"),
                                               lane.asarray(taps, "float64"), shape, window)
        lane.assert_close(product, lane.to_host(generic_product), "float64", what="fold_product")
        expected_windows = np.einsum("mf,pqfc->mpqc", rows, taps).reshape(expected.shape)
        lane.assert_close(generic_product, lane.to_host(
            backend.fold(lane.asarray(expected_windows, "float64"), shape, window)), "float64",
            what="generic fold_product")

        windows = rng.standard_normal(expected.shape)
        device_windows = lane.asarray(windows, "float64")
        folded = backend.fold(device_windows, shape, window)
        generic_folded = Backend.fold(backend, device_windows, shape, window)
        lane.assert_close(generic_folded, lane.to_host(folded), "float64", what="fold")
        # adjoint: <unfold(x), w> = <x, fold(w)> (zero padding)
        inner = np.sum(_naive_unfold(x, window, 0.0) * windows)
        assert math.isclose(inner, float(np.sum(x * lane.to_host(folded))), rel_tol=1e-10,
                            abs_tol=1e-10), (shape, window)


@both_kernel_modes
def test_max_pool_kernels_match_the_generic_versions_with_ties(lane):
    """The lane's max_pool / max_pool_backward against the generic versions and a host
    reference, on small integer images full of ties, over random pool sizes, strides
    (overlapping or not) and paddings up to half the window."""
    rng = np.random.default_rng(6)
    backend = lane.backend
    pool_windows = [(shape, window) for shape, window in _random_windows(rng, 800)
                    if window.dilation == (1, 1) and all(
                        2 * pad <= size for pads, size in zip(window.padding, window.size,
                                                               strict=True) for pad in pads)]
    assert len(pool_windows) >= 30
    for shape, window in pool_windows:
        x = rng.integers(-2, 3, shape).astype(np.float64)
        pads = window.padding
        expected = ref.max_pool_forward(x, window.size, window.stride, pads)
        device_x = lane.asarray(x, "float64")
        y, winner = backend.max_pool(device_x, window)
        generic_y, generic_winner = Backend.max_pool(backend, device_x, window)
        lane.assert_close(y, expected, "float64", what=f"max_pool {shape} {window}")
        lane.assert_close(generic_y, expected, "float64", what=f"generic max_pool {window}")
        np.testing.assert_array_equal(lane.to_host(winner).astype(np.int64),
                                      lane.to_host(generic_winner).astype(np.int64))
        g = rng.standard_normal(expected.shape)
        expected_grad = ref.max_pool_backward(x, g, window.size, window.stride, pads)
        device_g = lane.asarray(g, "float64")
        for kernel in (backend.max_pool_backward,
                       lambda *args: Backend.max_pool_backward(backend, *args)):
            grad = kernel(device_g, winner, shape, window)
            lane.assert_close(grad, expected_grad, "float64", what=f"max_pool dL/dx {window}")


@both_kernel_modes
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_keep_the_dtype_and_the_lane(lane, dtype):
    window = Window((3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)))
    x = lane.asarray(np.ones((2, 3, 5, 5)), dtype)
    unfolded = lane.backend.unfold(x, window)
    folded = lane.backend.fold(unfolded, (2, 3, 5, 5), window)
    product = lane.backend.fold_product(lane.asarray(np.ones((18, 4)), dtype),
                                        lane.asarray(np.ones((3, 3, 4, 3)), dtype),
                                        (2, 3, 5, 5), window)
    pooled, winner = lane.backend.max_pool(x, window)
    pooled_grad = lane.backend.max_pool_backward(pooled, winner, (2, 3, 5, 5), window)
    for array in (unfolded, folded, product, pooled, pooled_grad):
        assert lane.backend.owns(array)
        assert lane.to_host(array).dtype == np.dtype(dtype)


# -- every layer: gradcheck and parity ----------------------------------------------------------

@both_kernel_modes
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradcheck(lane, name, rng):
    factory, shape, _, _ = LAYERS[name]
    result = xpnn.gradcheck(factory(), _inputs(rng, shape), device=lane.device,
                            tolerance=GRADCHECK)
    assert result.passed and result.checked > 0


@both_kernel_modes
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_parity_with_reference(lane, name, dtype, rng):
    factory, shape, forward_ref, backward_ref = LAYERS[name]
    layer = _build(factory(), lane, dtype, shape[1:])
    params = {}
    for param in layer.trainable_parameters():
        value = rng.standard_normal(param.shape).astype(dtype).astype(np.float64)
        param.value = lane.asarray(value, dtype)
        params[param.name.split("/")[-1]] = value
    x = _inputs(rng, shape).astype(dtype).astype(np.float64)
    y, ctx = layer.apply(lane.asarray(x, dtype), training=True)
    lane.assert_close(y, forward_ref(x, params), dtype, what=f"{name} forward")
    assert tuple(y.shape[1:]) == layer.output_shape

    g = rng.standard_normal(tuple(y.shape)).astype(dtype).astype(np.float64)
    grad_input = layer.backward(ctx, lane.asarray(g, dtype))
    expected_input, expected_params = backward_ref(x, params, g)
    lane.assert_close(grad_input, expected_input, dtype, what=f"{name} dL/dx")
    assert {p.name.split("/")[-1] for p in layer.trainable_parameters()} == set(expected_params)
    for param in layer.trainable_parameters():
        short = param.name.split("/")[-1]
        lane.assert_close(param.grad, expected_params[short], dtype, what=f"{name} dL/d{short}")


def test_layers_do_not_mutate_inputs_and_accept_non_contiguous_numpy(rng):
    backend = xpnn.get_backend("cpu")
    for name, (factory, shape, forward_ref, _) in sorted(LAYERS.items()):
        base = rng.standard_normal((*shape[:3], 2 * shape[3]))
        x = base[:, :, :, ::2]
        before = base.copy()
        layer = factory()
        layer.build(shape[1:], BuildContext(backend, "float64", np.random.default_rng(0)))
        params = {p.name.split("/")[-1]: p.value for p in layer.parameters()}
        y, ctx = layer.apply(x, training=True)
        layer.backward(ctx, np.ones_like(y))
        np.testing.assert_allclose(y, forward_ref(np.ascontiguousarray(x), params),
                                   rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(base, before, err_msg=f"{name} mutated its input")


# -- details of single layers -------------------------------------------------------------------

@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_same_padding_gives_ceil_of_size_over_stride(size, stride):
    for height, width in [(7, 8), (5, 5), (1, 3)]:
        conv = xpnn.Conv2D(1, size, stride=stride, padding="same")
        assert conv.compute_output_shape((2, height, width)) == (
            1, -(-height // stride), -(-width // stride))


@both_kernel_modes
def test_max_pool_ties_have_one_winner_the_first_in_row_major_order(lane):
    pool = _build(xpnn.MaxPool2D(2), lane, "float64", (1, 4, 4))
    _, ctx = pool.apply(lane.asarray(np.ones((1, 1, 4, 4)), "float64"))
    grad = lane.to_host(pool.backward(
        ctx, lane.asarray(np.arange(1.0, 5.0).reshape(1, 1, 2, 2), "float64")))
    np.testing.assert_array_equal(grad[0, 0], [[1, 0, 2, 0], [0, 0, 0, 0],
                                               [3, 0, 4, 0], [0, 0, 0, 0]])
    # overlapping windows (stride 1) on a constant image: every window's first tap wins
    pool = _build(xpnn.MaxPool2D(2, stride=1), lane, "float64", (1, 3, 3))
    _, ctx = pool.apply(lane.asarray(np.zeros((1, 1, 3, 3)), "float64"))
    grad = lane.to_host(pool.backward(ctx, lane.asarray(np.ones((1, 1, 2, 2)), "float64")))
    np.testing.assert_array_equal(grad[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


@both_kernel_modes
def test_max_pool_padding_never_wins(lane):
    pool = _build(xpnn.MaxPool2D(3, stride=1, padding=1), lane, "float64", (1, 2, 2))
    y = lane.to_host(pool(lane.asarray(-np.arange(1.0, 5.0).reshape(1, 1, 2, 2), "float64")))
    np.testing.assert_array_equal(y[0, 0], [[-1, -1], [-1, -1]])


def test_batchnorm2d_statistics_are_per_channel(lane, rng):
    x = rng.standard_normal((4, 3, 5, 5)) * np.array([1.0, 3.0, 0.5])[None, :, None, None] + \
        np.array([2.0, -1.0, 0.0])[None, :, None, None]
    layer = _build(xpnn.BatchNorm2D(momentum=0.0), lane, "float64", (3, 5, 5))
    y = lane.to_host(layer(lane.asarray(x, "float64"), training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)
    np.testing.assert_allclose(lane.to_host(layer.running_mean.value), x.mean(axis=(0, 2, 3)),
                               rtol=1e-12)
    np.testing.assert_allclose(lane.to_host(layer.running_var.value),
                               x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    inference = lane.to_host(layer(lane.asarray(x, "float64"), training=False))
    np.testing.assert_allclose(inference, (x - x.mean(axis=(0, 2, 3), keepdims=True))
                               / np.sqrt(x.var(axis=(0, 2, 3), ddof=1, keepdims=True) + 1e-5),
                               rtol=1e-10)


def test_conv_initialisation_uses_the_kernel_fans():
    model = xpnn.Sequential([xpnn.Conv2D(64, 3), xpnn.ReLU(), xpnn.Conv2D(8, 5)], seed=0)
    model.build((16, 20, 20))
    he = model.get_weights()[0]  # before a ReLU: He normal, std √(2 / fan_in), fan_in 16·9
    assert he.shape == (64, 16, 3, 3)
    assert abs(he.std() / math.sqrt(2 / 144) - 1) < 0.05
    glorot = model.get_weights()[2]  # last layer: Glorot uniform, bound √(6 / (fan_in + out))
    assert np.abs(glorot).max() <= math.sqrt(6 / (64 * 25 + 8 * 25))
    assert np.abs(glorot).max() > 0.9 * math.sqrt(6 / (64 * 25 + 8 * 25))


# -- errors -----------------------------------------------------------------------------------

def test_a_kernel_larger_than_the_padded_input_is_refused_with_a_clear_message():
    model = xpnn.Sequential([xpnn.Conv2D(2, 5, name="big")])
    with pytest.raises(xpnn.ShapeError, match=r"layer 'big' \(Conv2D\).*5×5 window does not "
                                              r"fit in the input of 4×4 pixels padded to 4×4"):
        model.build((1, 4, 4))
    with pytest.raises(xpnn.ShapeError, match=r"span 9×9.*padded to 8×8"):
        xpnn.Conv2D(2, 5, padding=1, dilation=2).compute_output_shape((1, 6, 6))
    assert xpnn.Conv2D(2, 5, padding=1, dilation=2).compute_output_shape((1, 7, 7)) == (2, 1, 1)
    pool = xpnn.MaxPool2D(3, name="pool")
    with pytest.raises(xpnn.ShapeError, match=r"'pool' \(MaxPool2D\).*3×3 window"):
        pool.compute_output_shape((4, 2, 9))


def test_a_channel_mismatch_names_the_layer_and_both_shapes(rng):
    model = xpnn.Sequential([xpnn.Conv2D(4, 3, name="first_conv"), xpnn.ReLU()])
    model.build((3, 8, 8))
    with pytest.raises(xpnn.ShapeError, match=r"\(samples, 3, 8, 8\), received \(2, 1, 8, 8\)"):
        model.predict(rng.standard_normal((2, 1, 8, 8)))
    conv = model.layers[0]
    with pytest.raises(xpnn.ShapeError, match=r"layer 'first_conv' \(Conv2D\) expected input of "
                                              r"shape \(batch, 3, 8, 8\), received \(2, 1, 8, 8\)"):
        conv(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))


@pytest.mark.parametrize("layer", [
    xpnn.Conv2D(2, 3, data_format="channels_last"), xpnn.MaxPool2D(data_format="channels_last"),
    xpnn.AvgPool2D(data_format="channels_last"),
    xpnn.GlobalAveragePool2D(data_format="channels_last"),
    xpnn.BatchNorm2D(data_format="channels_last")], ids=lambda layer: type(layer).__name__)
def test_flat_inputs_are_refused_with_the_nhwc_layout(layer):
    with pytest.raises(xpnn.ShapeError, match=r"takes images of shape \(batch, height, "
                                              r"width, channels\), received inputs of shape "
                                              r"\(batch, 64\)"):
        xpnn.Sequential([layer]).build((64,))


@pytest.mark.parametrize("layer", [xpnn.Conv2D(2, 3), xpnn.MaxPool2D(), xpnn.AvgPool2D(),
                                   xpnn.GlobalAveragePool2D(), xpnn.BatchNorm2D()],
                         ids=lambda layer: type(layer).__name__)
def test_flat_inputs_are_refused_with_the_nchw_layout(layer):
    model = xpnn.Sequential([layer])
    with pytest.raises(xpnn.ShapeError, match=r"takes images of shape \(batch, channels, "
                                              r"height, width\), received inputs of shape "
                                              r"\(batch, 64\)"):
        model.build((64,))


@pytest.mark.parametrize("make, message", [
    (lambda: xpnn.Conv2D(0, 3), "filters"),
    (lambda: xpnn.Conv2D(2, 0), "kernel_size"),
    (lambda: xpnn.Conv2D(2, (3, 3, 3)), "kernel_size"),
    (lambda: xpnn.Conv2D(2, 3, stride=0), "stride"),
    (lambda: xpnn.Conv2D(2, 3, dilation=True), "dilation"),
    (lambda: xpnn.Conv2D(2, 3, padding="full"), "padding"),
    (lambda: xpnn.Conv2D(2, 3, padding=-1), "padding"),
    (lambda: xpnn.MaxPool2D(2, padding=2), "half of the pool size"),
    (lambda: xpnn.AvgPool2D(2.5), "pool_size"),
    (lambda: xpnn.Conv2D(2, 3, data_format="NHWC"), "data_format must be 'channels_first'"),
    (lambda: xpnn.MaxPool2D(data_format="channels-last"), "data_format"),
    (lambda: xpnn.GlobalAveragePool2D(data_format=1), "data_format"),
    (lambda: xpnn.BatchNorm2D(data_format="last"), "data_format"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- channels-last images -----------------------------------------------------------------------

def _gap_cnn(data_format, device=None, dtype="float32", seed=0):
    """A CNN whose head (global average pooling) reads the channels the same way in both
    formats, so the two formats are one model (Flatten would order the features otherwise)."""
    return xpnn.Sequential([
        xpnn.Conv2D(4, 3, padding="same", data_format=data_format),
        xpnn.BatchNorm2D(data_format=data_format), xpnn.ReLU(),
        xpnn.MaxPool2D(2, data_format=data_format),
        xpnn.Conv2D(6, 3, stride=2, padding=1, data_format=data_format), xpnn.Tanh(),
        xpnn.AvgPool2D(2, padding="same", data_format=data_format),
        xpnn.GlobalAveragePool2D(data_format=data_format), xpnn.Dense(3)],
        device=device, dtype=dtype, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_channels_last_cnn_trains_as_the_channels_first_one_on_transposed_images(lane,
                                                                                   dtype):
    """NHWC in and out, NCHW inside: the same initial weights, the same 20 training steps
    (within the training tolerance) and the same predictions, on every lane."""
    x, y = _images()
    runs = {}
    for data_format, data in (("channels_first", x), ("channels_last", _to_last(x))):
        model = _gap_cnn(data_format, lane.device, dtype, seed=2)
        model.compile("softmax_crossentropy", xpnn.Momentum(0.05, 0.9))
        model.fit(data, y, epochs=5, batch_size=10, seed=4, verbose=0)
        runs[data_format] = (model.get_weights(), model.predict(data),
                             model.layer_outputs(data))
    (first_weights, first_pred, first_maps), (last_weights, last_pred, last_maps) = (
        runs["channels_first"], runs["channels_last"])
    for got, expected in zip(last_weights, first_weights, strict=True):
        np.testing.assert_allclose(got, expected, **TRAINING[dtype])
    np.testing.assert_allclose(last_pred, first_pred, **TRAINING[dtype])
    conv_first, conv_last = (next(iter(maps.values())) for maps in (first_maps, last_maps))
    assert conv_last.shape == (40, 8, 7, 4)  # (N, H, W, filters): NHWC out
    np.testing.assert_allclose(conv_last, _to_last(conv_first), **TRAINING[dtype])


def test_channels_last_images_in_a_channels_first_model_are_named(lane):
    """The Keras user's NHWC images: a model built from them warns (once it sees them) and
    names the fix; a layer that states its format, NCHW images, and shapes that are no
    image's stay quiet; errors about windows and about shapes mention the layout too."""
    rng = np.random.default_rng(0)
    nhwc, labels = rng.standard_normal((8, 16, 16, 3)), rng.integers(0, 3, 8)

    def model(data_format=None, kernel=3):
        built = xpnn.Sequential([xpnn.Conv2D(4, kernel, data_format=data_format), xpnn.ReLU(),
                                 xpnn.GlobalAveragePool2D(), xpnn.Dense(3)],
                                device=lane.device, seed=0)
        built.compile("softmax_crossentropy", "adam")
        return built

    with pytest.warns(UserWarning, match=r"'conv2d(_\d+)?' \(Conv2D\): inputs of shape "
                                         r"\(batch, 16, 16, 3\) look like channels-last "
                                         r".*data_format='channels_last', or transpose .*"
                                         r"x\.transpose\(0, 3, 1, 2\)") as caught:
        model().fit(nhwc, labels, verbose=0)
    assert caught[0].filename == __file__  # the warning points at the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model("channels_first").fit(nhwc, labels, verbose=0)  # stated: meant
        model().fit(_to_first(nhwc), labels, verbose=0)  # NCHW
        model(kernel=(3, 1)).build((64, 1000, 1))  # 64 channels of a 1-D signal
        model().build((3, 32, 3))  # 3 channels of 32×3
        model("channels_last").fit(nhwc, labels, verbose=0)
    with pytest.raises(xpnn.ShapeError, match=r"5×5 window does not fit in the input of "
                                              r"16×3 pixels.* look like channels-last"):
        model(kernel=5).build((16, 16, 3))
    nchw_model = model()
    nchw_model.build((3, 16, 16))
    with pytest.raises(xpnn.ShapeError, match=r"received \(8, 16, 16, 3\); they look like "
                                              r"channels-last .*x\.transpose\(0, 3, 1, 2\)"):
        nchw_model.predict(nhwc)
    with pytest.raises(xpnn.ShapeError, match=r"look like channels-last"):
        nchw_model(lane.asarray(nhwc, "float32"))
    nhwc_model = model("channels_last")
    nhwc_model.build((16, 16, 3))
    with pytest.raises(xpnn.ShapeError, match=r"look like channels-first .*"
                                              r"x\.transpose\(0, 2, 3, 1\)"):
        nhwc_model.fit(_to_first(nhwc), labels, verbose=0)
    with pytest.raises(xpnn.ShapeError, match=r"5×5 window does not fit .* look like "
                                              r"channels-first \(N, C, H, W\) images"):
        model("channels_last", kernel=5).build((3, 16, 16))


# -- models -----------------------------------------------------------------------------------

def _cnn(device=None, dtype="float32", seed=0):
    return xpnn.Sequential([
        xpnn.Conv2D(4, 3, padding="same"), xpnn.BatchNorm2D(), xpnn.ReLU(),
        xpnn.MaxPool2D(2), xpnn.Conv2D(6, 3, stride=1, padding=1, dilation=1), xpnn.Tanh(),
        xpnn.AvgPool2D(2, padding="same"), xpnn.Flatten(), xpnn.Dense(3)],
        device=device, dtype=dtype, seed=seed)


def _images():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 2, 8, 7))
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 1, 4:].mean(axis=(1, 2))).astype(np.int64)
    y += (x[:, :, :, :3].mean(axis=(1, 2, 3)) > 0.1)
    return x, y


def _train_cnn(device, dtype):
    x, y = _images()
    model = _cnn(device, dtype, seed=2)
    model.compile("softmax_crossentropy", xpnn.Momentum(0.05, 0.9))
    model.fit(x, y, epochs=5, batch_size=10, seed=4, verbose=0)  # 20 steps
    return model.get_weights()


@both_kernel_modes
@pytest.mark.parametrize("dtype", DTYPES)
def test_twenty_cnn_steps_agree_with_the_float64_numpy_run(lane, dtype):
    reference = _train_cnn("cpu", "float64")
    for got, expected in zip(_train_cnn(lane.device, dtype), reference, strict=True):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, expected, **TRAINING[dtype])


def test_a_cnn_saves_loads_and_predicts_the_same_on_every_lane(lane, tmp_path):
    x, y = _images()
    model = _cnn(seed=1)
    model.compile("softmax_crossentropy", xpnn.Adam(1e-2), metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    model.save(tmp_path / "cnn.xpnn")
    loaded = xpnn.load(tmp_path / "cnn.xpnn", device=lane.device)
    assert [layer.get_config() for layer in loaded.layers] == [
        layer.get_config() for layer in model.layers]
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-4, atol=1e-5)


def test_layer_configs_round_trip():
    for layer in (xpnn.Conv2D(3, (2, 3), (1, 2), "same", 2, use_bias=False, name="c"),
                  xpnn.Conv2D(3, 3, padding=(1, 0), kernel_initializer="he_uniform",
                              weight_decay=1e-4),
                  xpnn.MaxPool2D(3, 2, 1), xpnn.AvgPool2D((2, 3), padding="valid"),
                  xpnn.GlobalAveragePool2D(), xpnn.Flatten(), xpnn.BatchNorm2D(momentum=0.5),
                  xpnn.Conv2D(2, 3, data_format="channels_last"),
                  xpnn.Conv2D(2, 3, data_format="channels_first"),
                  xpnn.MaxPool2D(data_format="channels_last"),
                  xpnn.AvgPool2D(data_format="channels_last"),
                  xpnn.GlobalAveragePool2D(data_format="channels_last"),
                  xpnn.BatchNorm2D(data_format="channels_last")):
        clone = type(layer)(**layer.get_config())
        assert clone.get_config() == layer.get_config()


@pytest.mark.slow
def test_a_small_cnn_learns_the_digits(lane):
    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=0)
    model = xpnn.Sequential([
        xpnn.Conv2D(8, 3, padding="same"), xpnn.ReLU(), xpnn.MaxPool2D(2), xpnn.Flatten(),
        xpnn.Dense(10)], device=lane.device, seed=0)
    model.compile("softmax_crossentropy", xpnn.Adam(3e-3), metrics=["accuracy"])
    model.fit(x_train.reshape(-1, 1, 8, 8), y_train, epochs=10, batch_size=64, verbose=0,
              seed=0)
    assert model.evaluate(x_test.reshape(-1, 1, 8, 8), y_test)["accuracy"] > 0.9


# -- random geometries (Hypothesis) -------------------------------------------------------------

PROPERTIES = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])
pairs = st.integers(1, 3) | st.tuples(st.integers(1, 3), st.integers(1, 3))
paddings = st.sampled_from(["same", "valid"]) | st.integers(0, 2) | st.tuples(
    st.integers(0, 2), st.integers(0, 2))


def _as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _reference_pads(padding, size, stride, dilation, image):
    """((top, bottom), (left, right)) as the test reads the documented rules."""
    if padding == "valid":
        return NO_PAD
    if padding == "same":
        pads = []
        for n, k, s, d in zip(image, size, stride, dilation, strict=True):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    return tuple((p, p) for p in _as_pair(padding))


@both_kernel_modes
@PROPERTIES
@given(batch=st.integers(1, 3), channels=st.integers(1, 3), image=st.tuples(
    st.integers(1, 7), st.integers(1, 7)), filters=st.integers(1, 3), kernel=pairs,
    stride=pairs, dilation=pairs, padding=paddings, use_bias=st.booleans(),
    seed=st.integers(0, 2**31))
def test_conv2d_on_random_geometries(lane, batch, channels, image, filters, kernel, stride,
                                     dilation, padding, use_bias, seed):
    """Forward and backward against the loop reference in float64, or a ShapeError naming
    the layer when the window does not fit."""
    rng = np.random.default_rng(seed)
    size, step, spread = _as_pair(kernel), _as_pair(stride), _as_pair(dilation)
    pads = _reference_pads(padding, size, step, spread, image)
    fits = all(ref.output_size(n, p, d * (k - 1) + 1, s) >= 1 for n, p, k, s, d in
               zip(image, pads, size, step, spread, strict=True))
    layer = xpnn.Conv2D(filters, kernel, stride, padding, dilation, use_bias=use_bias)
    if not fits:
        with pytest.raises(xpnn.ShapeError, match=r"'conv2d(_\d+)?' \(Conv2D\).*does not fit"):
            _build(layer, lane, "float64", (channels, *image))
        return
    _build(layer, lane, "float64", (channels, *image))
    params = {p.name.split("/")[-1]: lane.to_host(p.value) for p in layer.parameters()}
    x = rng.standard_normal((batch, channels, *image))
    y, ctx = layer.apply(lane.asarray(x, "float64"), training=True)
    expected = ref.conv2d_forward(x, params["kernel"], params.get("bias"), step, pads, spread)
    lane.assert_close(y, expected, "float64", what="forward")
    g = rng.standard_normal(expected.shape)
    grad_x = layer.backward(ctx, lane.asarray(g, "float64"))
    expected_x, expected_params = ref.conv2d_backward(x, params["kernel"], g, step, pads,
                                                      spread)
    lane.assert_close(grad_x, expected_x, "float64", what="dL/dx")
    lane.assert_close(layer.kernel.grad, expected_params["kernel"], "float64", what="dL/dW")
    if use_bias:
        lane.assert_close(layer.bias.grad, expected_params["bias"], "float64", what="dL/db")


@both_kernel_modes
@PROPERTIES
@given(batch=st.integers(1, 3), channels=st.integers(1, 3), image=st.tuples(
    st.integers(1, 7), st.integers(1, 7)), pool=pairs, stride=st.none() | pairs,
    padding=paddings, kind=st.sampled_from(["max", "avg"]), ties=st.booleans(),
    seed=st.integers(0, 2**31))
def test_pooling_on_random_geometries(lane, batch, channels, image, pool, stride, padding, kind,
                                      ties, seed):
    """Max and average pooling against the loop reference (ties included), or the documented
    error for padding over half the window or a window that does not fit."""
    rng = np.random.default_rng(seed)
    size = _as_pair(pool)
    step = size if stride is None else _as_pair(stride)
    cls = xpnn.MaxPool2D if kind == "max" else xpnn.AvgPool2D
    if not isinstance(padding, str) and any(p > k // 2 for p, k in
                                            zip(_as_pair(padding), size, strict=True)):
        with pytest.raises(ValueError, match="half of the pool size"):
            cls(pool, stride, padding)
        return
    layer = cls(pool, stride, padding)
    pads = _reference_pads(padding, size, step, (1, 1), image)
    if any(ref.output_size(n, p, k, s) < 1 for n, p, k, s in
           zip(image, pads, size, step, strict=True)):
        with pytest.raises(xpnn.ShapeError, match="does not fit"):
            _build(layer, lane, "float64", (channels, *image))
        return
    _build(layer, lane, "float64", (channels, *image))
    shape = (batch, channels, *image)
    x = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    forward, backward = (_max if kind == "max" else _avg)(size, step, pads)
    y, ctx = layer.apply(lane.asarray(x, "float64"), training=True)
    lane.assert_close(y, forward(x, {}), "float64", what=f"{kind} pool forward")
    g = rng.standard_normal(tuple(y.shape))
    lane.assert_close(layer.backward(ctx, lane.asarray(g, "float64")), backward(x, {}, g)[0],
                      "float64", what=f"{kind} pool dL/dx")
