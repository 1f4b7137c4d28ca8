"""Graph models (the functional API): residual connections, fan-out, shared layers, several
inputs and outputs, on every lane — float64 gradient checks of whole models, parity with
float64 NumPy references written here, a shared layer against two tied layers, saving,
loading in a new process and resuming, and the errors of graphs that cannot be built."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xpnn

from . import reference as ref
from .tolerances import GRADCHECK

DTYPES = ("float32", "float64")


# -- the graphs under test ---------------------------------------------------------------------

def residual(**options):
    """x → Dense(5) → ReLU → (+ x) → Dense(3): y = (x + relu(x W1 + b1)) W2 + b2."""
    x = xpnn.Input((5,), name="x")
    h = xpnn.ReLU()(xpnn.Dense(5, name="inner")(x))
    y = xpnn.Dense(3, name="head")(xpnn.Add()([x, h]))
    return xpnn.Model(x, y, **options)


def fan_out(**options):
    """One Dense output read by three consumers (tanh, sigmoid, a Dense), joined again."""
    x = xpnn.Input((4,), name="x")
    h = xpnn.Dense(6, name="trunk")(x)
    branches = [xpnn.Tanh()(h), xpnn.Sigmoid()(h), xpnn.Dense(6, name="side")(h)]
    return xpnn.Model(x, xpnn.Dense(2, name="head")(xpnn.Concatenate()(branches)), **options)


def siamese(**options):
    """One Dense applied to two inputs: y = (tanh(a W + b) − tanh(c W + b)) V + d — the
    shared W and b get the sum of both calls' gradients."""
    a, c = xpnn.Input((4,), name="a"), xpnn.Input((4,), name="c")
    shared = xpnn.Dense(3, name="shared")
    left, right = xpnn.Tanh()(shared(a)), xpnn.Tanh()(shared(c))
    return xpnn.Model([a, c], xpnn.Dense(1, name="head")(xpnn.Subtract()([left, right])),
                      **options)


def two_outputs(**options):
    """A classifier head and a regression head on one trunk, the second with a skip from the
    input: two losses."""
    x = xpnn.Input((4,), name="x")
    h = xpnn.Tanh()(xpnn.Dense(5, name="trunk")(x))
    classes = xpnn.Dense(3, name="classes")(h)
    value = xpnn.Dense(1, name="value")(xpnn.Multiply()([h, xpnn.Dense(5, name="skip")(x)]))
    return xpnn.Model(x, [classes, value], **options)


def two_inputs(**options):
    """Inputs of different widths joined, with an Average of two branches."""
    a, b = xpnn.Input((4,), name="a"), xpnn.Input((3,), name="b")
    joined = xpnn.Concatenate()([a, b])
    mean = xpnn.Average()([xpnn.Dense(4, name="p")(joined), xpnn.Dense(4, name="q")(joined)])
    return xpnn.Model([a, b], xpnn.Dense(2, name="head")(xpnn.Tanh()(mean)), **options)


GRAPHS = {"residual": residual, "fan_out": fan_out, "siamese": siamese,
          "two_outputs": two_outputs, "two_inputs": two_inputs}


def _inputs(model, rng, batch=5):
    arrays = [rng.standard_normal((batch, *spec.shape)) for spec in model.input_specs]
    return [np.where(np.abs(a) < 0.05, 0.5, a) for a in arrays]  # away from ReLU's kink


def _params(model, lane, dtype, rng):
    """Random parameters representable in ``dtype``, loaded into the model; returned as
    float64 host arrays by parameter name."""
    values = {}
    for param in model.parameters():
        value = (0.7 * rng.standard_normal(param.shape)).astype(dtype).astype(np.float64)
        param.value = lane.asarray(value, dtype)
        values[param.name] = value
    return values


# -- gradient checks of whole models -----------------------------------------------------------

