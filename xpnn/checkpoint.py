"""What xpnn files hold: models, weights and resumable training checkpoints.

Three kinds of xpnn file (the container format is described in :mod:`xpnn.saving`):

- **model** (``model.save``, ``xpnn.load``): the architecture (JSON config), every parameter,
  the positions of the layers' random generators, and the compile settings with the
  optimizer's state, so a loaded model goes on training exactly where the saved one was.
- **weights** (``model.save_weights``, ``model.load_weights``): the parameters only.
- **checkpoint** (``ModelCheckpoint``, ``fit(checkpoint=...)``, ``fit(resume_from=...)``):
  a model file plus the training position: the epoch and the batch within it, the state of
  the batch-order generator at the start of that epoch, every layer's device generator, the
  running loss and metric sums of a half-done epoch, and the History. On the NumPy device,
  training N epochs straight and training k, saving, loading (in another process) and
  training N − k more give bit-identical parameters. (CuPy cannot report its generators'
  state: there, resumed Dropout masks come from a re-seeded stream.)

A file's contents are a :class:`Snapshot`: this module writes and reads snapshots and knows
nothing of models; :mod:`xpnn.model` takes a snapshot of a model and restores one into it.
Parameters are stored in the model's order and restored *by position*, each checked for its
shape (as Keras does): layer names are unique in a process (``dense``, ``dense_1``, ...), so
the same architecture built in another process, or twice in one, may name its layers
differently. Arrays are host copies in the model's dtype; a file saved from any device loads
onto any device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xpnn.errors import FileFormatError
from xpnn.history import History, TrainingPosition
from xpnn.saving import PathLike, read_file, write_file


@dataclass
class Snapshot:
    """The contents of an xpnn file.

    ``config``: the architecture (``model.get_config()``); ``weights``: (name, host array)
    of every parameter in the model's order; ``generators``: each layer's device-generator
    position, in layer order (None for layers without one, or where the library cannot
    report it); ``compile``: the serialized losses, loss weights, optimizer and metrics
    (None: not compiled, or saved without them); ``optimizer_state``: the optimizer's
    ``state_dict`` without its class and config, keyed by parameter name; ``position`` and
    ``history``: where training stood (checkpoints only).
    """

    kind: str
    config: dict[str, Any]
    weights: list[tuple[str, np.ndarray]]
    generators: list[Any] = field(default_factory=list)
    compile: dict[str, Any] | None = None
    optimizer_state: dict[str, Any] | None = None
    position: TrainingPosition | None = None
    history: History | None = None


def write(path: PathLike, snapshot: Snapshot) -> None:
    """Write ``snapshot`` to ``path`` (atomically: the previous file stays intact until the
    new one is complete)."""
    entries: dict[str, Any] = {"model": snapshot.config}
    arrays = {f"weights/{name}": value for name, value in snapshot.weights}
    if snapshot.kind != "weights":
        entries["generators"] = snapshot.generators
        entries["compile"] = snapshot.compile
    if snapshot.compile is not None and snapshot.optimizer_state is not None:
        state = snapshot.optimizer_state
        slots = state["slots"]
        entries["compile"] = {**snapshot.compile, "optimizer_state": {
            "iterations": state["iterations"],
            "initial_learning_rate": state["initial_learning_rate"],
            "steps": {name: entry["step"] for name, entry in state["state"].items()}}}
        for name, entry in state["state"].items():
            arrays.update({f"optimizer/{name}/{slot}": entry[slot] for slot in slots})
    if snapshot.kind == "checkpoint":
        assert snapshot.position is not None and snapshot.history is not None
        entries["training"] = {"position": snapshot.position.to_json(),
                               "history": {"epoch": snapshot.history.epoch,
                                           "logs": snapshot.history.logs}}
    write_file(path, snapshot.kind, entries, arrays)


def read(path: PathLike, kinds: tuple[str, ...] = ("model", "weights", "checkpoint")
         ) -> Snapshot:
    """The snapshot in the xpnn file at ``path``, which must be one of ``kinds``; raises
    :class:`~xpnn.errors.FileFormatError` naming the file for anything unreadable."""
    manifest, arrays = read_file(path, kinds)
    where = f"'{path}'"
    try:
        compiled = manifest.get("compile")
        snapshot = Snapshot(
            manifest["kind"], manifest["model"],
            [(name.removeprefix("weights/"), value) for name, value in arrays.items()
             if name.startswith("weights/")],
            _generators(manifest.get("generators"), manifest["model"]),
            None if not compiled else {k: v for k, v in compiled.items()
                                       if k != "optimizer_state"})
        if compiled and compiled.get("optimizer_state") is not None:
            state = compiled["optimizer_state"]
            slots = sorted({name.split("/")[-1] for name in arrays
                            if name.startswith("optimizer/")})
            snapshot.optimizer_state = {
                "iterations": state["iterations"],
                "initial_learning_rate": state["initial_learning_rate"],
                "slots": slots,
                "state": {name: {"step": step,
                                 **{slot: arrays[f"optimizer/{name}/{slot}"]
                                    for slot in slots}}
                          for name, step in state["steps"].items()}}
        if "training" in manifest:
            training = manifest["training"]
            snapshot.position = TrainingPosition.from_json(training["position"])
            snapshot.history = History()
            for epoch, logs in zip(training["history"]["epoch"], training["history"]["logs"],
                                   strict=True):
                snapshot.history.record(epoch, logs)
    except (KeyError, TypeError, ValueError) as error:
        raise FileFormatError(f"{where} is corrupted: its contents are incomplete "
                              f"({type(error).__name__}: {error})") from None
    return snapshot


def _generators(states: Any, config: dict[str, Any]) -> list[Any]:
    """Generator positions in layer order (files of xpnn 0.1 keyed them by layer name)."""
    if isinstance(states, dict):
        return [states.get(spec.get("config", {}).get("name"))
                for spec in config.get("layers", [])]
    return list(states or [])
