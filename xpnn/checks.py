"""Checks of constructor and keyword arguments, with one message style everywhere.

Each returns the value as a plain Python ``int`` / ``float`` (so NumPy scalars such as
``y.max() + 1`` are accepted and configs stay JSON-serialisable) or raises ``ValueError``
naming the owner, the argument, the allowed range and the value received.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def integer(owner: str, name: str, value: Any, minimum: int) -> int:
    """An integer >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def number(owner: str, name: str, value: Any, low: float = -math.inf, high: float = math.inf,
           *, low_open: bool = False, high_open: bool = True) -> float:
    """A finite real number in the interval from ``low`` to ``high``; ``low_open`` /
    ``high_open`` exclude the end points (by default [low, high))."""
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        real = float(value)
        above = real > low if low_open else real >= low
        below = real < high if high_open else real <= high
        if math.isfinite(real) and above and below:
            return real
    interval = (f"{'(' if low_open else '['}{_bound(low)}, {_bound(high)}"
                f"{')' if high_open else ']'}")
    raise ValueError(f"{owner}: {name} must be a finite number in {interval}, got {value!r}")


def _bound(value: float) -> str:
    return "∞" if value == math.inf else "-∞" if value == -math.inf else f"{value:g}"