@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_gradcheck_of_whole_graph_models(lane, name, training, rng):
    model = GRAPHS[name](device=lane.device, dtype="float64", seed=0)
    inputs = _inputs(model, rng)
    result = xpnn.gradcheck(model, inputs if len(inputs) > 1 else inputs[0],
                            tolerance=GRADCHECK, training=training)
    parameters = sum(p.size for p in model.trainable_parameters())
    assert result.passed and result.checked == sum(a.size for a in inputs) + parameters


def test_gradcheck_of_a_transformer_like_block_with_batchnorm_and_dropout_free_paths(lane, rng):
    """Residual blocks stacked twice, with a shared projection used at both depths."""
    x = xpnn.Input((6,))
    shared = xpnn.Dense(6)
    h = x
    for _ in range(2):
        h = xpnn.Add()([h, xpnn.Tanh()(shared(xpnn.BatchNorm()(h)))])
    model = xpnn.Model(x, xpnn.Dense(2)(h), device=lane.device, dtype="float64", seed=1)
    assert sum(layer is shared for layer in model.layers) == 1
    x_host = rng.standard_normal((6, 6)) * 2.0
    assert xpnn.gradcheck(model, x_host, tolerance=GRADCHECK, training=False).passed


# -- parity with NumPy float64 references ------------------------------------------------------

def _residual_reference(x, p, g):
    w1, b1, w2, b2 = (p[k] for k in ("inner/kernel", "inner/bias", "head/kernel", "head/bias"))
    z = ref.dense_forward(x, w1, b1)
    s = x + np.maximum(z, 0)
    y = ref.dense_forward(s, w2, b2)
    grad_s, head = ref.dense_backward(s, w2, b2, g)
    grad_z = ref.relu_backward(z, grad_s)
    grad_x_inner, inner = ref.dense_backward(x, w1, b1, grad_z)
    grads = {"head/kernel": head["kernel"], "head/bias": head["bias"],
             "inner/kernel": inner["kernel"], "inner/bias": inner["bias"]}
    return [y], [grad_s + grad_x_inner], grads  # the skip and the branch both reach x


def _siamese_reference(inputs, p, g):
    a, c = inputs
    w, b, v, d = (p[k] for k in ("shared/kernel", "shared/bias", "head/kernel", "head/bias"))
    za, zc = ref.dense_forward(a, w, b), ref.dense_forward(c, w, b)
    diff = np.tanh(za) - np.tanh(zc)
    y = ref.dense_forward(diff, v, d)
    grad_diff, head = ref.dense_backward(diff, v, d, g)
    grad_a, left = ref.dense_backward(a, w, b, ref.tanh_backward(za, grad_diff))
    grad_c, right = ref.dense_backward(c, w, b, ref.tanh_backward(zc, -grad_diff))
    grads = {"shared/kernel": left["kernel"] + right["kernel"],
             "shared/bias": left["bias"] + right["bias"],
             "head/kernel": head["kernel"], "head/bias": head["bias"]}
    return [y], [grad_a, grad_c], grads


def _two_outputs_reference(x, p, gs):
    wt, bt = p["trunk/kernel"], p["trunk/bias"]
    wc, bc, wv, bv = p["classes/kernel"], p["classes/bias"], p["value/kernel"], p["value/bias"]
    ws, bs = p["skip/kernel"], p["skip/bias"]
    z = ref.dense_forward(x, wt, bt)
    h = np.tanh(z)
    skip = ref.dense_forward(x, ws, bs)
    product = h * skip
    classes, value = ref.dense_forward(h, wc, bc), ref.dense_forward(product, wv, bv)
    grad_h1, grad_classes = ref.dense_backward(h, wc, bc, gs[0])
    grad_product, grad_value = ref.dense_backward(product, wv, bv, gs[1])
    grad_h = grad_h1 + grad_product * skip
    grad_x_skip, grad_skip = ref.dense_backward(x, ws, bs, grad_product * h)
    grad_x_trunk, grad_trunk = ref.dense_backward(x, wt, bt, ref.tanh_backward(z, grad_h))
    grads = {}
    for name, layer_grads in (("trunk", grad_trunk), ("classes", grad_classes),
                              ("value", grad_value), ("skip", grad_skip)):
        grads.update({f"{name}/{k}": v for k, v in layer_grads.items()})
    return [classes, value], [grad_x_skip + grad_x_trunk], grads


