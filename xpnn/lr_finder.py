"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates"; popularised by
fastai's ``lr_find``).

On a copy of the model, train for a few hundred batches while the learning rate grows
exponentially from ``start_rate`` to ``end_rate``; record the loss after each batch. The loss
first stays flat (rate too small), then falls, then blows up (rate too large). A good rate lies
where it falls fastest: the suggestion is the rate of steepest descent of the smoothed loss
against log(rate), looked for before the loss reaches its minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xpnn import checks
from xpnn.callbacks import Callback, Logs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from xpnn.model import Model


@dataclass
class LRFinderResult:
    """What :func:`lr_find` measured.

    ``rates[i]`` is the rate of batch i, ``losses[i]`` the bias-corrected exponential moving
    average of the batch losses up to i, ``raw_losses[i]`` the batch loss itself;
    ``suggestion`` the rate of steepest descent (None when the sweep was too short to tell),
    ``minimum_rate`` the rate of the lowest smoothed loss.
    """

    rates: list[float]
    losses: list[float]
    raw_losses: list[float] = field(repr=False)
    suggestion: float | None
    minimum_rate: float

    def plot(self, path: str | None = None, **kwargs: Any) -> Figure:
        """Loss against rate (log axis) with the suggestion marked; needs matplotlib."""
        from xpnn.plot import learning_rate_curve

        return learning_rate_curve(self.rates, self.losses, path, suggestion=self.suggestion,
                                   **kwargs)


class _RangeTest(Callback):
    """Sets the rate of each batch and records the loss; stops on divergence."""

    wants_batch_loss = True

    def __init__(self, rates: list[float], smoothing: float, divergence: float) -> None:
        super().__init__()
        self.rates, self.smoothing, self.divergence = rates, smoothing, divergence
        self.raw_losses: list[float] = []
        self.losses: list[float] = []
        self.average = 0.0

    def on_batch_begin(self, batch: int, logs: Logs) -> None:
        self.model.optimizer.learning_rate = self.rates[len(self.losses)]

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        loss = logs["loss"]
        self.raw_losses.append(loss)
        done = len(self.raw_losses)
        self.average = self.smoothing * self.average + (1.0 - self.smoothing) * loss
        smoothed = self.average / (1.0 - self.smoothing**done)
        self.losses.append(smoothed)
        diverged = not math.isfinite(smoothed) or smoothed > self.divergence * min(self.losses)
        if diverged or done == len(self.rates):
            self.model.stop_training = True


def lr_find(
    model: Model,
    x: Any,
    y: Any,
    *,
    start_rate: float = 1e-7,
    end_rate: float = 10.0,
    steps: int = 100,
    batch_size: int = 32,
    smoothing: float = 0.98,
    divergence: float = 4.0,
    seed: int | None = None,
) -> LRFinderResult:
    """Run the range test for a compiled ``model`` on (x, y); the model is left untouched.

    The test trains a :meth:`~xpnn.Sequential.clone` of the model with a fresh optimizer of
    the same kind and settings, for ``steps`` batches (over as many epochs as that takes) or
    until the smoothed loss exceeds ``divergence`` times its minimum. ``smoothing`` is the
    decay of the moving average of the loss.
    """
    if not model.output_losses or model.optimizer is None:
        raise ValueError(f"lr_find: compile model '{model.name}' first (it needs the loss and "
                         "the kind of optimizer)")
    if not 0 < start_rate < end_rate < math.inf:
        raise ValueError(f"lr_find: need 0 < start_rate < end_rate, got {start_rate!r} and "
                         f"{end_rate!r}")
    steps = checks.integer("lr_find", "steps", steps, 2)
    smoothing = checks.number("lr_find", "smoothing", smoothing, 0, 1)
    rates = [start_rate * (end_rate / start_rate) ** (i / (steps - 1)) for i in range(steps)]
    optimizer = type(model.optimizer)(**model.optimizer.get_config())
    twin = model.clone()
    twin.compile(loss=model.loss, optimizer=optimizer, loss_weights=model.loss_weights)
    sweep = _RangeTest(rates, smoothing, divergence)
    first = (next(iter(x.values())) if isinstance(x, dict)
             else x[0] if isinstance(x, list | tuple) and len(twin.input_specs) > 1 else x)
    num_samples = int(first.shape[0]) if hasattr(first, "shape") else len(first)
    epochs = math.ceil(steps / math.ceil(num_samples / batch_size))
    twin.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, seed=seed,
             callbacks=[sweep])
    losses = sweep.losses
    rates = rates[:len(losses)]
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss)]
    lowest = min(finite, key=lambda i: losses[i])
    return LRFinderResult(rates, losses, sweep.raw_losses,
                          _steepest_descent(rates, losses, lowest), rates[lowest])


def _steepest_descent(rates: list[float], losses: list[float], lowest: int) -> float | None:
    """The rate where the smoothed loss falls fastest per unit of log(rate), among the
    points before the minimum (skipping the first tenth, where the average is still
    settling)."""
    first = max(1, len(losses) // 10)
    slopes = [((losses[i + 1] - losses[i - 1]) / math.log(rates[i + 1] / rates[i - 1]), i)
              for i in range(first, lowest)]
    if not slopes:
        return None
    slope, index = min(slopes)
    return rates[index] if slope < 0 else None
