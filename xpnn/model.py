"""``Sequential``: a stack of layers with Keras-style ``compile`` / ``fit`` / ``evaluate`` /
``predict``.

Data crosses the host/device line only here: NumPy inputs are checked once, cast once to the
model's dtype on the host, and moved to the device batch by batch; device arrays of the model's
backend stay where they are. Inside a training step nothing returns to the host; the loss and
metrics are accumulated on the device and read when the progress bar is redrawn and at the end
of each epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from xpnn import callbacks as callbacks_module
from xpnn import checkpoint as checkpoint_module
from xpnn import checks
from xpnn import config as config_module
from xpnn import losses as losses_module
from xpnn import metrics as metrics_module
from xpnn import optimizers as optimizers_module
from xpnn.backends.base import FLOAT_DTYPES, Backend
from xpnn.data import batch_indices
from xpnn.device import DeviceLike, get_backend
from xpnn.errors import DeviceError, DTypeError, NonFiniteError, NotReadyError, ShapeError
from xpnn.functional import namespace
from xpnn.layers.base import BuildContext, Layer, Parameter, _describe_array
from xpnn.progress import ProgressBar

Array = Any


class History:
    """What ``fit`` returns: ``history[key]`` is the list of per-epoch values of ``key``
    (``loss``, each metric, ``learning_rate``, and ``val_`` versions with validation data).

    ``logs[i]`` is the dict of epoch ``epoch[i]``; entries that callbacks add to it at the end
    of the epoch appear in ``history`` too. An epoch whose loss was not finite has no ``val_``
    values, so those lists can be shorter (such an epoch always ends training).
    """

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.logs: list[dict[str, float]] = []

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        """Append one epoch's logs (kept by reference)."""
        self.epoch.append(epoch)
        self.logs.append(logs)

    @property
    def history(self) -> dict[str, list[float]]:
        """Every key's values, epoch by epoch, in order of first appearance."""
        values: dict[str, list[float]] = {}
        for logs in self.logs:
            for key, value in logs.items():
                values.setdefault(key, []).append(value)
        return values

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History({len(self.epoch)} epochs: {keys})"


