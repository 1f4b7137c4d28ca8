"""Losses: a scalar L(ŷ, y) averaged over the batch, and its gradient dL/dŷ.

``loss(y_pred, y_true)`` returns the value, a 0-d array on the device;
``loss.value_and_grad(y_pred, y_true)`` returns it with dL/dy_pred. Like a layer, a loss
writes ``forward(ctx, y_pred, y_true)``, which keeps on the call's context what
``backward(ctx)`` needs, so one loss object can serve several calls (several outputs of a
model). Rows are the entries of every axis but the last (the batch, or batch × time); M below
is the number of rows, K the size of the last axis. Each docstring states the formula, the
reduction and the returned gradient.

**Sample weights** (``sample_weight=`` of ``fit`` / ``evaluate`` and of the calls above, or
``class_weight``): one weight w_n per sample (shape (N,)), or one per row (the shape of the
rows, e.g. (N, T) for a sequence). Each sample's terms are multiplied by its weight and the
normaliser stays what it was, Keras's ``sum_over_batch_size`` reduction::

    L_w = (1/D) Σ_rows w_row ℓ_row          dL_w/dŷ_row = w_row · dL/dŷ_row

where ℓ_row and D (M·K for the element-wise losses, M for the row-wise ones) are those of
each loss's formula below: weights of 1 give the unweighted loss, and a weight of 2 counts a
sample twice. (Keras divides by the same D; the mean is not taken over the weights.)

Keras's names work as strings (``"categorical_crossentropy"``, ``"binary_crossentropy"``,
``"sparse_categorical_crossentropy"``, ``"mse"``) and mean what they mean in Keras: the
model's outputs are *probabilities* unless the loss is built with ``from_logits=True``, which
is the same computation as xpnn's logits losses (``SoftmaxCrossEntropy``,
``BinaryCrossEntropyWithLogits``). A loss on probabilities checks the first batch of every
``fit`` / ``evaluate`` (:meth:`Loss.check_predictions`) and refuses outputs that are not
probabilities, naming the fix, rather than training a model that ends in logits.
"""

from __future__ import annotations

import math
from typing import Any

from xpnn import checks
from xpnn import functional as fn
from xpnn.config import Configurable
from xpnn.device import backend_of
from xpnn.errors import DTypeError, LabelError, PredictionError, ShapeError, warn
from xpnn.functional import namespace
from xpnn.graph import Context

Array = Any

#: Clipping bound for losses that take probabilities: p is clipped to [ε, 1 − ε].
PROBABILITY_EPSILON = 1e-7
#: How far the row sums of categorical probabilities may be from 1 (float32 softmax rows
#: are within ~1e-6 of it).
ROW_SUM_TOLERANCE = 1e-3


