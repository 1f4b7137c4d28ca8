"""ONNX export: every layer and every example model, run by ONNX Runtime (and by onnx's pure
reference evaluator where it implements the ops), must give ``model.predict``'s outputs at
batch sizes 1 and 37; sequence models also at other lengths than they were built for."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra")
ort = pytest.importorskip("onnxruntime", reason="the exported files run in ONNX Runtime")

from onnx.reference import ReferenceEvaluator  # noqa: E402

import xpnn  # noqa: E402
import xpnn.onnx as xo  # noqa: E402
from xpnn.layers import BuildContext  # noqa: E402

from .paths import EXAMPLES, requires_repository  # noqa: E402
from .tolerances import ONNX  # noqa: E402

BATCHES = (1, 37)


# -- helpers ------------------------------------------------------------------------------------
def randomize(model: xpnn.Sequential, seed: int = 0, std: float = 0.5) -> None:
    """Random values for every parameter (biases and running statistics too), so that a
    mistake in any layout shows; running variances stay positive."""
    rng = np.random.default_rng(seed)
    weights = []
    for param in model.parameters():
        if param.name.endswith("running_var"):
            weights.append(rng.uniform(0.5, 2.0, param.shape))
        else:
            weights.append(rng.normal(0.0, std, param.shape))
    model.set_weights(weights)


def perturb(model: xpnn.Sequential, seed: int = 0, std: float = 0.1) -> None:
    """Add N(0, std²) noise to every parameter (running variances: scale them by U(0.5, 2)):
    the initial weights keep their scale, so the outputs stay of the order of 1 as in a
    trained model, while biases and statistics stop being 0 and 1."""
    rng = np.random.default_rng(seed)
    weights = []
    for param, value in zip(model.parameters(), model.get_weights(), strict=True):
        if param.name.endswith("running_var"):
            weights.append(value * rng.uniform(0.5, 2.0, param.shape))
        else:
            weights.append(value + rng.normal(0.0, std, param.shape))
    model.set_weights(weights)


def built(layers: list, input_shape: tuple[int, ...], dtype: str = "float32",
          device: str = "cpu", seed: int = 0) -> xpnn.Sequential:
    model = xpnn.Sequential(layers, dtype=dtype, device=device, seed=seed)
    model.build(input_shape)
    randomize(model, seed)
    return model


def sample(model: xpnn.Sequential, batch: int, rng: np.random.Generator,
           length: int | None = None) -> np.ndarray:
    """Inputs for ``model`` (token ids for an Embedding model), with the time axis set to
    ``length`` when given."""
    shape = list(model.input_shape)
    if length is not None:
        shape[0] = length
    first = model.layers[0]
    if first.integer_input:
        return rng.integers(0, first.vocab_size, (batch, *shape), dtype=np.int64)
    return rng.normal(0.0, 1.0, (batch, *shape)).astype(model.dtype)


def session(proto) -> ort.InferenceSession:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def run_ort(proto, x: np.ndarray) -> np.ndarray:
    runner = session(proto)
    return runner.run(None, {runner.get_inputs()[0].name: x})[0]


def reference(proto) -> ReferenceEvaluator | None:
    """onnx's reference evaluator, or None where it lacks an op's variant (its RNN knows
    only the Tanh and Affine activations)."""
    try:
        return ReferenceEvaluator(proto)
    except RuntimeError as error:
        assert "activation" in str(error)
        return None


def check_against_predict(model: xpnn.Sequential, proto=None, *, dtype: str | None = None,
                          seed: int = 1) -> dict[int, float]:
    """check_model(full_check=True), then ONNX Runtime and the reference evaluator equal
    ``predict`` at each batch size; returns the worst absolute ORT difference per batch."""
    proto = proto if proto is not None else xo.to_onnx(model, dtype=dtype)
    onnx.checker.check_model(proto, full_check=True)
    graph_dtype = dtype or model.dtype
    tolerance = ONNX[graph_dtype]
    rng = np.random.default_rng(seed)
    evaluator = reference(proto)
    worst = {}
    for batch in BATCHES:
        x = sample(model, batch, rng)
        expected = model.predict(x)
        assert np.all(np.isfinite(expected))  # NaN == NaN would pass assert_allclose
        feed = x if model.layers[0].integer_input else x.astype(graph_dtype)
        actual = run_ort(proto, feed)
        assert actual.shape == expected.shape and actual.dtype == np.dtype(graph_dtype)
        np.testing.assert_allclose(actual, expected, err_msg=f"ORT, batch {batch}", **tolerance)
        worst[batch] = float(np.max(np.abs(actual - expected)))
        if evaluator is not None:
            name = proto.graph.input[0].name
            np.testing.assert_allclose(evaluator.run(None, {name: feed})[0], expected,
                                       err_msg=f"reference evaluator, batch {batch}",
                                       **tolerance)
    return worst


def dims(value_info) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


# -- every layer --------------------------------------------------------------------------------
LAYER_CASES = {
    "Dense 2-D": (lambda: [xpnn.Dense(5)], (6,)),
    "Dense 3-D": (lambda: [xpnn.Dense(5)], (4, 6)),
    "Dense no bias": (lambda: [xpnn.Dense(5, use_bias=False)], (6,)),
    "Sigmoid": (lambda: [xpnn.Sigmoid()], (6,)),
    "Tanh": (lambda: [xpnn.Tanh()], (6,)),
    "ReLU": (lambda: [xpnn.ReLU()], (6,)),
    "LeakyReLU": (lambda: [xpnn.LeakyReLU(0.2)], (6,)),
    "Softmax 2-D": (lambda: [xpnn.Softmax()], (6,)),
    "Softmax 3-D": (lambda: [xpnn.Softmax()], (3, 6)),
    "BatchNorm 2-D": (lambda: [xpnn.BatchNorm(epsilon=1e-3)], (6,)),
    "BatchNorm 3-D": (lambda: [xpnn.BatchNorm()], (4, 6)),
    "BatchNorm 4-D": (lambda: [xpnn.BatchNorm()], (2, 3, 6)),
    "BatchNorm no scale, no center": (lambda: [xpnn.BatchNorm(scale=False, center=False)],
                                      (6,)),
    "BatchNorm2D": (lambda: [xpnn.BatchNorm2D()], (3, 5, 4)),
    "Dropout": (lambda: [xpnn.Dropout(0.5)], (6,)),
    "Dropout between": (lambda: [xpnn.Dense(4), xpnn.Dropout(0.5), xpnn.Dense(3)], (6,)),
    "Conv2D valid": (lambda: [xpnn.Conv2D(4, 3)], (2, 7, 6)),
    "Conv2D same, stride 2": (lambda: [xpnn.Conv2D(4, 3, stride=2, padding="same")],
                              (2, 8, 7)),
    "Conv2D dilation, padding pair, no bias": (
        lambda: [xpnn.Conv2D(3, (3, 2), dilation=(2, 1), padding=(2, 1), use_bias=False)],
        (2, 9, 6)),
    "MaxPool2D": (lambda: [xpnn.MaxPool2D(2)], (2, 6, 6)),
    "MaxPool2D padded, strided": (lambda: [xpnn.MaxPool2D(3, stride=2, padding=1)],
                                  (2, 7, 6)),
    "AvgPool2D": (lambda: [xpnn.AvgPool2D(2)], (2, 6, 6)),
    "AvgPool2D same (padding not counted)": (
        lambda: [xpnn.AvgPool2D(3, stride=2, padding="same")], (2, 7, 6)),
    "GlobalAveragePool2D": (lambda: [xpnn.GlobalAveragePool2D()], (3, 5, 4)),
    "Flatten": (lambda: [xpnn.Flatten()], (3, 5, 4)),
    "Conv2D channels-last, same, stride 2": (
        lambda: [xpnn.Conv2D(4, 3, stride=2, padding="same", data_format="channels_last")],
        (8, 7, 2)),
    "MaxPool2D channels-last, padded": (
        lambda: [xpnn.MaxPool2D(3, stride=2, padding=1, data_format="channels_last")],
        (7, 6, 2)),
    "AvgPool2D channels-last, same": (
        lambda: [xpnn.AvgPool2D(3, stride=2, padding="same", data_format="channels_last")],
        (7, 6, 2)),
    "GlobalAveragePool2D channels-last": (
        lambda: [xpnn.GlobalAveragePool2D(data_format="channels_last")], (5, 4, 3)),
    "BatchNorm2D channels-last": (lambda: [xpnn.BatchNorm2D(data_format="channels_last")],
                                  (5, 4, 3)),
    "channels-last CNN": (lambda: [
        xpnn.Conv2D(4, 3, padding="same", data_format="channels_last"),
        xpnn.BatchNorm2D(data_format="channels_last"), xpnn.ReLU(),
        xpnn.MaxPool2D(2, data_format="channels_last"), xpnn.Flatten(), xpnn.Dense(3)],
        (8, 6, 2)),
    "Dense relu": (lambda: [xpnn.Dense(5, activation="relu")], (6,)),
    "Dense sigmoid": (lambda: [xpnn.Dense(5, activation="sigmoid")], (6,)),
    "Dense tanh 3-D": (lambda: [xpnn.Dense(5, activation="tanh")], (4, 6)),
    "Dense softmax 3-D": (lambda: [xpnn.Dense(5, activation="softmax")], (4, 6)),
    "Embedding": (lambda: [xpnn.Embedding(11, 4)], (7,)),
    "SimpleRNN tanh": (lambda: [xpnn.SimpleRNN(5)], (7, 3)),
    "SimpleRNN sigmoid, sequences": (
        lambda: [xpnn.SimpleRNN(5, "sigmoid", return_sequences=True)], (7, 3)),
    "SimpleRNN relu": (lambda: [xpnn.SimpleRNN(5, "relu")], (7, 3)),
    "SimpleRNN linear, sequences": (
        lambda: [xpnn.SimpleRNN(5, "linear", return_sequences=True)], (7, 3)),
    "LSTM": (lambda: [xpnn.LSTM(5)], (7, 3)),
    "LSTM sequences": (lambda: [xpnn.LSTM(5, return_sequences=True)], (7, 3)),
    "GRU": (lambda: [xpnn.GRU(5)], (7, 3)),
    "GRU sequences": (lambda: [xpnn.GRU(5, return_sequences=True)], (7, 3)),
    "TimeDistributed Dense": (lambda: [xpnn.TimeDistributed(xpnn.Dense(4))], (5, 3)),
    "TimeDistributed Softmax": (lambda: [xpnn.TimeDistributed(xpnn.Softmax())], (5, 3)),
    "TimeDistributed BatchNorm": (lambda: [xpnn.TimeDistributed(xpnn.BatchNorm())], (5, 3)),
    "TimeDistributed Flatten": (lambda: [xpnn.TimeDistributed(xpnn.Flatten())], (5, 2, 3)),
    "Softmax axis 1": (lambda: [xpnn.Softmax(axis=1)], (3, 6)),
    "Softmax axis -2 of 4": (lambda: [xpnn.Softmax(axis=-2)], (2, 3, 6)),
    "GELU": (lambda: [xpnn.GELU()], (4, 6)),
    "GELU tanh": (lambda: [xpnn.GELU("tanh")], (4, 6)),
    "LayerNormalization": (lambda: [xpnn.LayerNormalization()], (4, 6)),
    "LayerNormalization axes (1, 2), no center": (
        lambda: [xpnn.LayerNormalization(axis=(1, 2), center=False)], (4, 6)),
    "LayerNormalization axis 1 (transposed), no scale": (
        lambda: [xpnn.LayerNormalization(axis=1, scale=False, epsilon=1e-3)], (4, 6)),
    "PositionalEmbedding": (lambda: [xpnn.PositionalEmbedding(9, 6)], (5, 6)),
    "PositionalEmbedding sinusoidal": (
        lambda: [xpnn.PositionalEmbedding(9, 6, "sinusoidal")], (5, 6)),
    "MultiHeadAttention": (lambda: [xpnn.MultiHeadAttention(2, 3)], (5, 6)),
    "MultiHeadAttention causal, value_dim 4, no bias": (
        lambda: [xpnn.MultiHeadAttention(3, 2, 4, causal=True, use_bias=False)], (5, 6)),
}


@pytest.mark.parametrize("case", LAYER_CASES)
def test_every_layer_matches_predict(case):
    make, shape = LAYER_CASES[case]
    check_against_predict(built(make(), shape))


def test_every_layer_class_has_a_case():
    """Each registered xpnn layer class appears in LAYER_CASES or GRAPH_CASES."""
    covered = {type(layer) for make, _ in LAYER_CASES.values() for layer in make()}
    covered |= {type(layer.layer) for make, _ in LAYER_CASES.values() for layer in make()
                if isinstance(layer, xpnn.TimeDistributed)}
    covered |= {type(layer) for make in GRAPH_CASES.values() for layer in make().layers}
    exported = {cls for cls in xo._REGISTRY if cls.__module__.startswith("xpnn.")}
    assert exported <= covered, exported - covered
    layer_classes = {getattr(xpnn.layers, name) for name in xpnn.layers.__all__}
    concrete = {cls for cls in layer_classes if isinstance(cls, type)
                and issubclass(cls, xpnn.Layer)} - {xpnn.Layer, xpnn.layers.Pool2D,
                                                    xpnn.layers.Recurrent, xpnn.layers.Merge}
    assert concrete <= exported, f"layers without a converter: {concrete - exported}"


# -- graph models -------------------------------------------------------------------------------
def _residual():
    x = xpnn.Input((6,), name="features")
    h = xpnn.ReLU()(xpnn.Dense(6)(x))
    return xpnn.Model(x, xpnn.Dense(3, name="scores")(xpnn.Add()([x, h, h])))


def _siamese():
    """One Dense shared by two inputs: its nodes twice, its initializers once."""
    a, b = xpnn.Input((5,), name="a"), xpnn.Input((5,), name="b")
    shared = xpnn.Dense(4, name="shared")
    gap = xpnn.Subtract()([xpnn.Tanh()(shared(a)), xpnn.Tanh()(shared(b))])
    return xpnn.Model([a, b], xpnn.Dense(1, name="same")(gap))


def _two_heads():
    x = xpnn.Input((6,))
    h = xpnn.Tanh()(xpnn.Dense(5)(x))
    mixed = xpnn.Multiply()([h, xpnn.Dense(5)(x), xpnn.Sigmoid()(h)])
    mean = xpnn.Average()([h, mixed])
    return xpnn.Model(x, [xpnn.Dense(3, name="classes")(h),
                          xpnn.Dense(1, name="value")(xpnn.Concatenate()([mean, h]))])


def _recurrent_states():
    """Initial states as inputs, final states as outputs."""
    x, h0, c0 = xpnn.Input((7, 3), name="x"), xpnn.Input((4,), name="h0"), \
        xpnn.Input((4,), name="c0")
    sequence, h, c = xpnn.LSTM(4, return_sequences=True, return_state=True)(
        x, initial_state=[h0, c0])
    last = xpnn.GRU(4)(sequence, initial_state=h)
    return xpnn.Model([x, h0, c0], [xpnn.Dense(2)(xpnn.Concatenate()([last, c])), h])


def _token_graph():
    ids = xpnn.Input((6,), name="ids")
    vectors = xpnn.Embedding(11, 4)(ids)
    joined = xpnn.Concatenate(axis=1)([vectors, vectors])  # along time: a fixed length
    return xpnn.Model(ids, xpnn.Dense(2)(xpnn.Flatten()(joined)))


def _transformer(approximate="none", **options):
    """A pre-LN block on token ids with padding (id 0): the mask from the Embedding, causal
    attention, learned positions, a GELU feed-forward network."""
    ids = xpnn.Input((6,), name="ids")
    embed = xpnn.Embedding(11, 8, mask_zero=True)
    x = xpnn.PositionalEmbedding(8, 8)(embed(ids))
    attended = xpnn.MultiHeadAttention(2, 4, causal=True)(
        xpnn.LayerNormalization()(x), padding_mask=embed.compute_mask(ids))
    x = xpnn.Add()([x, attended])
    hidden = xpnn.GELU(approximate)(xpnn.Dense(16)(xpnn.LayerNormalization()(x)))
    x = xpnn.Add()([x, xpnn.Dense(8)(hidden)])
    return xpnn.Model(ids, xpnn.Dense(11, name="logits")(xpnn.LayerNormalization()(x)),
                      **options)


def _cross_attention():
    """Cross-attention [query, value, key] with a boolean mask input and the scores as a
    second output."""
    query, value = xpnn.Input((4, 6), name="query"), xpnn.Input((5, 3), name="value")
    key, valid = xpnn.Input((5, 2), name="key"), xpnn.Input((5,), dtype="bool", name="valid")
    y, scores = xpnn.MultiHeadAttention(2, 3, return_attention_scores=True)(
        [query, value, key], padding_mask=valid)
    return xpnn.Model([query, value, key, valid], [xpnn.Dense(2, name="head")(y), scores])


GRAPH_CASES = {"residual": _residual, "siamese": _siamese, "two heads": _two_heads,
               "recurrent states": _recurrent_states, "tokens": _token_graph,
               "transformer": _transformer, "cross attention": _cross_attention}


def graph_feeds(model, batch, rng):
    """Inputs for a graph model: token ids, masks (each sample keeps some steps; the first
    sample's first step is padding) or floats."""
    feeds = []
    for spec in model.input_specs:
        shape = (batch, *spec.shape)
        if spec.dtype == "bool":
            feed = rng.random(shape) > 0.3
            feed[:, -1] = True
            feed[0, 0] = False
        elif spec.integer:
            feed = rng.integers(0, 11, shape)
            feed[0, :2] = 0
        else:
            feed = rng.normal(0.0, 1.0, shape).astype(np.float32)
        feeds.append(feed)
    return feeds


@pytest.mark.parametrize("case", GRAPH_CASES)
def test_graph_models_match_predict(case):
    model = GRAPH_CASES[case]()
    randomize(model)
    proto = xo.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == model.input_names
    assert [o.name for o in proto.graph.output] == model.output_names
    runner = session(proto)
    rng = np.random.default_rng(3)
    for batch in BATCHES:
        feeds = graph_feeds(model, batch, rng)
        expected = model.predict(feeds if len(feeds) > 1 else feeds[0])
        expected = expected if isinstance(expected, list) else [expected]
        actual = runner.run(None, dict(zip(model.input_names, feeds, strict=True)))
        for name, got, want in zip(model.output_names, actual, expected, strict=True):
            np.testing.assert_allclose(got, want, err_msg=f"{case} {name}, batch {batch}",
                                       **ONNX["float32"])


def test_a_shared_layer_is_exported_twice_over_one_set_of_initializers():
    proto = xo.to_onnx(_siamese())
    matmuls = [node for node in proto.graph.node if node.op_type == "MatMul"
               and "shared/kernel" in node.input]
    assert len(matmuls) == 2
    assert [t.name for t in proto.graph.initializer].count("shared/kernel") == 1


def test_a_recurrent_graph_runs_at_other_lengths():
    model = _recurrent_states()
    randomize(model, std=0.3)
    proto = xo.to_onnx(model)
    assert dims(proto.graph.input[0])[:2] == ["batch", "time"]
    assert dims(proto.graph.input[1]) == ["batch", 4]
    runner = session(proto)
    rng = np.random.default_rng(4)
    for length in (2, 11):
        config = model.get_config()
        config["inputs"][0]["shape"] = [length, 3]
        twin = xpnn.Model.from_config(config)
        twin.set_weights(model.get_weights())
        feeds = [rng.normal(0, 1, (5, length, 3)).astype(np.float32),
                 rng.normal(0, 1, (5, 4)).astype(np.float32),
                 rng.normal(0, 1, (5, 4)).astype(np.float32)]
        for got, want in zip(runner.run(None, dict(zip(model.input_names, feeds,
                                                       strict=True))),
                             twin.predict(feeds), strict=True):
            np.testing.assert_allclose(got, want, err_msg=f"length {length}",
                                       **ONNX["float32"])


# -- the example models ----------------------------------------------------------------------
def _example(name: str) -> dict:
    """An example's functions, without running its main()."""
    return runpy.run_path(str(EXAMPLES / name), run_name="example_module")


def _example_models() -> dict:
    """Every example's architecture: built by the example's own function where it has one,
    else as its main() builds it (named in the comment)."""
    def digits_cnn():
        model = _example("digits_cnn.py")["build_cnn"](0, "cpu")
        model.build((1, 8, 8))
        return model

    def batchnorm_mlp():
        model = _example("batchnorm_vs_plain.py")["build"](True, 0.1, "cpu", 0)
        model.build((64,))
        return model

    def overfitting(variant):
        model = _example("overfitting.py")["build"](variant, "cpu", 0)
        model.build((64,))
        return model

    def logic_gates():
        model = _example("logic_gates.py")["build"](4, "cpu", 0)
        model.build((2,))
        return model

    def lr_find():
        model = _example("lr_find.py")["build"]("cpu", 0, "sgd", 0.1)
        model.build((64,))
        return model

    def init_activations(activation):
        return _example("init_activations.py")["build"](activation, "glorot_normal", "cpu", 0)

    def sequential(layers, shape):
        model = xpnn.Sequential(layers, device="cpu", seed=0)
        model.build(shape)
        return model

    return {
        "digits_cnn": digits_cnn,
        "batchnorm_vs_plain": batchnorm_mlp,
        "overfitting (dropout)": lambda: overfitting("dropout"),
        "overfitting (weight decay)": lambda: overfitting("weight decay"),
        "logic_gates": logic_gates,
        "lr_find": lr_find,
        "init_activations (sigmoid)": lambda: init_activations(xpnn.Sigmoid),
        "init_activations (tanh)": lambda: init_activations(xpnn.Tanh),
        "init_activations (relu)": lambda: init_activations(xpnn.ReLU),
        # digits_mlp.py main()
        "digits_mlp": lambda: sequential([xpnn.Dense(256), xpnn.ReLU(), xpnn.Dense(128),
                                          xpnn.ReLU(), xpnn.Dense(10)], (64,)),
        # xor.py main()
        "xor": lambda: sequential([xpnn.Dense(4), xpnn.Tanh(), xpnn.Dense(1),
                                   xpnn.Sigmoid()], (2,)),
        # linear_regression.py main()
        "linear_regression": lambda: sequential([xpnn.Dense(1)], (3,)),
        # loss_saturation.py train()
        "loss_saturation": lambda: sequential([xpnn.Dense(1), xpnn.Sigmoid()], (1,)),
        # mnist_cnn.py main()
        "mnist_cnn": lambda: sequential(
            [xpnn.Conv2D(16, 3, padding="same"), xpnn.ReLU(), xpnn.MaxPool2D(2),
             xpnn.Conv2D(32, 3, padding="same"), xpnn.ReLU(), xpnn.MaxPool2D(2),
             xpnn.Flatten(), xpnn.Dense(64), xpnn.ReLU(), xpnn.Dense(10)], (1, 28, 28)),
        # char_rnn.py main() (38 characters, sequences of 64 in the example; 16 here)
        "char_rnn": lambda: sequential([xpnn.Embedding(38, 32),
                                        xpnn.LSTM(64, return_sequences=True),
                                        xpnn.Dense(38)], (16,)),
        # vanishing_gradients.py train_on_adding() (adding problem: (steps, 2) inputs)
        "vanishing_gradients (SimpleRNN)": lambda: sequential(
            [xpnn.SimpleRNN(16), xpnn.Dense(1)], (20, 2)),
        "vanishing_gradients (LSTM)": lambda: sequential([xpnn.LSTM(16), xpnn.Dense(1)],
                                                         (20, 2)),
        "vanishing_gradients (GRU)": lambda: sequential([xpnn.GRU(16), xpnn.Dense(1)],
                                                        (20, 2)),
    }


EXAMPLE_MODELS = _example_models()


@requires_repository
@pytest.mark.parametrize("name", EXAMPLE_MODELS)
def test_every_example_model_matches_predict(name):
    pytest.importorskip("sklearn")  # the digits examples import it through xpnn.datasets
    model = EXAMPLE_MODELS[name]()
    perturb(model)
    check_against_predict(model)


@pytest.mark.parametrize("name", ["char_rnn", "vanishing_gradients (LSTM)",
                                  "vanishing_gradients (GRU)",
                                  "vanishing_gradients (SimpleRNN)"])
def test_sequence_models_run_at_other_lengths(name):
    """xpnn builds a model for one length; the export's time axis is symbolic, and at other
    lengths ONNX Runtime gives what the same weights give in a model built for that length."""
    model = EXAMPLE_MODELS[name]()
    randomize(model, std=0.3)
    proto = xo.to_onnx(model)
    assert dims(proto.graph.input[0])[:2] == ["batch", "time"]
    rng = np.random.default_rng(2)
    built_length = model.input_shape[0]
    for length in (3, built_length, built_length + 9):
        twin_config = {**model.get_config(), "input_shape": [length, *model.input_shape[1:]]}
        twin = xpnn.Sequential.from_config(twin_config, device="cpu")
        twin.set_weights(model.get_weights())
        for batch in BATCHES:
            x = sample(twin, batch, rng)
            np.testing.assert_allclose(run_ort(proto, x), twin.predict(x),
                                       err_msg=f"length {length}, batch {batch}",
                                       **ONNX["float32"])


def test_a_transformer_graph_runs_at_other_lengths():
    """The time axis stays symbolic through positions, masks and causal attention: shorter
    sequences give what the same weights give in a model built for that length."""
    model = _transformer()
    perturb(model, std=0.3)
    proto = xo.to_onnx(model)
    assert dims(proto.graph.input[0]) == ["batch", "time"]
    runner = session(proto)
    rng = np.random.default_rng(5)
    for length in (3, 6):
        config = model.get_config()
        config["inputs"][0]["shape"] = [length]
        twin = xpnn.Model.from_config(config)
        twin.set_weights(model.get_weights())
        ids = rng.integers(0, 11, (4, length))
        ids[0, :1] = 0
        np.testing.assert_allclose(runner.run(None, {"ids": ids})[0], twin.predict(ids),
                                   err_msg=f"length {length}", **ONNX["float32"])


@pytest.mark.parametrize("opset", [17, 20, 21])
def test_gelu_is_erf_or_tanh_before_opset_20_and_gelu_from_it(opset):
    for approximate in ("none", "tanh"):
        model = built([xpnn.Dense(6), xpnn.GELU(approximate)], (4,))
        proto = xo.to_onnx(model, opset=opset)
        ops = {node.op_type for node in proto.graph.node}
        if opset >= 20:
            gelu = next(node for node in proto.graph.node if node.op_type == "Gelu")
            assert onnx.helper.get_attribute_value(gelu.attribute[0]).decode() == approximate
        else:
            assert "Gelu" not in ops and ("Erf" if approximate == "none" else "Tanh") in ops
        check_against_predict(model, proto)


def test_layer_normalization_needs_opset_17():
    model = built([xpnn.LayerNormalization()], (4,))
    with pytest.raises(xo.ExportError, match=r"LayerNormalization\) needs opset 17"):
        xo.to_onnx(model, opset=16)


@pytest.mark.parametrize("opset", [17, 18])
def test_a_float64_transformer_exports_as_double(opset):
    """In double (LayerNormalization as its formula, ReduceMean's axes an attribute before
    opset 18 and an input from it), with GELU's tanh form: ONNX Runtime's CPU provider has
    no double Erf."""
    model = _transformer("tanh", dtype="float64")
    perturb(model, std=0.3)
    proto = xo.to_onnx(model, opset=opset)
    assert "LayerNormalization" not in {node.op_type for node in proto.graph.node}
    ids = np.random.default_rng(1).integers(0, 11, (7, 6))
    ids[0, 0] = 0
    np.testing.assert_allclose(session(proto).run(None, {"ids": ids})[0], model.predict(ids),
                               **ONNX["float64"])


def test_a_missing_causal_mask_would_be_caught(monkeypatch):
    """The tolerance sees the causal mask: the same model exported as if not causal fails."""
    model = _transformer()
    perturb(model, std=0.3)
    attention = next(layer for layer in model.layers
                     if isinstance(layer, xpnn.MultiHeadAttention))
    monkeypatch.setattr(attention, "causal", False)
    wrong = xo.to_onnx(model)
    monkeypatch.setattr(attention, "causal", True)
    ids = np.random.default_rng(2).integers(1, 11, (5, 6))
    assert np.abs(session(wrong).run(None, {"ids": ids})[0] - model.predict(ids)).max() > 1e-3


# -- names, shapes and the time axis ----------------------------------------------------------
def test_names_and_symbolic_dimensions():
    model = built([xpnn.Dense(4, name="hidden"), xpnn.ReLU(), xpnn.Dense(3, name="logits")],
                  (6,))
    proto = xo.to_onnx(model)
    assert [i.name for i in proto.graph.input] == ["hidden_input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert dims(proto.graph.input[0]) == ["batch", 6]
    assert dims(proto.graph.output[0]) == ["batch", 3]
    assert {t.name for t in proto.graph.initializer} == {
        "hidden/kernel", "hidden/bias", "logits/kernel", "logits/bias"}
    assert proto.producer_name == "xpnn"


@pytest.mark.parametrize(("layers", "shape", "dynamic", "input_dims", "output_dims"), [
    (lambda: [xpnn.Embedding(9, 4), xpnn.LSTM(5), xpnn.Dense(2)], (6,), None,
     ["batch", "time"], ["batch", 2]),
    (lambda: [xpnn.GRU(5, return_sequences=True), xpnn.Dense(2)], (6, 3), None,
     ["batch", "time", 3], ["batch", "time", 2]),
    (lambda: [xpnn.LSTM(5)], (6, 3), False, ["batch", 6, 3], ["batch", 5]),
    (lambda: [xpnn.Embedding(9, 4), xpnn.Flatten(), xpnn.Dense(2)], (6,), None,
     ["batch", 6], ["batch", 2]),
    (lambda: [xpnn.Dense(4), xpnn.Softmax()], (6, 3), None, ["batch", 6, 3], ["batch", 6, 4]),
    (lambda: [xpnn.Dense(4), xpnn.Softmax()], (6, 3), True,
     ["batch", "time", 3], ["batch", "time", 4]),
    (lambda: [xpnn.Dense(4), xpnn.LSTM(3)], (6, 3), None, ["batch", "time", 3], ["batch", 3]),
])
def test_the_time_axis_is_symbolic_where_the_layers_allow(layers, shape, dynamic, input_dims,
                                                         output_dims):
    model = built(layers(), shape)
    proto = xo.to_onnx(model, dynamic_time=dynamic)
    assert dims(proto.graph.input[0]) == input_dims
    assert dims(proto.graph.output[0]) == output_dims
    check_against_predict(model, proto)


def test_dynamic_time_true_names_the_layer_that_needs_a_fixed_length():
    model = built([xpnn.Embedding(9, 4), xpnn.Flatten(), xpnn.Dense(2)], (6,))
    with pytest.raises(xo.ExportError, match=r"layer 'flatten(_\d+)?' \(Flatten\)"):
        xo.to_onnx(model, dynamic_time=True)


# -- opsets, IR versions, dtypes ------------------------------------------------------------
def test_ir_versions_are_the_lowest_for_each_opset():
    for opset, ir in xo.IR_VERSIONS.items():
        assert ir == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    assert set(xo.IR_VERSIONS) == set(range(xo.MIN_OPSET, xo.MAX_OPSET + 1))
    assert xo.DEFAULT_OPSET == 17 and xo.IR_VERSIONS[17] == 8


@pytest.mark.parametrize("opset", [xo.MIN_OPSET, xo.DEFAULT_OPSET, xo.MAX_OPSET])
def test_every_accepted_opset(opset):
    models = [
        built([xpnn.Conv2D(3, 3, padding="same"), xpnn.BatchNorm2D(), xpnn.ReLU(),
               xpnn.AvgPool2D(2, padding=1), xpnn.MaxPool2D(2), xpnn.Flatten(),
               xpnn.Dense(4), xpnn.Softmax()], (2, 6, 6)),
        built([xpnn.Embedding(9, 4), xpnn.GRU(5, return_sequences=True),
               xpnn.TimeDistributed(xpnn.Dense(3)), xpnn.SimpleRNN(4, return_sequences=True),
               xpnn.BatchNorm(), xpnn.LSTM(3)], (6,)),
    ]
    for model in models:
        proto = xo.to_onnx(model, opset=opset)
        assert proto.opset_import[0].version == opset
        assert proto.ir_version == xo.IR_VERSIONS[opset]
        check_against_predict(model, proto)


def test_unsupported_opset_and_dtype_are_refused():
    model = built([xpnn.Dense(2)], (3,))
    for opset in (xo.MIN_OPSET - 1, xo.MAX_OPSET + 1, "17"):
        with pytest.raises(xo.ExportError, match="opset must be an integer from 15 to 21"):
            xo.to_onnx(model, opset=opset)
    with pytest.raises(xo.ExportError, match="dtype must be 'float32' or 'float64'"):
        xo.to_onnx(model, dtype="float16")


def test_a_float64_model_exports_as_double():
    model = built([xpnn.Dense(8), xpnn.BatchNorm(), xpnn.ReLU(), xpnn.Dense(3),
                   xpnn.Softmax()], (6,), dtype="float64")
    proto = xo.to_onnx(model)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    check_against_predict(model, proto)


def test_a_float64_cnn_and_lstm_export_as_float32_for_onnx_runtime():
    """ONNX Runtime's CPU provider has no double Conv or LSTM: dtype="float32" casts the
    weights; the double graph is still valid ONNX and runs in the reference evaluator."""
    for layers, shape in (
            ([xpnn.Conv2D(3, 3), xpnn.AvgPool2D(2), xpnn.GlobalAveragePool2D(),
              xpnn.Dense(2)], (2, 8, 8)),
            ([xpnn.LSTM(4, return_sequences=True), xpnn.GRU(3), xpnn.Dense(2)], (5, 3))):
        model = built(layers, shape, dtype="float64")
        check_against_predict(model, dtype="float32")
        double = xo.to_onnx(model)
        onnx.checker.check_model(double, full_check=True)
        x = sample(model, 5, np.random.default_rng(0))
        np.testing.assert_allclose(
            ReferenceEvaluator(double).run(None, {double.graph.input[0].name: x})[0],
            model.predict(x), **ONNX["float64"])


# -- the converters catch layout mistakes ----------------------------------------------------
def _wrong_by(model, proto, what: str) -> float:
    x = sample(model, 37, np.random.default_rng(3))
    expected = model.predict(x)
    right = run_ort(xo.to_onnx(model), x)
    np.testing.assert_allclose(right, expected, **ONNX["float32"])
    wrong = run_ort(proto, x)
    assert not np.allclose(wrong, expected, **ONNX["float32"]), f"{what} went unnoticed"
    return float(np.max(np.abs(wrong - expected)))


def test_a_wrong_lstm_gate_order_would_be_caught(monkeypatch):
    model = built([xpnn.LSTM(6, return_sequences=True)], (7, 4))
    evaluator_proto = xo.to_onnx(model)
    x = sample(model, 37, np.random.default_rng(3))
    # ONNX Runtime and onnx's own reference implementation agree on the right graph
    name = evaluator_proto.graph.input[0].name
    np.testing.assert_allclose(run_ort(evaluator_proto, x),
                               ReferenceEvaluator(evaluator_proto).run(None, {name: x})[0],
                               **ONNX["float32"])
    for order in [(0, 1, 2, 3), (0, 3, 2, 1), (0, 1, 3, 2)]:
        monkeypatch.setattr(xo, "LSTM_GATE_ORDER", order)
        wrong = xo.to_onnx(model)
        monkeypatch.undo()
        assert _wrong_by(model, wrong, f"gate order {order}") > 100 * ONNX["float32"]["atol"]


def test_a_wrong_gru_reset_flag_would_be_caught():
    model = built([xpnn.GRU(6, return_sequences=True)], (7, 4))
    proto = xo.to_onnx(model)
    [gru] = [node for node in proto.graph.node if node.op_type == "GRU"]
    [flag] = [a for a in gru.attribute if a.name == "linear_before_reset"]
    assert flag.i == 1
    flag.i = 0
    assert _wrong_by(model, proto, "linear_before_reset=0") > 100 * ONNX["float32"]["atol"]


# -- recurrent final states (what graph models will use) ----------------------------------
@pytest.mark.parametrize("make", [
    lambda: xpnn.LSTM(5, return_sequences=True, return_state=True),
    lambda: xpnn.LSTM(5, return_state=True),
    lambda: xpnn.GRU(5, return_state=True),
    lambda: xpnn.SimpleRNN(5, return_sequences=True, return_state=True),
], ids=["LSTM sequences", "LSTM", "GRU", "SimpleRNN sequences"])
def test_recurrent_converters_return_the_final_states(make):
    """A converter is a function of (layer, input names, context): run one by hand on a
    standalone layer with return_state and compare each output with the layer's."""
    layer = make()
    backend = xpnn.get_backend("cpu")
    layer.build((6, 3), BuildContext(backend, "float32", np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    for param in layer.parameters():
        param.value = rng.normal(0, 0.5, param.shape).astype(np.float32)
    ctx = xo.ExportContext(opset=17, dtype="float32")
    outputs = xo.converter_for(layer).converter(layer, ["x"], ctx)
    helper = onnx.helper
    graph = helper.make_graph(
        ctx.nodes, "states",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", "time", 3])],
        [helper.make_tensor_value_info(f"out{i}", onnx.TensorProto.FLOAT, ["batch", *shape])
         for i, shape in enumerate(layer.output_shape)],
        initializer=ctx.initializers)
    for i, name in enumerate(outputs):
        graph.node.append(helper.make_node("Identity", [name], [f"out{i}"]))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    onnx.checker.check_model(proto, full_check=True)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    expected = layer(x)
    actual = session(proto).run(None, {"x": x})
    assert len(actual) == len(expected) == len(outputs)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, **ONNX["float32"])


@pytest.mark.parametrize("make", [lambda: xpnn.Dense(4), lambda: xpnn.LSTM(4),
                                  lambda: xpnn.BatchNorm(scale=False)],
                         ids=["Dense", "LSTM", "BatchNorm"])
def test_a_layer_converted_twice_shares_its_initializers(make):
    """What a graph model's shared layer will do: the converter runs once per call, the
    nodes are emitted twice, the initializers once."""
    layer = make()
    shape = (5, 3) if isinstance(layer, xpnn.LSTM) else (3,)
    layer.build(shape, BuildContext(xpnn.get_backend("cpu"), "float32",
                                    np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    for param in layer.parameters():
        values = rng.normal(0, 0.5, param.shape)
        param.value = (np.abs(values) if param.name.endswith("running_var")
                       else values).astype(np.float32)
    ctx = xo.ExportContext()
    convert = xo.converter_for(layer).converter
    [first] = convert(layer, ["a"], ctx)
    counts = len(ctx.nodes), len(ctx.initializers)
    [second] = convert(layer, ["b"], ctx)
    assert len(ctx.nodes) == 2 * counts[0] and len(ctx.initializers) == counts[1]
    assert len({node.name for node in ctx.nodes}) == len(ctx.nodes)
    helper = onnx.helper
    first, second = ctx.rename_output(first, "y1"), ctx.rename_output(second, "y2")
    out = ["batch", *layer.output_shape]
    graph = helper.make_graph(
        ctx.nodes, "shared",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["batch", *shape])
         for n in "ab"],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, out) for n in ("y1", "y2")],
        initializer=ctx.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    onnx.checker.check_model(proto, full_check=True)
    a, b = (rng.normal(size=(4, *shape)).astype(np.float32) for _ in range(2))
    y1, y2 = session(proto).run(None, {"a": a, "b": b})
    assert np.all(np.isfinite(y1)) and np.all(np.isfinite(y2))
    np.testing.assert_allclose(y1, layer(a), **ONNX["float32"])
    np.testing.assert_allclose(y2, layer(b), **ONNX["float32"])


# -- errors -------------------------------------------------------------------------------------
class Scale(xpnn.Layer):
    """y = x ⊙ s, one learned factor per feature (a custom layer for the registry tests)."""

    def build(self, input_shape, context):
        super().build(input_shape, context)
        self.factor = self.add_parameter("factor", np.full(input_shape[-1], 2.0), False)

    def forward(self, ctx, x):
        return x * self.factor.value


class WiderDense(xpnn.Dense):
    """A Dense subclass: it does not inherit Dense's converter."""


def test_a_layer_without_converter_is_named_with_how_to_register():
    model = built([xpnn.Dense(3), Scale(name="my_scale")], (4,))
    with pytest.raises(xo.ExportError) as caught:
        xo.to_onnx(model)
    message = str(caught.value)
    assert "layer 'my_scale' (Scale) has no ONNX converter" in message
    assert "@xpnn.onnx.register(Scale)" in message
    with pytest.raises(xo.ExportError, match=r"'wider_dense(_\d+)?' \(WiderDense\)"):
        xo.to_onnx(built([WiderDense(3)], (4,)))


def test_a_registered_custom_layer_exports(monkeypatch):
    monkeypatch.setattr(xo, "_REGISTRY", dict(xo._REGISTRY))

    @xo.register(Scale, time="keep")
    def convert_scale(layer, inputs, ctx):
        """Scale → Mul."""
        return ctx.node("Mul", [inputs[0], ctx.parameter(layer, layer.factor)],
                        name=f"{layer.name}/Mul")

    model = built([xpnn.Dense(3), Scale(), xpnn.Softmax()], (4,))
    check_against_predict(model)
    sequence = built([xpnn.LSTM(3, return_sequences=True), Scale()], (5, 2))
    assert dims(xo.to_onnx(sequence).graph.output[0]) == ["batch", "time", 3]
    with pytest.raises(ValueError, match="time must be one of"):
        xo.register(Scale, convert_scale, time="sometimes")


def test_an_unbuilt_model_is_refused():
    model = xpnn.Sequential([xpnn.Dense(3)])
    with pytest.raises(xpnn.NotReadyError, match="is not built"):
        xo.to_onnx(model)
    with pytest.raises(xpnn.NotReadyError, match="has no layers"):
        xo.to_onnx(xpnn.Sequential([]))


def test_export_never_changes_the_model(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = xpnn.Sequential([xpnn.Dense(8), xpnn.BatchNorm(), xpnn.ReLU(), xpnn.Dropout(0.3),
                             xpnn.Dense(3)], seed=0)
    model.compile("softmax_crossentropy", xpnn.Adam(1e-2))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    weights = model.get_weights()
    state = model.optimizer.state_dict()
    device, dtype = model.device, model.dtype
    dropout = model.layers[3]
    generator = dropout.generator.get_state()
    outputs = model.predict(x)
    summary = model.summary(print_fn=None)
    model.export(tmp_path / "model.onnx")
    assert model.device == device and model.dtype == dtype
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights, strict=True))
    after = model.optimizer.state_dict()
    assert {k: v for k, v in after.items() if k != "state"} == {
        k: v for k, v in state.items() if k != "state"}
    assert after["state"].keys() == state["state"].keys()
    for name, entry in state["state"].items():
        assert after["state"][name].keys() == entry.keys()
        for key, value in entry.items():
            assert np.array_equal(after["state"][name][key], value), (name, key)
    assert dropout.generator.get_state() == generator
    assert model.summary(print_fn=None) == summary
    np.testing.assert_array_equal(model.predict(x), outputs)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)  # still trains


