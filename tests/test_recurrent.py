"""Recurrent layers, Embedding, TimeDistributed, the scatter-add kernel and the masked
sequence loss: float64 gradient checks on every lane (initial state and final-state
outputs included), forward/backward parity with the float64 references of
tests/reference_recurrent.py in float32 and float64, input errors, and small models that
learn."""

from __future__ import annotations

import numpy as np
import pytest
from xpnn.backends.base import Backend

import xpnn
from xpnn.gradcheck import relative_error
from xpnn.layers.base import BuildContext

from . import reference as ref
from . import reference_recurrent as rref
from .tolerances import GRADCHECK

DTYPES = ("float32", "float64")
BATCH, STEPS, FEATURES, UNITS = 2, 4, 3, 3


def _reference(kind, x, p, grad_h, final_grads, initial, activation="tanh"):
    """(all hidden states, dx, param grads, initial-state grads, state grads) of a layer
    kind; ``final_grads`` are dL/dh_T (and dL/dc_T), ``initial`` the initial state or None."""
    initial = initial or (None, None)
    if kind == "lstm":
        hs, _, _ = rref.lstm_forward(x, p, *initial)
        backward = rref.lstm_backward(x, p, grad_h, *final_grads, *initial)
    elif kind == "gru":
        hs, _ = rref.gru_forward(x, p, initial[0])
        backward = rref.gru_backward(x, p, grad_h, final_grads[0], initial[0])
    else:
        hs, _ = rref.rnn_forward(x, p, initial[0], activation)
        backward = rref.rnn_backward(x, p, grad_h, final_grads[0], initial[0], activation)
    return (hs, *backward)


#: name -> (layer kind, constructor, activation)
LAYERS = {
    "simple_rnn": ("rnn", xpnn.SimpleRNN, "tanh"),
    "simple_rnn_sigmoid": ("rnn", lambda units, **kw: xpnn.SimpleRNN(units, "sigmoid", **kw),
                           "sigmoid"),
    "lstm": ("lstm", xpnn.LSTM, None),
    "gru": ("gru", xpnn.GRU, None),
}


def _state_count(kind: str) -> int:
    return 2 if kind == "lstm" else 1


def _build(layer, lane, dtype, input_shape, seed=0):
    layer.build(input_shape, BuildContext(lane.backend, dtype, np.random.default_rng(seed)))
    return layer


def _load_random_parameters(layer, lane, dtype, rng, scale=0.6):
    """Random parameters representable in ``dtype``; returns them as float64 host arrays."""
    params = {}
    for param in layer.trainable_parameters():
        value = (scale * rng.standard_normal(param.shape)).astype(dtype).astype(np.float64)
        param.value = lane.asarray(value, dtype)
        params[param.name.split("/")[-1]] = value
    return params


def _rounded(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype).astype(np.float64)


# -- gradient checks -------------------------------------------------------------------------

@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradcheck(lane, name, return_sequences, rng):
    _, make, _ = LAYERS[name]
    x = rng.standard_normal((BATCH, STEPS, FEATURES))
    result = xpnn.gradcheck(make(UNITS, return_sequences=return_sequences), x,
                            device=lane.device, tolerance=GRADCHECK)
    assert result.passed and result.checked > 0


