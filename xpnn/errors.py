"""The exceptions xpnn raises.

Every error subclasses both :class:`XpnnError` and the built-in exception a user would
expect (``ValueError`` for bad values and shapes, ``TypeError`` for dtypes, ``RuntimeError``
for devices and state), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import sys
import warnings


class XpnnError(Exception):
    """Base class of every error raised by xpnn."""


class ShapeError(XpnnError, ValueError):
    """An array has the wrong shape (rank, width, batch length) for where it is used."""


class DTypeError(XpnnError, TypeError):
    """An array has the wrong dtype for where it is used."""


class LabelError(XpnnError, ValueError):
    """Targets (labels) are out of range or of the wrong kind for the loss."""


class PredictionError(XpnnError, ValueError):
    """A model's outputs cannot be what its loss takes: logits given to a loss on
    probabilities (``categorical_crossentropy`` after a linear layer)."""


class NonFiniteError(XpnnError, ValueError):
    """An input or a loss holds NaN or infinity."""


class DeviceError(XpnnError, RuntimeError):
    """An array lives on another device than the model or layer that received it."""


class DeviceUnavailableError(DeviceError):
    """The requested device cannot be used here; the message says why and how to fix it."""


class OutOfMemoryError(XpnnError, MemoryError):
    """A batch did not fit in the device's memory; the message names the batch size and
    suggests a smaller one."""


class NotReadyError(XpnnError, RuntimeError):
    """A model or layer was used before it was built or compiled."""


class MissingKeyError(XpnnError, KeyError):
    """A name that is not there (a History key, a layer name); the message lists the names
    that are, and the likely one."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument (a quoted message): show the text
        return str(self.args[0]) if self.args else ""


class GradcheckError(XpnnError, AssertionError):
    """A numerical gradient check failed; the message names the worst entry."""


class FileFormatError(XpnnError, ValueError):
    """A file is not a readable xpnn file (foreign, truncated, corrupted, of a newer format,
    or of the wrong kind) or not a valid dataset file (a malformed IDX file). The message
    names the file and what is wrong."""


class DatasetUnavailableError(XpnnError, OSError):
    """A dataset is neither in the cache nor downloadable (no network, an HTTP error, a
    truncated download or a wrong checksum); the message says why and how to get the files."""


class GraphError(XpnnError, ValueError):
    """A graph model cannot be built as asked: an input that is never used, an output that
    depends on an Input not given to the model, two layers with one name, a cycle, or a
    layer called on a mix of symbolic tensors and arrays."""


def warn(message: str) -> None:
    """``warnings.warn(message, UserWarning)`` pointing at the first frame outside xpnn (the
    user's line that built, fitted or evaluated the model), not at xpnn's own code."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: the frame that called warn()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("xpnn"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
