"""What Keras and PyTorch users bring with them: the losses' Keras names and meanings, the
check that a loss on probabilities is not fed logits, ``Dense(activation=...)``,
``model.weights``, probabilities and classes from a model, and the messages of the usual
mistakes. Each runs on every lane."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnn


def _classes(n=90, classes=3, seed=0):
    """Three separable blobs in 4-D, labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, 4)) * 0.3 + np.eye(classes, 4)[y] * 2.0
    return x, y


def _model(lane, *tail, units=3, **kwargs):
    return xpnn.Sequential([xpnn.Dense(8, activation="relu"), xpnn.Dense(units), *tail],
                           device=lane.device, seed=0, **kwargs)


# -- a loss on probabilities refuses logits -----------------------------------------------------

@pytest.mark.parametrize("loss, targets, fix, layer", [
    ("categorical_crossentropy", "onehot", r"loss='softmax_crossentropy' \(the same as "
     r"CategoricalCrossEntropy\(from_logits=True\)\)", r"xpnn\.Softmax\(\)"),
    ("sparse_categorical_crossentropy", "labels",
     r"SparseCategoricalCrossEntropy\(from_logits=True\)", r"xpnn\.Softmax\(\)"),
    ("binary_crossentropy", "binary", r"loss='binary_crossentropy_with_logits' \(the same as "
     r"BinaryCrossEntropy\(from_logits=True\)\)", r"xpnn\.Sigmoid\(\)"),
])
def test_a_loss_on_probabilities_refuses_logits_before_any_step(lane, loss, targets, fix,
                                                                layer):
    """The trap: Keras's losses on a model ending in Dense trained silently to chance
    accuracy. Now fit, evaluate and train_on_batch stop on the first batch, before the
    weights change, and name both fixes."""
    x, y = _classes()
    y = {"onehot": np.eye(3)[y], "labels": y,
         "binary": np.eye(3)[y]}[targets]  # three yes/no answers for the binary loss
    model = _model(lane)
    model.compile(loss, "adam", metrics=["accuracy"])
    model.build((4,))
    before = model.get_weights()
    pattern = (rf"loss '{loss}' .* takes probabilities .* but output 'dense(_\d+)?' holds "
               rf"values from .* on the first batch: these look like logits .*{fix}.*{layer}")
    with pytest.raises(xpnn.PredictionError, match=pattern):
        model.fit(x, y, verbose=0)
    for weight, initial in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(weight, initial)
    with pytest.raises(xpnn.PredictionError, match="look like logits"):
        model.evaluate(x, y)
    with pytest.raises(xpnn.PredictionError, match="look like logits"):
        model.train_on_batch(x, y)
    assert isinstance(xpnn.PredictionError("x"), ValueError)


@pytest.mark.parametrize("loss, ending, targets", [
    ("categorical_crossentropy", lambda: [xpnn.Softmax()], "onehot"),
    ("sparse_categorical_crossentropy", lambda: [xpnn.Softmax()], "labels"),
    (xpnn.SparseCategoricalCrossEntropy(from_logits=True), lambda: [], "labels"),
    (xpnn.CategoricalCrossEntropy(from_logits=True), lambda: [], "onehot"),
    ("softmax_crossentropy", lambda: [], "labels"),
    ("binary_crossentropy", lambda: [xpnn.Sigmoid()], "binary"),
    (xpnn.BinaryCrossEntropy(from_logits=True), lambda: [], "binary"),
])
def test_each_keras_loss_trains_with_the_output_it_takes(lane, loss, ending, targets):
    x, y = _classes()
    y_fit = {"onehot": np.eye(3)[y], "labels": y, "binary": np.eye(3)[y]}[targets]
    model = _model(lane, *ending())
    model.compile(loss, xpnn.Adam(0.05), metrics=["accuracy"])
    history = model.fit(x, y_fit, epochs=15, batch_size=16, seed=0, verbose=0)
    assert history["accuracy"][-1] > 0.9
    assert model.evaluate(x, y_fit)["accuracy"] > 0.9


def test_probabilities_given_to_a_loss_on_logits_warn_of_the_double_softmax(lane):
    x, y = _classes()
    for loss in ("softmax_crossentropy", xpnn.CategoricalCrossEntropy(from_logits=True)):
        model = _model(lane, xpnn.Softmax())
        model.compile(loss, "adam")
        with pytest.warns(UserWarning, match=r"takes logits, but output 'softmax(_\d+)?' holds "
                                             r"probabilities .* the softmax is applied twice.*"
                                             r"use loss='categorical_crossentropy'") as caught:
            model.fit(x, y if loss == "softmax_crossentropy" else np.eye(3)[y], verbose=0)
        assert caught[0].filename == __file__  # it points at the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = _model(lane)
        model.compile("softmax_crossentropy", "adam")
        model.fit(x, y, verbose=0)


def test_dense_softmax_is_a_probability_output(lane):
    x, y = _classes()
    model = xpnn.Sequential([xpnn.Dense(8, activation="tanh"),
                             xpnn.Dense(3, activation="softmax")], device=lane.device, seed=0)
    model.compile("sparse_categorical_crossentropy", xpnn.Adam(0.05), metrics=["accuracy"])
    assert model.fit(x, y, epochs=15, batch_size=16, verbose=0)["accuracy"][-1] > 0.9