def _central_difference(f, point, step=1e-6):
    grad = np.zeros_like(point)
    probe = point.copy()
    for index in np.ndindex(point.shape):
        original = probe[index]
        probe[index] = original + step
        upper = f(probe)
        probe[index] = original - step
        lower = f(probe)
        probe[index] = original
        grad[index] = (upper - lower) / (2 * step)
    return grad


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradcheck_with_initial_state_and_final_state_outputs(lane, name, return_sequences,
                                                               rng):
    """f = Σ y ⊙ R + Σ h_T ⊙ R_h (+ Σ c_T ⊙ R_c) from a given initial state: the gradients
    of x, of every parameter and of the initial state against central differences."""
    kind, make, _ = LAYERS[name]
    layer = _build(make(UNITS, return_sequences=return_sequences, return_state=True), lane,
                   "float64", (STEPS, FEATURES))
    count = _state_count(kind)
    x = rng.standard_normal((BATCH, STEPS, FEATURES))
    states = [rng.standard_normal((BATCH, UNITS)) for _ in range(count)]
    out_shape = (BATCH, *layer.output_shape[0])
    weights = [rng.standard_normal(out_shape)] + [rng.standard_normal((BATCH, UNITS))
                                                  for _ in range(count)]

    def inputs(x_host, state_hosts):
        return [lane.asarray(x_host, "float64"), *[lane.asarray(s, "float64")
                                                   for s in state_hosts]]

    def f(x_host, state_hosts):
        outputs = layer(inputs(x_host, state_hosts), training=True)
        return sum(float(lane.xp.sum(out * lane.asarray(w, "float64")))
                   for out, w in zip(outputs, weights, strict=True))

    _, ctx = layer.apply(inputs(x, states), training=True)
    grad_x, *grad_states = layer.backward(
        ctx, tuple(lane.asarray(w, "float64") for w in weights))
    analytic = {"x": lane.to_host(grad_x)}
    analytic.update({p.name: lane.to_host(p.grad) for p in layer.trainable_parameters()})
    analytic.update({f"state{k}": lane.to_host(g) for k, g in enumerate(grad_states)})
    for returned, kept in zip(grad_states, ctx.initial_state_gradients, strict=True):
        np.testing.assert_array_equal(lane.to_host(returned), lane.to_host(kept))

    numeric = {"x": _central_difference(lambda probe: f(probe, states), x)}
    for k in range(count):
        def with_state(probe, k=k):
            return f(x, [probe if j == k else s for j, s in enumerate(states)])
        numeric[f"state{k}"] = _central_difference(with_state, states[k])
    for param in layer.trainable_parameters():
        original = lane.to_host(param.value)

        def with_param(probe, param=param):
            param.value = lane.asarray(probe, "float64")
            return f(x, states)
        numeric[param.name] = _central_difference(with_param, original)
        param.value = lane.asarray(original, "float64")
    assert set(numeric) == set(analytic)
    for key, value in numeric.items():
        assert relative_error(analytic[key], value).max() <= GRADCHECK, key


# -- parity with the references ------------------------------------------------------------

@pytest.mark.parametrize("initial", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [*sorted(LAYERS), "simple_rnn_relu", "simple_rnn_linear"])
def test_parity_with_reference(lane, name, dtype, return_sequences, initial, rng):
    if name.startswith("simple_rnn_") and name[11:] in ("relu", "linear"):
        kind, activation = "rnn", name[11:]
        make = lambda units, **kw: xpnn.SimpleRNN(units, activation, **kw)  # noqa: E731
    else:
        kind, make, activation = LAYERS[name]
    layer = _build(make(UNITS, return_sequences=return_sequences), lane, dtype,
                   (STEPS, FEATURES))
    params = _load_random_parameters(layer, lane, dtype, rng)
    x = _rounded(rng, (BATCH, STEPS, FEATURES), dtype)
    states = ([_rounded(rng, (BATCH, UNITS), dtype) for _ in range(_state_count(kind))]
              if initial else None)
    arrays = lane.asarray(x, dtype)
    if states is not None:
        arrays = [arrays, *[lane.asarray(s, dtype) for s in states]]
    y, ctx = layer.apply(arrays, training=True)
    g = _rounded(rng, (BATCH, *layer.output_shape), dtype)
    grad_h = g if return_sequences else np.concatenate(
        [np.zeros((BATCH, STEPS - 1, UNITS)), g[:, None]], axis=1)
    hs, dx, grads, initial_grads, state_grads = _reference(
        kind, x, params, grad_h, (None, None), states, activation or "tanh")
    lane.assert_close(y, hs if return_sequences else hs[:, -1], dtype, what=f"{name} forward")

    grad_input = layer.backward(ctx, lane.asarray(g, dtype))
    if states is not None:
        grad_input, *grad_states = grad_input
        for k, expected in enumerate(initial_grads):
            lane.assert_close(grad_states[k], expected, dtype,
                              what=f"{name} returned dL/d(initial state {k})")
    lane.assert_close(grad_input, dx, dtype, what=f"{name} dL/dx")
    for param in layer.trainable_parameters():
        short = param.name.split("/")[-1]
        lane.assert_close(param.grad, grads[short], dtype, what=f"{name} dL/d{short}")
    lane.assert_close(ctx.state_gradients, state_grads, dtype, what=f"{name} dL/dh_t")
    for k, expected in enumerate(initial_grads):
        lane.assert_close(ctx.initial_state_gradients[k], expected, dtype,
                          what=f"{name} dL/d(initial state {k})")


