"""Every layer: float64 gradcheck on every lane, and forward/backward parity with the float64
NumPy reference (tests/reference.py) in float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.layers.base import BuildContext

from . import reference as ref
from .tolerances import GRADCHECK

DTYPES = ("float32", "float64")


def _dense_with(activation, forward, backward):
    """A Dense(5) case with a fused activation: φ(x W + b), and Dense's backward of
    dL/dz = φ'(z) ⊙ G (from the references of the activation layers)."""
    return (lambda: xpnn.Dense(5, activation=activation),
            lambda x, p: forward(ref.dense_forward(x, **p)),
            lambda x, p, g: ref.dense_backward(x, p["kernel"], p["bias"],
                                               backward(ref.dense_forward(x, **p), g)))


# name -> (factory, reference forward(x, params), reference backward(x, params, g))
LAYERS = {
    "dense_relu": _dense_with("relu", lambda z: np.maximum(z, 0), ref.relu_backward),
    "dense_sigmoid": _dense_with("sigmoid", ref.sigmoid, ref.sigmoid_backward),
    "dense_tanh": _dense_with("tanh", np.tanh, ref.tanh_backward),
    "dense_softmax": _dense_with("softmax", ref.softmax, ref.softmax_backward),
    "dense_linear": _dense_with("linear", lambda z: z, lambda z, g: g),
    "dense": (lambda: xpnn.Dense(5), lambda x, p: ref.dense_forward(x, **p),
              lambda x, p, g: ref.dense_backward(x, p["kernel"], p["bias"], g)),
    "dense_no_bias": (lambda: xpnn.Dense(3, use_bias=False), lambda x, p: x @ p["kernel"],
                      lambda x, p, g: (g @ p["kernel"].T, {"kernel": x.T @ g})),
    "sigmoid": (xpnn.Sigmoid, lambda x, p: ref.sigmoid(x),
                lambda x, p, g: (ref.sigmoid_backward(x, g), {})),
    "tanh": (xpnn.Tanh, lambda x, p: np.tanh(x),
             lambda x, p, g: (ref.tanh_backward(x, g), {})),
    "relu": (xpnn.ReLU, lambda x, p: np.maximum(x, 0),
             lambda x, p, g: (ref.relu_backward(x, g), {})),
    "leaky_relu": (lambda: xpnn.LeakyReLU(0.1), lambda x, p: ref.leaky_relu_forward(x, 0.1),
                   lambda x, p, g: (ref.leaky_relu_backward(x, g, 0.1), {})),
    "softmax": (xpnn.Softmax, lambda x, p: ref.softmax(x),
                lambda x, p, g: (ref.softmax_backward(x, g), {})),
    # training mode (batch statistics); inference mode has its own tests in test_toolkit.py
    "batchnorm": (xpnn.BatchNorm, lambda x, p: ref.batchnorm_forward(x, p["gamma"], p["beta"]),
                  lambda x, p, g: ref.batchnorm_backward(x, p["gamma"], g)),
}


def _inputs(rng: np.random.Generator, shape=(6, 4)) -> np.ndarray:
    x = rng.standard_normal(shape) * 2.0
    # keep ReLU-family inputs away from the kink at 0, where central differences are wrong
    return np.where(np.abs(x) < 0.05, 0.5, x)


