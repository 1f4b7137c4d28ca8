"""Saving and loading models, weights and resumable training checkpoints.

Three kinds of xpnn file (the format is described in :mod:`xpnn.saving`):

- **model** (``model.save``, ``xpnn.load``): the architecture (JSON config), every parameter,
  the positions of the layers' random generators, and the compile settings with the
  optimizer's state, so a loaded model goes on training exactly where the saved one was.
- **weights** (``model.save_weights``, ``model.load_weights``): the parameters only, by name.
- **checkpoint** (``ModelCheckpoint``, ``fit(checkpoint=...)``, ``fit(resume_from=...)``):
  a model file plus the training position: the epoch and the batch within it, the state of
  the batch-order generator at the start of that epoch, every layer's device generator, the
  running loss and metric sums of a half-done epoch, and the History. On the NumPy device,
  training N epochs straight and training k, saving, loading (in another process) and
  training N − k more give bit-identical parameters. (CuPy cannot report its generators'
  state: there, resumed Dropout masks come from a re-seeded stream.)

Arrays are stored as host copies in the model's dtype; a file saved from any device loads
onto any device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnn import config as config_module
from xpnn import losses as losses_module
from xpnn import metrics as metrics_module
from xpnn import optimizers as optimizers_module
from xpnn.errors import FileFormatError, NotReadyError, ShapeError
from xpnn.saving import PathLike, read_file, write_file

if TYPE_CHECKING:
    from xpnn.device import DeviceLike
    from xpnn.model import History, Sequential


@dataclass
class TrainingPosition:
    """Where ``fit`` is: the epoch in progress (or next), the batches done in it, the batch
    generator's state when that epoch began, and what a resumed epoch needs to continue."""

    epoch: int = 0
    batch: int = 0
    epoch_start_rng_state: dict[str, Any] | None = None
    num_samples: int = 0
    batch_size: int = 0
    shuffle: bool = True
    #: (total, count) of the epoch's running loss and of each metric, for a half-done epoch.
    accumulators: list[tuple[float, int]] = field(default_factory=list)
    #: The running loss and metrics of the fit in progress (read when a checkpoint is saved).
    live_accumulators: list[Any] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible values (the running sums only in the middle of an epoch)."""
        sums = [a.state() for a in self.live_accumulators] if self.batch else []
        return {"epoch": self.epoch, "batch": self.batch,
                "epoch_start_rng_state": self.epoch_start_rng_state,
                "num_samples": self.num_samples, "batch_size": self.batch_size,
                "shuffle": self.shuffle, "accumulators": [list(a) for a in sums]}

    def check_compatible(self, num_samples: int, batch_size: int, shuffle: bool,
                         path: PathLike) -> None:
        """A checkpoint taken in the middle of an epoch can only go on with the same data
        size, batch size and shuffling (its batch position means nothing otherwise)."""
        if self.batch and (num_samples, batch_size, shuffle) != (
                self.num_samples, self.batch_size, self.shuffle):
            raise ValueError(
                f"'{path}' stopped after batch {self.batch} of epoch {self.epoch + 1} with "
                f"{self.num_samples} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}; resuming it needs the same, got {num_samples}, "
                f"{batch_size}, {shuffle}")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingPosition:
        """Inverse of :meth:`to_json`."""
        return cls(int(data["epoch"]), int(data["batch"]), data["epoch_start_rng_state"],
                   int(data["num_samples"]), int(data["batch_size"]), bool(data["shuffle"]),
                   [(float(t), int(c)) for t, c in data["accumulators"]])


# -- writing -----------------------------------------------------------------------------------

def _weight_arrays(model: Sequential) -> dict[str, np.ndarray]:
    return {f"weights/{param.name}": model.backend.to_host(param.value)
            for param in model.parameters()}


def _compile_entries(model: Sequential) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    if model.loss is None or model.optimizer is None:
        return None, {}
    state = model.optimizer.state_dict() if model.optimizer.backend is not None else None
    arrays = {}
    steps = {}
    for name, entry in (state["state"] if state else {}).items():
        steps[name] = entry["step"]
        for slot in model.optimizer.slots:
            arrays[f"optimizer/{name}/{slot}"] = entry[slot]
    entries = {
        "loss": config_module.serialize(model.loss),
        "optimizer": config_module.serialize(model.optimizer),
        "metrics": [config_module.serialize(metric) for metric in model.metrics],
        "optimizer_state": None if state is None else {
            "iterations": state["iterations"],
            "initial_learning_rate": state["initial_learning_rate"], "steps": steps},
    }
    return entries, arrays


def save_model(model: Sequential, path: PathLike, include_optimizer: bool = True) -> None:
    """Write ``model`` (architecture, parameters and, if compiled, compile settings and
    optimizer state) to ``path`` atomically."""
    model._require_built()
    compiled, optimizer_arrays = _compile_entries(model) if include_optimizer else (None, {})
    write_file(path, "model", {"model": model.get_config(), "compile": compiled,
                               "generators": _generator_states(model)},
               {**_weight_arrays(model), **optimizer_arrays})


def save_weights(model: Sequential, path: PathLike) -> None:
    """Write the parameters of ``model`` (by name) to ``path`` atomically."""
    model._require_built()
    write_file(path, "weights", {"model": model.get_config()}, _weight_arrays(model))


def save_checkpoint(model: Sequential, path: PathLike) -> None:
    """Write a resumable checkpoint of ``model`` and its training position to ``path``."""
    model._require_built()
    position, history = model.fit_position, model._fit_history
    if position is None or history is None:
        raise NotReadyError(f"model '{model.name}' has not been trained with fit yet: a "
                            "checkpoint records a training position; use save() otherwise")
    compiled, optimizer_arrays = _compile_entries(model)
    # the History up to the position: an interrupted epoch is trained again on resume
    done = [i for i, epoch in enumerate(history.epoch) if epoch < position.epoch]
    training = {"position": position.to_json(),
                "history": {"epoch": [history.epoch[i] for i in done],
                            "logs": [history.logs[i] for i in done]}}
    write_file(path, "checkpoint", {"model": model.get_config(), "compile": compiled,
                                    "generators": _generator_states(model),
                                    "training": training},
               {**_weight_arrays(model), **optimizer_arrays})


# -- reading -----------------------------------------------------------------------------------

def load(path: PathLike, device: DeviceLike | None = None) -> Sequential:
    """A model from a model or checkpoint file, on ``device`` (default: the current default
    device), compiled with its optimizer state if it was saved compiled."""
    from xpnn.model import Sequential

    manifest, arrays = read_file(path, ("model", "checkpoint"))
    where = f"'{path}'"
    try:
        model = Sequential.from_config(manifest["model"], device=device)
    except (ValueError, TypeError, KeyError) as error:
        raise FileFormatError(f"{where}: its architecture cannot be rebuilt: {error}") from None
    _set_weights(model, arrays, where)
    _set_generator_states(model, manifest)
    compiled = manifest.get("compile")
    if compiled:
        try:
            model.compile(
                loss=config_module.deserialize(compiled["loss"], losses_module.Loss, "loss"),
                optimizer=config_module.deserialize(compiled["optimizer"],
                                                    optimizers_module.Optimizer, "optimizer"),
                metrics=[config_module.deserialize(spec, metrics_module.Metric, "metric")
                         for spec in compiled["metrics"]])
        except (ValueError, TypeError, KeyError) as error:
            raise FileFormatError(f"{where}: its compile settings cannot be restored: "
                                  f"{error}") from None
        _load_optimizer_state(model, compiled, arrays, where)
    return model


def load_weights(model: Sequential, path: PathLike) -> None:
    """Set the parameters of ``model`` from any xpnn file, matching them by name and shape."""
    manifest, arrays = read_file(path)
    if not model.built:
        shape = manifest["model"].get("input_shape")
        if not shape:
            raise NotReadyError(f"model '{model.name}' is not built and '{path}' does not say "
                                "the input shape: build the model first")
        model.build(tuple(shape))
    _set_weights(model, arrays, f"'{path}'")


def restore_checkpoint(model: Sequential, path: PathLike) -> tuple[TrainingPosition, History]:
    """Load a checkpoint into a compiled ``model`` of the same architecture: parameters,
    optimizer state and layer generators; return the training position and the History."""
    from xpnn.model import History

    manifest, arrays = read_file(path, ("checkpoint",))
    where = f"'{path}'"
    if not model.built:
        model.build(tuple(manifest["model"]["input_shape"]))
    _set_weights(model, arrays, where)
    compiled = manifest.get("compile") or {}
    saved_class = compiled.get("optimizer", {}).get("class")
    if saved_class != type(model.optimizer).__name__:
        raise ValueError(f"{where} was trained with {saved_class}, but model '{model.name}' "
                         f"is compiled with {type(model.optimizer).__name__}")
    _load_optimizer_state(model, compiled, arrays, where)
    _set_generator_states(model, manifest)
    training = manifest["training"]
    history = History()
    for epoch, logs in zip(training["history"]["epoch"], training["history"]["logs"],
                           strict=True):
        history.record(epoch, logs)
    return TrainingPosition.from_json(training["position"]), history


def _generator_states(model: Sequential) -> dict[str, Any]:
    return {layer.name: layer.generator.get_state() for layer in model.layers
            if layer.generator is not None}


def _set_generator_states(model: Sequential, manifest: dict[str, Any]) -> None:
    states = manifest.get("generators") or {}
    for layer in model.layers:
        if layer.generator is not None:
            layer.generator.set_state(states.get(layer.name))


def _set_weights(model: Sequential, arrays: dict[str, np.ndarray], where: str) -> None:
    params = model.parameters()
    saved = {name.removeprefix("weights/"): value for name, value in arrays.items()
             if name.startswith("weights/")}
    missing = [p.name for p in params if p.name not in saved]
    unexpected = sorted(set(saved) - {p.name for p in params})
    if missing or unexpected:
        raise ShapeError(f"{where} does not fit model '{model.name}': missing parameters "
                         f"{missing}, unexpected {unexpected}")
    for param in params:
        if tuple(saved[param.name].shape) != param.shape:
            raise ShapeError(f"{where}: parameter '{param.name}' has shape "
                             f"{tuple(saved[param.name].shape)} in the file, {param.shape} in "
                             f"model '{model.name}'")
    model.set_weights([saved[param.name] for param in params])


def _load_optimizer_state(model: Sequential, compiled: dict[str, Any],
                          arrays: dict[str, np.ndarray], where: str) -> None:
    state = compiled.get("optimizer_state")
    if state is None:
        return
    optimizer = model.optimizer
    entries = {}
    for name, step in state["steps"].items():
        try:
            entries[name] = {"step": step, **{slot: arrays[f"optimizer/{name}/{slot}"]
                                              for slot in optimizer.slots}}
        except KeyError as error:
            raise FileFormatError(f"{where} is corrupted: optimizer state {error} is "
                                  "missing") from None
    optimizer.load_state_dict({
        "class": compiled["optimizer"]["class"], "config": compiled["optimizer"]["config"],
        "iterations": state["iterations"],
        "initial_learning_rate": state["initial_learning_rate"], "state": entries})