@pytest.mark.parametrize("name", ["lstm", "gru", "simple_rnn"])
def test_return_state_outputs_match_the_reference(lane, name, rng):
    kind, make, activation = LAYERS[name]
    layer = _build(make(UNITS, return_state=True), lane, "float64", (STEPS, FEATURES))
    params = _load_random_parameters(layer, lane, "float64", rng)
    x = rng.standard_normal((BATCH, STEPS, FEATURES))
    outputs, ctx = layer.apply(lane.asarray(x, "float64"))
    assert isinstance(outputs, tuple) and len(outputs) == 1 + _state_count(kind)
    hs = _reference(kind, x, params, np.zeros((BATCH, STEPS, UNITS)), (None, None), None,
                    activation or "tanh")[0]
    lane.assert_close(outputs[0], hs[:, -1], "float64", what="last output")
    lane.assert_close(outputs[1], hs[:, -1], "float64", what="h_T")
    if kind == "lstm":
        _, c_last, _ = rref.lstm_forward(x, params)
        lane.assert_close(outputs[2], c_last, "float64", what="c_T")
    # a gradient for c_T alone: (None, None, dL/dc_T)
    if kind == "lstm":
        grad_c = rng.standard_normal((BATCH, UNITS))
        grad_x = layer.backward(ctx, (None, None, lane.asarray(grad_c, "float64")))
        expected = rref.lstm_backward(x, params, np.zeros((BATCH, STEPS, UNITS)),
                                      None, grad_c)[0]
        lane.assert_close(grad_x, expected, "float64", what="dL/dx from dL/dc_T")


def test_lstm_gate_layout_and_forget_bias(lane):
    layer = _build(xpnn.LSTM(2), lane, "float64", (3, 4))
    assert layer.kernel.shape == (4, 8) and layer.recurrent_kernel.shape == (2, 8)
    np.testing.assert_array_equal(lane.to_host(layer.bias.value), [0, 0, 1, 1, 0, 0, 0, 0])
    no_forget = _build(xpnn.LSTM(2, unit_forget_bias=False), lane, "float64", (3, 4))
    np.testing.assert_array_equal(lane.to_host(no_forget.bias.value), np.zeros(8))
    assert [p.regularizable for p in layer.parameters()] == [True, True, False]
    gru = _build(xpnn.GRU(2, name="gru"), lane, "float64", (3, 4))
    assert [p.name for p in gru.parameters()] == [
        "gru/kernel", "gru/recurrent_kernel", "gru/bias", "gru/recurrent_bias"]


# -- input errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [xpnn.SimpleRNN, xpnn.LSTM, xpnn.GRU])
def test_wrong_rank_dtype_and_initial_state_are_clear_errors(lane, make):
    name = make.__name__
    with pytest.raises(xpnn.ShapeError, match=rf"{name}.*\(batch, time, features\).*\(batch, 5\)"):
        _build(make(2), lane, "float32", (5,))
    with pytest.raises(xpnn.ShapeError, match=r"\(batch, time, features\)"):
        xpnn.Sequential([make(2)], device=lane.device).build((4, 3, 2))
    layer = _build(make(2), lane, "float32", (4, 3))
    with pytest.raises(xpnn.ShapeError, match=r"expected input of shape \(batch, 4, 3\)"):
        layer(lane.asarray(np.zeros((2, 4)), "float32"))
    with pytest.raises(xpnn.DTypeError, match=r"float32.*float64"):
        layer(lane.asarray(np.zeros((2, 4, 3)), "float64"))
    with pytest.raises(xpnn.DTypeError, match="expected input of dtype float32, received int64"):
        layer(lane.asarray(np.zeros((2, 4, 3), dtype=np.int64)))
    x = lane.asarray(np.zeros((2, 4, 3)), "float32")
    count = 2 if make is xpnn.LSTM else 1
    good = [lane.asarray(np.zeros((2, 2)), "float32")] * count
    layer(x, initial_state=good)  # accepted
    with pytest.raises(xpnn.ShapeError, match=r"initial h0 has 3 rows for a batch of 2"):
        layer(x, initial_state=[lane.asarray(np.zeros((3, 2)), "float32"), *good[1:]])
    with pytest.raises(xpnn.ShapeError, match=r"received \(2, 5\)"):
        layer(x, initial_state=[lane.asarray(np.zeros((2, 5)), "float32"), *good[1:]])
    with pytest.raises(xpnn.DTypeError, match="initial h0 of dtype float32, received float64"):
        layer(x, initial_state=[lane.asarray(np.zeros((2, 2)), "float64"), *good[1:]])
    with pytest.raises(xpnn.ShapeError,
                       match=rf"with an initial state: {count + 1} inputs, received {count + 2}"):
        layer(x, initial_state=[*good, good[0]])
    if lane.name != "numpy":
        with pytest.raises(xpnn.DeviceError, match="initial h0"):
            layer(x, initial_state=[np.zeros((2, 2), np.float32), *good[1:]])


