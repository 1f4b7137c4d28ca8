"""The record of a training run: the History ``fit`` returns, and the position ``fit`` has
reached (what a checkpoint needs to resume it exactly)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from xpnn.errors import MissingKeyError


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

    def before(self, epoch: int) -> History:
        """A new History with the epochs before ``epoch`` only."""
        done = History()
        for number, logs in zip(self.epoch, self.logs, strict=True):
            if number < epoch:
                done.record(number, logs)
        return done

    @property
    def history(self) -> dict[str, list[float]]:
        """Every key's values, epoch by epoch, in order of first appearance."""
        values: dict[str, list[float]] = {}
        for logs in self.logs:
            for key, value in logs.items():
                values.setdefault(key, []).append(value)
        return values

    def __getitem__(self, key: str) -> list[float]:
        """The per-epoch values of ``key``; a :class:`~xpnn.errors.MissingKeyError` lists
        the keys there are and the likely one (``'accuracy'`` for Keras 2's ``'acc'``)."""
        values = self.history
        if key in values:
            return values[key]
        raise MissingKeyError(f"History has no '{key}' (its keys are {list(values)})"
                              f"{_suggestion(key, list(values))}")

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History({len(self.epoch)} epochs: {keys})"


#: Keras 2's short metric names and the names xpnn (and Keras ≥ 2.3) logs them under.
_LONG_NAMES = {"acc": "accuracy", "lr": "learning_rate"}


def _suggestion(key: str, keys: list[str]) -> str:
    """``: did you mean 'accuracy'?`` for a key that is a short or misspelt form of one of
    ``keys``, or why a validation or accuracy key is missing (empty otherwise)."""
    prefix = "val_" if key.startswith("val_") else ""
    long_name = prefix + _LONG_NAMES.get(key[len(prefix):], key[len(prefix):])
    if long_name != key and long_name in keys:
        return f": did you mean '{long_name}'?"
    if prefix and long_name[len(prefix):] in keys:
        return ": validation logs (val_...) come with fit(..., validation_data=(x, y))"
    close = difflib.get_close_matches(key, keys, n=1)
    if close:
        return f": did you mean '{close[0]}'?"
    if long_name.endswith("accuracy"):
        return ": accuracy is logged when the model is compiled with metrics=['accuracy']"
    return ""


class Evaluation(tuple):
    """What ``evaluate``, ``test_on_batch`` and ``train_on_batch`` return: the values in
    Keras's order — the loss, each output's loss (with several outputs), then the metrics —
    as a tuple of floats that also reads by name::

        loss, accuracy = model.evaluate(x_test, y_test)
        result = model.evaluate(x_test, y_test)
        result["accuracy"], result.keys(), dict(result)     # {'loss': ..., 'accuracy': ...}

    With the loss alone it is a 1-tuple (``loss, = ...``, ``result["loss"]`` or
    ``float(result)``), where Keras returns a bare float. ``return_dict=True`` gives a dict
    instead.
    """

    _names: tuple[str, ...]

    def __new__(cls, logs: dict[str, float]) -> Evaluation:
        """The values of ``logs`` in their order, named by its keys."""
        result = super().__new__(cls, (float(value) for value in logs.values()))
        result._names = tuple(logs)
        return result

    def __getitem__(self, key: Any) -> Any:
        """A value by name (``result["loss"]``), or by position or slice as a tuple."""
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise MissingKeyError(f"the evaluation has no '{key}' (its keys are "
                                      f"{list(self._names)})"
                                      f"{_suggestion(key, list(self._names))}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> tuple[str, ...]:
        """The names, in order (``"loss"`` first)."""
        return self._names

    def items(self) -> list[tuple[str, float]]:
        """(name, value) pairs, in order."""
        return list(zip(self._names, self, strict=True))

    def get(self, key: str, default: Any = None) -> Any:
        """The value named ``key``, or ``default``."""
        return self[key] if key in self._names else default

    def as_dict(self) -> dict[str, float]:
        """The values as a dict keyed by name."""
        return dict(self.items())

    def __float__(self) -> float:
        """The loss, when it is the only value."""
        if len(self) != 1:
            raise TypeError(f"an evaluation of {len(self)} values {list(self._names)} is not "
                            "one number: unpack it or read result['loss']")
        return tuple.__getitem__(self, 0)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value:.6g}" for name, value in self.items())
        return f"Evaluation({values})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Evaluation, (self.as_dict(),))


@dataclass
class TrainingPosition:
    """Where ``fit`` is: the epoch in progress (or next), the batches done in it, the batch
    generator's state when that epoch began, and what a resumed epoch needs to continue.

    ``fit`` moves it with :meth:`start_epoch`, :meth:`advance` and :meth:`finish_epoch`.
    """

    epoch: int = 0
    batch: int = 0
    epoch_start_rng_state: dict[str, Any] | None = None
    num_samples: int = 0
    batch_size: int = 0
    shuffle: bool = True
    #: (total, count) of the epoch's running loss and of each metric, for a half-done epoch.
    accumulators: list[tuple[float, int]] = field(default_factory=list)
    #: The running loss and metrics of the fit in progress (read when a checkpoint is saved;
    #: when empty, ``accumulators`` is saved instead).
    live_accumulators: list[Any] = field(default_factory=list, repr=False)
    #: In a distributed fit (``xpnn.distributed``): the device-generator positions of ranks
    #: 1 … N−1, each a list in layer order like a file's ``generators`` (rank 0's are the
    #: model's own); empty otherwise.
    rank_generators: list[list[Any]] = field(default_factory=list)

    def start_epoch(self, rng_state: dict[str, Any]) -> None:
        """Note the batch-order generator's state at the start of the current epoch (the
        order of a resumed epoch is drawn again from it), and restore the running sums of
        an epoch resumed half-way, or reset them for a fresh one."""
        self.epoch_start_rng_state = rng_state
        if self.batch == 0:
            for accumulator in self.live_accumulators:
                accumulator.reset()
        else:
            for accumulator, state in zip(self.live_accumulators, self.accumulators,
                                          strict=True):
                accumulator.set_state(state)

    def advance(self, batches_done: int) -> None:
        """``batches_done`` batches of the current epoch are done."""
        self.batch = batches_done

    def finish_epoch(self, steps: int, rng_state: dict[str, Any]) -> None:
        """The current epoch is over: if all ``steps`` batches ran (no callback interrupted
        it), move to the start of the next epoch."""
        if self.batch == steps:
            self.epoch, self.batch = self.epoch + 1, 0
            self.epoch_start_rng_state = rng_state

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible values (the running sums only in the middle of an epoch)."""
        sums = ([a.state() for a in self.live_accumulators] if self.live_accumulators
                else self.accumulators) if self.batch else []
        data = {"epoch": self.epoch, "batch": self.batch,
                "epoch_start_rng_state": self.epoch_start_rng_state,
                "num_samples": self.num_samples, "batch_size": self.batch_size,
                "shuffle": self.shuffle, "accumulators": [list(a) for a in sums]}
        if self.rank_generators:
            data["rank_generators"] = self.rank_generators
        return data

    def check_compatible(self, num_samples: int, batch_size: int, shuffle: bool,
                         path: Any) -> None:
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
                   [(float(t), int(c)) for t, c in data["accumulators"]],
                   rank_generators=[list(states)
                                    for states in data.get("rank_generators", [])])
