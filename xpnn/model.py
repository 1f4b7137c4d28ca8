"""Models: a network's structure — its layers, the graph of their calls, its device, dtype,
seed and parameters — and what is done to the whole (compile, move, copy, save, describe).

- ``Model(inputs, outputs)`` is any graph of layer calls (the functional API): branches,
  residual connections, layers shared by several calls, several inputs and outputs::

      x = xpnn.Input((64,))
      h = xpnn.Dense(64, name="hidden")(x)
      y = xpnn.Dense(10)(xpnn.Add()([x, xpnn.ReLU()(h)]))
      model = xpnn.Model(x, y)

- ``Sequential([...])`` is the chain of its layers, a ``Model`` whose graph it builds for
  you from the input shape (given to ``build`` or read from the first data).

The training and inference verbs (``fit``, ``evaluate``, ``predict``, ...) are
:class:`~xpnn.training.Trainer`'s; the file contents are :mod:`xpnn.checkpoint`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from xpnn import checkpoint as checkpoint_module
from xpnn import config as config_module
from xpnn import functional
from xpnn import losses as losses_module
from xpnn import metrics as metrics_module
from xpnn import onnx as onnx_export
from xpnn import optimizers as optimizers_module
from xpnn.backends import backend_type_of
from xpnn.backends.base import FLOAT_DTYPES, Backend
from xpnn.checkpoint import Snapshot
from xpnn.device import DeviceLike, get_backend
from xpnn.errors import (
    DeviceError,
    DTypeError,
    FileFormatError,
    GraphError,
    MissingKeyError,
    NotReadyError,
    ShapeError,
    warn,
)
from xpnn.graph import Graph, Input, SymbolicTensor
from xpnn.history import History, TrainingPosition
from xpnn.inputs import (
    INTEGER_DTYPES,
    InputSpec,
    OutputSpec,
    as_array,
    by_position,
    image_layout_hint,
)
from xpnn.layers import windows
from xpnn.layers.base import BuildContext, Layer, Parameter, batch_shape, describe_array
from xpnn.layers.dense import Dense
from xpnn.names import unique_name
from xpnn.saving import PathLike
from xpnn.training import Trainer

Array = Any


class Model(Trainer):
    """A graph of layer calls from ``inputs`` to ``outputs`` on one device.

    ``inputs`` and ``outputs`` are symbolic tensors (one, or a list): :func:`xpnn.Input` and
    the results of calling layers on them. A model with a list of inputs takes a list of
    arrays (or a dict keyed by input name) in ``fit``/``predict``; with a list of outputs it
    takes one loss per output and ``predict`` returns a list. ``device`` is resolved when the
    model is created (see :mod:`xpnn.device`); ``dtype`` is ``"float32"`` (default) or
    ``"float64"``; ``seed`` makes the initial weights reproducible, bit for bit on every
    device. The layers are built here, in the order they were called.
    """

    def __init__(self, inputs: SymbolicTensor | Sequence[SymbolicTensor],
                 outputs: SymbolicTensor | Sequence[SymbolicTensor], *,
                 name: str | None = None, device: DeviceLike | None = None,
                 dtype: str = "float32", seed: int | None = None) -> None:
        self._setup(name or unique_name("model"), device, dtype, seed)
        self._single_input = not isinstance(inputs, list | tuple)
        self._single_output = not isinstance(outputs, list | tuple)
        self._attach(Graph(_as_list(inputs), _as_list(outputs), self.name))

    def _setup(self, name: str, device: DeviceLike | None, dtype: str,
               seed: int | None) -> None:
        """The state every model has before it has a graph."""
        if dtype not in FLOAT_DTYPES:
            raise DTypeError(f"model dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        self.backend: Backend = get_backend(device)
        self.dtype = dtype
        self.seed = seed
        self.name = name
        self.graph: Graph | None = None
        self.layers: list[Layer] = []
        self.loss: Any = None
        self.optimizer: optimizers_module.Optimizer | None = None
        self.output_losses: list[losses_module.Loss] = []
        self.loss_weights: list[float] = []
        self.output_metrics: list[list[metrics_module.Metric]] = []
        #: Set by a callback to end ``fit`` after the current batch.
        self.stop_training = False
        self._fit_position: TrainingPosition | None = None
        self._fit_history: History | None = None

    def _attach(self, graph: Graph) -> None:
        """Take ``graph`` as the model's structure and build its layers in call order."""
        self.graph = graph
        self.layers = list(graph.layers)
        self.input_specs = [InputSpec(t.name, t.shape, self._input_dtype(t))
                            for t in graph.inputs]
        self.output_specs = [OutputSpec(t.name, t.shape, _image_dense_note(t))
                             for t in graph.outputs]
        rng = np.random.default_rng(self.seed)
        for index, layer in enumerate(self.layers):
            first = next(node for node in graph.nodes if node.layer is layer)
            if layer.built:
                self._check_shared_layer(layer)
                continue
            consumers = {id(n.layer): n.layer for n in graph.nodes
                         if any(t in first.outputs for t in n.inputs)}
            following = next(iter(consumers.values())) if len(consumers) == 1 else None
            noise_seed = (None if self.seed is None else
                          int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0]))
            shape = first.input_structure([t.shape for t in first.inputs])
            layer.build(shape, BuildContext(self.backend, self.dtype, rng, following,
                                            noise_seed))
        if self.optimizer is not None:
            self.optimizer.build(self.parameters(), self.backend)
        self._warn_about_image_layouts()

    def _warn_about_image_layouts(self) -> None:
        """Warn when an image layer whose ``data_format`` was not given (channels-first by
        default) reads model inputs that look channels-last (the rule of
        :func:`xpnn.layers.windows.layout_hint`): such images are read without error as
        H channels of W×C pixels, and train badly."""
        for node in self.graph.nodes:
            layer = node.layer
            if not hasattr(layer, "data_format") or getattr(layer, "data_format_given", True):
                continue
            for tensor in node.inputs:
                hint = windows.layout_hint(layer.data_format, tensor.shape)
                if tensor.is_input and hint:
                    warn(f"model '{self.name}', layer '{layer.name}' ({type(layer).__name__}): "
                         f"{hint} (or, if that layout is meant, pass "
                         "data_format='channels_first' to the layer)")

    def _input_dtype(self, tensor: SymbolicTensor) -> str:
        """The dtype an input's arrays are cast to: its own, else integer ids when every
        layer reading it takes ids, else the model's float dtype."""
        if tensor.dtype is not None:
            if tensor.dtype not in INTEGER_DTYPES and tensor.dtype != self.dtype:
                raise DTypeError(f"model '{self.name}' is {self.dtype} but its input "
                                 f"'{tensor.name}' is declared {tensor.dtype}")
            return tensor.dtype
        readers = [node.layer for node in self.graph.nodes
                   if any(t is tensor for t in node.inputs)]
        takes_ids = [layer.integer_input for layer in readers]
        if all(takes_ids):
            return "int64"
        if any(takes_ids):
            raise GraphError(f"model '{self.name}': input '{tensor.name}' feeds layers that "
                             "take token ids and layers that take floats; give it a dtype")
        return self.dtype

    def _check_shared_layer(self, layer: Layer) -> None:
        """A layer built elsewhere (shared with another model) must live on this model's
        device in its dtype."""
        if layer.backend is not self.backend or layer.dtype_name != self.dtype:
            raise GraphError(f"layer '{layer.name}' is already built on {layer.backend.device} "
                             f"in {layer.dtype_name}, but model '{self.name}' is on "
                             f"{self.device} in {self.dtype}: share layers only between "
                             "models of one device and dtype")

    # -- structure -----------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        """The model's :class:`~xpnn.device.Device`."""
        return self.backend.device

    @property
    def built(self) -> bool:
        """Whether the layers have been built (a ``Model`` always is; a ``Sequential`` by
        ``build`` or the first data seen)."""
        return self.graph is not None

    @property
    def inputs(self) -> list[SymbolicTensor]:
        """The symbolic input tensors."""
        self._require_built()
        return list(self.graph.inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        """The symbolic output tensors."""
        self._require_built()
        return list(self.graph.outputs)

    @property
    def input_names(self) -> list[str]:
        """The inputs' names: the keys of a dict of inputs."""
        self._require_built()
        return [spec.name for spec in self.input_specs]

    @property
    def output_names(self) -> list[str]:
        """The outputs' names: the keys of a dict of targets, and of per-output losses and
        metrics in the logs (``<name>_loss``)."""
        self._require_built()
        return [spec.name for spec in self.output_specs]

    @property
    def input_shape(self) -> tuple[int, ...] | list[tuple[int, ...]] | None:
        """The input shape without the batch axis (a list with several inputs; None before
        a Sequential is built)."""
        if not self.built:
            return None
        shapes = [spec.shape for spec in self.input_specs]
        return shapes[0] if self._single_input else shapes

    @property
    def output_shape(self) -> tuple[int, ...] | list[tuple[int, ...]]:
        """The output shape without the batch axis (a list with several outputs)."""
        self._require_built()
        shapes = [spec.shape for spec in self.output_specs]
        return shapes[0] if self._single_output else shapes

    def get_layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise MissingKeyError(f"model '{self.name}' has no layer '{name}'; its layers are "
                              f"{[layer.name for layer in self.layers]}")

    def compile(
        self,
        loss: Any,
        optimizer: str | optimizers_module.Optimizer = "adam",
        metrics: Any = (),
        loss_weights: Sequence[float] | dict[str, float] | None = None,
    ) -> None:
        """Choose the loss, the optimizer and the metrics reported by fit / evaluate.

        With several outputs, ``loss`` is one loss for every output, a list (one per output,
        in order) or a dict keyed by output name; the training loss is Σ_k w_k L_k with the
        ``loss_weights`` w_k (default 1). ``metrics`` is a list applied to every output, or a
        dict (or a list of lists) per output; their logs are named ``<output>_<metric>``.
        """
        count = self._output_count()
        names = self.output_names if self.built else [self.layers[-1].name]
        losses = [losses_module.get(spec)
                  for spec in _per_output(loss, names, count, "loss", self.name)]
        weights = (list(map(float, _per_output(loss_weights, names, count, "loss_weights",
                                               self.name, broadcast=False)))
                   if loss_weights is not None else [1.0] * count)
        metric_specs = _metrics_per_output(metrics, names, count, self.name)
        self.output_losses, self.loss_weights = losses, weights
        self.loss = losses[0] if count == 1 else list(losses)
        self.optimizer = optimizers_module.get(optimizer)
        self.output_metrics = [
            [_fresh(metrics_module.get(spec, losses[k]), k) for spec in specs]
            for k, specs in enumerate(metric_specs)]
        if self.built:
            self.optimizer.build(self.parameters(), self.backend)
        self.stop_training = False

    def _output_count(self) -> int:
        return len(self.output_specs) if self.built else 1

    @property
    def metrics(self) -> list[metrics_module.Metric]:
        """Every compiled metric, output by output."""
        return [metric for metrics in self.output_metrics for metric in metrics]

    # -- parameters --------------------------------------------------------------------------
    def parameters(self) -> list[Parameter]:
        """All parameters, layer by layer (a shared layer's once)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def trainable_parameters(self) -> list[Parameter]:
        """The parameters the optimizer updates (see ``Layer.trainable_parameters``)."""
        return [p for layer in self.layers for p in layer.trainable_parameters()]

    def count_params(self) -> int:
        """The number of scalars in all parameters."""
        return sum(layer.count_params() for layer in self.layers)

    @property
    def weights(self) -> list[Parameter]:
        """Keras's ``model.weights``: every parameter, as :meth:`parameters` (each a
        :class:`~xpnn.layers.Parameter` — ``.name``, ``.shape``, ``.value`` on the device,
        ``.grad`` — where Keras gives variables; ``get_weights()`` gives NumPy copies)."""
        return self.parameters()

    @property
    def trainable_weights(self) -> list[Parameter]:
        """Keras's ``model.trainable_weights``: the parameters the optimizer updates, as
        :meth:`trainable_parameters` (none of a frozen layer, no running statistics)."""
        return self.trainable_parameters()

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        """Keras's ``model.non_trainable_weights``: the other parameters (BatchNorm's
        running statistics, every parameter of a frozen layer), in model order."""
        trainable = {id(p) for p in self.trainable_parameters()}
        return [p for p in self.parameters() if id(p) not in trainable]

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
        for param, value in zip(params, weights, strict=True):
            param.value = self.backend.to_device(value, self.dtype)

    def clone(self) -> Model:
        """A new, uncompiled model with the same architecture (from its config), device,
        dtype, seed and, if this one is built, the same weights. Nothing is shared."""
        twin = model_from_config(self.get_config(), device=self.device)
        if self.built:
            twin.set_weights(self.get_weights())
        return twin

    @classmethod
    def from_config(cls, config: dict[str, Any], device: DeviceLike | None = None) -> Model:
        """A new model from :meth:`get_config` with freshly initialised weights, on
        ``device``."""
        return model_from_config(config, device)

    @property
    def fit_position(self) -> TrainingPosition | None:
        """Where the current or last ``fit`` is: ``epoch`` (the epoch in progress, or the
        next one) and ``batch`` (batches done in it; 0 between epochs). None before any
        fit."""
        return self._fit_position

    @property
    def fit_history(self) -> History | None:
        """The History of the current or last ``fit`` (None before any fit)."""
        return self._fit_history

    # -- probabilities and classes ----------------------------------------------------------
    def predict_proba(self, x: Any, *, batch_size: int = 256) -> np.ndarray | list[np.ndarray]:
        """Class probabilities for ``x``: ``predict``'s outputs read as the compiled loss
        reads them. Logits of a categorical loss (``softmax_crossentropy``,
        ``from_logits=True``) become softmax(z) over the last axis; logits of a binary loss
        become σ(z); outputs of a loss on probabilities (after a Softmax or Sigmoid) are
        returned as they are. NumPy arrays, a list with several outputs.

        Raises :class:`~xpnn.errors.NotReadyError` before ``compile`` (the loss says what
        the outputs are) and ValueError for a regression loss."""
        outputs = self.predict(x, batch_size=batch_size)
        results = [self._probabilities(loss, output) for loss, output in
                   zip(self._classification_losses("predict_proba"), _as_list(outputs),
                       strict=True)]
        return results[0] if self._single_output else results

    def predict_classes(self, x: Any, *, batch_size: int = 256
                        ) -> np.ndarray | list[np.ndarray]:
        """Predicted classes for ``x`` as int64 NumPy arrays: the arg-max over the last axis
        for a categorical loss (shape of the output without that axis), and
        [probability > 0.5] for a binary loss (the output's shape), from
        :meth:`predict_proba` (Keras 2's ``predict_classes``, which Keras 3 removed in
        favour of ``np.argmax(model.predict(x), axis=-1)``)."""
        probabilities = _as_list(self.predict_proba(x, batch_size=batch_size))
        results = [np.argmax(p, axis=-1) if loss.task == "categorical"
                   else (p > 0.5).astype(np.int64)
                   for loss, p in zip(self.output_losses, probabilities, strict=True)]
        return results[0] if self._single_output else results

    def _classification_losses(self, verb: str) -> list[losses_module.Loss]:
        """The compiled losses, each of which must be a classification loss."""
        if not self.output_losses:
            raise NotReadyError(f"model '{self.name}': {verb} reads the outputs as the loss "
                                "does (logits or probabilities): compile the model first")
        for loss in self.output_losses:
            if loss.task is None:
                raise ValueError(f"model '{self.name}': {verb} needs a classification loss, "
                                 f"but '{loss.name}' is a regression loss: use predict")
        return self.output_losses

    @staticmethod
    def _probabilities(loss: losses_module.Loss, output: np.ndarray) -> np.ndarray:
        if not loss.from_logits:
            return output
        xp = functional.namespace(output)
        if loss.task == "categorical":
            return np.asarray(functional.softmax(xp, output, axis=-1))
        return np.asarray(functional.sigmoid(xp, output))

    # -- files -------------------------------------------------------------------------------
    def save(self, path: PathLike, *, include_optimizer: bool = True) -> None:
        """Write the model to ``path`` (see :mod:`xpnn.checkpoint`): architecture,
        parameters, and compile settings with the optimizer state; ``xpnn.load`` reads it.
        The write is atomic."""
        self._require_built()
        checkpoint_module.write(path, self._snapshot("model", include_optimizer))

    def save_weights(self, path: PathLike) -> None:
        """Write the parameters alone to ``path`` (atomically)."""
        self._require_built()
        checkpoint_module.write(path, self._snapshot("weights"))

    def load_weights(self, path: PathLike) -> None:
        """Set the parameters from an xpnn file of a model of the same architecture,
        matched in order (by position and shape, not by name)."""
        snapshot = checkpoint_module.read(path)
        if not self.built:
            self._build_from_config_shape(snapshot.config, path)
        self._restore_weights(snapshot, path)

    def export(self, path: PathLike, *, format: str | None = None, **options: Any) -> None:
        """Write the model for inference outside xpnn, as ONNX (the one format: a ``.onnx``
        path or ``format="onnx"``); ``options`` (``opset``, ``dtype``, ``dynamic_time``) go
        to :func:`xpnn.onnx.export`. The model is not changed."""
        onnx_export.check_format(path, format)
        onnx_export.export(self, path, **options)

    def save_checkpoint(self, path: PathLike) -> None:
        """Write a resumable checkpoint of the training so far (``fit(resume_from=...)``
        continues from it); usually done by the ``ModelCheckpoint`` callback.

        During a distributed ``fit`` every rank must call it (callbacks run on every rank):
        the ranks send rank 0 their part of the position, and rank 0 alone writes the file
        (see :mod:`xpnn.distributed`)."""
        self._require_built()
        position, history = self.fit_position, self.fit_history
        if position is None or history is None:
            raise NotReadyError(f"model '{self.name}' has not been trained with fit yet: a "
                                "checkpoint records a training position; use save() "
                                "otherwise")
        if self._replicas is not None:
            position = self._replicas.checkpoint_position(self, position)
            if position is None:  # written by rank 0
                return
        snapshot = self._snapshot("checkpoint")
        # the History up to the position: an interrupted epoch is trained again on resume
        snapshot.position, snapshot.history = position, history.before(position.epoch)
        checkpoint_module.write(path, snapshot)

    def _snapshot(self, kind: str, include_optimizer: bool = True) -> Snapshot:
        """What a file of ``kind`` holds of this model."""
        snapshot = Snapshot(kind, self.get_config(),
                            [(p.name, self.backend.to_host(p.value)) for p in self.parameters()])
        if kind == "weights":
            return snapshot
        snapshot.generators = [None if layer.generator is None else layer.generator.get_state()
                               for layer in self.layers]
        if include_optimizer and self.output_losses and self.optimizer is not None:
            several = len(self.output_losses) > 1
            losses = [config_module.serialize(loss) for loss in self.output_losses]
            metrics = [[config_module.serialize(metric) for metric in output]
                       for output in self.output_metrics]
            snapshot.compile = {"loss": losses if several else losses[0],
                                "loss_weights": self.loss_weights,
                                "optimizer": config_module.serialize(self.optimizer),
                                "metrics": metrics if several else metrics[0]}
            if self.optimizer.backend is not None:
                state = self.optimizer.state_dict()
                snapshot.optimizer_state = {
                    "iterations": state["iterations"],
                    "initial_learning_rate": state["initial_learning_rate"],
                    "slots": list(self.optimizer.slots), "state": state["state"]}
        return snapshot

    def _build_from_config_shape(self, config: dict[str, Any], path: PathLike) -> None:
        raise NotReadyError(f"model '{self.name}' is not built: build it before loading "
                            f"'{path}'")

    def _restore_weights(self, snapshot: Snapshot, path: PathLike) -> dict[str, Parameter]:
        """Set every parameter from the snapshot's, matched by position and checked for
        shape; returns the file's parameter names -> this model's parameters."""
        where = f"'{path}'"
        params = self.parameters()
        if len(snapshot.weights) != len(params):
            raise ShapeError(f"{where} does not fit model '{self.name}': it holds "
                             f"{len(snapshot.weights)} parameter arrays, the model has "
                             f"{len(params)} (file: {[n for n, _ in snapshot.weights]}; "
                             f"model: {[p.name for p in params]})")
        for (name, value), param in zip(snapshot.weights, params, strict=True):
            if tuple(value.shape) != param.shape:
                raise ShapeError(f"{where}: parameter '{name}' has shape "
                                 f"{tuple(value.shape)} in the file, but model '{self.name}' "
                                 f"has {param.shape} for '{param.name}' at that position")
        self.set_weights([value for _, value in snapshot.weights])
        return {name: param for (name, _), param in zip(snapshot.weights, params, strict=True)}

    def _restore(self, snapshot: Snapshot, path: PathLike) -> None:
        """Take a file's parameters, generator positions and, if it was saved compiled, its
        compile settings and optimizer state."""
        by_name = self._restore_weights(snapshot, path)
        self._restore_generators(snapshot)
        compiled = snapshot.compile
        if not compiled:
            return
        several = isinstance(compiled["loss"], list)
        try:
            losses = [config_module.deserialize(spec, losses_module.Loss, "loss")
                      for spec in (compiled["loss"] if several else [compiled["loss"]])]
            metrics = [[config_module.deserialize(spec, metrics_module.Metric, "metric")
                        for spec in output]
                       for output in (compiled["metrics"] if several
                                      else [compiled["metrics"]])]
            self.compile(loss=losses if several else losses[0],
                         optimizer=config_module.deserialize(
                             compiled["optimizer"], optimizers_module.Optimizer, "optimizer"),
                         metrics=metrics if several else metrics[0],
                         loss_weights=compiled.get("loss_weights"))
        except (ValueError, TypeError, KeyError) as error:
            raise FileFormatError(f"'{path}': its compile settings cannot be restored: "
                                  f"{error}") from None
        self._restore_optimizer_state(snapshot, by_name, path)

    def _restore_generators(self, snapshot: Snapshot) -> None:
        for layer, state in zip(self.layers, snapshot.generators, strict=False):
            if layer.generator is not None:
                layer.generator.set_state(state)

    def _restore_optimizer_state(self, snapshot: Snapshot, by_name: dict[str, Parameter],
                                 path: PathLike) -> None:
        state = snapshot.optimizer_state
        if state is None:
            return
        unknown = [name for name in state["state"] if name not in by_name]
        if unknown:
            raise FileFormatError(f"'{path}' is corrupted: optimizer state for {unknown}, "
                                  "which are not among its parameters")
        self.optimizer.load_state_dict({
            "class": snapshot.compile["optimizer"]["class"],
            "config": snapshot.compile["optimizer"]["config"],
            "iterations": state["iterations"],
            "initial_learning_rate": state["initial_learning_rate"],
            "state": {by_name[name].name: entry for name, entry in state["state"].items()}})

    def _restore_checkpoint(self, path: PathLike) -> tuple[TrainingPosition, History]:
        """Load a checkpoint into this compiled model of the same architecture: parameters,
        optimizer state and layer generators; return the training position and History."""
        snapshot = checkpoint_module.read(path, ("checkpoint",))
        saved_class = (snapshot.compile or {}).get("optimizer", {}).get("class")
        if saved_class != type(self.optimizer).__name__:
            raise ValueError(f"'{path}' was trained with {saved_class}, but model "
                             f"'{self.name}' is compiled with {type(self.optimizer).__name__}")
        by_name = self._restore_weights(snapshot, path)
        self._restore_optimizer_state(snapshot, by_name, path)
        self._restore_generators(snapshot)
        return snapshot.position, snapshot.history

    def to(self, device: DeviceLike) -> Model:
        """Move parameters and optimizer state to ``device``; returns the model."""
        backend = get_backend(device)
        for layer in self.layers:
            layer.to(backend)
        if self.optimizer is not None and self.optimizer.backend is not None:
            self.optimizer.to(backend)
        self.backend = backend
        if self.graph is not None:
            self.graph.invalidate()
        return self

    # -- running on device arrays ------------------------------------------------------------
    def __call__(self, inputs: Any, training: bool = False) -> Any:
        """The outputs for a batch of device arrays (a list with several outputs), checking
        each input's shape, dtype and device; a Sequential builds from it if needed."""
        items = list(inputs.values()) if isinstance(inputs, dict) else _as_list(inputs)
        if any(isinstance(item, SymbolicTensor) for item in items):
            raise GraphError(f"model '{self.name}' cannot be called on symbolic tensors: "
                             "calling a model inside another graph is not supported; call "
                             "its layers (they can be shared) instead")
        self._build_from_batch(inputs)
        where = f"model '{self.name}'"
        arrays = by_position(inputs, self.input_names, where, "input")
        for spec, array in zip(self.input_specs, arrays, strict=True):
            self._check_batch_array(spec, array)
        with self.backend.scope():
            outputs, _ = self.graph.forward(arrays, training=training)
        return outputs[0] if self._single_output else outputs

    def _build_from_batch(self, inputs: Any) -> None:
        """Build from the first batch (a Sequential); a Model is always built."""

    def _check_batch_array(self, spec: InputSpec, array: Array) -> None:
        """One input of a device batch: on the model's device, of the input's shape and
        dtype."""
        where = f"model '{self.name}'"
        what = "input" if self._single_input else f"input '{spec.name}'"
        if backend_type_of(array) is None:
            raise DeviceError(
                f"{where}: model(x) takes a batch of arrays on {self.device}, but its {what} "
                f"is {describe_array(array)}; call model.predict(x), which takes lists and "
                "NumPy arrays (and returns NumPy arrays), or pass "
                f"model.backend.asarray(np.asarray(x), '{self.dtype}')")
        if not self.backend.owns(array):
            raise DeviceError(f"{where} is on {self.device} but its {what} is "
                              f"{describe_array(array)}; move the data with "
                              "model.backend.asarray() or pass NumPy arrays to fit/predict")
        if tuple(array.shape[1:]) != spec.shape or len(array.shape) != len(spec.shape) + 1:
            raise ShapeError(f"{where} expected {what} of shape {batch_shape(spec.shape)}, "
                             f"received {tuple(array.shape)}"
                             + image_layout_hint(spec.shape, tuple(array.shape[1:])))
        xp = self.backend.xp
        if spec.integer:
            if not xp.isdtype(array.dtype, ("integral", "bool")):
                raise DTypeError(f"{where}: its {what} takes integers ({spec.dtype}), "
                                 f"received dtype {self.backend.dtype_name(array.dtype)}")
        elif array.dtype != self.backend.dtype(spec.dtype):
            raise DTypeError(f"{where} expected {what} of dtype {spec.dtype}, received "
                             f"{self.backend.dtype_name(array.dtype)}")

    # -- description -------------------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], None] | None = print) -> str:
        """A table of layers, output shapes and parameter counts (and, for a graph, what
        each layer is connected to), with totals; a shared layer is listed and counted once.

        Printed with ``print_fn`` (None: not printed) and returned.
        """
        self._require_built()
        connected = not isinstance(self, Sequential)
        header = ("Layer (type)", "Output shape", "Param #", "Connected to")
        rows = []
        for layer in self.layers:
            nodes = [node for node in self.graph.nodes if node.layer is layer]
            shapes = {str([(None, *t.shape) for t in n.outputs] if n.multiple_outputs
                          else (None, *n.outputs[0].shape)) for n in nodes}
            sources = ", ".join(dict.fromkeys(t.name for n in nodes for t in n.inputs))
            rows.append((f"{layer.name} ({type(layer).__name__})", " / ".join(sorted(shapes)),
                         f"{layer.count_params():,}", sources))
        if connected:
            rows = [(f"{spec.name} (Input)", str((None, *spec.shape)), "0", "")
                    for spec in self.input_specs] + rows
        columns = 4 if connected else 3
        widths = [max(len(row[i]) for row in [header, *rows]) + 3 for i in range(columns)]
        line = "=" * sum(widths)

        def fmt(row: tuple[str, ...]) -> str:
            text = row[0].ljust(widths[0]) + row[1].ljust(widths[1]) + row[2].rjust(
                widths[2] - 3)
            return text + ("   " + row[3] if connected else "")

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
        """The architecture as JSON-compatible values: the layers, the inputs and every
        call, each input of a call named as ``["input", k]`` or ``["node", j, i]`` (output
        i of call j)."""
        self._require_built()
        layer_index = {id(layer): i for i, layer in enumerate(self.layers)}
        refs: dict[int, list[Any]] = {id(t): ["input", k] for k, t in enumerate(self.inputs)}
        nodes = []
        for j, node in enumerate(self.graph.nodes):
            nodes.append({"layer": layer_index[id(node.layer)],
                          "inputs": [refs[id(t)] for t in node.inputs],
                          "list": node.as_list})
            for i, tensor in enumerate(node.outputs):
                refs[id(tensor)] = ["node", j, i]
        return {
            "class": "Model",
            "name": self.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "layers": [config_module.serialize(layer) for layer in self.layers],
            "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
                       for t in self.inputs],
            "nodes": nodes,
            "outputs": [refs[id(t)] for t in self.outputs],
            "single_input": self._single_input,
            "single_output": self._single_output,
        }

    def _require_built(self) -> None:
        if not self.built:
            raise NotReadyError(f"model '{self.name}' is not built yet: call build(input_shape)"
                                " or pass it data")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, layers={len(self.layers)}, "
                f"device={self.device}, dtype={self.dtype})")


