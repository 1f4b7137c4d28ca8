"""Every loss: float64 gradcheck on every lane, value and gradient parity with the float64
reference, the stable forms at extreme inputs, and target handling."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import config

from . import reference as ref
from .tolerances import GRADCHECK

DTYPES = ("float32", "float64")
N, C = 6, 4


def _probabilities(rng, shape=(N, C)):
    return ref.softmax(rng.standard_normal(shape))


def _cases(rng):
    """name -> (loss, prediction, target, reference value, reference gradient)."""
    labels = rng.integers(0, C, N)
    onehot = ref.one_hot(labels, C)
    soft = ref.softmax(rng.standard_normal((N, C)))  # probability rows as targets
    logits = rng.standard_normal((N, C)) * 3
    probs = _probabilities(rng)
    binary = rng.integers(0, 2, (N, 3)).astype(np.float64)
    sig = ref.sigmoid(rng.standard_normal((N, 3)))
    reg_pred, reg_true = rng.standard_normal((N, 2)), rng.standard_normal((N, 2))
    return {
        "mse": (xpnn.MeanSquaredError(), reg_pred, reg_true,
                ref.mse(reg_pred, reg_true), ref.mse_grad(reg_pred, reg_true)),
        "bce": (xpnn.BinaryCrossEntropy(), sig, binary,
                ref.bce(sig, binary), ref.bce_grad(sig, binary)),
        "bce_logits": (xpnn.BinaryCrossEntropyWithLogits(), logits[:, :3], binary,
                       ref.bce_logits(logits[:, :3], binary),
                       ref.bce_logits_grad(logits[:, :3], binary)),
        "cce_onehot": (xpnn.CategoricalCrossEntropy(), probs, onehot,
                       ref.cce(probs, onehot), ref.cce_grad(probs, onehot)),
        "cce_labels": (xpnn.CategoricalCrossEntropy(), probs, labels,
                       ref.cce(probs, onehot), ref.cce_grad(probs, onehot)),
        "softmax_ce_labels": (xpnn.SoftmaxCrossEntropy(), logits, labels,
                              ref.softmax_ce(logits, onehot),
                              ref.softmax_ce_grad(logits, onehot)),
        "softmax_ce_onehot": (xpnn.SoftmaxCrossEntropy(), logits, onehot,
                              ref.softmax_ce(logits, onehot),
                              ref.softmax_ce_grad(logits, onehot)),
        "softmax_ce_soft": (xpnn.SoftmaxCrossEntropy(), logits, soft,
                            ref.softmax_ce(logits, soft), ref.softmax_ce_grad(logits, soft)),
        # Keras's losses with from_logits=True are the logits losses
        "cce_from_logits": (xpnn.CategoricalCrossEntropy(from_logits=True), logits, onehot,
                            ref.softmax_ce(logits, onehot),
                            ref.softmax_ce_grad(logits, onehot)),
        "bce_from_logits": (xpnn.BinaryCrossEntropy(from_logits=True), logits[:, :3], binary,
                            ref.bce_logits(logits[:, :3], binary),
                            ref.bce_logits_grad(logits[:, :3], binary)),
        "sparse_cce": (xpnn.SparseCategoricalCrossEntropy(), probs, labels,
                       ref.cce(probs, onehot), ref.cce_grad(probs, onehot)),
        "sparse_cce_from_logits": (xpnn.SparseCategoricalCrossEntropy(from_logits=True),
                                   logits, labels, ref.softmax_ce(logits, onehot),
                                   ref.softmax_ce_grad(logits, onehot)),
    }


CASE_NAMES = sorted(_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_gradcheck(lane, name, rng):
    loss, pred, target, _, _ = _cases(rng)[name]
    result = xpnn.gradcheck(loss, pred, target, device=lane.device, tolerance=GRADCHECK)
    assert result.passed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_parity_with_reference(lane, name, dtype, rng):
    loss, pred, target, value, grad = _cases(rng)[name]
    target_dtype = "int64" if target.dtype.kind == "i" else dtype
    result, gradient = loss.value_and_grad(lane.asarray(pred, dtype),
                                           lane.asarray(target, target_dtype))
    assert tuple(result.shape) == ()
    lane.assert_close(result, np.asarray(value), dtype, what=f"{name} value")
    lane.assert_close(gradient, grad, dtype, what=f"{name} gradient")
    # the plain call gives the same value
    lane.assert_close(loss(lane.asarray(pred, dtype), lane.asarray(target, target_dtype)),
                      np.asarray(value), dtype, what=f"{name} value by __call__")


def test_sequence_shaped_softmax_ce_averages_over_all_rows(lane, rng):
    logits = rng.standard_normal((2, 3, C))
    labels = rng.integers(0, C, (2, 3))
    loss = xpnn.SoftmaxCrossEntropy()
    value, grad = loss.value_and_grad(lane.asarray(logits, "float64"),
                                      lane.asarray(labels, "int64"))
    onehot = ref.one_hot(labels, C)
    lane.assert_close(value, np.asarray(ref.softmax_ce(logits, onehot)), "float64")
    lane.assert_close(grad, ref.softmax_ce_grad(logits, onehot), "float64")


def test_logit_losses_are_stable_at_extreme_logits(lane):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    labels = np.array([0, 0])
    loss = xpnn.SoftmaxCrossEntropy()
    value, grad = loss.value_and_grad(lane.asarray(logits, "float32"),
                                      lane.asarray(labels, "int64"))
    assert float(value) == pytest.approx(1000.0, rel=1e-6)  # one row exact, the other 2000/2
    grad = lane.to_host(grad)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)

    bce = xpnn.BinaryCrossEntropyWithLogits()
    z = lane.asarray(np.array([[1000.0], [-1000.0], [30.0]]), "float32")
    y = lane.asarray(np.array([[0.0], [0.0], [1.0]]), "float32")
    value, grad = bce.value_and_grad(z, y)
    assert float(value) == pytest.approx(1000.0 / 3, rel=1e-5)
    assert np.all(np.isfinite(lane.to_host(grad)))


def test_probability_losses_clip_and_zero_the_clipped_gradient(lane):
    p = lane.asarray(np.array([[0.0, 1.0]]), "float64")
    y = lane.asarray(np.array([[1.0, 0.0]]), "float64")
    bce = xpnn.BinaryCrossEntropy()
    value, grad = bce.value_and_grad(p, y)
    assert np.isfinite(float(value)) and float(value) == pytest.approx(-np.log(1e-7), rel=1e-6)
    np.testing.assert_array_equal(lane.to_host(grad), [[0.0, 0.0]])
    cce = xpnn.CategoricalCrossEntropy()
    assert np.isfinite(float(cce(p, y)))


@pytest.mark.parametrize("spec, cls, from_logits", [
    ("mse", xpnn.MeanSquaredError, False),
    ("mean_squared_error", xpnn.MeanSquaredError, False),
    ("binary_crossentropy", xpnn.BinaryCrossEntropy, False),
    ("categorical_crossentropy", xpnn.CategoricalCrossEntropy, False),
    ("sparse_categorical_crossentropy", xpnn.SparseCategoricalCrossEntropy, False),
    ("softmax_crossentropy", xpnn.SoftmaxCrossEntropy, True),
    ("binary_crossentropy_with_logits", xpnn.BinaryCrossEntropyWithLogits, True)])
def test_losses_by_name(spec, cls, from_logits):
    """Keras's names mean what they mean in Keras: probabilities, not logits."""
    loss = xpnn.losses.get(spec)
    assert type(loss) is cls and loss.from_logits is from_logits