def test_export_from_every_lane(lane, tmp_path):
    """A model on any device exports from host copies and stays on its device."""
    model = built([xpnn.Conv2D(3, 3), xpnn.ReLU(), xpnn.Flatten(), xpnn.Dense(2)], (1, 5, 5),
                  device=lane.device)
    path = tmp_path / "model.onnx"
    model.export(path)
    assert str(model.device) == str(xpnn.get_backend(lane.device).device)
    assert all(lane.backend.owns(p.value) for p in model.parameters())
    x = sample(model, 37, np.random.default_rng(0))
    np.testing.assert_allclose(run_ort(onnx.load(path), x), model.predict(x), **ONNX["float32"])


# -- model.export, xpnn.onnx.export and the command line: one implementation ---------------
def test_model_export_takes_the_format_from_the_suffix(tmp_path):
    model = built([xpnn.Dense(3), xpnn.Softmax()], (4,))
    model.export(tmp_path / "a.onnx")
    model.export(tmp_path / "b.bin", format="onnx")
    xo.export(model, tmp_path / "c.onnx", opset=17)
    files = [(tmp_path / name).read_bytes() for name in ("a.onnx", "b.bin", "c.onnx")]
    assert files[0] == files[1] == files[2]
    with pytest.raises(ValueError, match="cannot tell the export format"):
        model.export(tmp_path / "d.bin")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        model.export(tmp_path / "e.tflite", format="tflite")
    assert not (tmp_path / "d.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.bin", "c.onnx"]


