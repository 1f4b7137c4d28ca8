"""Keras's weighting and held-out data: ``sample_weight`` (losses, ``fit``, ``evaluate``,
``train_on_batch``, ``test_on_batch``, ``validation_data``'s third array), ``class_weight``,
``validation_split``; ``evaluate``'s result that unpacks in Keras's order and reads by name;
``verbose`` on ``evaluate`` and ``predict``. On every lane."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn


def _classes(n=60, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, 4)) * 0.3 + np.eye(classes, 4)[y] * 2.0
    return x, y


def _model(lane, loss="softmax_crossentropy", dtype="float64", seed=0):
    model = xpnn.Sequential([xpnn.Dense(8), xpnn.Tanh(), xpnn.Dense(3)],
                            device=lane.device, seed=seed, dtype=dtype)
    model.compile(loss, xpnn.SGD(0.1), metrics=["accuracy"])
    return model


# -- the losses ---------------------------------------------------------------------------------

def _loss_cases(rng):
    """(loss, predictions, targets) in float64 for every loss, outputs of shape (5, 3)."""
    logits = rng.standard_normal((5, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, 5)
    binary = (rng.random((5, 3)) > 0.5).astype(float)
    sigmoid = 1 / (1 + np.exp(-logits))
    return [
        (xpnn.MeanSquaredError(), logits, rng.standard_normal((5, 3))),
        (xpnn.BinaryCrossEntropyWithLogits(), logits, binary),
        (xpnn.BinaryCrossEntropy(), sigmoid, binary),
        (xpnn.BinaryCrossEntropy(from_logits=True), logits, binary),
        (xpnn.SoftmaxCrossEntropy(), logits, labels),
        (xpnn.SoftmaxCrossEntropy(), logits, np.eye(3)[labels]),
        (xpnn.CategoricalCrossEntropy(), probabilities, np.eye(3)[labels]),
        (xpnn.CategoricalCrossEntropy(from_logits=True), logits, labels),
        (xpnn.SparseCategoricalCrossEntropy(), probabilities, labels),
    ]


@pytest.mark.parametrize("case", range(9))
def test_a_weighted_loss_is_the_mean_of_the_weighted_sample_losses(lane, case):
    """L_w = (1/N) Σ_n w_n L(sample n alone) (Keras's sum over the batch size), and its
    gradient is w_n times the unweighted one, row by row, checked by central differences."""
    rng = np.random.default_rng(case)
    loss, pred, target = _loss_cases(rng)[case]
    weights = np.array([0.0, 0.5, 1.0, 2.0, 3.5])
    as_target = (lambda t: lane.asarray(t, "int64")) if target.dtype.kind == "i" else \
        (lambda t: lane.asarray(t, "float64"))
    value, grad = loss.value_and_grad(lane.asarray(pred, "float64"), as_target(target),
                                      lane.asarray(weights, "float64"))
    alone = [float(lane.to_host(loss(lane.asarray(pred[n:n + 1], "float64"),
                                     as_target(target[n:n + 1])))) for n in range(5)]
    assert float(lane.to_host(value)) == pytest.approx(np.mean(weights * alone), rel=1e-12)

    def weighted(values):
        return float(lane.to_host(loss(lane.asarray(values, "float64"), as_target(target),
                                       lane.asarray(weights, "float64"))))

    step, numeric = 1e-6, np.zeros_like(pred)
    for index in np.ndindex(pred.shape):
        up, down = pred.copy(), pred.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (weighted(up) - weighted(down)) / (2 * step)
    np.testing.assert_allclose(lane.to_host(grad), numeric, rtol=1e-6, atol=1e-9)


def test_weights_of_one_per_row_of_a_sequence(lane):
    """Per-row weights (N, T) of a sequence output weigh each step; unit weights change
    nothing, bit for bit."""
    rng = np.random.default_rng(0)
    logits = lane.asarray(rng.standard_normal((2, 4, 3)), "float64")
    labels = lane.asarray(rng.integers(0, 3, (2, 4)), "int64")
    loss = xpnn.SoftmaxCrossEntropy()
    plain = lane.to_host(loss(logits, labels))
    ones = lane.to_host(loss(logits, labels, lane.asarray(np.ones((2, 4)), "float64")))
    assert plain == ones
    steps = np.zeros((2, 4))
    steps[1, 2] = 8.0  # only one step counts, eight times, over the 8 rows
    alone = lane.to_host(loss(logits[1:2, 2:3, :], labels[1:2, 2:3]))
    assert float(lane.to_host(loss(logits, labels, lane.asarray(steps, "float64")))) == \
        pytest.approx(float(alone), rel=1e-12)
    with pytest.raises(xpnn.ShapeError, match=r"sample weights must have shape \(2,\) .* or "
                                              r"\(2, 4\) .* received \(4,\)"):
        loss(logits, labels, lane.asarray(np.ones(4), "float64"))


# -- fit and evaluate ---------------------------------------------------------------------------

def test_unit_weights_train_exactly_as_no_weights(lane):
    x, y = _classes()
    plain, weighted = _model(lane), _model(lane)
    history = plain.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0)
    weighted_history = weighted.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0,
                                    sample_weight=np.ones(len(y)))
    assert history.history == weighted_history.history
    for a, b in zip(plain.get_weights(), weighted.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_sample_of_weight_zero_changes_nothing(lane):
    """Its label may be anything: the updates, the loss and the evaluation are those of
    the other samples (metrics are not weighted, as Keras's ``metrics``)."""
    x, y = _classes()
    weights = np.ones(len(y))
    weights[::7] = 0.0
    relabelled = y.copy()
    relabelled[::7] = (y[::7] + 1) % 3
    first, second = _model(lane), _model(lane)
    history = first.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0, sample_weight=weights)
    other = second.fit(x, relabelled, epochs=2, batch_size=16, seed=1, verbose=0,
                       sample_weight=weights)
    assert history["loss"] == other["loss"]
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.evaluate(x, y, sample_weight=weights)["loss"] == \
        second.evaluate(x, relabelled, sample_weight=weights)["loss"]
    assert history["accuracy"] != other["accuracy"]  # the metric sees every label


def test_the_epoch_loss_is_the_weighted_sum_over_the_data_size(lane):
    """Keras: each batch's loss Σ w ℓ / B, averaged over batches by size: Σ_n w_n ℓ_n / N."""
    x, y = _classes(n=50)
    weights = np.random.default_rng(3).uniform(0, 2, len(y))
    model = _model(lane)
    model.build((4,))
    per_sample = [model.evaluate(x[n:n + 1], y[n:n + 1])["loss"] for n in range(len(y))]
    expected = float(np.dot(weights, per_sample) / len(y))
    assert model.evaluate(x, y, sample_weight=weights, batch_size=16)["loss"] == \
        pytest.approx(expected, rel=1e-12)
    assert model.test_on_batch(x, y, sample_weight=weights)["loss"] == \
        pytest.approx(expected, rel=1e-12)
    assert model.train_on_batch(x, y, sample_weight=weights)["loss"] == \
        pytest.approx(expected, rel=1e-12)  # the loss before the update


def test_class_weight_is_sample_weight_by_class(lane):
    """Keras's conversion: each sample weighs its class's weight, a missing class 1; from
    integer labels and from one-hot rows alike."""
    x, y = _classes()
    class_weight = {0: 0.5, 2: 3.0}
    as_samples = np.array([class_weight.get(label, 1.0) for label in y])
    by_class, by_sample, one_hot = _model(lane), _model(lane), _model(lane)
    history = by_class.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0,
                           class_weight=class_weight)
    reference = by_sample.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0,
                              sample_weight=as_samples)
    rows = one_hot.fit(x, np.eye(3)[y], epochs=2, batch_size=16, seed=1, verbose=0,
                       class_weight=class_weight)
    assert history.history == reference.history == rows.history
    for a, b in zip(by_class.get_weights(), by_sample.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_class_weight_mistakes_are_named(lane):
    x, y = _classes()
    model = _model(lane)
    with pytest.raises(ValueError, match="class_weight or sample_weight, not both"):
        model.fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(len(y)), verbose=0)
    with pytest.raises(ValueError, match=r"class_weight's keys must be class indices .* "
                                         r"received 'a'"):
        model.fit(x, y, class_weight={"a": 2.0}, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight\[1\] must be a finite number of 0 or "
                                         r"more, received -1"):
        model.fit(x, y, class_weight={1: -1}, verbose=0)
    regression = xpnn.Sequential([xpnn.Dense(1)], device=lane.device)
    regression.compile("mse", "sgd")
    with pytest.raises(ValueError, match="class_weight needs one classification output"):
        regression.fit(x, y[:, None].astype(float), class_weight={0: 2.0}, verbose=0)


