"""Metrics: running averages over the batches of an epoch, accumulated on the device.

``update`` adds a batch without synchronising; ``result`` reads one scalar back to the host.
"""

from __future__ import annotations

from typing import Any

from xpnn.config import Configurable
from xpnn.functional import namespace

Array = Any


class Metric(Configurable):
    """Base class: the mean of a per-entry quantity over everything seen since ``reset``."""

    name = "metric"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget all batches."""
        self._total: Array | float = 0.0
        self._count = 0

    def update(self, y_pred: Array, y_true: Array) -> None:
        """Add one batch (stays on the device)."""
        batch_total, batch_count = self.batch_sum(y_pred, y_true)
        self._total = self._total + batch_total
        self._count += batch_count

    def batch_sum(self, y_pred: Array, y_true: Array) -> tuple[Array, int]:
        """The sum of the per-entry quantity over a batch, and the number of entries."""
        raise NotImplementedError

    def result(self) -> float:
        """The mean so far (reads one scalar from the device); NaN before any update."""
        return float(self._total) / self._count if self._count else float("nan")

    def state(self) -> tuple[float, int]:
        """The running total (read from the device) and count, for checkpoints."""
        return float(self._total), self._count

    def set_state(self, state: tuple[float, int]) -> None:
        """Continue from a :meth:`state`."""
        self._total, self._count = float(state[0]), int(state[1])


class Mean(Metric):
    """The weighted mean of scalars (a loss per batch, weighted by the batch size)."""

    def __init__(self, name: str = "loss") -> None:
        self.name = name
        super().__init__()

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {"name": self.name}

    def add(self, value: Array, weight: int) -> None:
        """Add ``value`` (a 0-d device array) with weight ``weight``."""
        self._total = self._total + value * float(weight)
        self._count += weight


class CategoricalAccuracy(Metric):
    """The fraction of rows whose arg-max prediction equals the label (or the arg-max of a
    one-hot / probability target)."""

    name = "accuracy"

    def batch_sum(self, y_pred: Array, y_true: Array) -> tuple[Array, int]:  # noqa: D102
        xp = namespace(y_pred)
        predicted = xp.argmax(y_pred, axis=-1)
        labels = (y_true if xp.isdtype(y_true.dtype, "integral")
                  else xp.argmax(y_true, axis=-1))
        hits = xp.astype(predicted == xp.astype(labels, predicted.dtype), y_pred.dtype)
        return xp.sum(hits), int(hits.size)


class BinaryAccuracy(Metric):
    """The fraction of entries with (prediction > threshold) == (target > 0.5).

    ``threshold`` is 0.5 for probabilities and 0 for logits.
    """

    name = "accuracy"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        super().__init__()

    def batch_sum(self, y_pred: Array, y_true: Array) -> tuple[Array, int]:  # noqa: D102
        xp = namespace(y_pred)
        hits = xp.astype((y_pred > self.threshold) == (y_true > 0.5), y_pred.dtype)
        return xp.sum(hits), int(hits.size)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {"threshold": self.threshold}


class MeanAbsoluteError(Metric):
    """mean |ŷ − y| over all entries."""

    name = "mae"

    def batch_sum(self, y_pred: Array, y_true: Array) -> tuple[Array, int]:  # noqa: D102
        xp = namespace(y_pred)
        return xp.sum(xp.abs(y_pred - y_true)), int(y_pred.size)


class MeanSquaredError(Metric):
    """mean (ŷ − y)² over all entries (without the ½ of the loss of the same name)."""

    name = "mse"

    def batch_sum(self, y_pred: Array, y_true: Array) -> tuple[Array, int]:  # noqa: D102
        xp = namespace(y_pred)
        diff = y_pred - y_true
        return xp.sum(diff * diff), int(y_pred.size)


def get(spec: str | Metric, loss: Any) -> Metric:
    """A metric from a name (``"accuracy"``, ``"mae"``, ``"mse"``) or a :class:`Metric`.

    ``"accuracy"`` is resolved by the loss: arg-max accuracy for the cross-entropies over
    classes, thresholded accuracy for the binary ones.
    """
    if isinstance(spec, Metric):
        return spec
    if spec in ("accuracy", "acc"):
        return loss.accuracy_metric()
    if spec == "mae":
        return MeanAbsoluteError()
    if spec == "mse":
        return MeanSquaredError()
    raise ValueError(f"unknown metric {spec!r}; expected 'accuracy', 'mae', 'mse' or a Metric")
