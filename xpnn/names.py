"""Automatic names: ``dense``, ``dense_1``, ``dense_2``, ... unique within the process."""

from __future__ import annotations

import re
import threading

_counts: dict[str, int] = {}
_lock = threading.Lock()


def snake_case(name: str) -> str:
    """``BatchNorm2D`` -> ``batch_norm2d``, ``LSTM`` -> ``lstm``: a class name as a default
    object name."""
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", name).lower()


def unique_name(base: str) -> str:
    """``base`` the first time it is asked for in this process, then ``base_1``, ``base_2``,
    ... (thread-safe). Names given explicitly are not counted: a model refuses two different
    layers that share a name."""
    with _lock:
        count = _counts.get(base, 0)
        _counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"