class Sequential(Model):
    """A linear stack of layers on one device: the ``Model`` whose graph is the chain
    ``Input → layers[0] → layers[1] → …``, built from the input shape (by :meth:`build`, or
    from the first data the model sees).

    ``device``, ``dtype`` and ``seed`` as for :class:`Model`. Each layer must have one input
    and one output (a recurrent layer with ``return_state`` needs the functional API).
    """

    def __init__(
        self,
        layers: Iterable[Layer] | None = None,
        *,
        device: DeviceLike | None = None,
        dtype: str = "float32",
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        self._setup(name or unique_name("sequential"), device, dtype, seed)
        self._single_input = self._single_output = True
        for layer in layers or ():
            self.add(layer)

    def add(self, layer: Layer) -> None:
        """Append a layer (before the model is built)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a Layer, got {type(layer).__name__}")
        if self.built:
            raise NotReadyError(f"model '{self.name}' is already built; add layers before "
                                "building, fitting or predicting")
        if any(existing is layer for existing in self.layers):
            raise GraphError(f"layer '{layer.name}' is already in model '{self.name}': a "
                             "Sequential calls each layer once (share a layer in a graph "
                             "model instead)")
        self.layers.append(layer)

    def build(self, input_shape: int | Sequence[int | None]) -> None:
        """Build every layer for inputs of ``input_shape``: the shape of one sample, without
        the batch axis (``(64,)``, or ``64`` for a vector). Keras's form with the batch axis
        as None first, ``(None, 64)``, is read as ``(64,)``."""
        if not self.layers:
            raise NotReadyError(f"model '{self.name}' has no layers")
        if isinstance(input_shape, int | np.integer):
            input_shape = (input_shape,)
        try:
            shape = tuple(input_shape)
        except TypeError:
            shape = ()
        if len(shape) > 1 and shape[0] is None:
            shape = shape[1:]  # Keras's (None, ...): the batch axis
        if not shape or not all(isinstance(n, int | np.integer) and not isinstance(n, bool)
                                and n > 0 for n in shape):
            raise ShapeError(f"model '{self.name}': input_shape must be positive integers "
                             f"without the batch axis, e.g. (64,), received {input_shape!r}")
        shape = tuple(int(n) for n in shape)
        if self.built:
            if shape != self.input_shape:
                raise NotReadyError(f"model '{self.name}' is built for inputs of shape "
                                    f"{batch_shape(self.input_shape)}, not "
                                    f"{batch_shape(shape)}")
            return
        tensor = Input(shape, name=f"{self.layers[0].name}_input")
        source = tensor
        for index, layer in enumerate(self.layers):
            tensor = layer(tensor)
            if isinstance(tensor, list):
                raise GraphError(
                    f"layer '{layer.name}' ({type(layer).__name__}) returns "
                    f"{len(tensor)} outputs, which a Sequential cannot chain"
                    + (f" into layer '{self.layers[index + 1].name}'"
                       if index + 1 < len(self.layers) else "")
                    + ": build a graph with xpnn.Model (e.g. outputs, h, c = "
                    "xpnn.LSTM(8, return_state=True)(x))")
        self._attach(Graph([source], [tensor], self.name))

    def _build_from_batch(self, inputs: Any) -> None:
        if not self.built:
            self.build(tuple(int(n) for n in inputs.shape[1:]))

    def _build_from_data(self, x: Any, role: str) -> None:
        """Build from the shape of the first whole input array ``fit``/``predict`` sees."""
        if self.built:
            return
        where = f"model '{self.name}'"
        data = as_array(self.backend, x, where, role)
        if data.ndim < 2:
            raise ShapeError(f"{where}: {role} must have shape (samples, features...), "
                             f"received {tuple(data.shape)}; for one sample use x[None, ...]")
        self.build(tuple(int(n) for n in data.shape[1:]))

    def _build_from_config_shape(self, config: dict[str, Any], path: PathLike) -> None:
        shape = config.get("input_shape")
        if not shape:
            raise NotReadyError(f"model '{self.name}' is not built and '{path}' does not say "
                                "the input shape: build the model first")
        self.build(tuple(shape))

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The output shape without the batch axis."""
        self._require_built()
        return self.output_specs[0].shape

    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-compatible values: the layers in order and the input
        shape (None before the model is built)."""
        return {
            "class": "Sequential",
            "name": self.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "input_shape": list(self.input_shape) if self.built else None,
            "layers": [config_module.serialize(layer) for layer in self.layers],
        }


def model_from_config(config: dict[str, Any], device: DeviceLike | None = None) -> Model:
    """A new model (a ``Sequential`` or a graph ``Model``) from its ``get_config``, with
    freshly initialised weights, on ``device``. Layers are rebuilt by class name among the
    classes already imported (:func:`xpnn.config.deserialize`): nothing is imported or run
    because a config says so."""
    layers = [config_module.deserialize(spec, Layer, "layer") for spec in config["layers"]]
    kind = config.get("class", "Sequential")  # files of xpnn 0.1 hold Sequential configs
    if kind == "Sequential":
        model = Sequential(layers, device=device, dtype=config["dtype"],
                           seed=config.get("seed"), name=config["name"])
        if config.get("input_shape"):
            model.build(tuple(config["input_shape"]))
        return model
    if kind != "Model":
        raise ValueError(f"model class {kind!r} is not known; expected 'Sequential' or "
                         "'Model'")
    inputs = [Input(tuple(spec["shape"]), dtype=spec.get("dtype"), name=spec["name"])
              for spec in config["inputs"]]
    produced: list[list[Any]] = []

    def tensor(ref: list[Any]) -> Any:
        if ref[0] == "input":
            return inputs[ref[1]]
        return produced[ref[1]][ref[2]]

    for spec in config["nodes"]:
        args = [tensor(ref) for ref in spec["inputs"]]
        result = layers[spec["layer"]](args if spec["list"] else args[0])
        produced.append(result if isinstance(result, list) else [result])
    outputs = [tensor(ref) for ref in config["outputs"]]
    return Model(inputs[0] if config.get("single_input", True) else inputs,
                 outputs[0] if config.get("single_output", True) else outputs,
                 name=config["name"], device=device, dtype=config["dtype"],
                 seed=config.get("seed"))


def load(path: PathLike, device: DeviceLike | None = None) -> Model:
    """A model from a model or checkpoint file, on ``device`` (default: the current default
    device), compiled with its optimizer state if it was saved compiled."""
    snapshot = checkpoint_module.read(path, ("model", "checkpoint"))
    try:
        model = model_from_config(snapshot.config, device=device)
    except (ValueError, TypeError, KeyError) as error:
        raise FileFormatError(f"'{path}': its architecture cannot be rebuilt: {error}") from None
    model._restore(snapshot, path)
    return model


def _image_dense_note(output: SymbolicTensor) -> str:
    """For an output that a Dense layer computed from images: Dense maps the last axis of
    its input only, so the output keeps the image axes (the classic forgotten Flatten, which
    shows up as targets that do not fit). Empty otherwise."""
    if len(output.shape) < 2:
        return ""
    first, stack, seen = None, [output], set()
    while stack:
        node = stack.pop().node
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.layer, Dense) and len(node.inputs[0].shape) == 3 and (
                first is None or node.serial < first.serial):
            first = node
        stack.extend(node.inputs)
    if first is None:
        return ""
    return (f"Layer '{first.layer.name}' (Dense) receives images of shape "
            f"{batch_shape(first.inputs[0].shape)} and maps only their last axis, so the "
            f"output keeps the image axes: add xpnn.Flatten() (or "
            f"xpnn.GlobalAveragePool2D()) before it")


def _as_list(tensors: Any) -> list[Any]:
    return list(tensors) if isinstance(tensors, list | tuple) else [tensors]


def _per_output(spec: Any, names: list[str], count: int, what: str, owner: str,
                broadcast: bool = True) -> list[Any]:
    """One entry per output from a dict keyed by output name (every name), a list in output
    order, or (with ``broadcast``) one value for every output."""
    where = f"model '{owner}'"
    if isinstance(spec, dict):
        unknown = [key for key in spec if key not in names]
        missing = [name for name in names if name not in spec]
        if unknown or missing:
            raise ValueError(f"{where}: {what} is a dict keyed by output name; its outputs "
                             f"are {names}; unknown {unknown}, missing {missing}")
        return [spec[name] for name in names]
    if isinstance(spec, list | tuple):
        if len(spec) != count:
            raise ValueError(f"{where} has {count} output(s) {names}; {what} has {len(spec)} "
                             "entries")
        return list(spec)
    if not broadcast:
        raise ValueError(f"{where}: {what} must be a list (one per output) or a dict keyed "
                         f"by output name, got {spec!r}")
    return [spec] * count


def _metrics_per_output(metrics: Any, names: list[str], count: int, owner: str
                        ) -> list[list[Any]]:
    """The metric specs of each output: a dict keyed by output name (outputs left out get
    none), a list of lists in output order, or one list for every output."""
    if isinstance(metrics, dict):
        unknown = [key for key in metrics if key not in names]
        if unknown:
            raise ValueError(f"model '{owner}': metrics is a dict keyed by output name; its "
                             f"outputs are {names}; unknown {unknown}")
        return [list(_as_list(metrics.get(name, []))) for name in names]
    metrics = list(metrics)
    if count > 1 and metrics and all(isinstance(m, list | tuple) for m in metrics):
        if len(metrics) != count:
            raise ValueError(f"model '{owner}' has {count} outputs {names}; metrics has "
                             f"{len(metrics)} lists")
        return [list(m) for m in metrics]
    return [metrics] * count


def _fresh(metric: metrics_module.Metric, output: int) -> metrics_module.Metric:
    """A metric object of its own for each output (one object cannot average two)."""
    return metric if output == 0 else type(metric)(**metric.get_config())