def test_from_logits_losses_round_trip_and_read_accuracy_on_logits():
    for loss in (xpnn.CategoricalCrossEntropy(from_logits=True),
                 xpnn.BinaryCrossEntropy(from_logits=True),
                 xpnn.SparseCategoricalCrossEntropy(from_logits=True),
                 xpnn.SparseCategoricalCrossEntropy(epsilon=1e-6)):
        clone = config.deserialize(config.serialize(loss), xpnn.losses.Loss, "loss")
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    assert xpnn.metrics.get("accuracy", xpnn.BinaryCrossEntropy(from_logits=True)
                            ).threshold == 0.0
    assert xpnn.BinaryCrossEntropy(**{"epsilon": 1e-7}).from_logits is False  # old files


def test_sparse_categorical_crossentropy_takes_integer_labels_only(lane):
    loss = xpnn.SparseCategoricalCrossEntropy()
    p = lane.asarray(ref.softmax(np.zeros((2, 3))), "float32")
    with pytest.raises(xpnn.ShapeError, match=r"integer class labels of shape \(2,\), "
                                              r"received \(2, 3\): for one-hot rows use "
                                              r"loss='categorical_crossentropy'"):
        loss(p, lane.asarray(np.eye(3)[:2], "float32"))
    with pytest.raises(xpnn.DTypeError, match=r"integer class labels of shape \(2,\), "
                                              r"received dtype"):
        loss(p, lane.asarray(np.array([0.0, 1.0]), "float32"))


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="softmax_crossentropy"):
        xpnn.losses.get("hinge")


def test_shape_mismatch_is_never_broadcast(lane):
    loss = xpnn.MeanSquaredError()
    with pytest.raises(xpnn.ShapeError, match=r"\(4, 1\).*received \(4,\)"):
        loss(lane.asarray(np.zeros((4, 1)), "float32"), lane.asarray(np.zeros(4), "float32"))
    with pytest.raises(xpnn.ShapeError, match="integer labels of shape"):
        xpnn.SoftmaxCrossEntropy()(lane.asarray(np.zeros((4, 3)), "float32"),
                                   lane.asarray(np.zeros((4, 2)), "float32"))


def test_check_targets_range_and_distribution(lane):
    sce = xpnn.SoftmaxCrossEntropy()
    with pytest.raises(xpnn.LabelError, match=r"\[0, 2\].*from 0 to 3"):
        sce.check_targets((3, 3), lane.asarray(np.array([0, 1, 3]), "int64"))
    with pytest.raises(xpnn.LabelError, match="summing to 1"):
        sce.check_targets((2, 2), lane.asarray(np.array([[1.0, 1.0], [0.0, 1.0]]), "float32"))
    with pytest.raises(xpnn.LabelError, match=r"\[0, 1\]"):
        xpnn.BinaryCrossEntropy().check_targets(
            (2, 1), lane.asarray(np.array([[0.0], [2.0]]), "float32"))