def test_lstm_needs_both_initial_states(lane):
    layer = _build(xpnn.LSTM(2), lane, "float32", (4, 3))
    x = lane.asarray(np.zeros((2, 4, 3)), "float32")
    with pytest.raises(xpnn.ShapeError, match=r"takes \[x, h0, c0\].*3 inputs, received 2"):
        layer(x, initial_state=lane.asarray(np.zeros((2, 2)), "float32"))


def test_return_state_backward_form_and_sequential_use(lane):
    layer = _build(xpnn.GRU(2, return_state=True), lane, "float64", (4, 3))
    _, ctx = layer.apply(lane.asarray(np.zeros((2, 4, 3)), "float64"))
    with pytest.raises(xpnn.ShapeError, match=r"\(dL/doutputs, dL/dh_T\)"):
        layer.backward(ctx, lane.asarray(np.zeros((2, 2)), "float64"))
    model = xpnn.Sequential([xpnn.LSTM(2, return_state=True, name="memory"), xpnn.Dense(1)],
                            device=lane.device)
    with pytest.raises(xpnn.GraphError, match=r"'memory' \(LSTM\) returns 3 outputs.*xpnn.Model"):
        model.build((4, 3))


@pytest.mark.parametrize(("arguments", "message"), [
    ((0,), "units"), ((2.5,), "units"), ((2, "softplus"), "activation")])
def test_bad_constructor_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        xpnn.SimpleRNN(*arguments)


def test_config_round_trip():
    layers = [
        xpnn.SimpleRNN(4, "relu", return_sequences=True, name="r", weight_decay=1e-3),
        xpnn.LSTM(3, unit_forget_bias=False, return_state=True,
                  recurrent_initializer="he_normal"),
        xpnn.GRU(2, kernel_initializer={"name": "normal", "std": 0.1}, trainable=False),
        xpnn.Embedding(10, 4, weight_decay=0.5),
        xpnn.TimeDistributed(xpnn.Dense(3, use_bias=False, name="inner"), name="td"),
    ]
    for layer in layers:
        clone = type(layer)(**layer.get_config())
        assert clone.get_config() == layer.get_config()


# -- Embedding and its scatter-add kernel ----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_forward_backward(lane, dtype, rng):
    layer = _build(xpnn.Embedding(7, 3), lane, dtype, (5,))
    table = lane.to_host(layer.embeddings.value).astype(np.float64)
    ids = rng.integers(0, 7, (4, 5))
    ids[0, :3] = 2  # repeated ids add up in the gradient
    y, ctx = layer.apply(lane.asarray(ids, "int64"))
    lane.assert_close(y, table[ids], dtype, what="embedding forward")
    assert layer.output_shape == (5, 3)
    g = _rounded(rng, (4, 5, 3), dtype)
    assert layer.backward(ctx, lane.asarray(g, dtype)) is None
    lane.assert_close(layer.embeddings.grad, rref.embedding_backward(ids, 7, g), dtype,
                      what="embedding dL/dE")


