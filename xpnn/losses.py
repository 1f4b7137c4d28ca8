"""Losses: a scalar L(ŷ, y) averaged over the batch, and its gradient dL/dŷ.

``loss(y_pred, y_true)`` returns the value, a 0-d array on the device;
``loss.value_and_grad(y_pred, y_true)`` returns it with dL/dy_pred. Like a layer, a loss
writes ``forward(ctx, y_pred, y_true)``, which keeps on the call's context what
``backward(ctx)`` needs, so one loss object can serve several calls (several outputs of a
model). Rows are the entries of every axis but the last (the batch, or batch × time); M below
is the number of rows, K the size of the last axis. Each docstring states the formula, the
reduction and the returned gradient.
"""

from __future__ import annotations

from typing import Any

from xpnn import checks
from xpnn import functional as fn
from xpnn.config import Configurable
from xpnn.device import backend_of
from xpnn.errors import DTypeError, LabelError, ShapeError
from xpnn.functional import namespace
from xpnn.graph import Context

Array = Any

#: Clipping bound for losses that take probabilities: p is clipped to [ε, 1 − ε].
PROBABILITY_EPSILON = 1e-7


class Loss(Configurable):
    """Base class: subclasses write ``forward(ctx, y_pred, y_true)`` and ``backward(ctx)``."""

    name = "loss"
    #: Whether integer class labels (shape of y_pred without its last axis) are accepted.
    accepts_class_labels = False

    def __call__(self, y_pred: Array, y_true: Array) -> Array:
        """Check ``y_true`` against ``y_pred`` (shapes only), then return the loss value."""
        self.check_shapes(tuple(y_pred.shape), y_true)
        return self.forward(Context(), y_pred, y_true)

    def value_and_grad(self, y_pred: Array, y_true: Array) -> tuple[Array, Array]:
        """Check the shapes, then return the loss value and dL/dy_pred."""
        self.check_shapes(tuple(y_pred.shape), y_true)
        ctx = Context()
        value = self.forward(ctx, y_pred, y_true)
        return value, self.backward(ctx)

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """The loss value, a 0-d array; keeps on ``ctx`` what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, ctx: Context) -> Array:
        """dL/dy_pred for the call ``ctx``."""
        raise NotImplementedError

    # -- checks ------------------------------------------------------------------------------
    def is_class_labels(self, y_true: Array) -> bool:
        """Whether ``y_true`` holds integer class labels."""
        xp = namespace(y_true)
        return self.accepts_class_labels and xp.isdtype(y_true.dtype, "integral")

    def check_shapes(self, pred_shape: tuple[int, ...], y_true: Array) -> None:
        """Raise :class:`ShapeError` unless ``y_true`` has exactly the shape the loss needs."""
        true_shape = tuple(y_true.shape)
        if self.is_class_labels(y_true):
            if true_shape != pred_shape[:-1]:
                raise ShapeError(
                    f"{type(self).__name__}: integer class labels must have shape "
                    f"{pred_shape[:-1]} for predictions of shape {pred_shape}, "
                    f"received {true_shape}")
        elif true_shape != pred_shape:
            labels = (f" or integer labels of shape {pred_shape[:-1]}"
                      if self.accepts_class_labels else "")
            raise ShapeError(
                f"{type(self).__name__}: targets must have shape {pred_shape}{labels}, "
                f"received {true_shape} (nothing is broadcast)")

    def check_targets(self, pred_shape: tuple[int, ...], y_true: Array) -> None:
        """Check shape, dtype and value range of a whole target array (once per ``fit``).

        This reads a few reductions back from the device, so it is not run per batch.
        """
        self.check_shapes(pred_shape, y_true)
        xp = namespace(y_true)
        if self.is_class_labels(y_true):
            num_classes = pred_shape[-1]
            if y_true.size and (int(xp.min(y_true)) < 0 or int(xp.max(y_true)) >= num_classes):
                raise LabelError(
                    f"{type(self).__name__}: class labels must lie in [0, {num_classes - 1}] "
                    f"for {num_classes} outputs, received values from {int(xp.min(y_true))} "
                    f"to {int(xp.max(y_true))}")
            return
        if not xp.isdtype(y_true.dtype, ("real floating", "integral", "bool")):
            raise DTypeError(f"{type(self).__name__}: targets must be real numbers, received "
                             f"dtype {y_true.dtype}")
        if not bool(xp.all(xp.isfinite(xp.astype(y_true, xp.float64)))):
            raise LabelError(f"{type(self).__name__}: targets contain NaN or infinity")
        self.check_target_values(xp, xp.astype(y_true, xp.float64))

    def check_target_values(self, xp: Any, y_true: Array) -> None:
        """Loss-specific value checks on float64 targets (none by default)."""

    # -- metadata ----------------------------------------------------------------------------
    def accuracy_metric(self) -> Any:
        """The accuracy metric that fits this loss's predictions (``metrics=["accuracy"]``)."""
        raise ValueError(f"'accuracy' is not defined for {type(self).__name__}; "
                         "use 'mae' or 'mse' for regression")