@pytest.mark.parametrize(("weights", "error", "message"), [
    (np.ones(59), xpnn.ShapeError, r"sample_weight must have shape \(60,\) \(one weight per "
                                   r"sample\), received \(59,\) \(nothing is broadcast\)"),
    (np.ones((60, 3)), xpnn.ShapeError, r"received \(60, 3\)"),
    (-np.ones(60), ValueError, r"sample_weight contains negative weights \(the smallest is -1\)"),
    (np.full(60, np.nan), xpnn.NonFiniteError, "sample_weight contains NaN or infinite"),
    (np.array(["a"] * 60), xpnn.DTypeError, "sample_weight must hold real numbers"),
])
def test_bad_sample_weights_are_refused_naming_the_model(lane, weights, error, message):
    x, y = _classes()
    model = _model(lane)
    with pytest.raises(error, match=rf"model '{model.name}'.*{message}"):
        model.fit(x, y, sample_weight=weights, verbose=0)


def test_keras_column_of_weights_is_taken_as_one_per_sample(lane):
    x, y = _classes()
    column, flat = _model(lane), _model(lane)
    weights = np.linspace(0, 2, len(y))
    a = column.fit(x, y, sample_weight=weights[:, None], seed=1, verbose=0)
    b = flat.fit(x, y, sample_weight=weights, seed=1, verbose=0)
    assert a.history == b.history