class Loss(Configurable):
    """Base class: subclasses write ``forward(ctx, y_pred, y_true)`` and ``backward(ctx)``."""

    name = "loss"
    #: Whether integer class labels (shape of y_pred without its last axis) are accepted.
    accepts_class_labels = False
    #: Whether the targets must be class labels (``sparse_categorical_crossentropy``): then,
    #: as in Keras, float labels holding whole numbers are cast to integers and labels of
    #: shape (..., 1) lose their last axis.
    labels_only = False
    #: What the outputs predict: ``"categorical"`` (one class of K per row),
    #: ``"binary"`` (K independent yes/no answers), or None (regression values).
    task: str | None = None
    #: Whether a classification loss reads the outputs as logits (scores z, any real
    #: number) rather than probabilities.
    from_logits = False

    def __call__(self, y_pred: Array, y_true: Array, sample_weight: Array | None = None
                 ) -> Array:
        """Check ``y_true`` against ``y_pred`` (shapes only), then return the loss value
        (weighted by ``sample_weight``: see the module docstring)."""
        return self.forward(self._context(y_pred, y_true, sample_weight), y_pred, y_true)

    def value_and_grad(self, y_pred: Array, y_true: Array, sample_weight: Array | None = None
                       ) -> tuple[Array, Array]:
        """Check the shapes, then return the loss value and dL/dy_pred (weighted by
        ``sample_weight``: see the module docstring)."""
        ctx = self._context(y_pred, y_true, sample_weight)
        value = self.forward(ctx, y_pred, y_true)
        return value, self.backward(ctx)

    def _context(self, y_pred: Array, y_true: Array, sample_weight: Array | None) -> Context:
        """A call's context after the shape checks, carrying its sample weights."""
        pred_shape = tuple(y_pred.shape)
        self.check_shapes(pred_shape, y_true)
        ctx = Context()
        if sample_weight is not None:
            shape = tuple(sample_weight.shape)
            if shape not in (pred_shape[:1], pred_shape[:-1]):
                raise ShapeError(f"{type(self).__name__}: sample weights must have shape "
                                 f"{pred_shape[:1]} (one per sample) or {pred_shape[:-1]} (one "
                                 f"per row) for predictions of shape {pred_shape}, received "
                                 f"{shape}")
            ctx.sample_weight = sample_weight
        return ctx

    @staticmethod
    def weigh(ctx: Context, values: Array) -> Array:
        """``values`` (terms or gradients of one call, the batch on axis 0) times the call's
        sample weights ``ctx.sample_weight``, broadcast over the entries of each sample or
        row; ``values`` itself when the call has none."""
        weights = getattr(ctx, "sample_weight", None)
        if weights is None:
            return values
        xp = namespace(values)
        extra = (1,) * (values.ndim - weights.ndim)
        return values * xp.reshape(weights, (*weights.shape, *extra))

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
        """Raise :class:`ShapeError` unless ``y_true`` has exactly the shape the loss needs
        (a :class:`DTypeError` for float targets shaped like class labels)."""
        true_shape = tuple(y_true.shape)
        if self.is_class_labels(y_true):
            if true_shape != pred_shape[:-1]:
                raise ShapeError(
                    f"{type(self).__name__}: integer class labels must have shape "
                    f"{pred_shape[:-1]} for predictions of shape {pred_shape}, "
                    f"received {true_shape}")
        elif self.accepts_class_labels and true_shape == pred_shape[:-1]:
            raise DTypeError(
                f"{type(self).__name__}: targets of shape {true_shape} are read as class "
                f"labels, which must be integers, but they are floats: pass y.astype(int), "
                f"or one-hot rows of shape {pred_shape}")
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

    def check_predictions(self, y_pred: Array, where: str = "the output") -> None:
        """Refuse outputs that this loss cannot take: a classification loss on
        probabilities (``from_logits`` False) needs every entry of ``y_pred`` in [0, 1] and,
        for a categorical one, every row summing to 1 (within ``ROW_SUM_TOLERANCE``).

        ``fit``, ``evaluate``, ``train_on_batch`` and ``test_on_batch`` call it on the first
        batch of each pass (two to four scalars read from the device, once). Raises
        :class:`~xpnn.errors.PredictionError` saying what the outputs look like and the two
        fixes: the loss on logits, or a Softmax / Sigmoid at the end of the model. The
        reverse mistake, probabilities given to a categorical loss on logits (a softmax
        applied twice), gets a warning. Outputs that are not finite are left to the loss
        (``fit`` reports a NaN loss).
        """
        if self.task is None or not y_pred.size:
            return
        xp = namespace(y_pred)
        low, high = float(xp.min(y_pred)), float(xp.max(y_pred))
        if not (math.isfinite(low) and math.isfinite(high)):
            return
        fits = low >= 0.0 and high <= 1.0
        found = f"values from {low:.4g} to {high:.4g}"
        if self.task == "categorical":
            sums = xp.sum(y_pred, axis=-1)
            sum_low, sum_high = float(xp.min(sums)), float(xp.max(sums))
            fits = fits and max(abs(sum_low - 1.0), abs(sum_high - 1.0)) <= ROW_SUM_TOLERANCE
            found += f" in rows summing to {sum_low:.4g} to {sum_high:.4g}"
            wanted = "each entry in [0, 1], each row summing to 1"
            layer = "xpnn.Softmax() (or Dense(..., activation='softmax'))"
        else:
            wanted = "each entry in [0, 1]"
            layer = "xpnn.Sigmoid() (or Dense(..., activation='sigmoid'))"
        if self.from_logits:
            if self.task == "categorical" and fits:
                warn(f"loss '{self.name}' ({type(self).__name__}) takes logits, but {where} "
                     "holds probabilities on the first batch (entries in [0, 1], rows "
                     "summing to 1), so the softmax is applied twice and the model learns "
                     "slowly: drop the Softmax at the end of the model (or its "
                     "activation='softmax'), or use loss='categorical_crossentropy'")
        elif not fits:
            raise PredictionError(
                f"loss '{self.name}' ({type(self).__name__}) takes probabilities ({wanted}), "
                f"but {where} holds {found} on the first batch: these look like logits (a "
                f"model ending in a linear layer). Keep the model and use "
                f"{self.logits_fix()}, or end the model with {layer}")

    def logits_fix(self) -> str:
        """The loss on logits that computes what this probability loss means (for
        :meth:`check_predictions`'s message)."""
        return f"{type(self).__name__}(from_logits=True)"

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
        return namespace(y_pred).sum(self.weigh(ctx, ctx.diff * ctx.diff)) / (2.0 * y_pred.size)

    def backward(self, ctx: Context) -> Array:
        """dL/dŷ = (ŷ − y) / size."""
        return self.weigh(ctx, ctx.diff / float(ctx.diff.size))


