"""The text progress display of ``fit``: one line per epoch, redrawn in place on a terminal.

On a terminal (or in a Jupyter notebook, which honours carriage returns) ``verbose=1``
redraws one line in place, at most every ``REDRAW_INTERVAL`` seconds::

    Epoch 3/30 45/63 [====================>.........] ETA 0:01 38.2 steps/s - loss: 0.2345 - ...

then, when validation data is evaluated, ``validating...`` in place of the ETA, and at the
end of the epoch its final line: elapsed time, steps per second and every log. No line is
ever wider than the terminal (its width is read at every redraw, so a resized window is
followed): while the epoch runs, the bar shrinks from 30 to 10 columns and the logs that do
not fit are left out, the timing last; the final line keeps every log and continues on
indented lines instead. Anywhere else (a file, a pipe, a CI log) and with ``verbose=2``,
each epoch writes its final line once, unwrapped, and nothing else: no carriage returns
pile up in logs. Logs are read from the device only when a line is drawn.

Why not tqdm: its line is cut at the terminal width wherever that falls, also inside a
number, and its final line would lose the validation logs at 80 columns; a notebook widget
(its one advantage here) needs ipywidgets. ``ProgressBar`` gives tqdm's width guarantee,
ETA and rate with whole logs and no dependency.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

#: Seconds between two redraws of a live line (each redraw reads the logs from the device).
REDRAW_INTERVAL = 0.2
#: The bar's width in characters when the terminal has room, and the least it shrinks to.
BAR_WIDTH, MIN_BAR_WIDTH = 30, 10


def format_logs(logs: dict[str, float]) -> str:
    """``loss: 0.1234 - accuracy: 0.9700 - learning_rate: 1.000e-04`` from a dict of scalars
    (four decimals, or scientific notation for values below 0.001)."""
    return " - ".join(_format_logs(logs))


def _format_logs(logs: dict[str, float]) -> list[str]:
    return [f"{key}: {_format_value(value)}" for key, value in logs.items()]


def _format_value(value: float) -> str:
    return f"{value:.3e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:05`` or ``1:02:05``: a time left, as m:ss or h:mm:ss."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(steps: int, seconds: float) -> str:
    """``38.2 steps/s``, or ``2.50 s/step`` below one step a second."""
    if seconds <= 0 or steps <= 0:
        return "- steps/s"
    rate = steps / seconds
    return f"{rate:.1f} steps/s" if rate >= 1 else f"{1 / rate:.2f} s/step"


def terminal_columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to: ``$COLUMNS`` if set, else the
    terminal's own width, else 80 (a notebook)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size((80, 24)).columns


def is_live(stream: TextIO) -> bool:
    """Whether lines can be redrawn in place on ``stream``: a terminal, or the output of a
    Jupyter kernel (ipykernel's stream, which reports no terminal but honours ``\\r``)."""
    if getattr(stream, "isatty", lambda: False)():
        return True
    return type(stream).__module__.startswith("ipykernel")


class ProgressBar:
    """The progress of one pass — an epoch, an evaluation, a prediction — whose lines
    start with ``label`` ("Epoch 3/10", "Evaluate"; see the module docstring):
    ``verbose=1`` a live line on a terminal (the final line only elsewhere), ``verbose=2``
    the final line, ``verbose=0`` nothing. ``interval`` (default ``REDRAW_INTERVAL``) is
    the least time between redraws.

    Metrics are read from the device only when the line is drawn, so the display costs one
    synchronisation per redraw, not one per step.
    """

    def __init__(self, total_steps: int, label: str, verbose: int,
                 stream: TextIO | None = None, interval: float | None = None) -> None:
        self.total_steps = total_steps
        self.prefix = label
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.interval = REDRAW_INTERVAL if interval is None else interval
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.terminal = is_live(self.stream)
        self.live = verbose == 1 and self.terminal
        self.step = 0
        self.logs: dict[str, float] = {}
        self.drawn = 0  # the width of the line on screen, to blank what a redraw leaves

    def update(self, step: int, read_logs: Callable[[], dict[str, float]]) -> None:
        """Note that ``step`` steps are done; redraw if it is time (calls ``read_logs``)."""
        self.step = step
        if not self.live:
            return
        now = time.perf_counter()
        if now - self.last_draw >= self.interval or step == self.total_steps:
            self.last_draw = now
            self.logs = read_logs()
            self._redraw(now - self.start, "ETA")

    def validating(self) -> None:
        """Say that the epoch's batches are done and validation data is being evaluated."""
        if self.live:
            self._redraw(time.perf_counter() - self.start, "validating")

    def finish(self, logs: dict[str, float]) -> None:
        """Write the epoch's final line: elapsed time, steps per second and every log
        (continued on indented lines where a terminal is too narrow)."""
        if self.verbose == 0:
            return
        elapsed = time.perf_counter() - self.start

        def head(bar_width: int) -> str:
            bar = f" [{self._bar(self.step, bar_width)}]" if bar_width else ""
            return (f"{self._counter(self.step)}{bar} {elapsed:.1f}s "
                    f"{format_rate(self.step, elapsed)}")

        parts = _format_logs(logs)
        if not self.terminal:
            self.stream.write(" - ".join([head(BAR_WIDTH), *parts]) + "\n")
            self.stream.flush()
            return
        width = terminal_columns(self.stream) - 1
        # the widest bar that keeps the epoch on one line; else the logs continue on the
        # next lines, after the widest bar that leaves the head whole (or none)
        bars = [*range(BAR_WIDTH, MIN_BAR_WIDTH - 1, -1), 0]
        bar_width = next((bar for bar in bars if len(" - ".join([head(bar), *parts])) <= width),
                         None)
        if bar_width is None:
            bar_width = next((bar for bar in bars if len(head(bar)) <= width), 0)
        lines = _wrap(head(bar_width), parts, width)
        first = lines[0] + " " * max(min(self.drawn, width) - len(lines[0]), 0)
        self.stream.write(("\r" if self.live else "") + "\n".join([first, *lines[1:]]) + "\n")
        self.stream.flush()
        self.drawn = 0

    # -- drawing ---------------------------------------------------------------------------
    def _counter(self, step: int) -> str:
        return f"{self.prefix} {step:>{len(str(self.total_steps))}}/{self.total_steps}"

    def _bar(self, step: int, width: int) -> str:
        done = width * step // max(self.total_steps, 1)
        return ("=" * done + (">" if done < width else "") + "." * width)[:width]

    def _running_line(self, elapsed: float, phase: str, width: int) -> str:
        """The live line, fitted to ``width``: the counter always (and the phase, when it
        is not "ETA"); then, as room allows, the bar (30 columns, down to 10), the ETA, the
        rate, and whole logs in order."""
        counter = self._counter(self.step)
        if phase == "ETA":
            remaining = self.total_steps - self.step
            eta = elapsed / self.step * remaining if self.step else 0.0
            timing, required = [f"ETA {format_duration(eta)}", format_rate(self.step,
                                                                           elapsed)], 0
        else:
            timing, required = [f"{phase}..."], 1
        extras = [(" ", text) for text in timing] + [
            (" - ", text) for text in _format_logs(self.logs)]

        def line(bar_width: int, count: int) -> str:
            bar = f" [{self._bar(self.step, bar_width)}]" if bar_width else ""
            return counter + bar + "".join(sep + text for sep, text in extras[:count])

        for bar_width in (MIN_BAR_WIDTH, 0):
            count = len(extras)
            while count > required and len(line(bar_width, count)) > width:
                count -= 1
            if len(line(bar_width, count)) <= width:
                while bar_width and bar_width < BAR_WIDTH and len(
                        line(bar_width + 1, count)) <= width:
                    bar_width += 1
                return line(bar_width, count)
        return counter[:width]

    def _redraw(self, elapsed: float, phase: str) -> None:
        """Overwrite the live line (one column narrower than the terminal, so that no
        terminal wraps it), blanking what is left of a longer one."""
        width = terminal_columns(self.stream) - 1
        line = self._running_line(elapsed, phase, width)
        self.stream.write("\r" + line + " " * max(min(self.drawn, width) - len(line), 0))
        self.stream.flush()
        self.drawn = len(line)


def _wrap(head: str, parts: list[str], width: int) -> list[str]:
    """``head - part - part ...`` broken into lines of at most ``width`` characters,
    between parts, continuation lines indented by two spaces (a part longer than a line is
    cut)."""
    lines, current = [], head[:width]
    for part in parts:
        if len(current) + 3 + len(part) <= width:
            current += " - " + part
        else:
            lines.append(current)
            current = ("  " + part)[:width]
    return [*lines, current]