REFERENCES = {"residual": (residual, lambda xs, p, gs: _residual_reference(xs[0], p, gs[0])),
              "siamese": (siamese, lambda xs, p, gs: _siamese_reference(xs, p, gs[0])),
              "two_outputs": (two_outputs,
                              lambda xs, p, gs: _two_outputs_reference(xs[0], p, gs))}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_parity_with_numpy_reference(lane, name, dtype, rng):
    make, reference = REFERENCES[name]
    model = make(device=lane.device, dtype=dtype, seed=0)
    params = _params(model, lane, dtype, rng)
    inputs = [a.astype(dtype).astype(np.float64) for a in _inputs(model, rng)]
    outputs, contexts = model.graph.forward([lane.asarray(a, dtype) for a in inputs],
                                            training=True, record=True, input_grads=True)
    grads = [rng.standard_normal(tuple(out.shape)).astype(dtype).astype(np.float64)
             for out in outputs]
    input_grads = model.graph.backward(contexts, [lane.asarray(g, dtype) for g in grads])
    expected_outputs, expected_input_grads, expected_params = reference(inputs, params, grads)
    for k, (out, expected) in enumerate(zip(outputs, expected_outputs, strict=True)):
        lane.assert_close(out, expected, dtype, what=f"{name} output {k}")
    for k, (grad, expected) in enumerate(zip(input_grads, expected_input_grads, strict=True)):
        lane.assert_close(grad, expected, dtype, what=f"{name} dL/d(input {k})")
    for param in model.parameters():
        lane.assert_close(param.grad, expected_params[param.name], dtype,
                          what=f"{name} dL/d{param.name}")


# -- a shared layer is two tied layers whose gradients are summed -----------------------------

def test_shared_layer_equals_two_tied_layers_with_summed_gradients_step_by_step(lane, rng):
    """The Siamese model trained by SGD against the same network with two separate Dense
    layers started from the same weights, whose gradients are summed by hand and applied
    to both (so they stay tied): the same parameters after every step."""
    shared_model = siamese(device=lane.device, dtype="float64", seed=0)
    shared_model.compile("mse", xpnn.SGD(0.1))
    a, c = xpnn.Input((4,)), xpnn.Input((4,))
    first, second, head = xpnn.Dense(3), xpnn.Dense(3), xpnn.Dense(1)
    diff = xpnn.Subtract()([xpnn.Tanh()(first(a)), xpnn.Tanh()(second(c))])
    tied = xpnn.Model([a, c], head(diff), device=lane.device, dtype="float64")
    w, b, v, d = shared_model.get_weights()
    tied.set_weights([w, b, w, b, v, d])
    backend = tied.backend
    for step in range(5):
        xs = [rng.standard_normal((8, 4)) for _ in range(2)]
        y = rng.standard_normal((8, 1))
        shared_model.train_on_batch(xs, y)
        # the tied model by hand: forward, loss gradient, backward, summed update
        for param in tied.parameters():
            param.grad = None
        outputs, contexts = tied.graph.forward([backend.asarray(x) for x in xs],
                                               training=True, record=True)
        _, grad = xpnn.MeanSquaredError().value_and_grad(outputs[0], backend.asarray(y))
        tied.graph.backward(contexts, [grad])
        kernel_grad = first.kernel.grad + second.kernel.grad
        bias_grad = first.bias.grad + second.bias.grad
        for layer in (first, second):
            layer.kernel.value = layer.kernel.value - 0.1 * kernel_grad
            layer.bias.value = layer.bias.value - 0.1 * bias_grad
        for param in head.parameters():
            param.value = param.value - 0.1 * param.grad
        w, b, v, d = shared_model.get_weights()
        for expected, got in zip([w, b, w, b, v, d], tied.get_weights(), strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14,
                                       err_msg=f"step {step}")