class BinaryCrossEntropyWithLogits(Loss):
    """Binary cross-entropy from logits z, mean over all entries, in the stable form

        L = 1/(M·K) Σ [max(z, 0) − z y + log(1 + e^{−|z|})]

    (equal to −[y log σ(z) + (1 − y) log(1 − σ(z))] but never overflowing).
    Returns the fused gradient dL/dz = (σ(z) − y) / (M·K).
    """

    name = "binary_crossentropy_with_logits"
    task = "binary"
    from_logits = True

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = mean(max(z, 0) − z y + log(1 + e^{−|z|}))."""
        xp = namespace(y_pred)
        ctx.saved = (y_pred, y_true)
        terms = xp.maximum(y_pred, 0.0) - y_pred * y_true + fn.softplus_neg_abs(xp, y_pred)
        return xp.sum(self.weigh(ctx, terms)) / float(y_pred.size)

    def backward(self, ctx: Context) -> Array:
        """dL/dz = (σ(z) − y) / size."""
        logits, y_true = ctx.saved
        grad = (fn.sigmoid(namespace(logits), logits) - y_true) / float(logits.size)
        return self.weigh(ctx, grad)

    def check_target_values(self, xp: Any, y_true: Array) -> None:
        """Targets must lie in [0, 1]."""
        _check_unit_interval(self, xp, y_true)

    def accuracy_metric(self) -> Any:
        """Binary accuracy at threshold 0 on logits (σ(z) > 0.5 ⇔ z > 0)."""
        from xpnn.metrics import BinaryAccuracy

        return BinaryAccuracy(threshold=0.0)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy from probabilities p (e.g. after a Sigmoid layer), mean over all
    entries: L = −1/(M·K) Σ [y log p̃ + (1 − y) log(1 − p̃)] with p̃ = clip(p, ε, 1 − ε).

    Returns dL/dp = (p̃ − y) / (p̃ (1 − p̃)) / (M·K) where p was not clipped, and 0 where it was.
    This is Keras's ``binary_crossentropy`` (same clipping, same mean).

    ``from_logits=True`` reads the outputs as logits z instead: the loss and its gradient
    are then exactly :class:`BinaryCrossEntropyWithLogits`'s (stable, fused
    dL/dz = (σ(z) − y) / (M·K)), which is the better choice whenever the model can end in a
    linear layer.
    """

    name = "binary_crossentropy"
    task = "binary"

    def __init__(self, epsilon: float = PROBABILITY_EPSILON, *, from_logits: bool = False
                 ) -> None:
        self.epsilon = float(epsilon)
        self.from_logits = bool(from_logits)
        self._on_logits = BinaryCrossEntropyWithLogits() if self.from_logits else None

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = −mean(y log p̃ + (1 − y) log(1 − p̃)) (on logits: see the class docstring)."""
        if self._on_logits is not None:
            return self._on_logits.forward(ctx, y_pred, y_true)
        xp = namespace(y_pred)
        clipped = xp.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        ctx.saved = (y_pred, clipped, y_true)
        log_terms = y_true * xp.log(clipped) + (1.0 - y_true) * xp.log(1.0 - clipped)
        return -xp.sum(self.weigh(ctx, log_terms)) / float(y_pred.size)

    def backward(self, ctx: Context) -> Array:
        """dL/dp = (p̃ − y) / (p̃ (1 − p̃) · size), zero where p was clipped."""
        if self._on_logits is not None:
            return self._on_logits.backward(ctx)
        xp = namespace(ctx.saved[0])
        y_pred, clipped, y_true = ctx.saved
        grad = (clipped - y_true) / (clipped * (1.0 - clipped) * float(y_pred.size))
        return self.weigh(ctx, xp.where(clipped == y_pred, grad, 0.0))

    def check_target_values(self, xp: Any, y_true: Array) -> None:
        """Targets must lie in [0, 1]."""
        _check_unit_interval(self, xp, y_true)

    def logits_fix(self) -> str:
        """The loss on logits with this loss's meaning."""
        return ("loss='binary_crossentropy_with_logits' (the same as "
                "BinaryCrossEntropy(from_logits=True))")

    def accuracy_metric(self) -> Any:
        """Binary accuracy at threshold 0.5 on probabilities (0 on logits)."""
        from xpnn.metrics import BinaryAccuracy

        return BinaryAccuracy(threshold=0.0 if self.from_logits else 0.5)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"epsilon": self.epsilon, "from_logits": self.from_logits}