class Sequential:
    """A linear stack of layers on one device.

    ``device`` is resolved when the model is created (see :mod:`xpnn.device`); ``dtype`` is
    ``"float32"`` (default) or ``"float64"``; ``seed`` makes the initial weights reproducible,
    bit for bit on every device.
    """

    def __init__(
        self,
        layers: Iterable[Layer] | None = None,
        *,
        device: DeviceLike | None = None,
        dtype: str = "float32",
        seed: int | None = None,
        name: str = "sequential",
    ) -> None:
        if dtype not in FLOAT_DTYPES:
            raise DTypeError(f"model dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        self.backend: Backend = get_backend(device)
        self.dtype = dtype
        self.seed = seed
        self.name = name
        self.layers: list[Layer] = []
        self.input_shape: tuple[int, ...] | None = None
        self.loss: losses_module.Loss | None = None
        self.optimizer: optimizers_module.Optimizer | None = None
        self.metrics: list[metrics_module.Metric] = []
        #: Set by a callback to end ``fit`` after the current batch.
        self.stop_training = False
        # where the last (or current) fit is, and its History: what checkpoints record
        self._fit_position: checkpoint_module.TrainingPosition | None = None
        self._fit_history: History | None = None
        for layer in layers or ():
            self.add(layer)

    # -- structure ---------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer (before the model is built); its name is made unique."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a Layer, got {type(layer).__name__}")
        if self.built:
            raise NotReadyError(f"model '{self.name}' is already built; add layers before "
                                "building, fitting or predicting")
        if layer.built:
            raise NotReadyError(f"layer '{layer.name}' is already built (layers cannot be "
                                "shared between models)")
        taken = {existing.name for existing in self.layers}
        base, suffix = layer.name, 1
        while layer.name in taken:
            layer.name = f"{base}_{suffix}"
            suffix += 1
        self.layers.append(layer)

    @property
    def device(self) -> Any:
        """The model's :class:`~xpnn.device.Device`."""
        return self.backend.device

    @property
    def built(self) -> bool:
        """Whether the layers have been built (by ``build`` or the first data seen)."""
        return self.input_shape is not None

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The output shape without the batch axis."""
        self._require_built()
        return self.layers[-1].output_shape

    def build(self, input_shape: Sequence[int]) -> None:
        """Build every layer for inputs of ``input_shape`` (no batch axis)."""
        if not self.layers:
            raise NotReadyError(f"model '{self.name}' has no layers")
        shape = tuple(input_shape)
        if not shape or not all(isinstance(n, int | np.integer) and n > 0 for n in shape):
            raise ShapeError(f"model '{self.name}': input_shape must be positive integers "
                             f"without the batch axis, e.g. (64,), received {input_shape!r}")
        rng = np.random.default_rng(self.seed)
        for index, layer in enumerate(self.layers):
            layer.needs_input_grad = index > 0
            following = self.layers[index + 1] if index + 1 < len(self.layers) else None
            noise_seed = (None if self.seed is None else
                          int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0]))
            layer.build(shape, BuildContext(self.backend, self.dtype, rng, following,
                                            noise_seed))
            shape = layer.output_shape
        self.input_shape = tuple(int(n) for n in input_shape)
        if self.optimizer is not None:
            self.optimizer.build(self.parameters(), self.backend)

    def compile(
        self,
        loss: str | losses_module.Loss,
        optimizer: str | optimizers_module.Optimizer = "adam",
        metrics: Sequence[str | metrics_module.Metric] = (),
    ) -> None:
        """Choose the loss, the optimizer and the metrics reported by fit / evaluate."""
        self.loss = losses_module.get(loss)
        self.optimizer = optimizers_module.get(optimizer)
        self.metrics = [metrics_module.get(spec, self.loss) for spec in metrics]
        if self.built:
            self.optimizer.build(self.parameters(), self.backend)
        self.stop_training = False

    # -- parameters --------------------------------------------------------------------------
    def parameters(self) -> list[Parameter]:
        """All parameters, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def trainable_parameters(self) -> list[Parameter]:
        """The parameters the optimizer updates (see ``Layer.trainable_parameters``)."""
        return [p for layer in self.layers for p in layer.trainable_parameters()]

    def count_params(self) -> int:
        """The number of scalars in all parameters."""
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        """Host (NumPy) copies of all parameters (running statistics included), layer by
        layer."""
        return [self.backend.to_host(p.value) for p in self.parameters()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Replace all parameters from host arrays (as returned by ``get_weights``)."""
        params = self.parameters()
        if len(weights) != len(params):
            raise ShapeError(f"model '{self.name}' has {len(params)} parameter arrays, "
                             f"received {len(weights)}")
        for param, value in zip(params, weights, strict=True):
            value = np.asarray(value)
            if value.shape != param.shape:
                raise ShapeError(f"parameter '{param.name}' has shape {param.shape}, "
                                 f"received {value.shape}")
            # an array of its own: parameters are updated in place, and the NumPy backend's
            # asarray would otherwise hand the caller's array to the optimizer
            param.value = self.backend.xp.asarray(
                self.backend.asarray(value, dtype=self.dtype), copy=True)

    def clone(self) -> Sequential:
        """A new, uncompiled model with the same layers (from their configs), device, dtype,
        seed and, if this one is built, the same weights. Nothing is shared."""
        twin = Sequential.from_config(self.get_config(), device=self.device)
        if self.built:
            twin.set_weights(self.get_weights())
        return twin

    @classmethod
    def from_config(cls, config: dict[str, Any], device: DeviceLike | None = None
                    ) -> Sequential:
        """A new model from :meth:`get_config` (built if the config has an input shape),
        with freshly initialised weights, on ``device``."""
        layers = [config_module.deserialize(spec, Layer, "layer") for spec in config["layers"]]
        model = cls(layers, device=device, dtype=config["dtype"], seed=config.get("seed"),
                    name=config["name"])
        if config.get("input_shape"):
            model.build(tuple(config["input_shape"]))
        return model

    @property
    def fit_position(self) -> checkpoint_module.TrainingPosition | None:
        """Where the current or last ``fit`` is: ``epoch`` (the epoch in progress, or the
        next one) and ``batch`` (batches done in it; 0 between epochs). None before any
        fit."""
        return self._fit_position

    # -- files -------------------------------------------------------------------------------
    def save(self, path: Any, *, include_optimizer: bool = True) -> None:
        """Write the model to ``path`` (see :mod:`xpnn.checkpoint`): architecture,
        parameters, and compile settings with the optimizer state; ``xpnn.load`` reads it.
        The write is atomic."""
        checkpoint_module.save_model(self, path, include_optimizer)

    def save_weights(self, path: Any) -> None:
        """Write the parameters alone to ``path`` (atomically)."""
        checkpoint_module.save_weights(self, path)

    def load_weights(self, path: Any) -> None:
        """Set the parameters from an xpnn file, matched by name and shape."""
        checkpoint_module.load_weights(self, path)

    def export(self, path: Any, *, format: str | None = None, **options: Any) -> None:
        """Write the model for inference outside xpnn, as ONNX (the one format: a ``.onnx``
        path or ``format="onnx"``); ``options`` (``opset``, ``dtype``, ``dynamic_time``) go
        to :func:`xpnn.onnx.export`. The model is not changed."""
        from xpnn import onnx as onnx_export

        onnx_export.check_format(path, format)
        onnx_export.export(self, path, **options)

    def save_checkpoint(self, path: Any) -> None:
        """Write a resumable checkpoint of the training so far (``fit(resume_from=...)``
        continues from it); usually done by the ``ModelCheckpoint`` callback."""
        checkpoint_module.save_checkpoint(self, path)

    def to(self, device: DeviceLike) -> Sequential:
        """Move parameters and optimizer state to ``device``; returns the model."""
        backend = get_backend(device)
        for layer in self.layers:
            layer.to(backend)
        if self.optimizer is not None and self.optimizer.backend is not None:
            self.optimizer.to(backend)
        self.backend = backend
        return self

    # -- forward and backward ----------------------------------------------------------------
    def forward(self, x: Array, training: bool = False) -> Array:
        """Run the layers on a device batch (each layer checks its input)."""
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def backward(self, grad_output: Array) -> Array | None:
        """Propagate dL/dy back through the layers, filling parameter grads."""
        grad = grad_output
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def __call__(self, x: Array, training: bool = False) -> Array:
        """Forward a device batch (building the model from it if needed)."""
        if not self.built:
            self.build(tuple(x.shape[1:]))
        with self.backend.scope():
            return self.forward(x, training=training)

    # -- training and inference --------------------------------------------------------------
    def train_on_batch(self, x: Any, y: Any) -> dict[str, float]:
        """One optimizer step on one batch; returns that batch's loss and metrics."""
        self._require_compiled()
        with self.backend.scope():
            x_data = self._input_data(x)
            y_data = self._target_data(y, x_data.shape[0])
            x_batch = self._batch(x_data, slice(None))
            y_batch = self._batch(y_data, slice(None))
            loss = self._train_step(x_batch, y_batch)
            return self._batch_logs(loss)

    def test_on_batch(self, x: Any, y: Any) -> dict[str, float]:
        """Loss and metrics of one batch, without updating anything."""
        self._require_compiled()
        with self.backend.scope():
            x_data = self._input_data(x)
            y_data = self._target_data(y, x_data.shape[0])
            x_batch = self._batch(x_data, slice(None))
            y_batch = self._batch(y_data, slice(None))
            for metric in self.metrics:
                metric.reset()
            y_pred = self.forward(x_batch, training=False)
            loss = self.loss(y_pred, y_batch)
            for metric in self.metrics:
                metric.update(y_pred, y_batch)
            return self._batch_logs(loss)

    def fit(
        self,
        x: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_data: tuple[Any, Any] | None = None,
        verbose: int = 1,
        seed: int | None = None,
        callbacks: Sequence[callbacks_module.Callback] = (),
        checkpoint: Any = None,
        resume_from: Any = None,
    ) -> History:
        """Train until ``epochs`` epochs are done, in mini-batches of ``batch_size``.

        The batch order is drawn from ``seed`` (fresh entropy if None). Metrics are averaged
        over each epoch's batches as the weights change; ``validation_data`` is evaluated at
        the end of each epoch. ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch.
        ``callbacks`` (see :mod:`xpnn.callbacks`) are called around epochs and batches; one
        may end training early by setting ``model.stop_training``. The History holds each
        epoch's loss (with the L2 term when weight decay is on), metrics and learning rate.

        ``checkpoint``: a path where a resumable checkpoint is written (atomically) after
        every epoch (a ``ModelCheckpoint`` callback gives more control). ``resume_from``: a
        checkpoint to continue from: parameters, optimizer state, generators, History and the
        position (epoch and batch) are restored, and training goes on until ``epochs`` epochs
        are done in all (``seed`` is then ignored: the batch order continues from the
        checkpoint). The returned History holds the earlier epochs too.

        Raises :class:`~xpnn.errors.NonFiniteError` naming the epoch and the batch if the
        loss becomes NaN or infinite (unless a callback stopped training on it).
        """
        self._require_compiled()
        epochs = checks.integer(f"model '{self.name}'", "epochs", epochs, 0)
        batch_size = checks.integer(f"model '{self.name}'", "batch_size", batch_size, 1)
        rng = np.random.default_rng(seed)
        hooks = list(callbacks)
        if checkpoint is not None:
            hooks.append(callbacks_module.ModelCheckpoint(checkpoint))
        with self.backend.scope():
            x_data = self._input_data(x)
            y_data = self._target_data(y, x_data.shape[0])
            if validation_data is not None:
                x_val = self._input_data(validation_data[0], role="validation x")
                y_val = self._target_data(validation_data[1], x_val.shape[0],
                                          role="validation y")
            num_samples = x_data.shape[0]
            steps = math.ceil(num_samples / batch_size)
            epoch_loss = metrics_module.Mean("loss")
            accumulators = [epoch_loss, *self.metrics]
            if resume_from is not None:
                position, history = checkpoint_module.restore_checkpoint(self, resume_from)
                position.check_compatible(num_samples, batch_size, shuffle, resume_from)
                rng.bit_generator.state = position.epoch_start_rng_state
            else:
                position = checkpoint_module.TrainingPosition()
                history = History()
            position.num_samples, position.batch_size, position.shuffle = (
                num_samples, batch_size, shuffle)
            position.live_accumulators = accumulators
            self._fit_position, self._fit_history = position, history
            hooks_list = callbacks_module.CallbackList(hooks, self)
            self.stop_training = False
            hooks_list.on_train_begin({})
            for epoch in range(position.epoch, epochs):
                # the batch order of this epoch is drawn from this state (again on resume)
                position.epoch_start_rng_state = rng.bit_generator.state
                if position.batch == 0:  # a fresh epoch, not one resumed half-way
                    for accumulator in accumulators:
                        accumulator.reset()
                else:
                    for accumulator, state in zip(accumulators, position.accumulators,
                                                  strict=True):
                        accumulator.set_state(state)
                hooks_list.on_epoch_begin(epoch, {})
                params = self.trainable_parameters()  # a callback may have frozen layers
                progress = ProgressBar(steps, epoch, epochs, verbose)
                batch_losses = {}
                order = list(batch_indices(num_samples, batch_size, shuffle=shuffle, rng=rng))
                for step in range(position.batch, steps):
                    indices = order[step]
                    hooks_list.on_batch_begin(step, {"size": len(indices)})
                    x_batch = self._batch(x_data, indices)
                    y_batch = self._batch(y_data, indices)
                    loss = self._train_step(x_batch, y_batch, params)
                    epoch_loss.add(loss, len(indices))
                    batch_losses[step] = loss
                    position.batch = step + 1
                    progress.update(step + 1, lambda: self._epoch_logs(epoch_loss))
                    batch_logs = {"size": len(indices)}
                    if hooks_list.wants_batch_loss:
                        batch_logs["loss"] = float(loss)
                    hooks_list.on_batch_end(step, batch_logs)
                    if self.stop_training:
                        break
                logs = self._epoch_logs(epoch_loss)
                if not math.isfinite(logs["loss"]) and not self.stop_training:
                    raise _non_finite_loss(batch_losses, epoch, steps)
                if validation_data is not None and math.isfinite(logs["loss"]):
                    val_logs = self._evaluate_data(x_val, y_val, max(batch_size, 256))
                    logs.update({f"val_{key}": value for key, value in val_logs.items()})
                logs["learning_rate"] = self.optimizer.learning_rate
                history.record(epoch, logs)
                if position.batch == steps:  # complete, not interrupted by a callback
                    position.epoch, position.batch = epoch + 1, 0
                    position.epoch_start_rng_state = rng.bit_generator.state
                progress.finish(logs)
                hooks_list.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            hooks_list.on_train_end({})
        return history

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 256) -> dict[str, float]:
        """The loss and metrics over (x, y), as a dict of floats."""
        self._require_compiled()
        batch_size = checks.integer(f"model '{self.name}'", "batch_size", batch_size, 1)
        with self.backend.scope():
            x_data = self._input_data(x)
            y_data = self._target_data(y, x_data.shape[0])
            return self._evaluate_data(x_data, y_data, batch_size)

    def predict(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """The model's outputs for ``x`` as a NumPy array (inference mode)."""
        batch_size = checks.integer(f"model '{self.name}'", "batch_size", batch_size, 1)
        with self.backend.scope():
            x_data = self._input_data(x)
            outputs = [
                self.backend.to_host(self.forward(self._batch(x_data, indices), training=False))
                for indices in batch_indices(x_data.shape[0], batch_size, shuffle=False)
            ]
        return np.concatenate(outputs, axis=0)

    def layer_outputs(self, x: Any) -> dict[str, np.ndarray]:
        """Every layer's output for the inputs ``x`` in inference mode, as NumPy arrays keyed
        by layer name in layer order (for looking inside a network: activation histograms,
        dead units)."""
        with self.backend.scope():
            signal = self._batch(self._input_data(x), slice(None))
            outputs = {}
            for layer in self.layers:
                signal = layer(signal, training=False)
                outputs[layer.name] = self.backend.to_host(signal)
        return outputs

    # -- internals ---------------------------------------------------------------------------
    def _train_step(self, x_batch: Array, y_batch: Array,
                    params: list[Parameter] | None = None) -> Array:
        """Forward, backward and one optimizer step of ``params`` (default: the trainable
        parameters); returns the loss including the L2 term of the weights the step started
        from."""
        y_pred = self.forward(x_batch, training=True)
        loss = self.loss(y_pred, y_batch)
        self.backward(self.loss.backward())
        if params is None:
            params = self.trainable_parameters()
        penalty = self.optimizer.penalty(params)
        self.optimizer.step(params)
        for metric in self.metrics:
            metric.update(y_pred, y_batch)
        return loss if penalty is None else loss + penalty

    def _evaluate_data(self, x_data: Array, y_data: Array, batch_size: int) -> dict[str, float]:
        total_loss = metrics_module.Mean("loss")
        for metric in self.metrics:
            metric.reset()
        for indices in batch_indices(x_data.shape[0], batch_size, shuffle=False):
            x_batch = self._batch(x_data, indices)
            y_batch = self._batch(y_data, indices)
            y_pred = self.forward(x_batch, training=False)
            total_loss.add(self.loss(y_pred, y_batch), len(indices))
            for metric in self.metrics:
                metric.update(y_pred, y_batch)
        logs = self._epoch_logs(total_loss)
        penalty = self.optimizer.penalty(self.trainable_parameters())
        if penalty is not None:
            logs["loss"] += float(penalty)
        return logs

    def _epoch_logs(self, loss: metrics_module.Mean) -> dict[str, float]:
        return {"loss": loss.result(), **{m.name: m.result() for m in self.metrics}}

    def _batch_logs(self, loss: Array) -> dict[str, float]:
        logs = {"loss": float(loss)}
        for metric in self.metrics:
            logs[metric.name] = metric.result()
            metric.reset()
        return logs

    def _batch(self, data: Array, indices: np.ndarray | slice) -> Array:
        """One mini-batch on the device: host rows are cast already, so this is one copy."""
        if isinstance(data, np.ndarray) and not self.backend.owns(data):
            return self.backend.asarray(data[indices])
        if isinstance(data, np.ndarray):  # the NumPy backend: host arrays are device arrays
            return np.ascontiguousarray(data[indices])
        if isinstance(indices, slice):
            return data
        return self.backend.xp.take(data, self.backend.asarray(indices), axis=0)

    def _input_data(self, x: Any, role: str = "x") -> Array:
        """Check a whole input array once; return it cast to the model dtype."""
        data = self._as_array(x, role)
        where = f"model '{self.name}'"
        if data.ndim < 2:
            raise ShapeError(f"{where}: {role} must have shape (samples, features...), received "
                             f"{tuple(data.shape)}; for one sample use x[None, ...]")
        if data.shape[0] == 0:
            raise ShapeError(f"{where}: {role} is empty (shape {tuple(data.shape)})")
        if not self.built:
            self.build(tuple(int(n) for n in data.shape[1:]))
        if tuple(data.shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise ShapeError(f"{where} expects {role} of shape (samples, {expected}), received "
                             f"{tuple(data.shape)}")
        xp = namespace(data)
        if not xp.isdtype(data.dtype, ("real floating", "integral", "bool")):
            raise DTypeError(f"{where}: {role} must hold real numbers, received dtype "
                             f"{data.dtype}")
        # token ids for a first layer that takes them (Embedding) stay integers
        ids = self.layers[0].integer_input and xp.isdtype(data.dtype, "integral")
        data = self._cast(data, "int64" if ids else self.dtype)
        if not ids and not _all_finite(xp, data):
            bad = int(xp.sum(xp.astype(xp.logical_not(xp.isfinite(data)), xp.int64)))
            raise NonFiniteError(f"{where}: {role} contains {bad} NaN or infinite values")
        return data

    def _target_data(self, y: Any, num_samples: int, role: str = "y") -> Array:
        """Check a whole target array once against the loss; return it in its final dtype."""
        data = self._as_array(y, role)
        where = f"model '{self.name}'"
        if data.ndim == 0 or data.shape[0] != num_samples:
            received = data.shape[0] if data.ndim else "a scalar"
            raise ShapeError(f"{where}: x has {num_samples} samples but {role} has {received}")
        xp = namespace(data)
        pred_shape = (num_samples, *self.output_shape)
        if xp.isdtype(data.dtype, "integral") and self.loss.accepts_class_labels:
            data = self._cast(data, "int64")
        elif xp.isdtype(data.dtype, ("real floating", "integral", "bool")):
            data = self._cast(data, self.dtype)
            if data.ndim == 1 and pred_shape[1:] == (1,):
                data = xp.reshape(data, (num_samples, 1))  # explicit: (N,) targets, (N, 1) out
        else:
            raise DTypeError(f"{where}: {role} must hold real numbers or integer labels, "
                             f"received dtype {data.dtype}")
        try:
            self.loss.check_targets(pred_shape, data)
        except ShapeError as error:
            raise ShapeError(f"{where}: {role} does not fit the output: {error}") from None
        return data

    def _as_array(self, data: Any, role: str) -> Array:
        if self.backend.owns(data):
            return data
        from xpnn.backends import backend_type_of

        elsewhere = backend_type_of(data)
        if elsewhere is not None and not isinstance(data, np.ndarray):
            raise DeviceError(f"model '{self.name}' is on {self.device} but {role} is "
                              f"{_describe_array(data)}: pass NumPy arrays, arrays on "
                              f"{self.device}, or move the model with model.to()")
        return np.asarray(data)

    def _cast(self, data: Array, dtype: str) -> Array:
        if isinstance(data, np.ndarray):
            return data if data.dtype == np.dtype(dtype) else data.astype(dtype)
        target = self.backend.dtype(dtype)
        return data if data.dtype == target else self.backend.xp.astype(data, target)

    def _require_built(self) -> None:
        if not self.built:
            raise NotReadyError(f"model '{self.name}' is not built yet: call build(input_shape)"
                                " or pass it data")

    def _require_compiled(self) -> None:
        if self.loss is None or self.optimizer is None:
            raise NotReadyError(f"model '{self.name}' is not compiled: call "
                                "compile(loss=..., optimizer=...) first")

    # -- description -------------------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], None] | None = print) -> str:
        """A table of layers, output shapes and parameter counts, with totals.

        Printed with ``print_fn`` (None: not printed) and returned.
        """
        self._require_built()
        rows = [(f"{layer.name} ({type(layer).__name__})",
                 str((None, *layer.output_shape)), f"{layer.count_params():,}")
                for layer in self.layers]
        header = ("Layer (type)", "Output shape", "Param #")
        widths = [max(len(row[i]) for row in [header, *rows]) + 3 for i in range(3)]
        line = "=" * sum(widths)

        def fmt(row: tuple[str, str, str]) -> str:
            return (row[0].ljust(widths[0]) + row[1].ljust(widths[1])
                    + row[2].rjust(widths[2] - 3))

        total = self.count_params()
        trainable = sum(p.size for p in self.trainable_parameters())
        text = "\n".join([
            f"Model: '{self.name}' on {self.device} ({self.dtype})", line, fmt(header), line,
            *map(fmt, rows), line,
            f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
        ])
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-compatible values."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                       for layer in self.layers],
        }

    def __repr__(self) -> str:
        return (f"Sequential(name={self.name!r}, layers={len(self.layers)}, "
                f"device={self.device}, dtype={self.dtype})")


def _all_finite(xp: Any, data: Array) -> bool:
    """Whether every entry of a floating array is finite, by one sum first: it reads the data
    once and allocates nothing (``isfinite`` writes a boolean array as large as the data),
    and a sum is finite only if every term is. Only a sum that is not (bad entries, or a
    sum of finite entries that overflows) leads to the entry-by-entry check."""
    with np.errstate(over="ignore", invalid="ignore"):  # NumPy underneath: no warnings
        total = float(xp.sum(data))
    return math.isfinite(total) or bool(xp.all(xp.isfinite(data)))


def _non_finite_loss(batch_losses: dict[int, Any], epoch: int, steps: int) -> NonFiniteError:
    """The error for an epoch whose loss sum is not finite, naming the first bad batch."""
    bad = next((step for step, value in batch_losses.items()
                if not math.isfinite(float(value))), None)
    where = f"batch {bad + 1} of {steps}" if bad is not None else "a batch before the resume"
    value = float(batch_losses[bad]) if bad is not None else math.nan
    return NonFiniteError(
        f"the training loss became {value} in epoch {epoch + 1}, {where}: lower the learning "
        "rate, clip the gradients, check the inputs, or use a loss on logits")
