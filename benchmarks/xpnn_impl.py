"""The xpnn side of each benchmark, through the public API only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn
from benchmarks.specs import AdamSpec, LeNetSpec, MLPSpec, TransformerSpec
from benchmarks.timing import Runner, Unavailable

_LOSSES = {"softmax_crossentropy": "softmax_crossentropy",
           "bce_logits": "binary_crossentropy_with_logits"}


def build_mlp(spec: MLPSpec, device: str) -> xpnn.Sequential:
    """``Sequential([Dense, ReLU, …, Dense])`` compiled with the spec's loss and
    ``Momentum(η, μ)``, built for the spec's input size, seed 0."""
    layers: list[xpnn.Layer] = []
    for units in spec.sizes[1:-1]:
        layers += [xpnn.Dense(units), xpnn.ReLU()]
    layers.append(xpnn.Dense(spec.sizes[-1]))
    model = xpnn.Sequential(layers, device=device, seed=0)
    model.compile(_LOSSES[spec.loss], xpnn.Momentum(spec.learning_rate, spec.momentum))
    model.build((spec.sizes[0],))
    return model


def resetter(model: xpnn.Sequential) -> Callable[[], None]:
    """A function that restores the model's current weights and optimizer state."""
    weights = model.get_weights()
    optimizer_state = model.optimizer.state_dict()

    def reset() -> None:
        model.set_weights(weights)
        model.optimizer.load_state_dict(optimizer_state)

    return reset