def _build(layer: xpnn.Layer, lane, dtype: str, input_shape, seed: int = 0) -> xpnn.Layer:
    layer.build(input_shape, BuildContext(lane.backend, dtype, np.random.default_rng(seed)))
    return layer


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradcheck(lane, name, rng):
    factory = LAYERS[name][0]
    result = xpnn.gradcheck(factory(), _inputs(rng), device=lane.device, tolerance=GRADCHECK)
    assert result.passed and result.checked > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_parity_with_reference(lane, name, dtype, rng):
    factory, forward_ref, backward_ref = LAYERS[name]
    x = _inputs(rng)
    layer = _build(factory(), lane, dtype, x.shape[1:])
    # parameters: host float64 values, representable in dtype, loaded into the layer
    params = {}
    for short, param in zip([p.name.split("/")[-1] for p in layer.trainable_parameters()],
                            layer.trainable_parameters(), strict=True):
        value = rng.standard_normal(param.shape).astype(dtype).astype(np.float64)
        param.value = lane.asarray(value, dtype)
        params[short] = value
    x = x.astype(dtype).astype(np.float64)
    y, ctx = layer.apply(lane.asarray(x, dtype), training=True)
    lane.assert_close(y, forward_ref(x, params), dtype, what=f"{name} forward")

    g = rng.standard_normal(tuple(y.shape)).astype(dtype).astype(np.float64)
    grad_input = layer.backward(ctx, lane.asarray(g, dtype))
    expected_input, expected_params = backward_ref(x, params, g)
    lane.assert_close(grad_input, expected_input, dtype, what=f"{name} dL/dx")
    for param in layer.trainable_parameters():
        short = param.name.split("/")[-1]
        lane.assert_close(param.grad, expected_params[short], dtype, what=f"{name} dL/d{short}")


def test_dense_maps_the_last_axis_of_3d_inputs(lane, rng):
    x = rng.standard_normal((2, 3, 4))
    layer = _build(xpnn.Dense(5), lane, "float64", x.shape[1:])
    kernel, bias = (lane.to_host(p.value) for p in layer.parameters())
    y = layer(lane.asarray(x, "float64"))
    lane.assert_close(y, x @ kernel + bias, "float64", what="3-D forward")
    assert layer.output_shape == (3, 5)
    assert xpnn.gradcheck(xpnn.Dense(2), x, device=lane.device).passed


def test_softmax_gradcheck_on_3d_input(lane, rng):
    assert xpnn.gradcheck(xpnn.Softmax(), rng.standard_normal((2, 3, 4)),
                          device=lane.device).passed


def test_stable_sigmoid_and_softmax_do_not_overflow(lane):
    x = lane.asarray(np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]]), "float32")
    sigmoid = _build(xpnn.Sigmoid(), lane, "float32", (5,))
    y = lane.to_host(sigmoid(x))
    np.testing.assert_allclose(y, [[0.0, ref.sigmoid(-50.0), 0.5, 1.0, 1.0]], atol=1e-7)
    softmax = _build(xpnn.Softmax(), lane, "float32", (5,))
    p = lane.to_host(softmax(x))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[0, 0, 0, 0, 1]], atol=1e-7)


def test_frozen_dense_computes_no_parameter_gradients(lane, rng):
    x = rng.standard_normal((4, 3))
    layer = _build(xpnn.Dense(2), lane, "float64", (3,))
    layer.trainable = False
    _, ctx = layer.apply(lane.asarray(x, "float64"), training=True)
    grad_input = layer.backward(ctx, lane.asarray(np.ones((4, 2)), "float64"))
    assert all(p.grad is None for p in layer.parameters())
    kernel = lane.to_host(layer.kernel.value)
    lane.assert_close(grad_input, np.ones((4, 2)) @ kernel.T, "float64")


def test_layers_do_not_mutate_inputs_and_accept_non_contiguous_numpy(rng):
    """Chainer's habit: feed a strided view, check the result and that the input is intact."""
    base = rng.standard_normal((6, 8))
    x = base[:, ::2]  # non-contiguous view, shape (6, 4)
    assert not x.flags.c_contiguous
    backend = xpnn.get_backend("cpu")
    for name, (factory, forward_ref, _) in sorted(LAYERS.items()):
        before = base.copy()
        layer = factory()
        layer.build((4,), BuildContext(backend, "float64", np.random.default_rng(0)))
        params = {p.name.split("/")[-1]: p.value for p in layer.parameters()}
        y, ctx = layer.apply(x, training=True)
        layer.backward(ctx, np.ones_like(y))
        np.testing.assert_allclose(y, forward_ref(np.ascontiguousarray(x), params), rtol=1e-12,
                                   err_msg=name)
        np.testing.assert_array_equal(base, before, err_msg=f"{name} mutated its input")


