"""Callbacks, learning-rate schedules, the NaN guards, ``clone`` and ``lr_find`` on tiny
problems."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn


def _data(rng, n=40):
    x = rng.standard_normal((n, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((n, 1))
    return x, y


def _model(device="cpu", optimizer=None, layers=None):
    model = xpnn.Sequential(layers or [xpnn.Dense(8), xpnn.Tanh(), xpnn.Dense(1)],
                            device=device, dtype="float64", seed=0)
    model.compile("mse", optimizer or xpnn.SGD(0.05))
    return model


class Recorder(xpnn.Callback):
    """Records every hook call, the learning rate at each epoch start and the weights at
    each epoch end."""

    def __init__(self):
        super().__init__()
        self.calls, self.rates, self.weights = [], [], []

    def on_train_begin(self, logs):
        self.calls.append("train_begin")

    def on_train_end(self, logs):
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(f"epoch_begin {epoch}")
        self.rates.append(self.model.optimizer.learning_rate)

    def on_epoch_end(self, epoch, logs):
        self.calls.append(f"epoch_end {epoch}")
        self.weights.append(self.model.get_weights())

    def on_batch_begin(self, batch, logs):
        self.calls.append(f"batch_begin {batch}")

    def on_batch_end(self, batch, logs):
        self.calls.append(f"batch_end {batch} {sorted(logs)}")


def test_hooks_are_called_in_order(rng):
    x, y = _data(rng, n=5)
    recorder = Recorder()
    _model().fit(x, y, epochs=2, batch_size=3, verbose=0, callbacks=[recorder])
    batches = ["batch_begin 0", "batch_end 0 ['size']", "batch_begin 1", "batch_end 1 ['size']"]
    assert recorder.calls == ["train_begin", "epoch_begin 0", *batches, "epoch_end 0",
                              "epoch_begin 1", *batches, "epoch_end 1", "train_end"]
    with pytest.raises(TypeError, match="Callback"):
        _model().fit(x, y, verbose=0, callbacks=[lambda: None])


def test_entries_a_callback_adds_at_epoch_end_are_recorded(rng):
    class WeightNorm(xpnn.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["kernel_norm"] = float(np.linalg.norm(self.model.get_weights()[0]))

    x, y = _data(rng)
    model = _model()
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[WeightNorm()])
    assert len(history["kernel_norm"]) == 3
    assert history["kernel_norm"][-1] == pytest.approx(np.linalg.norm(model.get_weights()[0]))


def test_layer_outputs_are_the_intermediate_activations(rng):
    model = _model()
    x, _ = _data(rng, n=5)
    outputs = model.layer_outputs(x)
    kernel, bias = model.get_weights()[:2]
    names = [layer.name for layer in model.layers]
    assert list(outputs) == names
    np.testing.assert_allclose(outputs[names[1]], np.tanh(x @ kernel + bias), rtol=1e-12)
    np.testing.assert_allclose(outputs[names[2]], model.predict(x), rtol=1e-12)


def test_early_stopping_stops_and_restores_the_best_weights(lane, rng):
    x, y = _data(rng)
    x_val, y_val = _data(rng)
    # a sane rate for 4 epochs, then one so large that the validation loss gets worse
    blow_up = xpnn.LearningRateScheduler(lambda epoch, rate: 0.05 if epoch < 4 else 0.9)
    stopper = xpnn.EarlyStopping("val_loss", patience=2)
    recorder = Recorder()
    model = _model(lane.device)
    history = model.fit(x, y, epochs=30, batch_size=8, verbose=0, validation_data=(x_val, y_val),
                        callbacks=[blow_up, recorder, stopper], seed=0)
    losses = history["val_loss"]
    best = int(np.argmin(losses))
    assert stopper.best_epoch == best and stopper.best == losses[best]
    assert len(losses) == best + 4  # the best epoch, then patience + 1 epochs without gain
    assert stopper.stopped_epoch == len(losses) - 1
    for restored, saved in zip(model.get_weights(), recorder.weights[best], strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert model.evaluate(x_val, y_val)["loss"] == pytest.approx(losses[best], rel=1e-9)


def test_early_stopping_mode_and_missing_key(rng):
    assert xpnn.EarlyStopping("val_accuracy").mode == "max"
    assert xpnn.EarlyStopping("loss").mode == "min"
    x, y = _data(rng)
    with pytest.raises(KeyError, match=r"val_loss.*validation_data"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[xpnn.EarlyStopping()])


@pytest.mark.parametrize(("schedule", "expected"), [
    (xpnn.StepDecay(every=2, factor=0.5), [0.08, 0.08, 0.04, 0.04, 0.02]),
    (xpnn.ExponentialDecay(0.5), [0.08, 0.04, 0.02, 0.01, 0.005]),
    (xpnn.CosineDecay(4, final_rate=0.01),
     [0.08, 0.01 + 0.035 * (1 + math.cos(math.pi / 4)), 0.045,
      0.01 + 0.035 * (1 + math.cos(3 * math.pi / 4)), 0.01]),
], ids=["step", "exponential", "cosine"])
def test_schedules_set_the_rates_they_promise(rng, schedule, expected):
    x, y = _data(rng)
    recorder = Recorder()
    history = _model(optimizer=xpnn.SGD(0.08)).fit(
        x, y, epochs=5, verbose=0, callbacks=[xpnn.LearningRateScheduler(schedule), recorder])
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-12)
    np.testing.assert_allclose(recorder.rates, expected, rtol=1e-12)


def test_the_scheduled_rate_is_the_one_the_optimizer_uses(rng):
    """SGD with a schedule equals SGD run epoch by epoch at the scheduled rates."""
    x, y = _data(rng, n=8)
    scheduled = _model(optimizer=xpnn.SGD(0.1))
    scheduled.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False,
                  callbacks=[xpnn.LearningRateScheduler(xpnn.ExponentialDecay(0.5))])
    by_hand = _model(optimizer=xpnn.SGD(0.1))
    for rate in (0.1 * 0.5**epoch for epoch in range(3)):
        by_hand.optimizer.learning_rate = rate
        by_hand.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(scheduled.get_weights(), by_hand.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_user_schedule_gets_the_current_rate_and_bad_rates_are_refused(rng):
    x, y = _data(rng)
    history = _model(optimizer=xpnn.SGD(0.1)).fit(
        x, y, epochs=3, verbose=0,
        callbacks=[xpnn.LearningRateScheduler(lambda epoch, rate: rate * 0.1 if epoch else rate)])
    np.testing.assert_allclose(history["learning_rate"], [0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match=r"schedule returned for epoch 0 must be .*got nan"):
        _model().fit(x, y, verbose=0,
                     callbacks=[xpnn.LearningRateScheduler(lambda epoch, rate: math.nan)])


def test_a_second_fit_continues_the_schedule_from_the_first_starting_rate(rng):
    x, y = _data(rng)
    model = _model(optimizer=xpnn.SGD(0.1))
    scheduler = xpnn.LearningRateScheduler(xpnn.ExponentialDecay(0.5))
    model.fit(x, y, epochs=3, verbose=0, callbacks=[scheduler])
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[scheduler])
    assert history["learning_rate"] == [0.1, 0.05]


def _diverging(rng):
    x, y = _data(rng)
    # a linear float32 model whose weights grow ~1e5-fold per step: inf after a few batches
    model = xpnn.Sequential([xpnn.Dense(1)], seed=0)
    model.compile("mse", xpnn.SGD(1e3))
    return model, x * 10, y


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_fit_names_the_epoch_and_batch_where_the_loss_became_nan(rng):
    model, x, y = _diverging(rng)
    with pytest.raises(xpnn.NonFiniteError, match=r"in epoch 1, batch \d+ of 5"):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_terminate_on_nan_stops_at_the_first_bad_batch(rng, capsys):
    model, x, y = _diverging(rng)
    guard = xpnn.TerminateOnNaN()
    recorder = Recorder()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False,
                        callbacks=[guard, recorder])
    epoch, batch = guard.stopped_at
    assert epoch == 0 and history.epoch == [0]
    assert f"batch_end {batch} ['loss', 'size']" in recorder.calls
    assert f"batch_begin {batch + 1}" not in recorder.calls  # nothing ran after the bad batch
    assert f"epoch 1, batch {batch + 1}" in capsys.readouterr().err


def test_clone_copies_weights_and_shares_nothing(rng):
    model = _model(layers=[xpnn.Dense(4, weight_decay=0.1), xpnn.BatchNorm(), xpnn.ReLU(),
                           xpnn.Dropout(0.2), xpnn.Dense(1)])
    x, y = _data(rng)
    model.fit(x, y, epochs=2, verbose=0)
    twin = model.clone()
    assert twin.get_config() == model.get_config() and twin.optimizer is None
    for a, b in zip(twin.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))
    twin.compile("mse", xpnn.SGD(0.1))
    twin.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(twin.get_weights()[0], model.get_weights()[0])


def test_lr_find_sweeps_and_leaves_the_model_untouched(lane, rng):
    x, y = _data(rng, n=64)
    model = _model(lane.device, optimizer=xpnn.Momentum(0.01), layers=[
        xpnn.Dense(16), xpnn.BatchNorm(), xpnn.Tanh(), xpnn.Dense(1)])
    model.fit(x, y, epochs=1, verbose=0)
    weights = model.get_weights()
    state = model.optimizer.state_dict()
    result = xpnn.lr_find(model, x, y, start_rate=1e-5, end_rate=10.0, steps=60, batch_size=16,
                          seed=0)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert model.optimizer.learning_rate == 0.01
    assert model.optimizer.iterations == state["iterations"]
    # geometric rates from the start rate; the sweep stops when the loss blows up
    assert result.rates[0] == pytest.approx(1e-5)
    ratios = np.diff(np.log(result.rates))
    np.testing.assert_allclose(ratios, ratios[0])
    assert 10 < len(result.rates) == len(result.losses) == len(result.raw_losses) <= 60
    assert result.suggestion is not None and 1e-5 < result.suggestion < result.minimum_rate
    # at the suggested rate the loss was falling
    index = result.rates.index(result.suggestion)
    assert result.losses[index + 1] < result.losses[index - 1]


def test_lr_find_needs_a_compiled_model_and_sane_arguments(rng):
    x, y = _data(rng)
    with pytest.raises(ValueError, match="compile"):
        xpnn.lr_find(xpnn.Sequential([xpnn.Dense(1)]), x, y)
    with pytest.raises(ValueError, match="start_rate < end_rate"):
        xpnn.lr_find(_model(), x, y, start_rate=1.0, end_rate=0.1)
