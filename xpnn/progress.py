"""The text progress display of ``fit``: a bar per epoch with loss and metrics."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_logs(logs: dict[str, float]) -> str:
    """``loss: 0.1234 - accuracy: 0.9700 - learning_rate: 1.000e-04`` from a dict of scalars
    (four decimals, or scientific notation for values below 0.001)."""
    return " - ".join(f"{key}: {_format_value(value)}" for key, value in logs.items())


def _format_value(value: float) -> str:
    return f"{value:.3e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"


class ProgressBar:
    """One epoch's progress: ``verbose=1`` a live bar (redrawn at most every ``interval``
    seconds when the stream is a terminal, else one line at the end), ``verbose=2`` one line
    per epoch, ``verbose=0`` nothing.

    Metrics are read from the device only when the bar is redrawn, so the display costs one
    synchronisation per redraw, not one per step.
    """

    width = 30

    def __init__(self, total_steps: int, epoch: int, epochs: int, verbose: int,
                 stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.total_steps = total_steps
        self.prefix = f"Epoch {epoch + 1}/{epochs}"
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.live = verbose == 1 and getattr(self.stream, "isatty", lambda: False)()

    def update(self, step: int, read_logs: Callable[[], dict[str, float]]) -> None:
        """Note that ``step`` steps are done; redraw if it is time (calls ``read_logs``)."""
        if not self.live:
            return
        now = time.perf_counter()
        if now - self.last_draw >= self.interval or step == self.total_steps:
            self.last_draw = now
            self.stream.write("\r" + self._line(step, read_logs()))
            self.stream.flush()

    def finish(self, logs: dict[str, float]) -> None:
        """Print the epoch's final line."""
        if self.verbose == 0:
            return
        prefix = "\r" if self.live else ""
        self.stream.write(prefix + self._line(self.total_steps, logs) + "\n")
        self.stream.flush()

    def _line(self, step: int, logs: dict[str, float]) -> str:
        elapsed = time.perf_counter() - self.start
        done = self.width * step // max(self.total_steps, 1)
        bar = "=" * done + (">" if done < self.width else "") + "." * (self.width - done - 1)
        counter = f"{step:>{len(str(self.total_steps))}}/{self.total_steps}"
        text = f"{self.prefix} {counter} [{bar[:self.width]}] {elapsed:.1f}s"
        return f"{text} - {format_logs(logs)}" if logs else text