# -- training, several inputs and outputs ------------------------------------------------------

def _two_output_data(rng, n=96):
    x = rng.standard_normal((n, 4))
    labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    value = (x[:, 2] * x[:, 3])[:, None]
    return x, labels, value


def test_two_outputs_train_with_a_loss_and_metrics_each(lane, rng):
    x, labels, value = _two_output_data(rng)
    model = two_outputs(device=lane.device, seed=0)
    model.compile(["softmax_crossentropy", "mse"], xpnn.Adam(0.03),
                  metrics={"classes": ["accuracy"], "value": ["mae"]},
                  loss_weights={"classes": 1.0, "value": 0.5})
    history = model.fit(x, {"value": value, "classes": labels}, epochs=30, batch_size=16,
                        verbose=0, seed=0, validation_data=(x, [labels, value]))
    assert set(history.history) == {
        "loss", "classes_loss", "value_loss", "classes_accuracy", "value_mae", "val_loss",
        "val_classes_loss", "val_value_loss", "val_classes_accuracy", "val_value_mae",
        "learning_rate"}
    logs = history.logs[-1]
    assert logs["val_loss"] == pytest.approx(
        logs["val_classes_loss"] + 0.5 * logs["val_value_loss"], rel=1e-5)
    assert logs["classes_accuracy"] > 0.85
    assert history["value_loss"][-1] < history["value_loss"][0]
    predictions = model.predict(x)
    assert isinstance(predictions, list) and [p.shape for p in predictions] == [(96, 3),
                                                                                (96, 1)]
    evaluated = model.evaluate(x, [labels, value])
    assert evaluated["loss"] == pytest.approx(logs["val_loss"], rel=1e-5)


def test_two_inputs_take_a_list_or_a_dict(lane, rng):
    model = two_inputs(device=lane.device, seed=0)
    model.compile("mse", xpnn.SGD(0.05))
    a, b = rng.standard_normal((20, 4)), rng.standard_normal((20, 3))
    y = rng.standard_normal((20, 2))
    by_list = model.predict([a, b])
    np.testing.assert_array_equal(model.predict({"b": b, "a": a}), by_list)
    model.fit([a, b], y, epochs=2, batch_size=8, verbose=0)
    assert model.input_names == ["a", "b"] and model.input_shape == [(4,), (3,)]
    assert model.output_shape == (2,)
    with pytest.raises(xpnn.ShapeError, match=r"2 inputs \['a', 'b'\].*received one array"):
        model.predict(a)
    with pytest.raises(xpnn.ShapeError, match=r"missing \['b'\], unexpected \['c'\]"):
        model.predict({"a": a, "c": b})
    with pytest.raises(xpnn.ShapeError, match=r"different numbers of samples: 'a' 20, 'b' 19"):
        model.predict([a, b[:19]])
    with pytest.raises(xpnn.ShapeError, match=r"x 'b' of shape \(samples, 3\), received "
                                              r"\(20, 4\)"):
        model.predict([a, a])


def test_residual_network_learns_on_every_lane(lane):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 5))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0)
    model = residual(device=lane.device, seed=0)
    model.compile("softmax_crossentropy", xpnn.Adam(0.02), metrics=["accuracy"])
    history = model.fit(x, y, epochs=40, batch_size=32, verbose=0, seed=0)
    assert history["accuracy"][-1] > 0.8 and history["loss"][-1] < history["loss"][0] / 2


def test_training_matches_the_numpy_lane(lane, rng):
    """20 steps of the Siamese graph on each lane agree with the float64 NumPy run."""
    xs = [rng.standard_normal((40, 4)) for _ in range(2)]
    y = rng.standard_normal((40, 1))
    runs = []
    for device in ("cpu", lane.device):
        model = siamese(device=device, dtype="float64", seed=3)
        model.compile("mse", xpnn.Momentum(0.05))
        model.fit(xs, y, epochs=4, batch_size=8, verbose=0, seed=1)
        runs.append(model.get_weights())
    for left, right in zip(*runs, strict=True):
        np.testing.assert_allclose(right, left, rtol=1e-9, atol=1e-10)