def _on_device(model: xpnn.Sequential, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    """The data as the model's device arrays: on the CPU the NumPy arrays themselves; on a
    GPU copied once, so that no implementation pays host-to-device transfers per batch."""
    if model.device.type == "cpu":
        return x, y
    return model.backend.asarray(x), model.backend.asarray(y)


def mlp_fit_runner(spec: MLPSpec, x: np.ndarray, y: np.ndarray, device: str) -> Runner:
    """One pass is ``model.fit(x, y, epochs=1, batch_size, verbose=0, shuffle=True,
    seed=…)``: one epoch including fit's one-time input checks."""
    model = _build_or_unavailable(spec, device)
    x_dev, y_dev = _on_device(model, x, y)

    def run(index: int) -> None:
        model.fit(x_dev, y_dev, epochs=1, batch_size=spec.batch_size, verbose=0,
                  shuffle=True, seed=1000 + index)

    return Runner(run, model.backend.synchronize, resetter(model))


def mlp_train_on_batch_runner(spec: MLPSpec, x: np.ndarray, y: np.ndarray,
                              device: str) -> Runner:
    """One pass is an epoch of ``model.train_on_batch(x[idx], y[idx])`` calls over a seeded
    permutation: the per-call API path (input checks and a loss read-back on every call)."""
    model = _build_or_unavailable(spec, device)
    x_dev, y_dev = _on_device(model, x, y)
    take = (lambda data, rows: data[rows]) if model.device.type == "cpu" else (
        lambda data, rows: data[model.backend.asarray(rows)])

    def run(index: int) -> None:
        order = np.random.default_rng(1000 + index).permutation(spec.samples)
        for start in range(0, spec.samples, spec.batch_size):
            rows = order[start:start + spec.batch_size]
            model.train_on_batch(take(x_dev, rows), take(y_dev, rows))

    return Runner(run, model.backend.synchronize, resetter(model))


def adam_runner(spec: AdamSpec, device: str) -> Runner:
    """``spec.steps`` calls of ``xpnn.Adam.step`` per pass on ``xpnn.Parameter`` objects
    whose gradients are set once."""
    backend = _backend_or_unavailable(device)
    values, grads = spec.arrays()
    params = []
    for index, (value, grad) in enumerate(zip(values, grads, strict=True)):
        param = xpnn.Parameter(f"p{index}", backend.asarray(value))
        param.grad = backend.asarray(grad)
        params.append(param)
    optimizer = xpnn.Adam(spec.learning_rate)
    optimizer.build(params, backend)

    def run(index: int) -> None:
        for _ in range(spec.steps):
            optimizer.step(params)

    return Runner(run, backend.synchronize)


def build_lenet(spec: LeNetSpec, device: str) -> xpnn.Sequential:
    """The compiled and built CNN of :class:`LeNetSpec`: ``xpnn.Conv2D(filters,
    kernel_size, padding=)``, ``xpnn.ReLU()``, ``xpnn.MaxPool2D(pool_size)`` per block,
    ``xpnn.Flatten()`` and the dense layers, on NCHW inputs."""
    layers: list[xpnn.Layer] = []
    for _, filters in spec.CONVS:
        layers += [xpnn.Conv2D(filters, 3, padding=1), xpnn.ReLU(), xpnn.MaxPool2D(2)]
    layers += [xpnn.Flatten(), xpnn.Dense(spec.DENSE[1]), xpnn.ReLU(),
               xpnn.Dense(spec.DENSE[2])]
    model = xpnn.Sequential(layers, device=device, seed=0)
    model.compile("softmax_crossentropy", xpnn.Momentum(spec.learning_rate, spec.momentum))
    model.build(spec.IMAGE)
    return model


def lenet_runner(spec: LeNetSpec, x: np.ndarray, y: np.ndarray, device: str) -> Runner:
    """One pass is ``model.fit`` for one epoch of the CNN of :func:`build_lenet`."""
    _backend_or_unavailable(device)
    model = build_lenet(spec, device)
    x_dev, y_dev = _on_device(model, x, y)

    def run(index: int) -> None:
        model.fit(x_dev, y_dev, epochs=1, batch_size=spec.batch_size, verbose=0,
                  shuffle=True, seed=1000 + index)

    return Runner(run, model.backend.synchronize, resetter(model))


def build_transformer(spec: TransformerSpec, device: str) -> xpnn.Model:
    """The GPT of :class:`TransformerSpec` as a graph model: ``Embedding`` +
    ``PositionalEmbedding``, then per block ``x + MultiHeadAttention(LayerNormalization(x))``
    (causal) and ``x + Dense(GELU(Dense(LayerNormalization(x))))``, a final
    ``LayerNormalization`` and ``Dense(vocab)``; compiled with softmax cross-entropy and
    Adam, seed 0."""
    ids = xpnn.Input((spec.time,), name="ids")
    x = xpnn.PositionalEmbedding(spec.time, spec.d_model)(
        xpnn.Embedding(spec.vocab, spec.d_model)(ids))
    for _ in range(spec.blocks):
        attended = xpnn.MultiHeadAttention(spec.heads, spec.d_model // spec.heads,
                                           causal=True)(xpnn.LayerNormalization()(x))
        x = xpnn.Add()([x, attended])
        hidden = xpnn.GELU("tanh")(xpnn.Dense(spec.ff)(xpnn.LayerNormalization()(x)))
        x = xpnn.Add()([x, xpnn.Dense(spec.d_model)(hidden)])
    logits = xpnn.Dense(spec.vocab)(xpnn.LayerNormalization()(x))
    model = xpnn.Model(ids, logits, device=device, seed=0)
    model.compile("softmax_crossentropy", xpnn.Adam(spec.learning_rate))
    return model


def transformer_runner(spec: TransformerSpec, x: np.ndarray, y: np.ndarray,
                       device: str) -> Runner:
    """One pass is ``model.fit`` for one epoch of the GPT of :class:`TransformerSpec`."""
    _backend_or_unavailable(device)
    model = build_transformer(spec, device)
    x_dev, y_dev = _on_device(model, x, y)

    def run(index: int) -> None:
        model.fit(x_dev, y_dev, epochs=1, batch_size=spec.batch_size, verbose=0,
                  shuffle=True, seed=1000 + index)

    return Runner(run, model.backend.synchronize, resetter(model))


def _backend_or_unavailable(device: str) -> Any:
    try:
        return xpnn.get_backend(device)
    except xpnn.DeviceUnavailableError as error:
        raise Unavailable(str(error).splitlines()[0]) from None


def _build_or_unavailable(spec: MLPSpec, device: str) -> xpnn.Sequential:
    _backend_or_unavailable(device)
    return build_mlp(spec, device)
