"""Attention and the Transformer on every lane: float64 gradient checks of LayerNormalization,
GELU, Softmax on any axis, PositionalEmbedding and MultiHeadAttention (self, cross, causal,
padding mask, several heads, value_dim ≠ key_dim, the scores as an output) and of a pre-LN
Transformer block as a graph model; parity with the head-by-head NumPy float64 references of
tests/reference_attention.py in float32 and float64; the causal mask proven by perturbation;
fully masked rows; the attention and erf kernels against their generic versions; dropout of
the attention weights and its checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
from xpnn.backends.base import Backend

import xpnn
from xpnn.layers.base import BuildContext

from . import reference_attention as ref
from .tolerances import GRADCHECK, PARITY

DTYPES = ("float32", "float64")


def _build(layer, lane, dtype, input_shape, seed=0):
    layer.build(input_shape, BuildContext(lane.backend, dtype, np.random.default_rng(seed)))
    return layer


def _load_params(layer, lane, dtype, rng, std=0.5):
    """Random parameters representable in ``dtype`` loaded into ``layer``; float64 host
    copies by short name."""
    params = {}
    for param in layer.trainable_parameters():
        value = (std * rng.standard_normal(param.shape)).astype(dtype).astype(np.float64)
        param.value = lane.asarray(value, dtype)
        params[param.name.split("/")[-1]] = value
    return params


def _representable(x, dtype):
    return np.asarray(x).astype(dtype).astype(np.float64)


# -- the attention configurations under test --------------------------------------------------

# name -> (constructor kwargs, shapes of (query, value or None, key or None), masked)
ATTENTION = {
    "self": ({"num_heads": 2, "key_dim": 3}, ((5, 6), None, None), False),
    "self causal": ({"num_heads": 2, "key_dim": 3, "causal": True}, ((5, 6), None, None),
                    False),
    "self masked causal, 3 heads": ({"num_heads": 3, "key_dim": 2, "causal": True},
                                    ((5, 4), None, None), True),
    "cross [q, v]": ({"num_heads": 2, "key_dim": 3}, ((4, 6), (5, 3), None), False),
    "cross [q, v, k], value_dim 4": ({"num_heads": 2, "key_dim": 3, "value_dim": 4},
                                     ((4, 6), (5, 3), (5, 2)), False),
    "cross masked causal": ({"num_heads": 2, "key_dim": 2, "value_dim": 3, "causal": True},
                            ((4, 5), (6, 3), (6, 4)), True),
    "one head, no bias": ({"num_heads": 1, "key_dim": 4, "use_bias": False},
                          ((5, 6), None, None), True),
}


def _attention_inputs(shapes, masked, rng, batch=3):
    """Host inputs in the layer's layout (the mask last: every sample keeps at least one key
    step, and sample 0 masks its first step, so causal + mask leaves row 0 fully masked)."""
    query_shape, value_shape, key_shape = shapes
    arrays = [rng.standard_normal((batch, *query_shape))]
    if value_shape is not None:
        arrays.append(rng.standard_normal((batch, *value_shape)))
    if key_shape is not None:
        arrays.append(rng.standard_normal((batch, *key_shape)))
    if masked:
        steps = (value_shape or query_shape)[0]
        mask = rng.random((batch, steps)) > 0.3
        mask[:, -1] = True
        mask[0, 0] = False
        arrays.append(mask)
    return arrays if len(arrays) > 1 else arrays[0]


def _roles(inputs, masked):
    """(query, value, key, mask) host arrays from an input structure."""
    arrays = list(inputs) if isinstance(inputs, list) else [inputs]
    mask = arrays.pop() if masked else None
    query = arrays[0]
    value = arrays[1] if len(arrays) > 1 else query
    key = arrays[2] if len(arrays) > 2 else value
    return query, value, key, mask


@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_attention_gradcheck(lane, name, rng):
    kwargs, shapes, masked = ATTENTION[name]
    inputs = _attention_inputs(shapes, masked, rng)
    result = xpnn.gradcheck(xpnn.MultiHeadAttention(**kwargs), inputs, device=lane.device,
                            tolerance=GRADCHECK)
    assert result.passed and result.checked > 0


def test_attention_gradcheck_with_the_scores_as_an_output(lane, rng):
    """A loss on the scores adds its gradient to the weights': checked with random weights
    on both outputs."""
    layer = xpnn.MultiHeadAttention(2, 3, causal=True, return_attention_scores=True)
    inputs = _attention_inputs(((5, 4), None, None), True, rng)
    assert xpnn.gradcheck(layer, inputs, device=lane.device, tolerance=GRADCHECK).passed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_attention_parity_with_the_head_by_head_reference(lane, name, dtype, rng):
    kwargs, shapes, masked = ATTENTION[name]
    inputs = _attention_inputs(shapes, masked, rng)
    layer = xpnn.MultiHeadAttention(**kwargs, return_attention_scores=True)
    structure = inputs if isinstance(inputs, list) else [inputs]
    host = [a if a.dtype == bool else _representable(a, dtype) for a in structure]
    _build(layer, lane, dtype, [a.shape[1:] for a in host] if isinstance(inputs, list)
           else host[0].shape[1:])
    params = _load_params(layer, lane, dtype, rng)
    device_inputs = [lane.asarray(a) if a.dtype == bool else lane.asarray(a, dtype)
                     for a in host]
    (y, scores), ctx = layer.apply(device_inputs if isinstance(inputs, list)
                                   else device_inputs[0], training=True)
    query, value, key, mask = _roles(host if isinstance(inputs, list) else host[0], masked)
    heads, key_dim, value_dim = layer.num_heads, layer.key_dim, layer.value_dim
    options = {"causal": layer.causal, "mask": mask}
    expected_y, expected_scores = ref.mha_forward(query, value, key, params, heads, key_dim,
                                                  value_dim, **options)
    lane.assert_close(y, expected_y, dtype, what=f"{name} y")
    lane.assert_close(scores, expected_scores, dtype, what=f"{name} scores")

    g = _representable(rng.standard_normal(expected_y.shape), dtype)
    g_scores = _representable(rng.standard_normal(expected_scores.shape), dtype)
    grads = layer.backward(ctx, (lane.asarray(g, dtype), lane.asarray(g_scores, dtype)))
    d_query, d_value, d_key, expected_params = ref.mha_backward(
        query, value, key, params, g, heads, key_dim, value_dim, grad_weights=g_scores,
        **options)
    grads = list(grads) if isinstance(grads, list) else [grads]
    sequences = len(host) - masked
    if sequences == 1:  # self-attention: x plays all three roles
        expected_inputs = [d_query + d_value + d_key]
    elif sequences == 2:  # [query, value]: the value is also the key
        expected_inputs = [d_query, d_value + d_key]
    else:
        expected_inputs = [d_query, d_value, d_key]
    for index, expected in enumerate(expected_inputs):
        lane.assert_close(grads[index], expected, dtype, what=f"{name} dL/dinput {index}")
    if masked:
        assert grads[-1] is None
    for param in layer.trainable_parameters():
        short = param.name.split("/")[-1]
        lane.assert_close(param.grad, expected_params[short], dtype, what=f"{name} d{short}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_causal_attention_ignores_later_steps(lane, dtype, rng):
    """Perturbing steps > t changes no output at steps ≤ t, and a loss on the outputs ≤ t
    sends no gradient to the inputs after t; without the causal mask both do change."""
    steps, t = 7, 3
    x = _representable(rng.standard_normal((2, steps, 6)), dtype)
    changed = x.copy()
    changed[:, t + 1:] = _representable(rng.standard_normal((2, steps - t - 1, 6)) * 3, dtype)
    for causal in (True, False):
        layer = _build(xpnn.MultiHeadAttention(3, 2, causal=causal), lane, dtype, (steps, 6))
        before = lane.to_host(layer(lane.asarray(x, dtype)))
        after = lane.to_host(layer(lane.asarray(changed, dtype)))
        g = np.zeros((2, steps, 6))
        g[:, :t + 1] = rng.standard_normal((2, t + 1, 6))
        _, ctx = layer.apply(lane.asarray(x, dtype), training=True)
        grad_x = lane.to_host(layer.backward(ctx, lane.asarray(g, dtype)))
        if causal:
            np.testing.assert_allclose(after[:, :t + 1], before[:, :t + 1], rtol=0,
                                       atol=PARITY[dtype]["atol"])
            assert np.all(grad_x[:, t + 1:] == 0.0)
            assert np.abs(after[:, t + 1:] - before[:, t + 1:]).max() > 0.1
        else:
            assert np.abs(after[:, :t + 1] - before[:, :t + 1]).max() > 0.01
            assert np.abs(grad_x[:, t + 1:]).max() > 1e-3


def test_fully_masked_rows_give_zeros_not_nan(lane):
    """Causal attention whose first key step is padding: query 0 sees nothing. Its weights
    and its attention output are 0 (y is the output bias), and every gradient is finite."""
    layer = _build(xpnn.MultiHeadAttention(2, 2, causal=True, return_attention_scores=True),
                   lane, "float32", [(4, 3), (4,)])
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    mask = np.array([[False, True, True, True], [True, True, False, True]])
    (y, scores), ctx = layer.apply([lane.asarray(x, "float32"), lane.asarray(mask)],
                                   training=True)
    scores = lane.to_host(scores)
    assert np.all(np.isfinite(scores)) and np.all(scores[0, :, 0, :] == 0.0)
    np.testing.assert_allclose(scores.sum(axis=-1)[1], 1.0, rtol=1e-6)
    assert np.all(scores[1, :, :, 2] == 0.0)  # a padding key is never attended to
    np.testing.assert_allclose(lane.to_host(y)[0, 0], lane.to_host(layer.output_bias.value))
    grads = layer.backward(ctx, (lane.asarray(np.ones((2, 4, 3)), "float32"), None))
    assert np.all(np.isfinite(lane.to_host(grads[0]))) and grads[1] is None


def test_huge_scores_do_not_overflow(lane):
    """Scores of ±10⁴: the row maximum is subtracted before exp (float32)."""
    layer = _build(xpnn.MultiHeadAttention(1, 2, use_bias=False, causal=True,
                                           return_attention_scores=True),
                   lane, "float32", (3, 2))
    for param in layer.parameters():
        param.value = lane.asarray(np.eye(*param.shape) * 100.0, "float32")
    x = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]])
    y, scores = layer(lane.asarray(x, "float32"))
    assert np.all(np.isfinite(lane.to_host(y)))
    np.testing.assert_allclose(lane.to_host(scores)[0, 0], np.eye(3),
                               atol=1e-6)


# -- LayerNormalization, GELU, Softmax(axis), PositionalEmbedding ------------------------------

# name -> (factory, input shape, reference forward(x, params), backward(x, params, g))
LAYERS = {
    "layer_norm": (xpnn.LayerNormalization, (4, 6),
                   lambda x, p: ref.layer_norm_forward(x, p["gamma"], p["beta"], (2,)),
                   lambda x, p, g: ref.layer_norm_backward(x, p["gamma"], g, (2,))),
    "layer_norm axes (1, 2), epsilon 1e-3": (
        lambda: xpnn.LayerNormalization(axis=(1, 2), epsilon=1e-3), (4, 6),
        lambda x, p: ref.layer_norm_forward(x, p["gamma"], p["beta"], (1, 2), 1e-3),
        lambda x, p, g: ref.layer_norm_backward(x, p["gamma"], g, (1, 2), 1e-3)),
    "layer_norm axis 1 of 3, no center": (
        lambda: xpnn.LayerNormalization(axis=1, center=False), (4, 6),
        lambda x, p: ref.layer_norm_forward(x, p["gamma"], None, (1,)),
        lambda x, p, g: ref.layer_norm_backward(x, p["gamma"], g, (1,))),
    "layer_norm no scale": (
        lambda: xpnn.LayerNormalization(scale=False), (6,),
        lambda x, p: ref.layer_norm_forward(x, None, p["beta"], (1,)),
        lambda x, p, g: ref.layer_norm_backward(x, None, g, (1,))),
    "gelu": (xpnn.GELU, (4, 6), lambda x, p: ref.gelu_forward(x),
             lambda x, p, g: (ref.gelu_backward(x, g), {})),
    "gelu tanh": (lambda: xpnn.GELU("tanh"), (4, 6),
                  lambda x, p: ref.gelu_forward(x, "tanh"),
                  lambda x, p, g: (ref.gelu_backward(x, g, "tanh"), {})),
    "softmax axis 1": (lambda: xpnn.Softmax(axis=1), (4, 6),
                       lambda x, p: ref.softmax_axis(x, 1),
                       lambda x, p, g: (ref.softmax_axis_backward(x, g, 1), {})),
    "softmax axis -2 of 4": (lambda: xpnn.Softmax(axis=-2), (2, 4, 3),
                             lambda x, p: ref.softmax_axis(x, -2),
                             lambda x, p, g: (ref.softmax_axis_backward(x, g, -2), {})),
    "positional learned": (
        lambda: xpnn.PositionalEmbedding(7, 6), (4, 6),
        lambda x, p: x + p["embeddings"][:4],
        lambda x, p, g: (g, {"embeddings": np.concatenate([g.sum(axis=0),
                                                           np.zeros((3, 6))])})),
    "positional sinusoidal": (
        lambda: xpnn.PositionalEmbedding(9, 5, "sinusoidal"), (9, 5),
        lambda x, p: x + ref.sinusoids(9, 5), lambda x, p, g: (g, {})),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradcheck(lane, name, rng):
    factory, shape = LAYERS[name][:2]
    x = rng.standard_normal((3, *shape)) * 2.0
    result = xpnn.gradcheck(factory(), x, device=lane.device, tolerance=GRADCHECK)
    assert result.passed and result.checked > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_parity_with_reference(lane, name, dtype, rng):
    factory, shape, forward_ref, backward_ref = LAYERS[name]
    x = _representable(rng.standard_normal((3, *shape)) * 2.0, dtype)
    layer = _build(factory(), lane, dtype, shape)
    params = _load_params(layer, lane, dtype, rng, std=1.0)
    y, ctx = layer.apply(lane.asarray(x, dtype), training=True)
    lane.assert_close(y, forward_ref(x, params), dtype, what=f"{name} forward")
    g = _representable(rng.standard_normal(x.shape), dtype)
    grad_x = layer.backward(ctx, lane.asarray(g, dtype))
    expected_x, expected_params = backward_ref(x, params, g)
    lane.assert_close(grad_x, expected_x, dtype, what=f"{name} dL/dx")
    for param in layer.trainable_parameters():
        short = param.name.split("/")[-1]
        lane.assert_close(param.grad, expected_params[short], dtype, what=f"{name} d{short}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_kernel_matches_math_erf_on_every_lane(lane, dtype):
    """The lane's ``erf`` (a specialisation where there is one) and the generic version
    against Python's math.erf, including both polynomials' ends, large values and ±∞."""
    x = np.concatenate([np.linspace(-7.0, 7.0, 2801), [0.0, 2.0, -2.0, 4.0, 6.0, 1e30,
                                                        -1e30, np.inf, -np.inf]])
    x = x.astype(dtype)
    expected = np.vectorize(math.erf)(x.astype(np.float64))
    atol = {"float32": 3e-7, "float64": 3e-15}[dtype]
    generic = Backend.erf(lane.backend, lane.asarray(x, dtype))
    lane.assert_close(generic, expected, dtype, {dtype: {"rtol": 0, "atol": atol}},
                      what="generic erf")
    lane.assert_close(lane.backend.erf(lane.asarray(x, dtype)), lane.to_host(generic), dtype,
                      what="the lane's erf against the generic one")
    assert np.isnan(lane.to_host(lane.backend.erf(lane.asarray(np.array([np.nan]), dtype))))


def test_attention_kernels_match_the_generic_versions(lane, rng):
    """The lane's attention kernels (NumPy's in-place ones) against the generic Array API
    versions: masks with fully masked rows, dropout masks and a gradient for the weights."""
    backend = lane.backend
    shapes = {"q": (2, 3, 5, 4), "k": (2, 3, 6, 4), "v": (2, 3, 6, 2)}
    arrays = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    mask = rng.random((2, 1, 5, 6)) > 0.4
    mask[0, 0, 1, :] = False
    keep = (rng.random((2, 3, 5, 6)) > 0.3) / 0.7
    for dtype in DTYPES:
        q, k, v = (lane.asarray(arrays[name], dtype) for name in "qkv")
        for masked, dropped in ((None, None), (mask, keep)):
            m = None if masked is None else lane.asarray(masked)
            d = None if dropped is None else lane.asarray(dropped, dtype)
            out, weights = backend.attention(q, k, v, 0.5, m, d)
            out_g, weights_g = Backend.attention(backend, q, k, v, 0.5, m, d)
            lane.assert_close(out, lane.to_host(out_g), dtype, what="attention output")
            lane.assert_close(weights, lane.to_host(weights_g), dtype, what="weights")
            g = lane.asarray(rng.standard_normal(tuple(out.shape)), dtype)
            gw = lane.asarray(rng.standard_normal(tuple(weights.shape)), dtype)
            for got, want in zip(backend.attention_backward(g, q, k, v, weights, 0.5, d, gw),
                                 Backend.attention_backward(backend, g, q, k, v, weights_g,
                                                            0.5, d, gw), strict=True):
                lane.assert_close(got, lane.to_host(want), dtype, what="attention backward")


def test_attention_backward_with_dropout_by_central_differences(rng):
    """With a fixed dropout mask D the attention is a function of Q, K, V: the generic
    ``attention_backward`` equals central differences of ``attention`` (float64)."""
    backend = xpnn.get_backend("cpu")
    q, k, v = (rng.standard_normal(shape) for shape in ((1, 2, 3, 2), (1, 2, 4, 2),
                                                        (1, 2, 4, 3)))
    mask = np.tril(np.ones((3, 4), dtype=bool))
    keep = (rng.random((1, 2, 3, 4)) > 0.5) * 2.0
    weights_out = rng.standard_normal((1, 2, 3, 3))

    def loss(q, k, v):
        out, _ = Backend.attention(backend, q, k, v, 0.7, mask, keep)
        return float(np.sum(out * weights_out))

    _, attention_weights = Backend.attention(backend, q, k, v, 0.7, mask, keep)
    analytic = Backend.attention_backward(backend, weights_out, q, k, v, attention_weights,
                                          0.7, keep)
    for index, array in enumerate((q, k, v)):
        numeric = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            args = [q.copy(), k.copy(), v.copy()]
            args[index][position] += 1e-6
            upper = loss(*args)
            args[index][position] -= 2e-6
            numeric[position] = (upper - loss(*args)) / 2e-6
        np.testing.assert_allclose(analytic[index], numeric, atol=1e-7)


# -- the Transformer block as a graph model ----------------------------------------------------

def transformer_block(x, d_model, heads, mask=None, causal=True, dropout=0.0):
    """Pre-LN: x + MHA(LN(x)), then h + FFN(LN(h)) with a GELU between two Dense."""
    attended = xpnn.MultiHeadAttention(heads, d_model // heads, causal=causal,
                                       dropout=dropout)(
        xpnn.LayerNormalization()(x), padding_mask=mask)
    h = xpnn.Add()([x, attended])
    hidden = xpnn.GELU()(xpnn.Dense(2 * d_model)(xpnn.LayerNormalization()(h)))
    return xpnn.Add()([h, xpnn.Dense(d_model)(hidden)])


def small_gpt(steps=5, vocab=7, d_model=4, heads=2, blocks=2, dropout=0.0, **options):
    """Token ids (0 = padding) → Embedding + learned positions → blocks → LN → Dense."""
    ids = xpnn.Input((steps,), name="ids")
    embed = xpnn.Embedding(vocab, d_model, mask_zero=True)
    x = xpnn.PositionalEmbedding(steps, d_model)(embed(ids))
    mask = embed.compute_mask(ids)
    for _ in range(blocks):
        x = transformer_block(x, d_model, heads, mask, dropout=dropout)
    logits = xpnn.Dense(vocab)(xpnn.LayerNormalization()(x))
    return xpnn.Model(ids, logits, **options)


def test_gradcheck_of_a_pre_ln_transformer_block_graph(lane, rng):
    """One block on float inputs, with a boolean padding-mask input: every input gradient
    (the mask has none) and every parameter."""
    x = xpnn.Input((5, 4), name="x")
    mask = xpnn.Input((5,), dtype="bool", name="valid")
    model = xpnn.Model([x, mask], transformer_block(x, 4, 2, mask), device=lane.device,
                       dtype="float64", seed=0)
    host_mask = np.array([[True, True, True, False, False], [False, True, True, True, True],
                          [True] * 5])
    result = xpnn.gradcheck(model, [rng.standard_normal((3, 5, 4)), host_mask],
                            tolerance=GRADCHECK)
    parameters = sum(p.size for p in model.trainable_parameters())
    assert result.passed and result.checked == 3 * 5 * 4 + parameters


def test_gradcheck_of_a_small_gpt_with_embedding_masks(lane):
    """Two blocks, ids with padding (mask_zero): the whole model's parameters."""
    model = small_gpt(device=lane.device, dtype="float64", seed=0)
    ids = np.array([[3, 1, 4, 0, 0], [0, 5, 2, 6, 1]])
    result = xpnn.gradcheck(model, ids, tolerance=GRADCHECK)
    assert result.passed and result.checked == sum(p.size for p in
                                                   model.trainable_parameters())