def test_gradcheck_catches_a_wrong_backward(rng):
    class WrongTanh(xpnn.Tanh):
        def backward(self, ctx, grad_output):
            return grad_output * (1.0 - ctx.output)  # missing the square

    with pytest.raises(xpnn.GradcheckError, match=r"input\["):
        xpnn.gradcheck(WrongTanh(), rng.standard_normal((3, 2)))
    result = xpnn.gradcheck(WrongTanh(), rng.standard_normal((3, 2)), raise_on_failure=False)
    assert not result.passed and result.max_error > 1e-3


def test_gradcheck_refuses_float32_layers(rng):
    layer = xpnn.Dense(2)
    layer.build((3,), BuildContext(xpnn.get_backend("cpu"), "float32", rng))
    with pytest.raises(xpnn.DTypeError, match="float64"):
        xpnn.gradcheck(layer, rng.standard_normal((2, 3)))


def test_layer_config_round_trip():
    for layer in (xpnn.Dense(7, use_bias=False, kernel_initializer="lecun_normal", name="d"),
                  xpnn.Dense(4, "softmax"), xpnn.Dense(4, activation="relu"),
                  xpnn.LeakyReLU(0.2), xpnn.Softmax(), xpnn.Dense(3, weight_decay=1e-3),
                  xpnn.BatchNorm(momentum=0.5, epsilon=1e-3, center=False),
                  xpnn.Dropout(0.25, seed=3)):
        clone = type(layer)(**layer.get_config())
        assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("units", [0, -1, 2.5, True])
def test_dense_rejects_bad_units(units):
    with pytest.raises(ValueError, match="units"):
        xpnn.Dense(units)


@pytest.mark.parametrize("activation", ["gelu", "ReLU", "leaky_relu", 3])
def test_dense_rejects_unknown_activations_and_says_what_to_do(activation):
    with pytest.raises(ValueError, match=r"activation must be None or one of \['linear', "
                                         r"'relu', 'sigmoid', 'softmax', 'tanh'\].*LeakyReLU"):
        xpnn.Dense(2, activation=activation)


def test_dense_with_an_activation_trains_exactly_as_dense_then_the_activation_layer(lane):
    """Dense(8, activation=a) is Dense(8) + the layer a: the same initial weights (He
    before ReLU either way) and the same training, step by step."""
    x, y = xpnn.datasets.two_moons(60, seed=0)
    pairs = {"relu": xpnn.ReLU, "tanh": xpnn.Tanh, "sigmoid": xpnn.Sigmoid}
    for name, layer in pairs.items():
        weights = []
        for hidden in ([xpnn.Dense(8, activation=name)], [xpnn.Dense(8), layer()]):
            model = xpnn.Sequential([*hidden, xpnn.Dense(2)], device=lane.device, seed=0)
            model.compile("softmax_crossentropy", xpnn.SGD(0.1))
            model.build((2,))
            initial = model.get_weights()
            model.fit(x, y, epochs=2, batch_size=20, seed=0, verbose=0)
            weights.append((initial, model.get_weights()))
        (fused_start, fused_end), (plain_start, plain_end) = weights
        for fused, plain in zip(fused_start, plain_start, strict=True):
            np.testing.assert_array_equal(fused, plain, err_msg=f"{name}: initial weights")
        for fused, plain in zip(fused_end, plain_end, strict=True):
            np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-6, err_msg=name)


def test_dense_initialisation_follows_its_activation():
    """He normal for activation="relu"; Glorot uniform for the others, even before a ReLU
    layer (the next layer reads φ(z), not z); an explicit initializer is kept."""
    model = xpnn.Sequential([xpnn.Dense(512, activation="relu"),
                             xpnn.Dense(512, activation="tanh"), xpnn.ReLU(),
                             xpnn.Dense(512, activation="relu", kernel_initializer="zeros")],
                            seed=0)
    model.build((256,))
    he, _, glorot, _, zeros, _ = model.get_weights()
    assert abs(he.std() / np.sqrt(2 / 256) - 1) < 0.02
    assert np.abs(glorot).max() <= np.sqrt(6 / 1024) and abs(
        glorot.std() / np.sqrt(2 / 1024) - 1) < 0.02
    assert not zeros.any()
    assert [model.layers[i].resolved_kernel_initializer.name for i in (0, 1, 3)] == [
        "he_normal", "glorot_uniform", "zeros"]
