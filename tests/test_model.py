"""The Sequential API: building, summary, fit / evaluate / predict, freezing, moving."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnn


def _blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)) * 0.3 + np.eye(3, 4)[y] * 2.0
    return x.astype(np.float32), y


def _mlp(device="cpu", **kwargs):
    model = xpnn.Sequential([xpnn.Dense(8), xpnn.ReLU(), xpnn.Dense(3)], device=device,
                            seed=0, **kwargs)
    model.compile("softmax_crossentropy", xpnn.Adam(0.05), metrics=["accuracy"])
    return model


def test_summary_counts_parameters():
    dx, h, dy = 64, 32, 10
    model = xpnn.Sequential([xpnn.Dense(h, name="hidden"), xpnn.Tanh(),
                             xpnn.Dense(dy, name="scores")])
    model.build((dx,))
    lines = []
    text = model.summary(print_fn=lines.append)
    assert lines == [text]
    expected = (dx + 1) * h + (h + 1) * dy
    assert model.count_params() == expected
    assert f"Total params: {expected:,}" in text
    assert "hidden (Dense)" in text and "(None, 32)" in text and "scores (Dense)" in text
    model.layers[0].trainable = False
    text = model.summary(print_fn=None)
    assert f"Trainable params: {(h + 1) * dy:,}" in text
    assert f"Non-trainable params: {(dx + 1) * h:,}" in text


def test_layer_names_are_unique_from_construction():
    layers = [xpnn.Dense(2), xpnn.Dense(2), xpnn.Dense(2)]
    names = [layer.name for layer in layers]
    assert len(set(names)) == 3
    assert all(re.fullmatch(r"dense(_\d+)?", name) for name in names)
    model = xpnn.Sequential(layers)
    model.build((3,))
    assert [p.name for p in model.parameters()][:2] == [f"{names[0]}/kernel",
                                                         f"{names[0]}/bias"]
    assert len({p.name for p in model.parameters()}) == 6


def test_two_layers_with_one_name_are_refused():
    model = xpnn.Sequential([xpnn.Dense(2, name="twin"), xpnn.Dense(2, name="twin")])
    with pytest.raises(xpnn.GraphError, match="two different layers named 'twin'"):
        model.build((3,))


def test_fit_returns_history_and_learns(lane):
    x, y = _blobs()
    model = _mlp(lane.device)
    history = model.fit(x, y, epochs=15, batch_size=16, validation_data=(x, y), verbose=0,
                        seed=0)
    assert history.epoch == list(range(15))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy",
                                     "learning_rate"}
    assert history["loss"][-1] < history["loss"][0] / 3
    final = model.evaluate(x, y)
    assert final["accuracy"] > 0.95
    assert final["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-5)


def test_predict_returns_numpy_in_input_order(lane):
    x, _ = _blobs()
    model = _mlp(lane.device)
    out = model.predict(x, batch_size=7)
    assert isinstance(out, np.ndarray) and out.shape == (60, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[5:9], model.predict(x[5:9]), rtol=1e-5, atol=1e-6)
    logits = lane.to_host(model(lane.asarray(x, "float32")))
    np.testing.assert_allclose(out, logits, rtol=1e-5, atol=1e-6)


def test_device_arrays_are_accepted_and_stay_on_the_device(lane):
    x, y = _blobs()
    host_model, device_model = _mlp(), _mlp(lane.device)
    host_model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=4)
    device_model.fit(lane.asarray(x, "float32"), lane.asarray(y, "int64"), epochs=2,
                     batch_size=16, verbose=0, seed=4)
    for a, b in zip(host_model.get_weights(), device_model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_train_on_batch_and_test_on_batch(lane):
    x, y = _blobs()
    model = _mlp(lane.device)
    first = model.test_on_batch(x, y)
    logs = model.train_on_batch(x, y)
    assert logs.keys() == ("loss", "accuracy")
    assert logs["loss"] == pytest.approx(first["loss"], rel=1e-5)  # loss before the update
    assert model.test_on_batch(x, y)["loss"] < first["loss"]


def test_frozen_layer_is_not_updated_but_passes_gradients(lane):
    x, y = _blobs()
    model = _mlp(lane.device)
    model.build((4,))
    model.layers[0].trainable = False
    before = model.get_weights()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    after = model.get_weights()
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2])


def test_first_layer_skips_the_input_gradient(monkeypatch):
    model = _mlp()
    model.build((4,))
    asked = []
    backward = xpnn.Dense.backward

    def spy(self, ctx, grad_output):
        asked.append((self.name, ctx.needs_input_grad))
        result = backward(self, ctx, grad_output)
        assert (result is None) == (not ctx.needs_input_grad[0])
        return result

    monkeypatch.setattr(xpnn.Dense, "backward", spy)
    x, y = _blobs()
    model.train_on_batch(x, y)
    first, last = model.layers[0].name, model.layers[2].name
    assert asked == [(last, (True,)), (first, (False,))]
    assert model.layers[0].kernel.grad is not None


def test_get_weights_are_copies_and_set_weights_round_trips():
    x, y = _blobs()
    model = _mlp()
    model.build((4,))
    snapshot = model.get_weights()
    saved = [w.copy() for w in snapshot]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for kept, original in zip(snapshot, saved, strict=True):
        np.testing.assert_array_equal(kept, original)  # not a view of the live parameters
    model.set_weights(saved)
    for got, original in zip(model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, original)
    with pytest.raises(xpnn.ShapeError, match=model.layers[0].kernel.name):
        model.set_weights([np.zeros((5, 8)), *saved[1:]])


def test_to_moves_the_model_and_keeps_its_predictions(lane):
    x, y = _blobs()
    model = _mlp()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    expected = model.predict(x)
    model.to(lane.device)
    assert str(model.device) == lane.device
    assert all(lane.backend.owns(p.value) for p in model.parameters())
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # training continues there


def test_device_context_decides_where_a_model_lives(lane):
    with xpnn.device(lane.device):
        model = xpnn.Sequential([xpnn.Dense(2)])
    model.build((3,))
    assert model.backend is lane.backend


def test_verbose_modes(capsys):
    x, y = _blobs()
    model = _mlp()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=16, verbose=2, validation_data=(x, y))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("Epoch 2/2 4/4 [")
    assert "loss: " in lines[1] and "accuracy: " in lines[1] and "val_accuracy: " in lines[1]


def test_regression_with_mse_and_mae_metric(lane):
    x, y, _, _ = xpnn.datasets.linear_regression(200, 3, noise=0.01, seed=1)
    model = xpnn.Sequential([xpnn.Dense(1)], device=lane.device, seed=0)
    model.compile("mse", xpnn.SGD(0.1), metrics=["mae", "mse"])
    history = model.fit(x, y, epochs=30, batch_size=20, verbose=0, seed=0)
    assert history["mae"][-1] < 0.02
    logs = model.evaluate(x, y)
    assert logs["loss"] == pytest.approx(logs["mse"] / 2, rel=1e-4)  # the ½ in the loss


def test_accuracy_is_resolved_by_the_loss():
    assert isinstance(xpnn.metrics.get("accuracy", xpnn.SoftmaxCrossEntropy()),
                      xpnn.metrics.CategoricalAccuracy)
    assert xpnn.metrics.get("accuracy", xpnn.BinaryCrossEntropyWithLogits()).threshold == 0.0
    assert xpnn.metrics.get("accuracy", xpnn.BinaryCrossEntropy()).threshold == 0.5
    with pytest.raises(ValueError, match="regression"):
        xpnn.metrics.get("accuracy", xpnn.MeanSquaredError())


def test_float64_models():
    x, y = _blobs()
    model = _mlp(dtype="float64")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x).dtype == np.float64
    with pytest.raises(xpnn.DTypeError, match="float16"):
        xpnn.Sequential(dtype="float16")


def test_adding_after_build_is_refused_and_sharing_layers_keeps_their_weights():
    model = _mlp()
    model.build((4,))
    with pytest.raises(xpnn.NotReadyError, match="already built"):
        model.add(xpnn.Dense(2))
    with pytest.raises(TypeError, match="Layer"):
        xpnn.Sequential([lambda x: x])
    hidden = model.layers[0]
    with pytest.raises(xpnn.GraphError, match="already in model"):
        xpnn.Sequential([hidden, hidden])
    # a built layer joins another model of the same device and dtype, weights shared
    twin = xpnn.Sequential([hidden, xpnn.Dense(1)])
    twin.build((4,))
    assert twin.parameters()[0] is hidden.kernel
    with pytest.raises(xpnn.ShapeError, match=r"built for inputs of shape \(None, 4\)"):
        xpnn.Sequential([hidden]).build((5,))
    with pytest.raises(xpnn.GraphError, match="share layers only between models of one"):
        xpnn.Sequential([hidden], dtype="float64").build((4,))


class _Greedy(xpnn.Layer):
    """A layer that asks for an absurd amount of memory once its batch exceeds ``limit``:
    NumPy and array-api-strict raise MemoryError at once, CuPy its OutOfMemoryError."""

    def __init__(self, limit, **options):
        super().__init__(**options)
        self.limit = limit

    def forward(self, ctx, x):
        if x.shape[0] > self.limit:
            self.xp.empty((1 << 46,), dtype=self.dtype, device=self.backend.native_device)
        return x

    def backward(self, ctx, grad_output):
        return grad_output


def test_out_of_memory_names_the_batch_size_and_suggests_a_smaller_one(lane):
    x, y = _blobs()
    model = xpnn.Sequential([xpnn.Dense(3), _Greedy(4)], device=lane.device, name="big")
    model.compile("softmax_crossentropy", "sgd")
    with pytest.raises(xpnn.OutOfMemoryError,
                       match=r"model 'big' ran out of memory on .* in fit with batch_size=16: "
                             r"try batch_size=8") as caught:
        model.fit(x, y, batch_size=16, verbose=0)
    assert isinstance(caught.value, MemoryError)
    with pytest.raises(xpnn.OutOfMemoryError, match=r"in predict with batch_size=256: try "
                                                    r"batch_size=128"):
        model.predict(x)
    with pytest.raises(xpnn.OutOfMemoryError, match=r"in evaluation with batch_size=5"):
        model.evaluate(x, y, batch_size=5)
    model.fit(x, y, batch_size=4, verbose=0)  # small batches fit