def _num_rows(shape: tuple[int, ...]) -> int:
    rows = 1
    for n in shape[:-1]:
        rows *= n
    return max(rows, 1)


def _check_unit_interval(loss: Loss, xp: Any, y_true: Array) -> None:
    if y_true.size and (float(xp.min(y_true)) < 0.0 or float(xp.max(y_true)) > 1.0):
        raise LabelError(f"{type(loss).__name__}: targets must lie in [0, 1], received values "
                         f"from {float(xp.min(y_true))} to {float(xp.max(y_true))}")


def _check_distributions(loss: Loss, xp: Any, y_true: Array) -> None:
    _check_unit_interval(loss, xp, y_true)
    if y_true.size and float(xp.max(xp.abs(xp.sum(y_true, axis=-1) - 1.0))) > 1e-3:
        raise LabelError(f"{type(loss).__name__}: each target row must be one-hot or a "
                         "probability distribution summing to 1 (or pass integer labels)")


class MeanSquaredError(Loss):
    """L = 1/(2M·K) Σ (ŷ − y)², half the mean of the squares over all M·K entries.

    The ½ makes the gradient clean: returns dL/dŷ = (ŷ − y) / (M·K). (The ``mse`` metric
    reports the plain mean of squares, without the ½.)
    """

    name = "mean_squared_error"

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = Σ (ŷ − y)² / (2·size)."""
        ctx.diff = y_pred - y_true
        return namespace(y_pred).sum(ctx.diff * ctx.diff) / (2.0 * y_pred.size)

    def backward(self, ctx: Context) -> Array:
        """dL/dŷ = (ŷ − y) / size."""
        return ctx.diff / float(ctx.diff.size)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy from probabilities p (e.g. after a Sigmoid layer), mean over all
    entries: L = −1/(M·K) Σ [y log p̃ + (1 − y) log(1 − p̃)] with p̃ = clip(p, ε, 1 − ε).

    Returns dL/dp = (p̃ − y) / (p̃ (1 − p̃)) / (M·K) where p was not clipped, and 0 where it was.
    Prefer :class:`BinaryCrossEntropyWithLogits`, which is exact and stable.
    """

    name = "binary_crossentropy"

    def __init__(self, epsilon: float = PROBABILITY_EPSILON) -> None:
        self.epsilon = float(epsilon)

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = −mean(y log p̃ + (1 − y) log(1 − p̃))."""
        xp = namespace(y_pred)
        clipped = xp.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        ctx.saved = (y_pred, clipped, y_true)
        log_terms = y_true * xp.log(clipped) + (1.0 - y_true) * xp.log(1.0 - clipped)
        return -xp.sum(log_terms) / float(y_pred.size)

    def backward(self, ctx: Context) -> Array:
        """dL/dp = (p̃ − y) / (p̃ (1 − p̃) · size), zero where p was clipped."""
        xp = namespace(ctx.saved[0])
        y_pred, clipped, y_true = ctx.saved
        grad = (clipped - y_true) / (clipped * (1.0 - clipped) * float(y_pred.size))
        return xp.where(clipped == y_pred, grad, 0.0)

    def check_target_values(self, xp: Any, y_true: Array) -> None:
        """Targets must lie in [0, 1]."""
        _check_unit_interval(self, xp, y_true)

    def accuracy_metric(self) -> Any:
        """Binary accuracy at threshold 0.5 on probabilities."""
        from xpnn.metrics import BinaryAccuracy

        return BinaryAccuracy(threshold=0.5)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"epsilon": self.epsilon}


class BinaryCrossEntropyWithLogits(Loss):
    """Binary cross-entropy from logits z, mean over all entries, in the stable form

        L = 1/(M·K) Σ [max(z, 0) − z y + log(1 + e^{−|z|})]

    (equal to −[y log σ(z) + (1 − y) log(1 − σ(z))] but never overflowing).
    Returns the fused gradient dL/dz = (σ(z) − y) / (M·K).
    """

    name = "binary_crossentropy_with_logits"

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = mean(max(z, 0) − z y + log(1 + e^{−|z|}))."""
        xp = namespace(y_pred)
        ctx.saved = (y_pred, y_true)
        terms = xp.maximum(y_pred, 0.0) - y_pred * y_true + fn.softplus_neg_abs(xp, y_pred)
        return xp.sum(terms) / float(y_pred.size)

    def backward(self, ctx: Context) -> Array:
        """dL/dz = (σ(z) − y) / size."""
        logits, y_true = ctx.saved
        return (fn.sigmoid(namespace(logits), logits) - y_true) / float(logits.size)

    def check_target_values(self, xp: Any, y_true: Array) -> None:
        """Targets must lie in [0, 1]."""
        _check_unit_interval(self, xp, y_true)

    def accuracy_metric(self) -> Any:
        """Binary accuracy at threshold 0 on logits (σ(z) > 0.5 ⇔ z > 0)."""
        from xpnn.metrics import BinaryAccuracy

        return BinaryAccuracy(threshold=0.0)