def test_the_export_command(tmp_path, capsys):
    main = pytest.importorskip("xpnn.__main__")
    model = built([xpnn.Embedding(9, 4), xpnn.GRU(5), xpnn.Dense(2)], (6,))
    model.save(tmp_path / "model.xpnn")
    target = tmp_path / "model.onnx"
    assert main.main(["export", str(tmp_path / "model.xpnn"), str(target)]) == 0
    assert "(ONNX opset 17, IR version 8)" in capsys.readouterr().out
    assert target.read_bytes() == xo.to_onnx(model).SerializeToString()
    assert main.main(["export", str(tmp_path / "model.xpnn"), str(target), "--opset", "21",
                      "--fixed-time"]) == 0
    proto = onnx.load(target)
    assert proto.opset_import[0].version == 21 and dims(proto.graph.input[0]) == ["batch", 6]
    assert main.main(["export", str(tmp_path / "model.xpnn"), str(tmp_path / "m.bin")]) == 1
    assert "cannot tell the export format" in capsys.readouterr().err
    assert main.main(["export", str(tmp_path / "missing.xpnn"), str(target)]) == 1
    assert main.main(["info"]) == 0


# -- the file runs where xpnn cannot be imported ---------------------------------------------
#: Run in ``python -I`` (no PYTHONPATH, no user site, no script directory on sys.path) with a
#: meta-path finder that refuses every ``xpnn`` module, even the editable install's.
BLOCK_XPNN = textwrap.dedent("""
    import sys

    class BlockXpnn:
        def find_spec(self, name, path=None, target=None):
            if name == "xpnn" or name.startswith("xpnn."):
                raise ModuleNotFoundError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockXpnn())
    try:
        import xpnn  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the xpnn blocker does not work")
""")