# -- structure, names, description -------------------------------------------------------------

def test_summary_has_connected_to_and_counts_a_shared_layer_once():
    model = siamese()
    text = model.summary(print_fn=None)
    assert "Connected to" in text
    shared_rows = [line for line in text.splitlines() if line.startswith("shared (Dense)")]
    assert len(shared_rows) == 1 and "a, c" in shared_rows[0]
    assert "a (Input)" in text and "c (Input)" in text
    assert model.count_params() == (4 * 3 + 3) + (3 + 1)
    assert f"Total params: {model.count_params()}" in text
    assert [layer.name for layer in model.layers].count("shared") == 1
    assert model.get_layer("shared") is model.layers[0]
    with pytest.raises(KeyError, match="no layer 'nope'"):
        model.get_layer("nope")


def test_layer_outputs_name_every_call_of_a_shared_layer(rng):
    model = siamese(dtype="float64")
    a, c = _inputs(model, rng)
    outputs = model.layer_outputs([a, c])
    kernel, bias = model.get_weights()[:2]
    np.testing.assert_allclose(outputs["shared"], a @ kernel + bias, rtol=1e-12)
    np.testing.assert_allclose(outputs["shared_1"], c @ kernel + bias, rtol=1e-12)


def test_config_round_trip_and_clone_keep_the_graph(rng):
    model = two_outputs(dtype="float64", seed=0)
    config = model.get_config()
    twin = xpnn.Model.from_config(config)
    assert twin.get_config() == config
    clone = model.clone()
    x = _inputs(model, rng)[0]
    for left, right in zip(clone.predict(x), model.predict(x), strict=True):
        np.testing.assert_array_equal(left, right)
    assert all(a is not b for a, b in zip(clone.parameters(), model.parameters(), strict=True))


def test_recurrent_layers_give_their_final_states_as_graph_outputs(lane, rng):
    x = xpnn.Input((5, 3))
    outputs, h, c = xpnn.LSTM(4, return_sequences=True, return_state=True)(x)
    summary = xpnn.Dense(2)(xpnn.Concatenate()([h, c]))
    model = xpnn.Model(x, [outputs, summary], device=lane.device, dtype="float64", seed=0)
    assert model.output_shape == [(5, 4), (2,)]
    assert xpnn.gradcheck(model, rng.standard_normal((3, 5, 3)), tolerance=GRADCHECK).passed
    # and an initial state given as inputs
    h0, c0 = xpnn.Input((4,)), xpnn.Input((4,))
    y = xpnn.GRU(4)(x, initial_state=h0)
    z = xpnn.LSTM(4)(x, initial_state=[h0, c0])
    model = xpnn.Model([x, h0, c0], xpnn.Add()([y, z]), device=lane.device, dtype="float64",
                       seed=0)
    inputs = [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4)),
              rng.standard_normal((2, 4))]
    assert xpnn.gradcheck(model, inputs, tolerance=GRADCHECK).passed


# -- saving, loading in a new process, resuming --------------------------------------------------

_PREDICT_SCRIPT = textwrap.dedent("""
    import numpy as np
    import xpnn
    model = xpnn.load({path!r})
    inputs = np.load({inputs!r})
    outputs = model.predict([inputs["a"], inputs["c"]])
    np.save({out!r}, outputs)
    assert type(model).__name__ == "Model" and model.optimizer is not None
""")


@pytest.mark.slow
def test_save_and_load_in_a_new_process_predicts_identically(tmp_path, rng):
    model = siamese(seed=0)
    model.compile("mse", xpnn.Adam(0.01))
    a, c = _inputs(model, rng, batch=32)
    model.fit([a, c], rng.standard_normal((32, 1)), epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "siamese.xpnn")
    np.savez(tmp_path / "inputs.npz", a=a, c=c)
    script = _PREDICT_SCRIPT.format(path=str(tmp_path / "siamese.xpnn"),
                                    inputs=str(tmp_path / "inputs.npz"),
                                    out=str(tmp_path / "out.npy"))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), model.predict([a, c]))
    loaded = xpnn.load(tmp_path / "siamese.xpnn")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for left, right in zip(loaded.optimizer.state.values(), model.optimizer.state.values(),
                           strict=True):
        np.testing.assert_array_equal(left["m"], right["m"])


