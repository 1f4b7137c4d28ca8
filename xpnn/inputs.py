"""The host/device boundary: user data checked, cast and cut into device batches.

``fit``, ``evaluate`` and ``predict`` take NumPy arrays (or anything ``numpy.asarray`` takes)
or arrays already on the model's device; a model with several inputs or outputs takes a list
(in the model's order) or a dict keyed by input / output name. Each whole array is checked
once per call — its shape against the model's, its dtype, that it holds no NaN or infinity,
and the targets against their loss — and cast once, on the host, to the dtype its input
takes. Batches then move to the device one at a time (:meth:`Backend.take_rows`); device
arrays stay where they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnn.backends import backend_type_of
from xpnn.errors import DeviceError, DTypeError, NonFiniteError, ShapeError
from xpnn.functional import namespace
from xpnn.layers.base import batch_shape, describe_array

if TYPE_CHECKING:
    from xpnn.backends.base import Backend
    from xpnn.losses import Loss

Array = Any

#: The dtypes of inputs that hold integers (token ids, masks) and are not cast to floats.
INTEGER_DTYPES = ("int32", "int64", "bool")


@dataclass(frozen=True)
class InputSpec:
    """What one model input takes: its name, its shape without the batch axis and the dtype
    its arrays are cast to (the model's float dtype, or an integer one for token ids)."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def integer(self) -> bool:
        """Whether the input takes integers (ids or masks) rather than floats."""
        return self.dtype in INTEGER_DTYPES


@dataclass(frozen=True)
class OutputSpec:
    """What one model output gives: its name, its shape without the batch axis, and a note
    added to the error when targets do not fit it (how the model may be wrong)."""

    name: str
    shape: tuple[int, ...]
    note: str = ""


def by_position(data: Any, names: Sequence[str], where: str, role: str) -> list[Any]:
    """``data`` as one entry per name: a dict keyed by the names, a list or tuple in their
    order, or (for a single name) the data itself."""
    if isinstance(data, dict):
        missing = [name for name in names if name not in data]
        unexpected = [key for key in data if key not in names]
        if missing or unexpected:
            raise ShapeError(f"{where}: {role} is a dict, whose keys must be the names "
                             f"{list(names)}; missing {missing}, unexpected {unexpected}")
        return [data[name] for name in names]
    if len(names) == 1:
        return [data]
    if not isinstance(data, list | tuple) or len(data) != len(names):
        count = (f"a list of {len(data)} arrays" if isinstance(data, list | tuple)
                 else "one array")
        raise ShapeError(f"{where} has {len(names)} {role}s {list(names)}; pass a list of "
                         f"{len(names)} arrays in that order or a dict keyed by those names, "
                         f"received {count}")
    return list(data)


def as_array(backend: Backend, data: Any, where: str, role: str) -> Array:
    """``data`` as an array of the model's device, or as a NumPy host array; arrays of
    another device are refused."""
    if backend.owns(data):
        return data
    elsewhere = backend_type_of(data)
    if elsewhere is not None and not isinstance(data, np.ndarray):
        raise DeviceError(f"{where} is on {backend.device} but {role} is "
                          f"{describe_array(data)}: pass NumPy arrays, arrays on "
                          f"{backend.device}, or move the model with model.to()")
    if isinstance(data, list | tuple) and data and all(
            backend_type_of(item) is not None and not isinstance(item, np.ndarray)
            for item in data):
        raise ShapeError(f"{where}: {role} is a list of device arrays; pass one array")
    try:
        return np.asarray(data)
    except (ValueError, TypeError) as error:
        raise ShapeError(f"{where}: {role} cannot be made into an array: {error}") from None


def cast(backend: Backend, data: Array, dtype: str) -> Array:
    """``data`` in ``dtype``: cast on the host for NumPy arrays, on the device otherwise."""
    if isinstance(data, np.ndarray):
        return data if data.dtype == np.dtype(dtype) else data.astype(dtype)
    target = backend.dtype(dtype)
    return data if data.dtype == target else backend.xp.astype(data, target)


def check_input(backend: Backend, spec: InputSpec, data: Any, where: str, role: str) -> Array:
    """One whole input array, checked against ``spec`` and cast to its dtype."""
    data = as_array(backend, data, where, role)
    if data.ndim != len(spec.shape) + 1 or tuple(data.shape[1:]) != spec.shape:
        hint = ("; for one sample use x[None, ...]" if data.ndim == len(spec.shape)
                else image_layout_hint(spec.shape, tuple(data.shape[1:])))
        raise ShapeError(f"{where} expects {role} of shape "
                         f"{batch_shape(spec.shape, 'samples')}, received "
                         f"{tuple(data.shape)}{hint}")
    if data.shape[0] == 0:
        raise ShapeError(f"{where}: {role} is empty (shape {tuple(data.shape)})")
    xp = namespace(data)
    if spec.integer:
        if not xp.isdtype(data.dtype, ("integral", "bool")):
            raise DTypeError(f"{where}: {role} takes integers ({spec.dtype}: token ids or a "
                             f"mask), received dtype {data.dtype}")
        return cast(backend, data, spec.dtype)
    if not xp.isdtype(data.dtype, ("real floating", "integral", "bool")):
        raise DTypeError(f"{where}: {role} must hold real numbers, received dtype "
                         f"{data.dtype}")
    data = cast(backend, data, spec.dtype)
    if not all_finite(xp, data):
        bad = int(xp.sum(xp.astype(xp.logical_not(xp.isfinite(data)), xp.int64)))
        raise NonFiniteError(f"{where}: {role} contains {bad} NaN or infinite values")
    return data


def image_layout_hint(expected: tuple[int, ...], received: tuple[int, ...]) -> str:
    """When a per-sample shape ``received`` is the ``expected`` image shape with its channels
    axis at the other end (NHWC data for an NCHW input, or the reverse): the transpose that
    fixes it, as a clause to append to a shape error; otherwise empty."""
    if len(expected) != 3 or received == expected:
        return ""
    first, second, third = expected
    if received == (second, third, first):
        return ("; they look like channels-last (N, H, W, C) images and the model takes "
                "channels-first ones: x.transpose(0, 3, 1, 2) makes them fit, or give the "
                "image layers data_format='channels_last'")
    if received == (third, first, second):
        return ("; they look like channels-first (N, C, H, W) images and the model takes "
                "channels-last ones: x.transpose(0, 2, 3, 1) makes them fit, or leave the "
                "image layers' data_format at its default, 'channels_first'")
    return ""


def check_target(backend: Backend, loss: Loss, output: OutputSpec, dtype: str, data: Any,
                 num_samples: int, where: str, role: str) -> Array:
    """One whole target array, checked against the output and its loss, in its final dtype
    (integer class labels stay integers; other targets take the model's float dtype)."""
    data = as_array(backend, data, where, role)
    if data.ndim == 0 or data.shape[0] != num_samples:
        received = data.shape[0] if data.ndim else "a scalar"
        raise ShapeError(f"{where}: x has {num_samples} samples but {role} has {received}")
    xp = namespace(data)
    pred_shape = (num_samples, *output.shape)
    if loss.labels_only:
        data = _class_labels(backend, xp, data, pred_shape, where, role)
    if xp.isdtype(data.dtype, "integral") and loss.accepts_class_labels:
        data = cast(backend, data, "int64")
    elif xp.isdtype(data.dtype, ("real floating", "integral", "bool")):
        data = cast(backend, data, dtype)
        if data.ndim == 1 and pred_shape[1:] == (1,):
            data = xp.reshape(data, (num_samples, 1))  # explicit: (N,) targets, (N, 1) out
    else:
        raise DTypeError(f"{where}: {role} must hold real numbers or integer labels, "
                         f"received dtype {data.dtype}")
    try:
        loss.check_targets(pred_shape, data)
    except (ShapeError, DTypeError) as error:
        note = f". {output.note}" if output.note and isinstance(error, ShapeError) else ""
        raise type(error)(f"{where}: {role} does not fit output '{output.name}' of shape "
                          f"{batch_shape(output.shape, 'samples')}: {error}{note}") from None
    return data


def check_sample_weight(backend: Backend, output: OutputSpec, dtype: str, data: Any,
                        num_samples: int, where: str, role: str) -> Array:
    """One whole array of sample weights for ``output``, checked and cast to the model's
    float dtype: one weight per sample, shape (N,) (Keras's (N, 1) is taken as (N,)), or one
    per row of the output (its shape without the last axis, e.g. (N, T) for a sequence of
    class scores). Weights must be finite and not negative (a negative weight would reward
    the loss); nothing is broadcast."""
    data = as_array(backend, data, where, role)
    xp = namespace(data)
    per_sample, per_row = (num_samples,), (num_samples, *output.shape[:-1])
    if tuple(data.shape) == (num_samples, 1) and per_row != (num_samples, 1):
        data = xp.reshape(data, per_sample)
    if tuple(data.shape) not in (per_sample, per_row):
        rows = f" or {per_row} (one per row of output '{output.name}')" \
            if per_row != per_sample else ""
        raise ShapeError(f"{where}: {role} must have shape {per_sample} (one weight per "
                         f"sample){rows}, received {tuple(data.shape)} (nothing is broadcast)")
    if not xp.isdtype(data.dtype, ("real floating", "integral", "bool")):
        raise DTypeError(f"{where}: {role} must hold real numbers, received dtype "
                         f"{data.dtype}")
    data = cast(backend, data, dtype)
    if not all_finite(xp, data):
        raise NonFiniteError(f"{where}: {role} contains NaN or infinite values")
    if data.size and float(xp.min(data)) < 0.0:
        raise ValueError(f"{where}: {role} contains negative weights (the smallest is "
                         f"{float(xp.min(data)):.4g}); weights must be 0 or more")
    return data


def class_weights(backend: Backend, class_weight: Any, target: Array, dtype: str,
                  where: str) -> np.ndarray:
    """The sample weights that ``class_weight`` ({class index: weight}) gives the targets
    of a classification output, as Keras computes them: each row's class is its integer
    label, or the arg-max of a one-hot / probability row, or the rounded value of a single
    0/1 column; a class missing from the dict weighs 1. One weight per row: shape (N,), or
    (N, T) for labels of shape (N, T)."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"{where}: class_weight must be a dict {{class index: weight}}, "
                        f"received {type(class_weight).__name__}")
    table = {}
    for label, weight in class_weight.items():
        if isinstance(label, bool) or not isinstance(label, int | np.integer) or label < 0:
            raise ValueError(f"{where}: class_weight's keys must be class indices (integers "
                             f"from 0), received {label!r}")
        if isinstance(weight, bool) or not isinstance(weight, int | float | np.number) \
                or not math.isfinite(float(weight)) or float(weight) < 0.0:
            raise ValueError(f"{where}: class_weight[{label}] must be a finite number of 0 "
                             f"or more, received {weight!r}")
        table[int(label)] = float(weight)
    labels = target if isinstance(target, np.ndarray) else backend.to_host(target)
    if np.issubdtype(labels.dtype, np.floating):
        labels = (np.argmax(labels, axis=-1) if labels.shape[-1] != 1
                  else np.squeeze(labels, axis=-1))
        labels = np.round(labels)
    labels = labels.astype(np.int64)
    lookup = np.ones(max(int(labels.max(initial=0)), max(table)) + 1)
    for label, weight in table.items():
        lookup[label] = weight
    return lookup[labels].astype(dtype)


def _class_labels(backend: Backend, xp: Any, data: Array, pred_shape: tuple[int, ...],
                  where: str, role: str) -> Array:
    """Targets of a loss that takes class labels only, read as Keras reads them: labels of
    shape (..., 1) lose the last axis, and floats holding whole numbers become int64 (any
    other float is refused)."""
    if data.ndim == len(pred_shape) and data.shape[-1] == 1 and pred_shape[-1] != 1:
        data = xp.reshape(data, tuple(data.shape[:-1]))
    if xp.isdtype(data.dtype, "real floating") and tuple(data.shape) == pred_shape[:-1]:
        if data.size and not bool(xp.all(xp.round(data) == data)):
            raise DTypeError(f"{where}: {role} must hold class labels, whole numbers, but "
                             f"some of its {data.dtype} values are fractions")
        return cast(backend, data, "int64")
    return data


def all_finite(xp: Any, data: Array) -> bool:
    """Whether every entry of a floating array is finite, by one sum first: it reads the data
    once and allocates nothing (``isfinite`` writes a boolean array as large as the data),
    and a sum is finite only if every term is. Only a sum that is not (bad entries, or a
    sum of finite entries that overflows) leads to the entry-by-entry check."""
    with np.errstate(over="ignore", invalid="ignore"):  # NumPy underneath: no warnings
        total = float(xp.sum(data))
    return math.isfinite(total) or bool(xp.all(xp.isfinite(data)))