def test_a_gpt_trains_saves_and_loads(tmp_path, lane):
    """fit lowers the loss; a saved model predicts the same after loading (the graph's calls
    with their masks are replayed from the config)."""
    model = small_gpt(device=lane.device, seed=0)
    model.compile(xpnn.SoftmaxCrossEntropy(), xpnn.Adam(1e-2))
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 7, (16, 5))
    history = model.fit(ids, np.roll(ids, -1, axis=1), epochs=8, batch_size=8, verbose=0,
                        seed=0)
    assert history["loss"][-1] < history["loss"][0]
    model.save(tmp_path / "gpt.xpnn")
    loaded = xpnn.load(tmp_path / "gpt.xpnn", device=lane.device)
    np.testing.assert_allclose(loaded.predict(ids), model.predict(ids), rtol=1e-6, atol=1e-6)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in model.layers]


# -- dropout of the attention weights ---------------------------------------------------------

def test_attention_dropout_drops_weights_in_training_only(lane):
    layer = _build(xpnn.MultiHeadAttention(2, 4, dropout=0.5, seed=3,
                                           return_attention_scores=True),
                   lane, "float64", (16, 8))
    x = lane.asarray(np.random.default_rng(1).standard_normal((4, 16, 8)), "float64")
    inference, scores = (lane.to_host(a) for a in layer(x))
    assert np.allclose(lane.to_host(layer(x)[0]), inference)  # deterministic
    _, ctx = layer.apply(x, training=True)
    keep = lane.to_host(ctx.keep)
    assert set(np.unique(keep)) == {0.0, 2.0} and abs((keep == 0).mean() - 0.5) < 0.05
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0)  # the scores are before dropout


