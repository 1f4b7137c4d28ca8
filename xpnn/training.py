"""The training and inference verbs of a model: ``fit``, ``evaluate``, ``predict``,
``train_on_batch``, ``test_on_batch`` and ``layer_outputs``.

One training step on a batch (x, y), for a model f with outputs ŷ_k = f_k(x; θ), losses
ℓ_k with weights w_k, and the optimizer's L2 coefficients λ_w::

    L = Σ_k w_k ℓ_k(ŷ_k, y_k) + Σ_w ½ λ_w ‖w‖²
    g = ∇_θ L                       (graph backward: dL/dθ summed over every call of a layer)
    θ ← update(θ, clip(g))          (the optimizer, in place on the device)

Data crosses the host/device line only at this boundary (:mod:`xpnn.inputs`): whole arrays
are checked and cast once per call, batches move to the device one at a time, and only the
loss and metrics come back — when the progress bar is redrawn and when an epoch ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnn import callbacks as callbacks_module
from xpnn import checks
from xpnn import distributed as distributed_module
from xpnn import metrics as metrics_module
from xpnn.data import batch_indices
from xpnn.errors import NonFiniteError, NotReadyError, OutOfMemoryError, ShapeError
from xpnn.graph import Context
from xpnn.history import Evaluation, History, TrainingPosition
from xpnn.inputs import (
    by_position,
    check_input,
    check_sample_weight,
    check_target,
    class_weights,
)
from xpnn.progress import ProgressBar

if TYPE_CHECKING:
    from xpnn.backends.base import Backend
    from xpnn.graph import Graph
    from xpnn.inputs import InputSpec, OutputSpec
    from xpnn.layers.base import Parameter
    from xpnn.losses import Loss
    from xpnn.optimizers import Optimizer

Array = Any


class Tally:
    """The running means of one pass over data: the loss, each output's loss (with several
    outputs) and each metric, accumulated on the device batch by batch and read on demand.

    ``accumulators`` is what a checkpoint saves of a half-done epoch, in a fixed order.
    """

    def __init__(self, output_names: list[str], output_metrics: list[list[Any]]) -> None:
        self.loss = metrics_module.Mean("loss")
        several = len(output_names) > 1
        self.output_losses = ([metrics_module.Mean(f"{name}_loss") for name in output_names]
                              if several else [])
        self.metrics = [(f"{name}_{metric.name}" if several else metric.name, k, metric)
                        for k, (name, metrics) in enumerate(zip(output_names, output_metrics,
                                                                strict=True))
                        for metric in metrics]
        self.accumulators = [self.loss, *self.output_losses,
                             *(metric for _, _, metric in self.metrics)]
        self.output_names = output_names
        self.predictions_checked = False

    def check_predictions(self, losses: list[Loss], outputs: list[Array]) -> None:
        """On the pass's first batch only: each loss checks its output
        (:meth:`Loss.check_predictions`: logits refused by a loss on probabilities)."""
        if not self.predictions_checked:
            self.predictions_checked = True
            for loss, output, name in zip(losses, outputs, self.output_names, strict=True):
                loss.check_predictions(output, f"output '{name}'")

    def reset(self) -> None:
        """Forget every batch."""
        for accumulator in self.accumulators:
            accumulator.reset()

    def add(self, total: Array, values: list[Array], outputs: list[Array],
            targets: list[Array], count: int) -> None:
        """Add one batch of ``count`` samples: its total loss, each output's loss, and the
        metrics of its outputs."""
        self.loss.add(total, count)
        for mean, value in zip(self.output_losses, values, strict=False):
            mean.add(value, count)
        for _, output, metric in self.metrics:
            metric.update(outputs[output], targets[output])

    def logs(self) -> dict[str, float]:
        """The means so far, read from the device."""
        logs = {"loss": self.loss.result()}
        logs.update({mean.name: mean.result() for mean in self.output_losses})
        logs.update({key: metric.result() for key, _, metric in self.metrics})
        return logs


class Trainer:
    """The verbs of :class:`~xpnn.model.Model` that run data through it (see the module
    docstring); the model supplies its structure (``graph``, ``input_specs``,
    ``output_specs``), compile settings and device."""

    backend: Backend
    graph: Graph
    name: str
    dtype: str
    optimizer: Optimizer | None
    output_losses: list[Loss]
    loss_weights: list[float]
    output_metrics: list[list[Any]]
    input_specs: list[InputSpec]
    output_specs: list[OutputSpec]
    stop_training: bool
    _single_output: bool
    _fit_position: TrainingPosition | None
    _fit_history: History | None
    #: The ranks of the distributed ``fit`` in progress (None outside one): the model's
    #: ``save_checkpoint`` asks them for what a checkpoint records.
    _replicas: distributed_module.Replicas | None = None

    # -- the model supplies these -----------------------------------------------------------
    def trainable_parameters(self) -> list[Parameter]:  # pragma: no cover - see Model
        """The parameters the optimizer updates."""
        raise NotImplementedError

    def _build_from_data(self, x: Any, role: str) -> None:
        """Build from the first data (a Sequential); a Model is always built."""

    def _restore_checkpoint(self, path: Any) -> tuple[TrainingPosition, History]:
        """Load a checkpoint's parameters, optimizer state and generators; return its
        training position and History (see Model)."""
        raise NotImplementedError

    # -- training ----------------------------------------------------------------------------
    def fit(
        self,
        x: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_data: tuple[Any, ...] | None = None,
        validation_split: float = 0.0,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
        verbose: int = 1,
        seed: int | None = None,
        callbacks: Sequence[callbacks_module.Callback] = (),
        checkpoint: Any = None,
        resume_from: Any = None,
        distributed: bool = False,
    ) -> History:
        """Train until ``epochs`` epochs are done, in mini-batches of ``batch_size``.

        ``x`` and ``y`` are arrays, or lists (dicts by name) of arrays for several inputs or
        outputs. The batch order is drawn from ``seed`` (fresh entropy if None). Metrics are
        averaged over each epoch's batches as the weights change; ``validation_data``
        ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)`` is evaluated at the end
        of each epoch. ``validation_split`` (in [0, 1); ignored when ``validation_data`` is
        given) holds data out as Keras does: the first ⌊N·(1 − split)⌋ samples (and their
        sample weights) train, the rest, taken before any shuffling, validate.
        ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch.

        ``sample_weight``: one weight per sample (N,) or per output row (e.g. (N, T)), or a
        list / dict of such arrays by output; the loss of a batch becomes
        Σ w·ℓ / (its usual normaliser) (see :mod:`xpnn.losses`), so the epoch's loss is
        Σ_n w_n ℓ_n / N. ``class_weight`` ({class index: weight}; one classification output
        only, not with ``sample_weight``) weighs each training sample by its class (missing
        classes weigh 1); validation data is not class-weighted. The metrics are not
        weighted (as Keras's ``metrics``). ``callbacks`` (see :mod:`xpnn.callbacks`) are
        called around epochs and batches; one may end training early by setting
        ``model.stop_training``. The History holds each epoch's loss (with the L2 term when
        weight decay is on; with several outputs also each ``<output>_loss``), metrics and
        learning rate.

        ``checkpoint``: a path where a resumable checkpoint is written (atomically) after
        every epoch (a ``ModelCheckpoint`` callback gives more control). ``resume_from``: a
        checkpoint to continue from: parameters, optimizer state, generators, History and the
        position (epoch and batch) are restored, and training goes on until ``epochs`` epochs
        are done in all (``seed`` is then ignored: the batch order continues from the
        checkpoint). The returned History holds the earlier epochs too.

        Raises :class:`~xpnn.errors.NonFiniteError` naming the epoch and the batch if the
        loss becomes NaN or infinite (unless a callback stopped training on it).

        ``distributed=True``: train data-parallel with the other processes of the MPI job
        this script runs in (``mpiexec -n N python train.py``, every rank calling ``fit``
        with the same data): ``batch_size`` is the global batch, each rank computes the
        gradient of its share and the ranks sum them, so N ranks make the updates one
        process makes (see :mod:`xpnn.distributed`). Without an MPI job of several
        processes it does nothing but print a one-line notice.
        """
        self._require_compiled()
        where = f"model '{self.name}'"
        epochs = checks.integer(where, "epochs", epochs, 0)
        batch_size = checks.integer(where, "batch_size", batch_size, 1)
        hooks = list(callbacks)
        if checkpoint is not None:
            hooks.append(callbacks_module.ModelCheckpoint(checkpoint))
        replicas = distributed_module.replicas(distributed, self.backend)
        with self.backend.scope(), replicas.running():
            rng = np.random.default_rng(replicas.agree_seed(seed))
            x_data, y_data = self._data(x, y)
            w_data = self._sample_weights(sample_weight, y_data)
            validation = None
            if validation_data is not None:
                validation = self._validation_data(validation_data)
            elif validation_split:
                (x_data, y_data, w_data), validation = _split(
                    (x_data, y_data, w_data), validation_split, where)
            if class_weight is not None:
                w_data = self._class_weights(class_weight, sample_weight, y_data)
            num_samples = int(x_data[0].shape[0])
            replicas.check_same({
                "training samples": num_samples,
                "validation samples": validation and int(validation[0][0].shape[0]),
                "callbacks (every rank runs them; ModelCheckpoint writes on rank 0 only by "
                "itself)": [type(hook).__name__ for hook in hooks]})
            steps = math.ceil(num_samples / batch_size)
            tally = self._tally()
            if resume_from is not None:
                position, history = replicas.on_main(
                    lambda: self._restore_checkpoint(resume_from))
                position.check_compatible(num_samples, batch_size, shuffle, resume_from)
                rng.bit_generator.state = position.epoch_start_rng_state
            else:
                position, history = TrainingPosition(), History()
            replicas.start(self, position, resumed=resume_from is not None)
            position.num_samples, position.batch_size, position.shuffle = (
                num_samples, batch_size, shuffle)
            position.live_accumulators = tally.accumulators
            self._fit_position, self._fit_history = position, history
            callback_list = callbacks_module.CallbackList(hooks, self)
            self.stop_training = False
            self._replicas = replicas if replicas is not distributed_module.LOCAL else None
            try:
                callback_list.on_train_begin({})
                for epoch in range(position.epoch, epochs):
                    position.start_epoch(rng.bit_generator.state)
                    callback_list.on_epoch_begin(epoch, {})
                    progress = ProgressBar(steps, f"Epoch {epoch + 1}/{epochs}",
                                           verbose if replicas.is_main else 0)
                    with self._out_of_memory("fit", batch_size):
                        batch_losses = self._run_epoch(x_data, y_data, w_data, batch_size,
                                                       shuffle, rng, tally, position,
                                                       callback_list, progress, replicas)
                    replicas.reduce_accumulators(tally.accumulators)
                    logs = tally.logs()
                    if not math.isfinite(logs["loss"]) and not self.stop_training:
                        raise replicas.agreed(_non_finite_loss(batch_losses, epoch, steps))
                    replicas.average_statistics(self)
                    if validation is not None and math.isfinite(logs["loss"]):
                        progress.validating()
                        val_logs = self._evaluate_data(*validation, max(batch_size, 256),
                                                       replicas)
                        logs.update({f"val_{key}": value for key, value in val_logs.items()})
                    logs["learning_rate"] = self.optimizer.learning_rate
                    history.record(epoch, logs)
                    position.finish_epoch(steps, rng.bit_generator.state)
                    progress.finish(logs)
                    callback_list.on_epoch_end(epoch, logs)
                    self.stop_training = replicas.any(self.stop_training)
                    if self.stop_training:
                        break
                callback_list.on_train_end({})
            finally:
                self._replicas = None
        return history

    def _run_epoch(self, x_data: list[Array], y_data: list[Array],
                   w_data: list[Array | None], batch_size: int, shuffle: bool,
                   rng: np.random.Generator, tally: Tally,
                   position: TrainingPosition, callback_list: callbacks_module.CallbackList,
                   progress: ProgressBar,
                   replicas: distributed_module.Replicas = distributed_module.LOCAL
                   ) -> dict[int, Array]:
        """The batches of one epoch from ``position.batch`` on: a training step each (on
        this rank's share of the batch, in a distributed fit), with the batch hooks and the
        progress bar; returns each batch's loss (on the device; None where this rank had
        no rows)."""
        params = self.trainable_parameters()  # a callback may have frozen layers
        num_samples = int(x_data[0].shape[0])
        order = list(batch_indices(num_samples, batch_size, shuffle=shuffle, rng=rng))
        batch_losses = {}
        for step in range(position.batch, len(order)):
            indices = order[step]
            callback_list.on_batch_begin(step, {"size": len(indices)})
            rows = replicas.shard(indices)
            if len(rows):
                loss = self._train_step(self._rows(x_data, rows), self._rows(y_data, rows),
                                        self._rows(w_data, rows), params, tally,
                                        len(rows) / len(indices), replicas)
            else:
                loss = self._idle_step(x_data, rows, params, replicas)
            batch_losses[step] = loss
            position.advance(step + 1)
            progress.update(step + 1, tally.logs)
            batch_logs = {"size": len(indices)}
            if callback_list.wants_batch_loss:
                batch_logs["loss"] = replicas.batch_loss(loss, len(rows))
            callback_list.on_batch_end(step, batch_logs)
            if callback_list.callbacks:  # only a callback stops training
                self.stop_training = replicas.any(self.stop_training)
            if self.stop_training:
                break
        return batch_losses

    def _train_step(self, x_batch: list[Array], y_batch: list[Array],
                    w_batch: list[Array | None], params: list[Parameter], tally: Tally,
                    share: float = 1.0,
                    replicas: distributed_module.Replicas = distributed_module.LOCAL) -> Array:
        """Forward, losses (weighted by ``w_batch``, per output, where not None), backward
        and one optimizer step of ``params``; adds the batch to ``tally`` and returns its
        loss, with the L2 term of the weights the step started from (see the module
        docstring).

        In a distributed fit the batch is this rank's share of a global batch, ``share`` =
        m_r / B of it: the loss gradients are scaled by ``share`` before the backward pass,
        so the ranks' parameter gradients add up to those of the global batch's mean loss,
        and ``replicas`` sums them before the update (see :mod:`xpnn.distributed`)."""
        for param in params:
            param.grad = None
        outputs, contexts = self.graph.forward(x_batch, training=True, record=True)
        tally.check_predictions(self.output_losses, outputs)
        values, grads = [], []
        for loss, weight, output, target, sample_weight in zip(
                self.output_losses, self.loss_weights, outputs, y_batch, w_batch, strict=True):
            ctx = _loss_context(sample_weight, training=True)
            values.append(loss.forward(ctx, output, target))
            grad = loss.backward(ctx)
            scale = weight * share
            grads.append(grad if scale == 1.0 else grad * scale)
        total = _weighted_sum(values, self.loss_weights)
        self.graph.backward(contexts, grads, release=True)
        replicas.reduce_gradients(params)
        penalty = self.optimizer.penalty(params)
        self.optimizer.step(params)
        if penalty is not None:
            total = total + penalty
        tally.add(total, values, outputs, y_batch, int(x_batch[0].shape[0]))
        return total

    def _idle_step(self, x_data: list[Array], rows: np.ndarray, params: list[Parameter],
                   replicas: distributed_module.Replicas) -> None:
        """The step of a rank whose share of a (last, small) global batch is empty: it adds
        nothing to the gradients but takes part in their sum and makes the same update.
        Layers that communicate while they train (a synchronized BatchNorm) run forward and
        backward on the empty batch, with zero loss gradients, so that every rank joins
        their sums."""
        for param in params:
            param.grad = None
        if any(layer.collective for layer in self.layers):
            outputs, contexts = self.graph.forward(self._rows(x_data, rows), training=True,
                                                   record=True)
            xp = self.backend.xp
            self.graph.backward(contexts, [xp.zeros_like(output) for output in outputs],
                                release=True)
        replicas.reduce_gradients(params)
        self.optimizer.step(params)

    def train_on_batch(self, x: Any, y: Any, *, sample_weight: Any = None,
                       class_weight: dict[int, float] | None = None,
                       return_dict: bool = False) -> Evaluation | dict[str, float]:
        """One optimizer step on one batch (weighted as in :meth:`fit`); returns that batch's
        loss and metrics as an :class:`~xpnn.history.Evaluation` (a dict with
        ``return_dict``)."""
        self._require_compiled()
        with self.backend.scope():
            x_data, y_data = self._data(x, y)
            w_data = (self._class_weights(class_weight, sample_weight, y_data)
                      if class_weight is not None else self._sample_weights(sample_weight, y_data))
            tally = self._tally()
            tally.reset()
            every = slice(None)
            self._train_step(self._rows(x_data, every), self._rows(y_data, every),
                             self._rows(w_data, every), self.trainable_parameters(), tally)
            return _result(tally.logs(), return_dict)

    # -- evaluation and inference ------------------------------------------------------------
    def evaluate(self, x: Any, y: Any, *, batch_size: int = 256, sample_weight: Any = None,
                 verbose: int = 0, return_dict: bool = False, distributed: bool = False
                 ) -> Evaluation | dict[str, float]:
        """The loss (with the L2 term; weighted by ``sample_weight`` as in :meth:`fit`) and
        the metrics over (x, y): an :class:`~xpnn.history.Evaluation`, which unpacks in
        Keras's order (``loss, accuracy = model.evaluate(...)``) and reads by name
        (``["accuracy"]``); a dict with ``return_dict=True``. ``verbose=1`` shows a progress
        bar (on a terminal; the final line elsewhere), 2 the final line only; the default 0
        is silent (Keras: 1).

        ``distributed=True`` (in an MPI job, every rank calling it with the same data):
        each rank evaluates a contiguous share of the samples with its own model (the same
        on every rank after a distributed ``fit``) and the sums are combined, so every rank
        gets the values of the whole data (see :mod:`xpnn.distributed`)."""
        self._require_compiled()
        batch_size = checks.integer(f"model '{self.name}'", "batch_size", batch_size, 1)
        replicas = distributed_module.replicas(distributed, self.backend)
        with self.backend.scope(), replicas.running():
            x_data, y_data = self._data(x, y)
            w_data = self._sample_weights(sample_weight, y_data)
            replicas.check_same({"samples": int(x_data[0].shape[0])})
            logs = self._evaluate_data(x_data, y_data, w_data, batch_size, replicas,
                                       verbose if replicas.is_main else 0)
            return _result(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any, *, sample_weight: Any = None,
                      return_dict: bool = False) -> Evaluation | dict[str, float]:
        """Loss and metrics of one batch (weighted as in :meth:`fit`), without updating
        anything: an :class:`~xpnn.history.Evaluation` (a dict with ``return_dict``)."""
        self._require_compiled()
        with self.backend.scope():
            x_data, y_data = self._data(x, y)
            w_data = self._sample_weights(sample_weight, y_data)
            logs = self._evaluate_data(x_data, y_data, w_data, int(x_data[0].shape[0]))
            return _result(logs, return_dict)

    def _evaluate_data(self, x_data: list[Array], y_data: list[Array],
                       w_data: list[Array | None], batch_size: int,
                       replicas: distributed_module.Replicas = distributed_module.LOCAL,
                       verbose: int = 0) -> dict[str, float]:
        """Loss and metrics over all samples (this rank's contiguous share of them, summed
        over the ranks, in a distributed fit or evaluation), the losses weighted by
        ``w_data`` where not None; an "Evaluate" progress display as ``verbose`` says."""
        tally = self._tally()
        tally.reset()
        num_samples = int(x_data[0].shape[0])
        rows = replicas.shard(np.arange(num_samples))
        progress = ProgressBar(math.ceil(len(rows) / batch_size), "Evaluate", verbose)
        with self._out_of_memory("evaluation", batch_size):
            for step, part in enumerate(batch_indices(len(rows), batch_size, shuffle=False)):
                indices = rows[part]
                targets = self._rows(y_data, indices)
                outputs, _ = self.graph.forward(self._rows(x_data, indices), training=False)
                tally.check_predictions(self.output_losses, outputs)
                values = [loss.forward(_loss_context(weights), output, target)
                          for loss, output, target, weights in zip(
                              self.output_losses, outputs, targets,
                              self._rows(w_data, indices), strict=True)]
                total = _weighted_sum(values, self.loss_weights)
                tally.add(total, values, outputs, targets, len(indices))
                progress.update(step + 1, tally.logs)
        replicas.reduce_accumulators(tally.accumulators)
        logs = tally.logs()
        penalty = self.optimizer.penalty(self.trainable_parameters())
        if penalty is not None:
            logs["loss"] += float(penalty)
        progress.finish(logs)
        return logs

    def predict(self, x: Any, *, batch_size: int = 256, verbose: int = 0
                ) -> np.ndarray | list[np.ndarray]:
        """The model's outputs for ``x`` as NumPy arrays (inference mode): one array, or a
        list with several outputs. ``verbose`` as for :meth:`evaluate` (default 0, silent;
        Keras: 1)."""
        batch_size = checks.integer(f"model '{self.name}'", "batch_size", batch_size, 1)
        with self.backend.scope():
            x_data = self._inputs(x)
            num_samples = int(x_data[0].shape[0])
            progress = ProgressBar(math.ceil(num_samples / batch_size), "Predict", verbose)
            parts: list[list[np.ndarray]] = [[] for _ in self.output_specs]
            with self._out_of_memory("predict", batch_size):
                for step, indices in enumerate(batch_indices(num_samples, batch_size,
                                                             shuffle=False)):
                    outputs, _ = self.graph.forward(self._rows(x_data, indices),
                                                    training=False)
                    for part, output in zip(parts, outputs, strict=True):
                        part.append(self.backend.to_host(output))
                    progress.update(step + 1, dict)
            progress.finish({})
        results = [np.concatenate(part, axis=0) for part in parts]
        return results[0] if self._single_output else results

    def layer_outputs(self, x: Any) -> dict[str, np.ndarray]:
        """Every layer call's output for the inputs ``x`` in inference mode, as NumPy arrays
        keyed by the output tensor's name (the layer's name for its first call) in call
        order (for looking inside a network: activation histograms, dead units)."""
        with self.backend.scope():
            arrays = self._rows(self._inputs(x), slice(None))
            values: dict[str, Array] = {}
            self.graph.forward(arrays, training=False, sink=values)
            return {name: self.backend.to_host(value) for name, value in values.items()}

    # -- data --------------------------------------------------------------------------------
    def _inputs(self, x: Any, role: str = "") -> list[Array]:
        """Every input array checked and cast (building a Sequential from the first)."""
        where = f"model '{self.name}'"
        if self.graph is None:
            self._build_from_data(x, f"{role}x")
        arrays = by_position(x, [spec.name for spec in self.input_specs], where, f"{role}input")
        single = len(self.input_specs) == 1
        data = [check_input(self.backend, spec, array, where,
                            f"{role}x" if single else f"{role}x '{spec.name}'")
                for spec, array in zip(self.input_specs, arrays, strict=True)]
        counts = {int(array.shape[0]) for array in data}
        if len(counts) > 1:
            raise ShapeError(f"{where}: the {role}inputs have different numbers of samples: "
                             + ", ".join(f"'{spec.name}' {int(array.shape[0])}" for spec, array
                                         in zip(self.input_specs, data, strict=True)))
        return data

    def _data(self, x: Any, y: Any, role: str = "") -> tuple[list[Array], list[Array]]:
        """Inputs and targets checked and cast, each a list in the model's order."""
        x_data = self._inputs(x, role)
        where = f"model '{self.name}'"
        names = [spec.name for spec in self.output_specs]
        targets = by_position(y, names, where, f"{role}target")
        single = len(names) == 1
        y_data = [check_target(self.backend, loss, spec, self.dtype, target,
                               int(x_data[0].shape[0]), where,
                               f"{role}y" if single else f"{role}y '{spec.name}'")
                  for loss, spec, target in zip(self.output_losses, self.output_specs, targets,
                                                strict=True)]
        return x_data, y_data

    def _rows(self, data: list[Any], indices: np.ndarray | slice) -> list[Any]:
        """One batch on the device: the rows ``indices`` of every array (None stays None:
        an output without sample weights)."""
        return [None if array is None else self.backend.take_rows(array, indices)
                for array in data]

    def _sample_weights(self, sample_weight: Any, y_data: list[Array], role: str = ""
                        ) -> list[Array | None]:
        """Per output, its sample weights checked and cast (None: unweighted): one array
        for every output, or a list / dict of arrays (or None) by output."""
        names = [spec.name for spec in self.output_specs]
        if sample_weight is None:
            return [None] * len(names)
        where = f"model '{self.name}'"
        several = isinstance(sample_weight, dict) or (
            len(names) > 1 and isinstance(sample_weight, list | tuple))
        weights = (by_position(sample_weight, names, where, f"{role}sample weight")
                   if several else [sample_weight] * len(names))
        num_samples = int(y_data[0].shape[0])
        return [None if array is None else check_sample_weight(
                    self.backend, spec, self.dtype, array, num_samples, where,
                    f"{role}sample_weight" + (f" '{spec.name}'" if len(names) > 1 else ""))
                for spec, array in zip(self.output_specs, weights, strict=True)]

    def _class_weights(self, class_weight: dict[int, float], sample_weight: Any,
                       y_data: list[Array]) -> list[Array | None]:
        """The sample weights ``class_weight`` gives the targets (see
        :func:`~xpnn.inputs.class_weights`), for a single classification output."""
        where = f"model '{self.name}'"
        if sample_weight is not None:
            raise ValueError(f"{where}: pass class_weight or sample_weight, not both (as in "
                             "Keras): multiply the class weights into sample_weight instead")
        if len(self.output_losses) != 1 or self.output_losses[0].task is None:
            raise ValueError(f"{where}: class_weight needs one classification output (a "
                             "categorical or binary cross-entropy loss); use sample_weight "
                             "for other models")
        return [class_weights(self.backend, class_weight, y_data[0], self.dtype, where)]

    def _validation_data(self, validation_data: Any) -> tuple[list[Array], list[Array],
                                                                list[Array | None]]:
        """``validation_data`` (x, y) or (x, y, sample_weight) checked and cast."""
        where = f"model '{self.name}'"
        if not isinstance(validation_data, list | tuple) or len(validation_data) not in (2, 3):
            count = len(validation_data) if isinstance(validation_data, list | tuple) else 1
            raise ValueError(f"{where}: validation_data must be (x_val, y_val) or (x_val, "
                             f"y_val, sample_weight_val), received {count} item(s)")
        x_data, y_data = self._data(validation_data[0], validation_data[1], "validation ")
        weights = validation_data[2] if len(validation_data) == 3 else None
        return x_data, y_data, self._sample_weights(weights, y_data, "validation ")

    @contextmanager
    def _out_of_memory(self, what: str, batch_size: int) -> Iterator[None]:
        """Turn running out of device memory inside the batch loop of ``what`` into an
        :class:`~xpnn.errors.OutOfMemoryError` that names the batch size and suggests half
        of it (CuPy's ``OutOfMemoryError`` and NumPy's allocation failures are both
        ``MemoryError``)."""
        try:
            yield
        except MemoryError as error:
            smaller = max(1, batch_size // 2)
            hint = (f"try batch_size={smaller}" if batch_size > 1 else
                    "even one sample does not fit: use a smaller model or another device")
            raise OutOfMemoryError(
                f"model '{self.name}' ran out of memory on {self.backend.device} in {what} "
                f"with batch_size={batch_size}: {hint} (the device said: {error})") from error

    def _tally(self) -> Tally:
        return Tally([spec.name for spec in self.output_specs], self.output_metrics)

    def _require_compiled(self) -> None:
        if self.optimizer is None or not self.output_losses:
            raise NotReadyError(f"model '{self.name}' is not compiled: call "
                                "compile(loss=..., optimizer=...) first")


def _weighted_sum(values: list[Array], weights: list[float]) -> Array:
    """Σ_k w_k ℓ_k (a weight of 1 costs no multiplication)."""
    if len(values) == 1 and weights[0] == 1.0:
        return values[0]
    total = None
    for value, weight in zip(values, weights, strict=True):
        term = value if weight == 1.0 else value * weight
        total = term if total is None else total + term
    return total


def _loss_context(sample_weight: Array | None, training: bool = False) -> Context:
    """A loss call's context, carrying the batch's sample weights (see
    :meth:`Loss.weigh <xpnn.losses.Loss.weigh>`)."""
    ctx = Context(training=training)
    if sample_weight is not None:
        ctx.sample_weight = sample_weight
    return ctx


def _split(data: tuple[list[Any], ...], validation_split: float, where: str
           ) -> tuple[tuple[list[Any], ...], tuple[list[Any], ...]]:
    """Keras's ``validation_split``: every array's first ⌊N·(1 − split)⌋ rows train, the
    rest validate (no shuffling first)."""
    validation_split = checks.number(where, "validation_split", validation_split, 0, 1)
    num_samples = int(data[0][0].shape[0])
    split_at = math.floor(num_samples * (1.0 - validation_split))
    if split_at in (0, num_samples):
        raise ValueError(f"{where}: validation_split={validation_split} of {num_samples} "
                         f"samples leaves {split_at} for training and "
                         f"{num_samples - split_at} for validation; each needs at least one")

    def rows(part: slice) -> tuple[list[Any], ...]:
        return tuple([None if array is None else array[part] for array in arrays]
                     for arrays in data)

    return rows(slice(0, split_at)), rows(slice(split_at, None))


def _result(logs: dict[str, float], return_dict: bool) -> Evaluation | dict[str, float]:
    """``evaluate``'s value: an Evaluation, or a dict with ``return_dict``."""
    return dict(logs) if return_dict else Evaluation(logs)


def _non_finite_loss(batch_losses: dict[int, Any], epoch: int, steps: int) -> NonFiniteError:
    """The error for an epoch whose loss sum is not finite, naming the first bad batch."""
    bad = next((step for step, value in batch_losses.items()
                if value is not None and not math.isfinite(float(value))), None)
    where = f"batch {bad + 1} of {steps}" if bad is not None else "a batch before the resume"
    value = float(batch_losses[bad]) if bad is not None else math.nan
    return NonFiniteError(
        f"the training loss became {value} in epoch {epoch + 1}, {where}: lower the learning "
        "rate, clip the gradients, check the inputs, or use a loss on logits")

