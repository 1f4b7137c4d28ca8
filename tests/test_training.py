"""End to end: the same seed and data give the same training run on every lane."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn

from .tolerances import TRAINING

OPTIMIZERS = {
    "sgd": lambda: xpnn.SGD(0.1),
    "momentum": lambda: xpnn.Momentum(0.05, 0.9),
    "nesterov": lambda: xpnn.Nesterov(0.05, 0.9),
    "adagrad": lambda: xpnn.AdaGrad(0.05),
    "rmsprop": lambda: xpnn.RMSProp(0.01),
    "adam": lambda: xpnn.Adam(0.01),
    "adamw": lambda: xpnn.AdamW(0.01, weight_decay=0.1),
}


def _data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((80, 5))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def _train(device: str, dtype: str, optimizer: str, steps: int = 20) -> list[np.ndarray]:
    """`steps` optimizer steps: 5 epochs of 4 shuffled batches of 20."""
    x, y = _data()
    model = xpnn.Sequential([xpnn.Dense(16), xpnn.Tanh(), xpnn.Dense(8), xpnn.LeakyReLU(0.1),
                             xpnn.Dense(8), xpnn.Sigmoid(), xpnn.Dense(3)],
                            device=device, dtype=dtype, seed=3)
    model.compile("softmax_crossentropy", OPTIMIZERS[optimizer](), metrics=["accuracy"])
    history = model.fit(x, y, epochs=steps // 4, batch_size=20, seed=11, verbose=0)
    assert len(history.history["loss"]) == steps // 4
    return model.get_weights()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_twenty_steps_agree_with_the_float64_numpy_run(lane, dtype, optimizer):
    reference = _train("cpu", "float64", optimizer)
    weights = _train(lane.device, dtype, optimizer)
    for got, expected in zip(weights, reference, strict=True):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, expected, **TRAINING[dtype])


def test_training_actually_moves_every_weight():
    x, y = _data()
    model = xpnn.Sequential([xpnn.Dense(4), xpnn.ReLU(), xpnn.Dense(3)], seed=0)
    model.build((5,))
    before = model.get_weights()
    model.compile("softmax_crossentropy", "sgd")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)
    assert all(not np.array_equal(b, a)
               for b, a in zip(before, model.get_weights(), strict=True))


def test_two_runs_on_the_cpu_are_bit_identical():
    first = _train("cpu", "float32", "adam")
    second = _train("cpu", "float32", "adam")
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def _dense_layers():
    return [xpnn.Dense(16), xpnn.ReLU(), xpnn.BatchNorm(), xpnn.Dropout(0.2), xpnn.Dense(8),
            xpnn.LeakyReLU(0.1), xpnn.Dense(8), xpnn.Tanh(), xpnn.Dense(8), xpnn.Sigmoid(),
            xpnn.Dense(3), xpnn.Softmax()]


def _image_layers():
    return [xpnn.Conv2D(4, 3, padding="same"), xpnn.BatchNorm2D(), xpnn.ReLU(),
            xpnn.MaxPool2D(2), xpnn.Conv2D(6, 2, padding=1), xpnn.Tanh(), xpnn.AvgPool2D(2),
            xpnn.Conv2D(3, 1), xpnn.GlobalAveragePool2D(), xpnn.Flatten(), xpnn.Dense(3),
            xpnn.Softmax()]


@pytest.mark.parametrize("layers", ["dense", "images"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_float32_stays_float32_through_training(lane, optimizer, layers):
    """No accidental float64 anywhere in a float32 model's training step, for every layer
    kind and optimizer: from float64 data, every layer's output and input gradient, its
    cached arrays (boolean masks and integer indices aside), every parameter and gradient
    and every optimizer state array are float32 on the lane, also after 40 steps (past a
    flush of the optimizer's tiny state)."""
    x, y = _data()  # float64 inputs: cast to the model's dtype at the fit boundary
    if layers == "images":
        x = np.random.default_rng(0).standard_normal((len(x), 2, 6, 6))
    model = xpnn.Sequential(_dense_layers() if layers == "dense" else _image_layers(),
                            device=lane.device, seed=0)
    model.compile("categorical_crossentropy", OPTIMIZERS[optimizer]())
    f32, boolean = lane.backend.dtype("float32"), lane.backend.dtype("bool")
    indices = tuple(lane.backend.dtype(name) for name in ("int8", "int64"))  # pooling winners
    seen: list[tuple[str, object]] = []
    contexts: list[tuple[str, object]] = []

    def recording(layer, method):
        original = getattr(layer, method)

        def run(ctx, *args, **kwargs):
            out = original(ctx, *args, **kwargs)
            if method == "forward":
                contexts.append((layer.name, ctx))
            if out is not None:
                assert lane.backend.owns(out), (layer.name, method)
                seen.append((f"{layer.name}.{method}", out.dtype))
            return out

        return run

    for layer in model.layers:
        layer.forward = recording(layer, "forward")
        layer.backward = recording(layer, "backward")
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=0)  # 40 steps
    assert len(seen) == 40 * (2 * len(model.layers) - 1)  # the first layer returns no dL/dx
    assert all(dtype == f32 for _, dtype in seen), [w for w, d in seen if d != f32]
    kept = 0
    for name, ctx in contexts:
        for key, value in vars(ctx).items():
            for array in value if isinstance(value, list | tuple) else [value]:
                if hasattr(array, "dtype"):  # arrays, not flags
                    kept += 1
                    assert array.dtype in (f32, boolean, *indices), (name, key, array.dtype)
    assert kept > 0
    for param in model.parameters():
        assert param.value.dtype == f32, param.name
        if param.trainable:
            assert param.grad.dtype == f32, param.name
            for slot in model.optimizer.slots:
                assert model.optimizer.state[param.name][slot].dtype == f32, (param.name, slot)
    assert model.predict(x[:3]).dtype == np.float32


@pytest.mark.slow
def test_xor_is_solved_by_a_two_layer_net(lane):
    x, y = xpnn.datasets.xor()
    model = xpnn.Sequential([xpnn.Dense(8), xpnn.Tanh(), xpnn.Dense(1)],
                            device=lane.device, seed=1)
    model.compile("binary_crossentropy_with_logits", xpnn.Adam(0.05), metrics=["accuracy"])
    model.fit(x, y, epochs=300, batch_size=4, verbose=0, seed=0)
    assert model.evaluate(x, y)["accuracy"] == 1.0
    np.testing.assert_array_equal(model.predict(x) > 0, y > 0.5)


@pytest.mark.slow
def test_digits_mlp_learns(lane):
    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=0)
    model = xpnn.Sequential([xpnn.Dense(64), xpnn.ReLU(), xpnn.Dense(10)],
                            device=lane.device, seed=0)
    model.compile("softmax_crossentropy", xpnn.Adam(3e-3), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, batch_size=64, verbose=0, seed=0)
    assert model.evaluate(x_test, y_test)["accuracy"] > 0.9