def test_sparse_labels_are_read_as_keras_reads_them(lane):
    """Keras's sparse_categorical_crossentropy takes labels of shape (N,) or (N, 1), and
    float labels holding whole numbers."""
    x, y = _classes()
    results = []
    for labels in (y, y.astype(np.float64), y[:, None], y[:, None].astype(np.float32)):
        model = _model(lane, xpnn.Softmax())
        model.compile("sparse_categorical_crossentropy", xpnn.SGD(0.1))
        model.fit(x, labels, epochs=2, batch_size=30, seed=0, verbose=0)
        results.append(model.get_weights())
    for weights in results[1:]:
        for got, expected in zip(weights, results[0], strict=True):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(xpnn.DTypeError, match=r"y must hold class labels, whole numbers, but "
                                              r"some of its float64 values are fractions"):
        model.fit(x, y + 0.5, verbose=0)
    for one_hot in (np.eye(3)[y], np.eye(3, dtype=np.int64)[y]):
        with pytest.raises(xpnn.ShapeError, match=r"integer class labels of shape \(90,\), "
                                                  r"received \(90, 3\): for one-hot rows "
                                                  r"use loss='categorical_crossentropy'"):
            model.fit(x, one_hot, verbose=0)


def test_float_labels_say_that_labels_are_integers(lane):
    """Was: "targets must have shape (1438, 10) or integer labels of shape (1438,),
    received (1438,)"."""
    x, y = _classes()
    model = _model(lane)
    model.compile("softmax_crossentropy", "adam")
    with pytest.raises(xpnn.DTypeError, match=r"model 'sequential(_\d+)?': y does not fit "
                                              r"output 'dense(_\d+)?' of shape \(samples, 3\): "
                                              r"SoftmaxCrossEntropy: targets of shape \(90,\) "
                                              r"are read as class labels, which must be "
                                              r"integers, but they are floats: pass "
                                              r"y\.astype\(int\), or one-hot rows of shape "
                                              r"\(90, 3\)"):
        model.fit(x, y.astype(np.float64), verbose=0)


# -- probabilities and classes from a model ---------------------------------------------------

def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_predict_proba_and_predict_classes_read_the_outputs_as_the_loss_does(lane):
    x, y = _classes()
    logits_model = _model(lane)
    logits_model.compile("softmax_crossentropy", xpnn.Adam(0.05))
    logits_model.fit(x, y, epochs=10, verbose=0)
    logits = logits_model.predict(x)
    probabilities = logits_model.predict_proba(x)
    np.testing.assert_allclose(probabilities, _softmax(logits.astype(np.float64)), rtol=1e-5,
                               atol=1e-6)
    assert probabilities.dtype == np.float32 and isinstance(probabilities, np.ndarray)
    np.testing.assert_array_equal(logits_model.predict_classes(x), logits.argmax(axis=-1))
    assert logits_model.predict_classes(x).dtype == np.int64

    softmax_model = _model(lane, xpnn.Softmax())
    softmax_model.compile("categorical_crossentropy", "adam")
    np.testing.assert_array_equal(softmax_model.predict_proba(x), softmax_model.predict(x))

    binary = _model(lane, units=1)
    binary.compile(xpnn.BinaryCrossEntropy(from_logits=True), "adam")
    z = binary.predict(x).astype(np.float64)
    np.testing.assert_allclose(binary.predict_proba(x), 1 / (1 + np.exp(-z)), rtol=1e-5)
    np.testing.assert_array_equal(binary.predict_classes(x), (z > 0).astype(np.int64))

    with pytest.raises(xpnn.NotReadyError, match="compile the model first"):
        _model(lane).predict_proba(x)
    regression = _model(lane, units=1)
    regression.compile("mse", "adam")
    with pytest.raises(ValueError, match="'mean_squared_error' is a regression loss: use "
                                         "predict"):
        regression.predict_classes(x)


def test_predict_proba_of_a_two_output_model(lane):
    x, _ = _classes()
    inputs = xpnn.Input((4,))
    hidden = xpnn.Dense(8, activation="relu")(inputs)
    model = xpnn.Model(inputs, [xpnn.Dense(3, name="kind")(hidden),
                                xpnn.Dense(1, activation="sigmoid", name="big")(hidden)],
                       device=lane.device, seed=0)
    model.compile(["softmax_crossentropy", "binary_crossentropy"], "adam")
    kind, big = model.predict_proba(x)
    np.testing.assert_allclose(kind.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(big, model.predict(x)[1])
    classes, answers = model.predict_classes(x)
    assert classes.shape == (90,) and answers.shape == (90, 1)


# -- model.weights ------------------------------------------------------------------------------

def test_model_weights_are_keras_lists_of_parameters(lane):
    model = xpnn.Sequential([xpnn.Dense(4), xpnn.BatchNorm(), xpnn.Dense(2)],
                            device=lane.device, seed=0)
    model.build((3,))
    names = [p.name.split("/")[-1] for p in model.weights]
    assert names == ["kernel", "bias", "gamma", "beta", "running_mean", "running_var",
                     "kernel", "bias"]
    assert model.weights == model.parameters()
    assert all(isinstance(p, xpnn.Parameter) and lane.backend.owns(p.value)
               for p in model.weights)
    assert [p.name.split("/")[-1] for p in model.trainable_weights] == [
        "kernel", "bias", "gamma", "beta", "kernel", "bias"]
    assert [p.name.split("/")[-1] for p in model.non_trainable_weights] == [
        "running_mean", "running_var"]
    model.layers[0].trainable = False
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 4
    assert [p.shape for p in model.weights] == [w.shape for w in model.get_weights()]