def _dropout_graph(**options):
    x = xpnn.Input((6,))
    h = xpnn.Dropout(0.3)(xpnn.ReLU()(xpnn.Dense(8)(x)))
    return xpnn.Model(x, xpnn.Dense(3)(xpnn.Add()([h, xpnn.Dense(8)(x)])), seed=0, **options)


def test_resume_from_a_mid_epoch_checkpoint_is_bit_identical(tmp_path, rng):
    x = rng.standard_normal((100, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)

    def make():
        model = _dropout_graph()
        model.compile("softmax_crossentropy", xpnn.Adam(0.01), metrics=["accuracy"])
        return model

    straight = make()
    expected = straight.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=5)

    class Interrupt(xpnn.Callback):
        def on_batch_end(self, batch, logs):
            if self.model.fit_position.epoch == 1 and batch == 4:
                self.model.stop_training = True

    make().fit(x, y, epochs=3, batch_size=16, verbose=0, seed=5, callbacks=[
        xpnn.ModelCheckpoint(tmp_path / "c.xpnn", every_batches=3), Interrupt()])
    resumed = make()  # a new model: other automatic layer names, the same architecture
    history = resumed.fit(x, y, epochs=3, batch_size=16, verbose=0,
                          resume_from=tmp_path / "c.xpnn")
    for left, right in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)
    assert history.logs == expected.logs


# -- graphs that cannot be built: clear errors ---------------------------------------------------

def test_merge_shape_mismatch_names_the_layer_and_each_shape():
    a, b = xpnn.Input((4,)), xpnn.Input((3,))
    with pytest.raises(xpnn.ShapeError, match=r"layer 'join' \(Add\) needs inputs of one shape "
                                              r".*input 0: \(batch, 4\), input 1: \(batch, 3\)"):
        xpnn.Add(name="join")([a, b])
    with pytest.raises(xpnn.ShapeError, match=r"'cat' \(Concatenate\) joins along axis 1: "
                                              r"every other axis must match"):
        xpnn.Concatenate(axis=1, name="cat")([xpnn.Input((2, 4)), xpnn.Input((2, 5))])
    with pytest.raises(xpnn.ShapeError, match=r"merges a list of inputs"):
        xpnn.Add()(a)
    with pytest.raises(xpnn.ShapeError, match="exactly 2 inputs, received 3"):
        xpnn.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="axis 0 is the batch axis"):
        xpnn.Concatenate(axis=0)


def test_inputs_outputs_and_names_are_checked_when_the_model_is_built():
    a, b = xpnn.Input((4,), name="a"), xpnn.Input((4,), name="b")
    y = xpnn.Dense(2)(a)
    with pytest.raises(xpnn.GraphError, match=r"input 'b' is never used"):
        xpnn.Model([a, b], y)
    with pytest.raises(xpnn.GraphError, match=r"depend on Input 'a', which is not among its "
                                              r"inputs \['b'\]"):
        xpnn.Model(b, y)
    with pytest.raises(xpnn.GraphError, match=r"input 'dense.*' is the output of layer"):
        xpnn.Model(y, y)
    z = xpnn.Dense(2, name="twin")(a)
    w = xpnn.Dense(2, name="twin")(a)
    with pytest.raises(xpnn.GraphError, match="two different layers named 'twin'"):
        xpnn.Model(a, [z, w])
    with pytest.raises(xpnn.GraphError, match="two different inputs named 'same'"):
        first, second = xpnn.Input((2,), name="same"), xpnn.Input((2,), name="same")
        xpnn.Model([first, second], xpnn.Add()([first, second]))
    with pytest.raises(xpnn.GraphError, match="mix of symbolic tensors and arrays"):
        xpnn.Add()([a, np.zeros((1, 4))])
    with pytest.raises(xpnn.ShapeError, match=r"Input: shape must be a tuple of positive"):
        xpnn.Input((0, 3))


