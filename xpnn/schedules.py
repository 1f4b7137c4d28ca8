"""Learning-rate schedules: the rate of each epoch as a function of the epoch and the rate
the training started with.

A schedule is used through the :class:`~xpnn.callbacks.LearningRateScheduler` callback, which
sets ``optimizer.learning_rate`` at the start of every epoch (epochs count from 0)::

    model.fit(x, y, epochs=30, callbacks=[LearningRateScheduler(CosineDecay(30))])

==========================  ===============================================================
schedule                    rate in epoch e, starting from η₀
==========================  ===============================================================
``StepDecay(every, f)``     η₀ · f^⌊e / every⌋
``ExponentialDecay(d)``     η₀ · dᵉ
``CosineDecay(E, η_min)``   η_min + ½ (η₀ − η_min)(1 + cos(π · min(e, E) / E))
==========================  ===============================================================
"""

from __future__ import annotations

import math
from typing import Any

from xpnn import checks
from xpnn.config import Configurable


class Schedule(Configurable):
    """Base class: ``rate(epoch, initial_rate)`` gives the learning rate of ``epoch``."""

    def rate(self, epoch: int, initial_rate: float) -> float:
        """The learning rate for ``epoch`` (0-based) of a run that started at
        ``initial_rate``."""
        raise NotImplementedError


class StepDecay(Schedule):
    """Multiply the rate by ``factor`` every ``every`` epochs: η₀ · factor^⌊e / every⌋."""

    def __init__(self, every: int, factor: float = 0.5) -> None:
        self.every = checks.integer("StepDecay", "every", every, 1)
        self.factor = checks.number("StepDecay", "factor", factor, 0, 1, low_open=True,
                                    high_open=False)

    def rate(self, epoch: int, initial_rate: float) -> float:
        """η₀ · factor^⌊epoch / every⌋."""
        return initial_rate * self.factor ** (epoch // self.every)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {"every": self.every, "factor": self.factor}


class ExponentialDecay(Schedule):
    """Multiply the rate by ``decay`` every epoch: η₀ · decayᵉ."""

    def __init__(self, decay: float) -> None:
        self.decay = checks.number("ExponentialDecay", "decay", decay, 0, 1, low_open=True,
                                   high_open=False)

    def rate(self, epoch: int, initial_rate: float) -> float:
        """η₀ · decay^epoch."""
        return initial_rate * self.decay**epoch

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {"decay": self.decay}


class CosineDecay(Schedule):
    """Half a cosine from η₀ down to ``final_rate`` over ``epochs`` epochs (Loshchilov &
    Hutter's SGDR without restarts), then constant at ``final_rate``."""

    def __init__(self, epochs: int, final_rate: float = 0.0) -> None:
        self.epochs = checks.integer("CosineDecay", "epochs", epochs, 1)
        self.final_rate = checks.number("CosineDecay", "final_rate", final_rate, 0)

    def rate(self, epoch: int, initial_rate: float) -> float:
        """η_min + ½ (η₀ − η_min)(1 + cos(π · min(epoch, E) / E))."""
        progress = min(epoch, self.epochs) / self.epochs
        return self.final_rate + 0.5 * (initial_rate - self.final_rate) * (
            1.0 + math.cos(math.pi * progress))

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {"epochs": self.epochs, "final_rate": self.final_rate}