def test_embedding_gradient_against_central_differences(lane, rng):
    layer = _build(xpnn.Embedding(5, 2), lane, "float64", (3,))
    ids = lane.asarray(np.array([[0, 4, 0], [2, 2, 3]]), "int32")
    weights = rng.standard_normal((2, 3, 2))

    def f(table):
        layer.embeddings.value = lane.asarray(table, "float64")
        return float(lane.xp.sum(layer(ids) * lane.asarray(weights, "float64")))

    table = lane.to_host(layer.embeddings.value)
    numeric = _central_difference(f, table)
    layer.embeddings.value = lane.asarray(table, "float64")
    _, ctx = layer.apply(ids)
    layer.backward(ctx, lane.asarray(weights, "float64"))
    assert relative_error(lane.to_host(layer.embeddings.grad), numeric).max() <= GRADCHECK


def test_embedding_refuses_out_of_range_and_float_ids(lane):
    layer = _build(xpnn.Embedding(6, 2, name="tokens"), lane, "float32", (3,))
    with pytest.raises(xpnn.LabelError,
                       match=r"'tokens'.*\[0, 5\] for vocab_size=6, received ids from 0 to 6"):
        layer(lane.asarray(np.array([[0, 1, 6]]), "int64"))
    with pytest.raises(xpnn.LabelError, match="from -1 to 2"):
        layer(lane.asarray(np.array([[-1, 1, 2]]), "int64"))
    with pytest.raises(xpnn.DTypeError, match="integer token ids, received dtype float32"):
        layer(lane.asarray(np.zeros((1, 3)), "float32"))
    with pytest.raises(xpnn.ShapeError, match=r"token ids of shape \(batch, 3\), received"):
        layer(lane.asarray(np.zeros((1, 4), dtype=np.int64)))
    with pytest.raises(xpnn.NotReadyError, match="build it first"):
        xpnn.Embedding(6, 2)(lane.asarray(np.zeros((1, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match="vocab_size"):
        xpnn.Embedding(0, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_add_specialisation_matches_the_generic_kernel(lane, dtype, rng, monkeypatch):
    """Each backend's scatter_add against Backend.scatter_add (one-hot product), with many
    repeated indices, and the generic kernel's blocking against np.add.at."""
    indices = rng.integers(0, 9, 300)
    indices[:50] = 4
    values = rng.standard_normal((300, 5)).astype(dtype)
    expected = np.zeros((9, 5))
    np.add.at(expected, indices, values.astype(np.float64))
    ids, rows = lane.asarray(indices, "int64"), lane.asarray(values, dtype)
    specialised = lane.backend.scatter_add(ids, rows, 9)
    generic = Backend.scatter_add(lane.backend, ids, rows, 9)
    lane.assert_close(generic, expected, dtype, what="generic scatter_add")
    lane.assert_close(specialised, lane.to_host(generic).astype(np.float64), dtype,
                      what=f"{lane.name} scatter_add")
    monkeypatch.setattr(lane.backend, "SCATTER_ADD_BLOCK", 9 * 7)  # blocks of 7 rows
    lane.assert_close(Backend.scatter_add(lane.backend, ids, rows, 9), expected, dtype,
                      what="blocked generic scatter_add")


# -- TimeDistributed ---------------------------------------------------------------------------

@pytest.mark.parametrize("inner", ["softmax", "dense", "batchnorm"])
def test_time_distributed_gradcheck(lane, inner, rng):
    layer = {"softmax": xpnn.Softmax, "dense": lambda: xpnn.Dense(2),
             "batchnorm": xpnn.BatchNorm}[inner]()
    result = xpnn.gradcheck(xpnn.TimeDistributed(layer), rng.standard_normal((2, 3, 4)),
                            device=lane.device, tolerance=GRADCHECK)
    assert result.passed


@pytest.mark.parametrize("dtype", DTYPES)
def test_time_distributed_applies_the_layer_at_every_step(lane, dtype, rng):
    layer = _build(xpnn.TimeDistributed(xpnn.Dense(2, name="dense"), name="td"), lane, dtype,
                   (3, 4))
    assert [p.name for p in layer.parameters()] == ["td/dense/kernel", "td/dense/bias"]
    assert layer.output_shape == (3, 2) and layer.count_params() == 10
    params = _load_random_parameters(layer, lane, dtype, rng)
    x = _rounded(rng, (2, 3, 4), dtype)
    y, ctx = layer.apply(lane.asarray(x, dtype))
    lane.assert_close(y, ref.dense_forward(x, params["kernel"], params["bias"]), dtype)
    g = _rounded(rng, (2, 3, 2), dtype)
    dx, grads = ref.dense_backward(x, params["kernel"], params["bias"], g)
    lane.assert_close(layer.backward(ctx, lane.asarray(g, dtype)), dx, dtype, what="dL/dx")
    lane.assert_close(layer.layer.kernel.grad, grads["kernel"], dtype, what="dL/dW")
    layer.trainable = False
    assert layer.trainable_parameters() == [] and not layer.layer.trainable


def test_time_distributed_refuses_inputs_without_a_time_axis(lane):
    with pytest.raises(xpnn.ShapeError, match=r"\(batch, time, features...\)"):
        _build(xpnn.TimeDistributed(xpnn.Softmax()), lane, "float32", (4,))


# -- the masked sequence loss ----------------------------------------------------------------

def _padded_labels(rng, shape=(3, 5), classes=4, ignore=-100):
    labels = rng.integers(0, classes, shape)
    labels[0, 3:] = ignore
    labels[2, 1:] = ignore
    return labels


@pytest.mark.parametrize("ignore", [-100, 0])
def test_ignore_index_gradcheck(lane, ignore, rng):
    loss = xpnn.SoftmaxCrossEntropy(ignore_index=ignore)
    result = xpnn.gradcheck(loss, rng.standard_normal((3, 5, 4)),
                            _padded_labels(rng, ignore=ignore), device=lane.device,
                            tolerance=GRADCHECK)
    assert result.passed


@pytest.mark.parametrize("dtype", DTYPES)
def test_ignore_index_parity_with_reference(lane, dtype, rng):
    logits = _rounded(rng, (3, 5, 4), dtype)
    labels = _padded_labels(rng)
    loss = xpnn.SoftmaxCrossEntropy(ignore_index=-100)
    value, grad = loss.value_and_grad(lane.asarray(logits, dtype), lane.asarray(labels, "int64"))
    expected_value, expected_grad = rref.masked_softmax_ce(logits, labels, -100)
    lane.assert_close(value, np.asarray(expected_value), dtype, what="masked loss")
    lane.assert_close(grad, expected_grad, dtype, what="masked gradient")
    # without padding it is the plain loss
    full = rng.integers(0, 4, (3, 5))
    plain = xpnn.SoftmaxCrossEntropy()(lane.asarray(logits, dtype), lane.asarray(full, "int64"))
    masked = loss(lane.asarray(logits, dtype), lane.asarray(full, "int64"))
    lane.assert_close(masked, lane.to_host(plain).astype(np.float64), dtype)


def test_ignore_index_edge_cases_and_checks(lane):
    loss = xpnn.SoftmaxCrossEntropy(ignore_index=-1)
    logits = lane.asarray(np.zeros((2, 3)), "float64")
    all_padding = lane.asarray(np.array([-1, -1]), "int64")
    value, grad = loss.value_and_grad(logits, all_padding)
    assert float(value) == 0.0
    np.testing.assert_array_equal(lane.to_host(grad), np.zeros((2, 3)))
    loss.check_targets((2, 2, 3), lane.asarray(np.array([[0, -1], [2, -1]]), "int64"))
    with pytest.raises(xpnn.LabelError, match=r"\[0, 2\].*from 0 to 3"):
        loss.check_targets((2, 2, 3), lane.asarray(np.array([[0, -1], [3, -1]]), "int64"))
    with pytest.raises(xpnn.LabelError, match="from -1"):
        xpnn.SoftmaxCrossEntropy().check_targets((2, 3), all_padding)
    assert loss.get_config() == {"ignore_index": -1}
    assert xpnn.SoftmaxCrossEntropy(**loss.get_config()).ignore_index == -1
    with pytest.raises(ValueError, match="ignore_index"):
        xpnn.SoftmaxCrossEntropy(ignore_index=0.5)


# -- models ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("make", [xpnn.LSTM, xpnn.GRU])
def test_a_gated_model_learns_to_recall_the_first_element(lane, make):
    """y = x_1 from (x_1 ... x_8): the answer must be carried across all the steps."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (512, 8, 1))
    y = x[:, 0, :]
    model = xpnn.Sequential([make(12), xpnn.Dense(1)], device=lane.device, seed=0)
    model.compile("mse", xpnn.Adam(0.02))
    model.fit(x, y, epochs=15, batch_size=32, verbose=0, seed=0)
    # the loss is ½·mean square; predicting the mean (0) of U(-1, 1) scores 1/6
    assert model.evaluate(x, y)["loss"] < 0.02


def test_sequence_model_with_time_distributed_softmax_and_save_load(lane, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 5, 3))
    y = (x[..., 0] > 0).astype(np.int64)  # the class of every step: the sign of a feature
    model = xpnn.Sequential([xpnn.GRU(8, return_sequences=True), xpnn.Dense(2)],
                            device=lane.device, seed=0)
    model.compile(xpnn.SoftmaxCrossEntropy(ignore_index=-1), xpnn.Adam(0.03),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=16, verbose=0, seed=0)
    assert model.evaluate(x, y)["accuracy"] > 0.95
    path = tmp_path / "seq.xpnn"
    model.save(path)
    loaded = xpnn.load(path, device=lane.device)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)
    assert loaded.loss.ignore_index == -1
    probabilities = xpnn.Sequential(
        [xpnn.LSTM(4, return_sequences=True), xpnn.TimeDistributed(xpnn.Softmax())],
        device=lane.device, seed=0).predict(x)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    wrapped = xpnn.Sequential([xpnn.LSTM(4, return_sequences=True),
                               xpnn.TimeDistributed(xpnn.Dense(3))], device=lane.device, seed=0)
    wrapped.build((5, 3))
    wrapped.set_weights([w + 0.1 for w in wrapped.get_weights()])  # not the seed's weights
    wrapped.save_weights(tmp_path / "weights.xpnn")
    twin = xpnn.Sequential.from_config(wrapped.get_config(), device=lane.device)
    twin.load_weights(tmp_path / "weights.xpnn")
    np.testing.assert_array_equal(twin.predict(x), wrapped.predict(x))


@pytest.mark.slow
def test_embedding_lstm_model_learns_to_recall_the_first_token(lane, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, (512, 6))
    y = x[:, 0]
    model = xpnn.Sequential([xpnn.Embedding(5, 4), xpnn.LSTM(12), xpnn.Dense(5)],
                            device=lane.device, seed=0)
    model.compile("softmax_crossentropy", xpnn.Adam(0.02), metrics=["accuracy"])
    model.fit(x, y, epochs=12, batch_size=32, verbose=0, seed=0)
    assert model.evaluate(x, y)["accuracy"] > 0.95  # chance: 0.2
    path = tmp_path / "tokens.xpnn"
    model.save(path)
    np.testing.assert_allclose(xpnn.load(path, device=lane.device).predict(x),
                               model.predict(x), rtol=1e-6)
    with pytest.raises(xpnn.LabelError, match="vocab_size=5"):
        model.predict(x + 1)


def test_clip_norm_bounds_the_lstm_update(lane):
    """With SGD(1, clip_norm=c) the update is −g · c / max(‖g‖, c): its global norm is c."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 6, 3)) * 5.0
    y = rng.standard_normal((16, 1)) * 100.0  # far off: a large gradient
    model = xpnn.Sequential([xpnn.LSTM(4), xpnn.Dense(1)], device=lane.device, seed=0,
                            dtype="float64")
    model.compile("mse", xpnn.SGD(1.0, clip_norm=0.5))
    model.build((6, 3))
    before = model.get_weights()
    model.train_on_batch(x, y)
    grads = [lane.to_host(p.grad) for p in model.trainable_parameters()]
    assert np.sqrt(sum((g**2).sum() for g in grads)) > 0.5  # clipping did something
    step = np.sqrt(sum(((a - b) ** 2).sum()
                       for a, b in zip(model.get_weights(), before, strict=True)))
    assert step == pytest.approx(0.5, rel=1e-9)