class _ClassificationLoss(Loss):
    """Shared target handling: integer labels become one-hot rows on the device."""

    accepts_class_labels = True
    task = "categorical"

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
    from_logits = True

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
            return -xp.sum(self.weigh(ctx, target * log_probs)) / rows
        target = self._target_rows(xp, y_pred, y_true)
        rows = float(_num_rows(tuple(y_pred.shape)))
        ctx.saved = (log_probs, y_true, rows, None)
        return -xp.sum(self.weigh(ctx, target * log_probs)) / rows

    def backward(self, ctx: Context) -> Array:
        """dL/dz = (softmax(z) − y) / M, and 0 on ignored rows (the backend's
        ``softmax_cross_entropy_grad`` kernel)."""
        log_probs, y_true, rows, ignore_index = ctx.saved
        return self.weigh(ctx, backend_of(log_probs).softmax_cross_entropy_grad(
            log_probs, y_true, rows, ignore_index))

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


class CategoricalCrossEntropy(_ClassificationLoss):
    """Cross-entropy from probabilities p (e.g. after a Softmax layer), mean over rows:

        L = −1/M Σ_rows Σ_k y_k log p̃_k,   p̃ = clip(p, ε, 1 − ε)

    with y one-hot (or integer labels) or a probability row. Returns dL/dp = −y / (M p̃), zero
    where p was clipped. This is Keras's ``categorical_crossentropy`` except that Keras also
    divides each row of p by its sum first; here rows must already sum to 1, which
    :meth:`~Loss.check_predictions` checks on the first batch.

    ``from_logits=True`` reads the outputs as logits z instead: the loss and its gradient
    are then exactly :class:`SoftmaxCrossEntropy`'s (log-sum-exp, fused
    dL/dz = (softmax(z) − y) / M), the better choice for a model ending in a linear layer.
    """

    name = "categorical_crossentropy"

    def __init__(self, epsilon: float = PROBABILITY_EPSILON, *, from_logits: bool = False
                 ) -> None:
        self.epsilon = float(epsilon)
        self.from_logits = bool(from_logits)
        self._on_logits = SoftmaxCrossEntropy() if self.from_logits else None

    def forward(self, ctx: Context, y_pred: Array, y_true: Array) -> Array:
        """L = −Σ y log p̃ / M (on logits: see the class docstring)."""
        if self._on_logits is not None:
            return self._on_logits.forward(ctx, y_pred, y_true)
        xp = namespace(y_pred)
        target = self._target_rows(xp, y_pred, y_true)
        clipped = xp.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        rows = _num_rows(tuple(y_pred.shape))
        ctx.saved = (y_pred, clipped, target, rows)
        return -xp.sum(self.weigh(ctx, target * xp.log(clipped))) / float(rows)

    def backward(self, ctx: Context) -> Array:
        """dL/dp = −y / (M p̃), zero where p was clipped."""
        if self._on_logits is not None:
            return self._on_logits.backward(ctx)
        y_pred, clipped, target, rows = ctx.saved
        xp = namespace(y_pred)
        return self.weigh(ctx, xp.where(clipped == y_pred, -target / (clipped * float(rows)),
                                        0.0))

    def logits_fix(self) -> str:
        """The loss on logits with this loss's meaning."""
        return ("loss='softmax_crossentropy' (the same as "
                "CategoricalCrossEntropy(from_logits=True))")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"epsilon": self.epsilon, "from_logits": self.from_logits}


