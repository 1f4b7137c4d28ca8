"""The training toolkit: BatchNorm in both modes, Dropout, L2 weight decay, gradient
clipping, on every lane."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.layers.base import BuildContext

from . import reference as ref
from .tolerances import GRADCHECK, PARITY


def _build(layer, lane, dtype, input_shape, seed=0, noise_seed=None):
    layer.build(input_shape, BuildContext(lane.backend, dtype, np.random.default_rng(seed),
                                          noise_seed=noise_seed))
    return layer


def _set(lane, param, value, dtype):
    param.value = lane.asarray(value, dtype)


# -- BatchNorm ---------------------------------------------------------------------------------

def _batchnorm_with_statistics(lane, rng, dtype="float64", shape=(4,)):
    layer = _build(xpnn.BatchNorm(), lane, dtype, shape)
    features = shape[-1]
    gamma, beta = rng.standard_normal(features), rng.standard_normal(features)
    mean, var = rng.standard_normal(features), rng.uniform(0.5, 2.0, features)
    for param, value in zip(layer.parameters(), (gamma, beta, mean, var), strict=True):
        _set(lane, param, value, dtype)
    return layer, gamma, beta, mean, var


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape", [(7, 4), (3, 5, 2)], ids=["2d", "3d"])
def test_batchnorm_gradcheck(lane, rng, training, shape):
    layer, *_ = _batchnorm_with_statistics(lane, rng, shape=shape[1:])
    result = xpnn.gradcheck(layer, rng.standard_normal(shape) * 3 + 1, device=lane.device,
                            training=training, tolerance=GRADCHECK)
    assert result.passed and result.checked == np.prod(shape) + 2 * shape[-1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batchnorm_inference_uses_running_statistics(lane, rng, dtype):
    layer, gamma, beta, mean, var = _batchnorm_with_statistics(lane, rng, dtype)
    x = rng.standard_normal((6, 4)).astype(dtype).astype(np.float64)
    y, ctx = layer.apply(lane.asarray(x, dtype), training=False)
    expected = gamma * (x - mean) / np.sqrt(var + 1e-5) + beta
    lane.assert_close(y, expected, dtype, what="inference forward")
    g = rng.standard_normal((6, 4))
    grad_input = layer.backward(ctx, lane.asarray(g, dtype))
    lane.assert_close(grad_input, g * gamma / np.sqrt(var + 1e-5), dtype, what="inference dx")
    lane.assert_close(layer.gamma.grad, (g * (x - mean) / np.sqrt(var + 1e-5)).sum(0), dtype,
                      what="inference dgamma")
    # inference leaves the statistics alone
    lane.assert_close(layer.running_mean.value, mean, dtype)


def test_batchnorm_running_statistics_follow_the_documented_update(lane, rng):
    layer = _build(xpnn.BatchNorm(momentum=0.8), lane, "float64", (3,))
    running_mean, running_var = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.standard_normal((10, 3)) * 2 + 5
        layer(lane.asarray(x, "float64"), training=True)
        running_mean = 0.8 * running_mean + 0.2 * x.mean(0)
        running_var = 0.8 * running_var + 0.2 * x.var(0, ddof=1)
    lane.assert_close(layer.running_mean.value, running_mean, "float64")
    lane.assert_close(layer.running_var.value, running_var, "float64")
    # a single sample carries no variance: the statistics stay as they are
    layer(lane.asarray(rng.standard_normal((1, 3)), "float64"), training=True)
    lane.assert_close(layer.running_var.value, running_var, "float64")


def test_a_frozen_batchnorm_runs_in_inference_mode(lane, rng):
    layer, gamma, beta, mean, var = _batchnorm_with_statistics(lane, rng)
    layer.trainable = False
    x = rng.standard_normal((6, 4))
    y, ctx = layer.apply(lane.asarray(x, "float64"), training=True)
    lane.assert_close(y, gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, "float64")
    lane.assert_close(layer.running_mean.value, mean, "float64")
    layer.backward(ctx, lane.asarray(np.ones((6, 4)), "float64"))
    assert layer.gamma.grad is None and layer.trainable_parameters() == []


def test_batchnorm_training_output_is_normalised_per_feature(lane, rng):
    layer = _build(xpnn.BatchNorm(), lane, "float32", (5,))
    x = rng.standard_normal((64, 5)) * np.array([0.1, 1, 10, 100, 1000]) + 50
    y = lane.to_host(layer(lane.asarray(x, "float32"), training=True))
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-3)


def test_batchnorm_statistics_are_non_trainable_parameters(rng):
    model = xpnn.Sequential([xpnn.Dense(4, name="a"), xpnn.BatchNorm(name="bn"),
                             xpnn.Dense(1, name="b")], seed=0)
    model.compile("mse", xpnn.SGD(0.1))
    model.build((3,))
    names = [p.name for p in model.trainable_parameters()]
    assert names == ["a/kernel", "a/bias", "bn/gamma", "bn/beta", "b/kernel", "b/bias"]
    assert len(model.get_weights()) == 8  # the running statistics are saved with the weights
    assert "bn/running_mean" not in model.optimizer.state
    assert "Non-trainable params: 8" in model.summary(print_fn=None)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    running_mean = model.get_weights()[4]
    assert np.any(running_mean != 0)


# -- Dropout -----------------------------------------------------------------------------------

def test_dropout_statistics_and_scaling(lane):
    rate = 0.3
    layer = _build(xpnn.Dropout(rate), lane, "float32", (200,), noise_seed=7)
    x = np.ones((500, 200))
    y = lane.to_host(layer(lane.asarray(x, "float32"), training=True))
    kept = y != 0
    # 100,000 Bernoulli(0.7) draws: the kept fraction is within 5 standard deviations
    std = np.sqrt(rate * (1 - rate) / kept.size)
    assert abs(kept.mean() - (1 - rate)) < 5 * std
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 5 * std / (1 - rate)  # inverted dropout keeps the mean
    # masks differ between rows and between calls
    again = lane.to_host(layer(lane.asarray(x, "float32"), training=True))
    assert np.any(again != y)


def test_dropout_backward_routes_through_the_same_mask(lane, rng):
    layer = _build(xpnn.Dropout(0.5), lane, "float64", (6,), noise_seed=1)
    y, ctx = layer.apply(lane.asarray(np.ones((8, 6)), "float64"), training=True)
    y = lane.to_host(y)
    g = rng.standard_normal((8, 6))
    grad_input = layer.backward(ctx, lane.asarray(g, "float64"))
    lane.assert_close(grad_input, g * y, "float64")  # y = m / (1 − p) for x = 1


def test_dropout_is_the_identity_at_inference(lane, rng):
    layer = _build(xpnn.Dropout(0.9), lane, "float32", (5,))
    x = rng.standard_normal((4, 5))
    y, ctx = layer.apply(lane.asarray(x, "float32"))
    lane.assert_close(y, x.astype(np.float32), "float32")
    g = rng.standard_normal((4, 5))
    lane.assert_close(layer.backward(ctx, lane.asarray(g, "float32")), g.astype(np.float32),
                      "float32")


def test_dropout_masks_are_seeded_and_the_same_on_numpy_and_strict():
    pytest.importorskip("array_api_strict", reason="the strict lane needs array-api-strict")
    x = np.ones((20, 10))
    outputs = []
    for device in ("cpu", "cpu", "strict"):
        model = xpnn.Sequential([xpnn.Dropout(0.5)], device=device, seed=3)
        model.build((10,))
        outputs.append(model.backend.to_host(model(model.backend.asarray(x, "float32"),
                                                   training=True)))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


def test_a_dropout_layer_does_not_change_the_other_layers_initial_weights():
    plain = xpnn.Sequential([xpnn.Dense(8), xpnn.ReLU(), xpnn.Dense(2)], seed=0)
    noisy = xpnn.Sequential([xpnn.Dense(8), xpnn.ReLU(), xpnn.Dropout(0.5), xpnn.Dense(2)],
                            seed=0)
    plain.build((3,))
    noisy.build((3,))
    for a, b in zip(plain.get_weights(), noisy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", True])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        xpnn.Dropout(rate)


# -- L2 weight decay ---------------------------------------------------------------------------

def _regression(rng, n=12):
    return rng.standard_normal((n, 3)), rng.standard_normal((n, 2))


def test_weight_decay_adds_half_lambda_norm_to_the_loss_and_lambda_w_to_the_gradient(lane, rng):
    x, y = _regression(rng)
    decay = 0.3
    model = xpnn.Sequential([xpnn.Dense(4), xpnn.Tanh(), xpnn.Dense(2)], device=lane.device,
                            dtype="float64", seed=0)
    model.compile("mse", xpnn.SGD(0.1, weight_decay=decay))
    model.build((3,))
    kernel_1, bias_1, kernel_2, bias_2 = model.get_weights()
    data_loss = ref.mse(np.tanh(x @ kernel_1 + bias_1) @ kernel_2 + bias_2, y)
    penalty = 0.5 * decay * (np.sum(kernel_1**2) + np.sum(kernel_2**2))  # biases not decayed
    assert model.evaluate(x, y)["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)

    def objective(weights):
        k1, b1, k2, b2 = weights
        return (ref.mse(np.tanh(x @ k1 + b1) @ k2 + b2, y)
                + 0.5 * decay * (np.sum(k1**2) + np.sum(k2**2)))

    # one SGD step moves each parameter by −η · d(objective)/dθ, checked by central differences
    before = model.get_weights()
    logs = model.train_on_batch(x, y)
    assert logs["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)
    for index, (start, end) in enumerate(zip(before, model.get_weights(), strict=True)):
        numeric = np.zeros_like(start)
        for position in np.ndindex(start.shape):
            probe = [w.copy() for w in before]
            probe[index][position] += 1e-6
            upper = objective(probe)
            probe[index][position] -= 2e-6
            numeric[position] = (upper - objective(probe)) / 2e-6
        np.testing.assert_allclose((start - end) / 0.1, numeric, rtol=1e-6, atol=1e-8)


def test_a_layer_coefficient_overrides_the_optimizer_and_adamw_stays_decoupled(rng):
    x, y = _regression(rng)
    model = xpnn.Sequential([xpnn.Dense(2, weight_decay=0.5)], dtype="float64", seed=0)
    model.compile("mse", xpnn.SGD(0.1, weight_decay=0.01))
    model.build((3,))
    kernel, bias = model.get_weights()
    data_loss = ref.mse(x @ kernel + bias, y)
    assert model.evaluate(x, y)["loss"] == pytest.approx(data_loss + 0.25 * np.sum(kernel**2))

    adamw = xpnn.Sequential([xpnn.Dense(2)], dtype="float64", seed=0)
    adamw.compile("mse", xpnn.AdamW(0.1, weight_decay=0.5))
    assert adamw.evaluate(x, y)["loss"] == pytest.approx(data_loss)  # decoupled: not in loss
    weights = adamw.get_weights()
    adamw.train_on_batch(x, y)
    # the Adam step moves each entry by about η; the decay shrinks the kernel by a factor
    # (1 − ηλ) first, the bias not at all
    grad_kernel = x.T @ (x @ kernel + bias - y) / y.size
    expected_kernel = weights[0] * (1 - 0.1 * 0.5) - 0.1 * np.sign(grad_kernel)
    np.testing.assert_allclose(adamw.get_weights()[0], expected_kernel, rtol=1e-6)


# -- gradient clipping -------------------------------------------------------------------------

def _parameters_with_gradients(lane, rng, scale):
    params = []
    for name, shape in (("w", (3, 4)), ("b", (4,))):
        param = xpnn.Parameter(name, lane.asarray(rng.standard_normal(shape), "float32"))
        param.grad = lane.asarray(rng.standard_normal(shape) * scale, "float32")
        params.append(param)
    return params


@pytest.mark.parametrize("scale", [0.01, 100.0])
def test_clip_norm_bounds_the_global_norm_and_keeps_the_direction(lane, rng, scale):
    params = _parameters_with_gradients(lane, rng, scale)
    grads = np.concatenate([lane.to_host(p.grad).ravel() for p in params])
    before = np.concatenate([lane.to_host(p.value).ravel() for p in params])
    optimizer = xpnn.SGD(1.0, clip_norm=1.0)
    optimizer.build(params, lane.backend)
    optimizer.step(params)
    step = before - np.concatenate([lane.to_host(p.value).ravel() for p in params])
    norm = np.linalg.norm(grads)
    expected = grads if norm <= 1.0 else grads / norm
    np.testing.assert_allclose(step, expected, **PARITY["float32"])
    assert np.linalg.norm(step) <= 1.0 + 1e-5


def test_clip_value_bounds_every_entry(lane, rng):
    params = _parameters_with_gradients(lane, rng, 3.0)
    grads = [lane.to_host(p.grad) for p in params]
    optimizer = xpnn.SGD(1.0, clip_value=0.5)
    optimizer.build(params, lane.backend)
    clipped = [lane.to_host(g) for g in optimizer.gradients(params)]
    for raw, result in zip(grads, clipped, strict=True):
        np.testing.assert_allclose(result, np.clip(raw, -0.5, 0.5))
    assert max(np.abs(c).max() for c in clipped) == pytest.approx(0.5)


@pytest.mark.parametrize("option", ["clip_norm", "clip_value", "weight_decay"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_optimizer_options_reject_bad_values(option, value):
    with pytest.raises(ValueError, match=option):
        xpnn.Adam(**{option: value})