def test_validation_split_holds_out_the_last_samples_before_shuffling(lane):
    """Keras: the first ⌊N·(1 − split)⌋ samples train, the rest validate."""
    x, y = _classes(n=50)
    weights = np.random.default_rng(2).uniform(0, 2, len(y))
    split, held_out = _model(lane), _model(lane)
    history = split.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0,
                        validation_split=0.3, sample_weight=weights)
    reference = held_out.fit(x[:35], y[:35], epochs=2, batch_size=16, seed=1, verbose=0,
                             sample_weight=weights[:35],
                             validation_data=(x[35:], y[35:], weights[35:]))
    assert history.history == reference.history
    assert history["val_loss"][-1] == split.evaluate(x[35:], y[35:],
                                                     sample_weight=weights[35:])["loss"]


def test_validation_split_that_leaves_nothing_is_refused(lane):
    x, y = _classes(n=3)
    model = _model(lane)
    with pytest.raises(ValueError, match=r"validation_split=0.7 of 3 samples leaves 0 for "
                                         r"training and 3 for validation"):
        model.fit(x, y, validation_split=0.7, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split must be a finite number in "
                                         r"\[0, 1\)"):
        model.fit(x, y, validation_split=1.0, verbose=0)


def test_validation_data_with_weights_uses_them(lane):
    x, y = _classes()
    weights = np.random.default_rng(4).uniform(0, 2, len(y))
    model = _model(lane)
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, weights))
    assert history["val_loss"][0] == model.evaluate(x, y, sample_weight=weights)["loss"]
    assert history["val_loss"][0] != model.evaluate(x, y)["loss"]
    with pytest.raises(ValueError, match=r"validation_data must be \(x_val, y_val\) or "
                                         r"\(x_val, y_val, sample_weight_val\), received 4"):
        model.fit(x, y, validation_data=(x, y, weights, weights), verbose=0)


# -- what evaluate returns, and verbose ---------------------------------------------------------

def test_evaluate_unpacks_in_keras_order_and_reads_by_name(lane):
    x, y = _classes()
    model = _model(lane)
    result = model.evaluate(x, y)
    loss, accuracy = result
    assert (loss, accuracy) == (result["loss"], result["accuracy"])
    assert result.keys() == ("loss", "accuracy")
    assert dict(result) == model.evaluate(x, y, return_dict=True) == \
        {"loss": loss, "accuracy": accuracy}
    assert repr(result).startswith("Evaluation(loss=")
    with pytest.raises(xpnn.MissingKeyError, match="did you mean 'accuracy'"):
        result["acc"]
    only_loss = xpnn.Sequential([xpnn.Dense(3)], device=lane.device, seed=0)
    only_loss.compile("softmax_crossentropy", "sgd")
    (value,) = only_loss.evaluate(x, y)
    assert float(only_loss.evaluate(x, y)) == value


def test_evaluate_of_two_outputs_gives_the_total_then_each_output_then_metrics(lane):
    inputs = xpnn.Input((4,))
    hidden = xpnn.Dense(8, activation="tanh")(inputs)
    first, second = xpnn.Dense(3, name="first")(hidden), xpnn.Dense(1, name="second")(hidden)
    model = xpnn.Model(inputs, [first, second], device=lane.device, seed=0)
    model.compile(["softmax_crossentropy", "mse"], "sgd", metrics=[["accuracy"], []])
    x, y = _classes()
    result = model.evaluate(x, [y, x[:, :1]])
    assert result.keys() == ("loss", "first_loss", "second_loss", "first_accuracy")
    total, first_loss, second_loss, _ = result
    assert total == pytest.approx(first_loss + second_loss, rel=1e-6)


def test_verbose_evaluate_and_predict_write_one_line(lane, capsys):
    x, y = _classes()
    model = _model(lane)
    model.evaluate(x, y)
    model.predict(x)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=2, batch_size=16)
    model.predict(x, verbose=1, batch_size=32)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Evaluate 4/4") and " - loss: " in lines[0] \
        and " - accuracy: " in lines[0]
    assert lines[1].startswith("Predict 2/2")