class SparseCategoricalCrossEntropy(CategoricalCrossEntropy):
    """Keras's ``sparse_categorical_crossentropy``: :class:`CategoricalCrossEntropy` whose
    targets are integer class labels, one per row (shape of the outputs without the last
    axis: (N,) for outputs (N, K)),

        L = −1/M Σ_rows log p̃_{row, y_row},   returns dL/dp = −e_y / (M p̃), 0 where clipped

    on probabilities, or with ``from_logits=True`` on logits (then exactly
    :class:`SoftmaxCrossEntropy` with integer labels: dL/dz = (softmax(z) − e_y) / M).
    As in Keras, labels of shape (N, 1) are taken as (N,), and float labels holding whole
    numbers are cast to integers by ``fit`` / ``evaluate``; one-hot rows are refused (they
    are ``categorical_crossentropy``'s targets).
    """

    name = "sparse_categorical_crossentropy"
    labels_only = True

    def check_shapes(self, pred_shape: tuple[int, ...], y_true: Array) -> None:
        """Integer labels of shape ``pred_shape[:-1]`` only."""
        true_shape = tuple(y_true.shape)
        if true_shape == pred_shape and pred_shape[-1] != 1:
            raise ShapeError(
                f"{type(self).__name__}: targets must be integer class labels of shape "
                f"{pred_shape[:-1]}, received {true_shape}: for one-hot rows use "
                "loss='categorical_crossentropy' (or pass y.argmax(axis=-1))")
        if not namespace(y_true).isdtype(y_true.dtype, "integral"):
            raise DTypeError(
                f"{type(self).__name__}: targets must be integer class labels of shape "
                f"{pred_shape[:-1]}, received dtype {y_true.dtype}")
        super().check_shapes(pred_shape, y_true)

    def logits_fix(self) -> str:
        """The loss on logits with this loss's meaning."""
        return ("loss=SparseCategoricalCrossEntropy(from_logits=True) (or "
                "'softmax_crossentropy', which takes the same integer labels)")


_BY_NAME: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (MeanSquaredError, BinaryCrossEntropy, BinaryCrossEntropyWithLogits,
                CategoricalCrossEntropy, SparseCategoricalCrossEntropy, SoftmaxCrossEntropy)
}
_BY_NAME["mse"] = MeanSquaredError


def get(spec: str | Loss) -> Loss:
    """A loss from its name or a :class:`Loss`: ``"mse"`` / ``"mean_squared_error"``,
    ``"binary_crossentropy"``, ``"categorical_crossentropy"`` and
    ``"sparse_categorical_crossentropy"`` (Keras's names and meanings: probabilities),
    ``"binary_crossentropy_with_logits"`` and ``"softmax_crossentropy"`` (logits)."""
    if isinstance(spec, Loss):
        return spec
    try:
        return _BY_NAME[spec]()
    except KeyError:
        raise ValueError(f"unknown loss {spec!r}; expected one of {sorted(_BY_NAME)}") from None
