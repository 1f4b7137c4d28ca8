"""Callbacks: code that ``fit`` calls at the start and end of training, of each epoch and of
each batch.

Subclass :class:`Callback` and override the hooks you need; ``self.model`` is the model being
trained. Setting ``self.model.stop_training = True`` ends training after the current batch.
Epoch logs hold the epoch's ``loss``, metrics, ``val_`` values and ``learning_rate``. Batch
logs hold ``size`` (the batch's sample count) and, when any callback sets
``wants_batch_loss = True``, the batch's ``loss`` — read from the device, so it costs one
synchronisation per batch and is off by default.

In a distributed ``fit`` (:mod:`xpnn.distributed`) callbacks run on every rank with the same
logs (the batch loss is that of the whole global batch); their messages are printed by rank
0 only, and ``stop_training`` set on any rank stops every rank.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

from xpnn import checks, distributed
from xpnn.schedules import Schedule

Logs = dict[str, float]


def say(*values: Any, file: Any = None) -> None:
    """``print`` on rank 0 only: in a distributed ``fit`` every rank runs the callbacks
    with the same logs, and one of them speaks (see :mod:`xpnn.distributed`)."""
    if distributed.is_main():
        print(*values, file=file)


class Callback:
    """Base class with empty hooks; ``fit`` sets :attr:`model` before training starts."""

    #: Whether ``on_batch_end`` needs the batch loss in its logs (one device sync per batch).
    wants_batch_loss = False

    def __init__(self) -> None:
        #: The :class:`~xpnn.Model` being trained (set by ``fit``).
        self.model: Any = None

    def set_model(self, model: Any) -> None:
        """Attach the model being trained."""
        self.model = model

    def on_train_begin(self, logs: Logs) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: Logs) -> None:
        """Called once after the last epoch (also when training was stopped early)."""

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        """Called before each epoch (``epoch`` counts from 0)."""

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        """Called after each epoch, with its loss, metrics and learning rate; entries added
        to ``logs`` here are recorded in the History."""

    def on_batch_begin(self, batch: int, logs: Logs) -> None:
        """Called before each training batch (``batch`` counts from 0 in each epoch)."""

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        """Called after each training batch."""


class CallbackList(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: Iterable[Callback] | None, model: Any) -> None:
        super().__init__()
        self.callbacks = list(callbacks or ())
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances, got "
                                f"{type(callback).__name__}")
            callback.set_model(model)
        self.wants_batch_loss = any(c.wants_batch_loss for c in self.callbacks)

    def on_train_begin(self, logs: Logs) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_train_begin(logs)

    def on_train_end(self, logs: Logs) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch: int, logs: Logs) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: Logs) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_batch_end(batch, logs)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for more than ``patience`` epochs.

    An epoch improves on the best value so far when it is lower (``mode="min"``) or higher
    (``"max"``) by more than ``min_delta``; ``"auto"`` is ``"max"`` for accuracies and
    ``"min"`` otherwise. A NaN never improves. With ``restore_best_weights`` (the default)
    the model ends training with the weights of its best epoch. After training,
    :attr:`best`, :attr:`best_epoch` and :attr:`stopped_epoch` (None if it never stopped
    training) tell what happened.
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True,
                 verbose: int = 0) -> None:
        super().__init__()
        patience = checks.integer("EarlyStopping", "patience", patience, 0)
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got "
                             f"{mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose

    def on_train_begin(self, logs: Logs) -> None:
        """Forget earlier runs."""
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch: int | None = None
        self.best_weights: list[Any] | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0

    def _improves(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        """Remember the best epoch; stop when patience runs out."""
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which fit does not "
                           f"report; available: {sorted(logs)} (val_ values need "
                           "validation_data)")
        value = logs[self.monitor]
        if self._improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                say(f"EarlyStopping: {self.monitor} has not improved on {self.best:.4f} "
                      f"(epoch {self.best_epoch + 1 if self.best_epoch is not None else '-'})"
                      f" for {self.wait} epochs; stopping after epoch {epoch + 1}")

    def on_train_end(self, logs: Logs) -> None:
        """Restore the best epoch's weights (if asked and if they are not the last ones)."""
        if self.best_weights is not None and self.wait > 0:
            self.model.set_weights(self.best_weights)
            if self.verbose:
                say(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}")


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch.

    ``schedule`` is a :class:`~xpnn.schedules.Schedule` (called with the epoch and the
    optimizer's ``initial_learning_rate``, the rate it was created with, which checkpoints
    keep) or a function ``f(epoch, current_rate) -> rate`` (Keras's convention). The rate of
    each epoch is recorded in the History as ``learning_rate``.
    """

    def __init__(self, schedule: Schedule | Callable[[int, float], float],
                 verbose: int = 0) -> None:
        super().__init__()
        if not (isinstance(schedule, Schedule) or callable(schedule)):
            raise TypeError(f"LearningRateScheduler takes a Schedule or a function "
                            f"(epoch, rate) -> rate, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        """Set this epoch's rate."""
        optimizer = self.model.optimizer
        if isinstance(self.schedule, Schedule):
            rate = self.schedule.rate(epoch, optimizer.initial_learning_rate)
        else:
            rate = self.schedule(epoch, optimizer.learning_rate)
        optimizer.learning_rate = checks.number(
            "LearningRateScheduler", f"the rate its schedule returned for epoch {epoch}", rate,
            0)
        if self.verbose:
            say(f"Epoch {epoch + 1}: learning rate {rate:.4g}")


class ModelCheckpoint(Callback):
    """Write a resumable checkpoint to ``path`` after every epoch and, with
    ``every_batches=N``, after every N-th batch of an epoch too (atomically: a crash leaves
    the previous checkpoint intact). ``fit(resume_from=path)`` continues from it; see
    :mod:`xpnn.checkpoint` for what it holds."""

    def __init__(self, path: Any, every_batches: int | None = None) -> None:
        super().__init__()
        if every_batches is not None:
            every_batches = checks.integer("ModelCheckpoint", "every_batches", every_batches, 1)
        self.path, self.every_batches = path, every_batches

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        """Save every ``every_batches`` batches."""
        if self.every_batches and (batch + 1) % self.every_batches == 0:
            self.model.save_checkpoint(self.path)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        """Save after a complete epoch (its logs are already in the History); an epoch that
        a callback interrupted keeps the last checkpoint taken within it."""
        if self.model.fit_position.batch == 0:
            self.model.save_checkpoint(self.path)


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite, naming the epoch and
    the batch (reads the loss after every batch).

    Without it, ``fit`` raises :class:`~xpnn.errors.NonFiniteError` at the end of the epoch.
    After a stop, :attr:`stopped_at` is ``(epoch, batch)``, both counted from 0.
    """

    wants_batch_loss = True

    def __init__(self) -> None:
        super().__init__()
        self.stopped_at: tuple[int, int] | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:  # noqa: D102
        self.epoch = epoch

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        """Stop if this batch's loss is not finite."""
        loss = logs["loss"]
        if not math.isfinite(loss):
            self.stopped_at = (self.epoch, batch)
            self.model.stop_training = True
            say(f"TerminateOnNaN: the loss is {loss} in epoch {self.epoch + 1}, batch "
                  f"{batch + 1}; training stopped", file=sys.stderr)