class _ClassificationLoss(Loss):
    """Shared target handling: integer labels become one-hot rows on the device."""

    accepts_class_labels = True

    def _target_rows(self, xp: Any, y_pred: Array, y_true: Array) -> Array:
        if xp.isdtype(y_true.dtype, "integral"):
            return fn.one_hot(xp, y_true, y_pred.shape[-1], y_pred.dtype)
        return y_true

    def check_target_values(self, xp: Any, y_true: Array) -> None:
        """Float targets must be one-hot or probability rows."""
        _check_distributions(self, xp, y_true)

    def accuracy_metric(self) -> Any:
        """Categorical accuracy: the arg-max of the prediction against the label."""
        from xpnn.metrics import CategoricalAccuracy

        return CategoricalAccuracy()


class CategoricalCrossEntropy(_ClassificationLoss):
    """Cross-entropy from probabilities p (e.g. after a Softmax layer), mean over rows:

        L = −1/M Σ_rows Σ_k y_k log p̃_k,   p̃ = clip(p, ε, 1 − ε)

    with y one-hot (or integer labels) or a probability row. Returns dL/dp = −y / (M p̃), zero
    where p was clipped. Prefer :class:`SoftmaxCrossEntropy` on logits.
    """

    name = "categorical_crossentropy"

    def __init__(self, epsilon: float = PROBABILITY_EPSILON) -> None:
        self.epsilon = float(epsilon)

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = −Σ y log p̃ / M."""
        xp = namespace(y_pred)
        target = self._target_rows(xp, y_pred, y_true)
        clipped = xp.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        rows = _num_rows(tuple(y_pred.shape))
        ctx.saved = (y_pred, clipped, target, rows)
        return -xp.sum(target * xp.log(clipped)) / float(rows)

    def backward(self, ctx: Context) -> Array:
        """dL/dp = −y / (M p̃), zero where p was clipped."""
        y_pred, clipped, target, rows = ctx.saved
        xp = namespace(y_pred)
        return xp.where(clipped == y_pred, -target / (clipped * float(rows)), 0.0)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"epsilon": self.epsilon}


class SoftmaxCrossEntropy(_ClassificationLoss):
    """Softmax cross-entropy from logits z, mean over rows, by log-sum-exp:

        L = −1/M Σ_rows Σ_k y_k (z_k − logsumexp(z))

    with y one-hot, integer labels, or probability rows summing to 1. Returns the fused
    gradient dL/dz = (softmax(z) − y) / M.

    ``ignore_index`` (integer labels only): rows whose label equals it (the padding of
    sequences of different lengths, e.g. labels of shape (batch, time)) contribute nothing,
    and M counts only the other rows; their gradient is 0. With every row ignored the loss is
    0. It may lie outside [0, classes − 1] (PyTorch's convention is −100).
    """

    name = "softmax_crossentropy"

    def __init__(self, ignore_index: int | None = None) -> None:
        self.ignore_index = (None if ignore_index is None else
                             checks.integer("SoftmaxCrossEntropy", "ignore_index",
                                            ignore_index, -(2**63)))

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = −Σ y log_softmax(z) / M (M: the rows not ignored)."""
        xp = namespace(y_pred)
        log_probs = fn.log_softmax(xp, y_pred, axis=-1)
        if self.ignore_index is not None and xp.isdtype(y_true.dtype, "integral"):
            kept = y_true != self.ignore_index
            target = (fn.one_hot(xp, y_true, y_pred.shape[-1], y_pred.dtype)
                      * xp.expand_dims(xp.astype(kept, y_pred.dtype), axis=-1))
            rows = xp.clip(xp.sum(xp.astype(kept, y_pred.dtype)), min=1.0)
            ctx.saved = (log_probs, y_true, rows, self.ignore_index)
            return -xp.sum(target * log_probs) / rows
        target = self._target_rows(xp, y_pred, y_true)
        rows = float(_num_rows(tuple(y_pred.shape)))
        ctx.saved = (log_probs, y_true, rows, None)
        return -xp.sum(target * log_probs) / rows

    def backward(self, ctx: Context) -> Array:
        """dL/dz = (softmax(z) − y) / M, and 0 on ignored rows (the backend's
        ``softmax_cross_entropy_grad`` kernel)."""
        log_probs, y_true, rows, ignore_index = ctx.saved
        return backend_of(log_probs).softmax_cross_entropy_grad(log_probs, y_true, rows,
                                                                ignore_index)

    def check_targets(self, pred_shape: tuple[int, ...], y_true: Array) -> None:
        """The base checks; integer labels equal to ``ignore_index`` are exempt from the
        range check."""
        xp = namespace(y_true)
        if self.ignore_index is not None and self.is_class_labels(y_true):
            y_true = xp.where(y_true == self.ignore_index, xp.zeros_like(y_true), y_true)
        super().check_targets(pred_shape, y_true)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"ignore_index": self.ignore_index}


_BY_NAME: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (MeanSquaredError, BinaryCrossEntropy, BinaryCrossEntropyWithLogits,
                CategoricalCrossEntropy, SoftmaxCrossEntropy)
}
_BY_NAME["mse"] = MeanSquaredError


def get(spec: str | Loss) -> Loss:
    """A loss from its name (``"mse"``, ``"softmax_crossentropy"``, ...) or a :class:`Loss`."""
    if isinstance(spec, Loss):
        return spec
    try:
        return _BY_NAME[spec]()
    except KeyError:
        raise ValueError(f"unknown loss {spec!r}; expected one of {sorted(_BY_NAME)}") from None