def test_a_shared_layer_takes_the_same_shapes_at_every_call():
    shared = xpnn.Dense(3, name="shared")
    a, b = xpnn.Input((4,)), xpnn.Input((5,))
    model = xpnn.Model(a, shared(a))
    assert model.layers == [shared]
    with pytest.raises(xpnn.ShapeError, match=r"'shared' \(Dense\) was built for inputs of "
                                              r"shape \(None, 4\) and cannot be called on "
                                              r"\(None, 5\)"):
        shared(b)


def test_a_cycle_is_refused():
    x = xpnn.Input((3,))
    joined = xpnn.Add()([x, x])
    second = xpnn.Dense(3)(joined)
    joined.node.inputs = [x, second]  # only by editing the graph: calls cannot make one
    with pytest.raises(xpnn.GraphError, match="has a cycle through layer"):
        xpnn.Model(x, second)


def test_wrong_numbers_of_arrays_and_symbolic_misuse_are_clear(rng):
    model = siamese(dtype="float64")
    model.compile("mse", "sgd")
    a, c = _inputs(model, rng)
    with pytest.raises(xpnn.ShapeError, match=r"2 inputs \['a', 'c'\]; pass a list of 2 "
                                              r"arrays.*received a list of 3"):
        model.fit([a, c, c], np.zeros((5, 1)), verbose=0)
    with pytest.raises(xpnn.GraphError, match="cannot be called on symbolic tensors"):
        model([xpnn.Input((4,)), xpnn.Input((4,))])
    with pytest.raises(xpnn.DTypeError, match="declared float32"):
        x = xpnn.Input((4,), dtype="float32")
        xpnn.Model(x, xpnn.Dense(1)(x), dtype="float64")
    with pytest.raises(xpnn.DTypeError, match="takes integer token ids"):
        xpnn.Embedding(5, 2)(xpnn.Input((3,), dtype="float32"))
    with pytest.raises(ValueError, match=r"loss is a dict keyed by output name.*missing"):
        two_outputs().compile({"classes": "mse"}, "sgd")
    with pytest.raises(ValueError, match=r"2 output\(s\).*loss has 3 entries"):
        two_outputs().compile(["mse", "mse", "mse"], "sgd")


def test_device_calls_check_the_model_inputs(lane, rng):
    model = siamese(device=lane.device, dtype="float64")
    a, c = (lane.asarray(v, "float64") for v in _inputs(model, rng))
    out = model([a, c])
    assert lane.to_host(out).shape == (5, 1)
    with pytest.raises(xpnn.ShapeError, match=r"input 'c' of shape \(batch, 4\), received"):
        model([a, lane.asarray(np.zeros((5, 3)), "float64")])
    with pytest.raises(xpnn.DTypeError, match="input 'a' of dtype float64, received float32"):
        model([lane.asarray(np.zeros((5, 4)), "float32"), c])


def test_a_graph_model_moves_between_devices_and_finds_a_learning_rate(lane, rng):
    model = siamese(seed=0)
    model.compile("mse", xpnn.SGD(0.1))
    xs = [rng.standard_normal((64, 4)) for _ in range(2)]
    y = rng.standard_normal((64, 1))
    model.fit(xs, y, epochs=1, batch_size=16, verbose=0)
    expected = model.predict(xs)
    model.to(lane.device)
    np.testing.assert_allclose(model.predict(xs), expected, rtol=1e-5, atol=1e-6)
    model.fit(xs, y, epochs=1, batch_size=16, verbose=0)  # trains there
    assert all(lane.backend.owns(p.value) for p in model.parameters())
    result = xpnn.lr_find(model, xs, y, steps=20, batch_size=16, seed=0)
    assert len(result.rates) == len(result.losses) > 5