def test_attention_dropout_is_checkpointed_like_dropout(tmp_path, lane):
    """A fit interrupted mid-epoch and resumed from its checkpoint in a new model gives the
    parameters of an uninterrupted fit, bit for bit: the attention layers' generator
    positions are saved and restored (a resume that restarted them would differ)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, (24, 5))
    targets = rng.integers(0, 7, (24, 5))

    def make():
        model = small_gpt(dropout=0.3, device=lane.device, seed=0)
        model.compile(xpnn.SoftmaxCrossEntropy(), xpnn.Adam(1e-2))
        return model

    class Interrupt(xpnn.Callback):
        def on_batch_end(self, batch, logs):
            if self.model.fit_position.epoch == 1 and batch == 3:
                self.model.stop_training = True

    straight = make()
    straight.fit(ids, targets, epochs=3, batch_size=4, verbose=0, seed=5)
    path = tmp_path / "ckpt.xpnn"
    make().fit(ids, targets, epochs=3, batch_size=4, verbose=0, seed=5, callbacks=[
        xpnn.ModelCheckpoint(path, every_batches=2), Interrupt()])
    resumed = make()
    resumed.fit(ids, targets, epochs=3, batch_size=4, verbose=0, resume_from=path)
    attention = [layer for layer in resumed.layers
                 if isinstance(layer, xpnn.MultiHeadAttention)]
    assert len(attention) == 2 and all(layer.generator is not None for layer in attention)
    for left, right in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)


# -- configs, masks as graph tensors, errors ----------------------------------------------------

def test_config_round_trip_of_the_new_layers():
    for layer in (xpnn.LayerNormalization(axis=(1, 2), epsilon=1e-3, center=False),
                  xpnn.LayerNormalization(), xpnn.GELU("tanh"), xpnn.Softmax(axis=1),
                  xpnn.PositionalEmbedding(16, 8, "sinusoidal"), xpnn.PaddingMask(3),
                  xpnn.Embedding(5, 2, mask_zero=True),
                  xpnn.MultiHeadAttention(4, 8, 6, causal=True, dropout=0.1, use_bias=False,
                                          return_attention_scores=True, seed=2,
                                          weight_decay=1e-4)):
        clone = type(layer)(**layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_padding_masks_from_ids_and_as_boolean_inputs_agree(lane, rng):
    """Embedding(mask_zero=True).compute_mask(ids) is a PaddingMask node whose output is a
    boolean tensor; a model given the same mask as a boolean Input predicts the same."""
    ids = xpnn.Input((5,), name="ids")
    embed = xpnn.Embedding(7, 4, mask_zero=True)
    attention = xpnn.MultiHeadAttention(2, 2)
    mask = embed.compute_mask(ids)
    assert mask.dtype == "bool" and mask.shape == (5,)
    from_ids = xpnn.Model(ids, attention(embed(ids), padding_mask=mask), device=lane.device,
                          seed=0)
    valid = xpnn.Input((5,), dtype="bool", name="valid")
    ids_again = xpnn.Input((5,), name="ids_again")
    given = xpnn.Model([ids_again, valid], attention(embed(ids_again), padding_mask=valid),
                       device=lane.device)
    host = rng.integers(0, 7, (4, 5))
    host[:, -1] = 1
    np.testing.assert_array_equal(from_ids.predict(host), given.predict([host, host != 0]))
    # the PaddingMask layer on arrays
    layer = xpnn.PaddingMask(0)
    lane_ids = lane.asarray(host, "int64")
    np.testing.assert_array_equal(lane.to_host(layer(lane_ids)), host != 0)
    assert layer.backward(None, None) is None


def test_an_integer_mask_counts_non_zero_as_valid(lane, rng):
    layer = _build(xpnn.MultiHeadAttention(2, 2, causal=True), lane, "float64", [(4, 3), (4,)])
    x = lane.asarray(rng.standard_normal((2, 4, 3)), "float64")
    mask = np.array([[1, 0, 2, 1], [0, 1, 1, 1]])
    np.testing.assert_array_equal(lane.to_host(layer([x, lane.asarray(mask, "int64")])),
                                  lane.to_host(layer([x, lane.asarray(mask != 0)])))


def test_the_mask_errors_say_what_to_do():
    x = xpnn.Input((5, 4))
    with pytest.raises(xpnn.DTypeError, match=r"padding mask 'floats' must hold booleans.*"
                                              r"dtype='bool'"):
        xpnn.MultiHeadAttention(2, 2)(x, padding_mask=xpnn.Input((5,), name="floats"))
    with pytest.raises(xpnn.ShapeError, match=r"padding mask marks the 5 key steps"):
        xpnn.MultiHeadAttention(2, 2)(x, padding_mask=xpnn.Input((4,), dtype="bool"))
    with pytest.raises(xpnn.ShapeError, match="key and value need one length"):
        xpnn.MultiHeadAttention(2, 2)([x, xpnn.Input((3, 4)), xpnn.Input((2, 4))])
    with pytest.raises(xpnn.ShapeError, match=r"sequences of shape \(batch, time, features\)"):
        xpnn.MultiHeadAttention(2, 2)(xpnn.Input((4,)))
    with pytest.raises(ValueError, match="mask_zero=True"):
        xpnn.Embedding(5, 2).compute_mask(xpnn.Input((3,)))
    layer = xpnn.MultiHeadAttention(2, 2)
    layer.build([(5, 4), (5,)], BuildContext(xpnn.get_backend("cpu"), "float32",
                                             np.random.default_rng(0)))
    x_host = np.zeros((2, 5, 4), np.float32)
    with pytest.raises(xpnn.DTypeError, match="padding mask must hold booleans or integers"):
        layer([x_host, np.ones((2, 5), np.float32)])
    with pytest.raises(xpnn.ShapeError, match=r"built for 2 input\(s\) in the layout "
                                              r"\[x, padding_mask\]"):
        layer(x_host)


def test_a_boolean_mask_is_not_a_model_output():
    ids = xpnn.Input((5,))
    mask = xpnn.PaddingMask()(ids)
    with pytest.raises(xpnn.GraphError, match=r"output 'padding_mask\S*' holds bool values"):
        xpnn.Model(ids, mask)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: xpnn.Softmax(axis=0), "axis 0 is the batch axis"),
    (lambda: xpnn.LayerNormalization(axis=0), "axis 0 is the batch axis"),
    (lambda: xpnn.LayerNormalization(axis=()), "at least one axis"),
    (lambda: xpnn.GELU("erf"), "approximate must be one of"),
    (lambda: xpnn.PositionalEmbedding(8, 4, "rotary"), "kind must be one of"),
    (lambda: xpnn.MultiHeadAttention(0, 4), "num_heads"),
    (lambda: xpnn.MultiHeadAttention(2, 4, dropout=1.0), "dropout"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(("layer", "shape", "message"), [
    (lambda: xpnn.Softmax(axis=3), (4, 6), "normalises axis 3"),
    (lambda: xpnn.LayerNormalization(axis=(-1, 2)), (4, 6), "names one axis twice"),
    (lambda: xpnn.LayerNormalization(axis=4), (4, 6), "normalises axis 4"),
    (lambda: xpnn.PositionalEmbedding(3, 6), (4, 6), "time <= 3"),
    (lambda: xpnn.PositionalEmbedding(8, 5), (4, 6), r"\(batch, time, 5\)"),
])
def test_shapes_a_layer_cannot_take_are_refused(layer, shape, message):
    with pytest.raises(xpnn.ShapeError, match=message):
        layer()(xpnn.Input(shape))


def test_new_layers_do_not_mutate_inputs_and_accept_non_contiguous_numpy(rng):
    """Chainer's habit: a strided view in, the result equal to the contiguous copy's, the
    input intact."""
    base = rng.standard_normal((3, 5, 12))
    x = base[:, :, ::2]
    assert not x.flags.c_contiguous
    for factory in (xpnn.LayerNormalization, xpnn.GELU, lambda: xpnn.Softmax(axis=1),
                    lambda: xpnn.PositionalEmbedding(5, 6),
                    lambda: xpnn.MultiHeadAttention(2, 3, causal=True)):
        before = base.copy()
        layer = factory()
        layer.build((5, 6), BuildContext(xpnn.get_backend("cpu"), "float64",
                                         np.random.default_rng(0)))
        y, ctx = layer.apply(x, training=True)
        layer.backward(ctx, np.ones_like(y))
        np.testing.assert_allclose(y, layer(np.ascontiguousarray(x)), rtol=1e-12)
        np.testing.assert_array_equal(base, before)