def run_without_xpnn(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-I", "-c", BLOCK_XPNN + textwrap.dedent(code),
                           *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_exported_file_runs_where_xpnn_is_not_importable(tmp_path):
    model = built([xpnn.Embedding(9, 4), xpnn.LSTM(5, return_sequences=True),
                   xpnn.TimeDistributed(xpnn.Dense(3)), xpnn.Softmax()], (6,))
    model.export(tmp_path / "model.onnx")
    x = sample(model, 37, np.random.default_rng(0), length=11)
    np.save(tmp_path / "x.npy", x)
    result = run_without_xpnn("""
        import sys
        import numpy as np
        import onnxruntime as ort
        model, inputs, outputs = sys.argv[1:]
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        x = np.load(inputs)
        np.save(outputs, session.run(None, {session.get_inputs()[0].name: x})[0])
        assert not any(name == "xpnn" or name.startswith("xpnn.") for name in sys.modules)
    """, "model.onnx", "x.npy", "y.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    twin = xpnn.Sequential.from_config({**model.get_config(), "input_shape": [11]})
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), twin.predict(x), **ONNX["float32"])


def test_importing_xpnn_does_not_import_onnx():
    code = "import sys, xpnn; assert xpnn.onnx.export; assert 'onnx' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


# -- the deployment example ---------------------------------------------------------------
@requires_repository
def test_deploy_onnx_example(monkeypatch, tmp_path, capsys):
    """Train the digits CNN briefly, export it, classify the test set with onnx_predict.py
    (numpy and onnxruntime only): both print the same classes and accuracy."""
    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    monkeypatch.setattr(sys, "argv", ["deploy_onnx.py", "--epochs", "2", "--out",
                                      str(tmp_path), "--repeats", "2"])
    result = runpy.run_path(str(EXAMPLES / "deploy_onnx.py"), run_name="example")["main"]()
    out = capsys.readouterr().out
    assert result["identical"] and result["accuracy"] > 0.8
    xpnn_lines = [line for line in out.splitlines() if line.startswith("xpnn ")]
    onnx_lines = [line for line in out.splitlines() if line.startswith("onnxruntime ")]
    assert len(xpnn_lines) == len(onnx_lines) == 2
    for ours, theirs in zip(xpnn_lines, onnx_lines, strict=True):
        assert ours.removeprefix("xpnn ") == theirs.removeprefix("onnxruntime ")
    # onnx_predict.py itself needs neither xpnn nor anything but numpy and onnxruntime
    script = (EXAMPLES / "onnx_predict.py").read_text()
    imported = {line.split()[1].split(".")[0] for line in script.splitlines()
                if line.startswith(("import ", "from "))}
    assert imported <= {"__future__", "argparse", "sys", "numpy", "onnxruntime"}, imported
    alone = run_without_xpnn(f"""
        import runpy, sys
        sys.argv = ["onnx_predict.py", "digits_cnn.onnx", "digits_test.npz"]
        runpy.run_path({str(EXAMPLES / "onnx_predict.py")!r}, run_name="__main__")
    """, cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert [line for line in alone.stdout.splitlines() if line.startswith("onnxruntime ")] \
        == onnx_lines
