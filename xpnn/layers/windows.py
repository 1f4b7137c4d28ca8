"""Arguments and shapes shared by the sliding-window layers (convolution and pooling).

Images are NCHW: a batch of shape (N, C, H, W), so a layer's input shape (without the batch
axis) is (C, H, W). Sizes, strides and dilations are an int or a (height, width) pair; padding
is ``"valid"`` (none), ``"same"`` (TensorFlow's rule: ⌈in / stride⌉ outputs per axis, the odd
pixel of padding after), an int, or a (height, width) pair of ints applied on both sides.
"""

from __future__ import annotations

import numbers
from typing import Any

from xpnn.backends.base import Window
from xpnn.errors import ShapeError
from xpnn.layers.base import Layer, Shape, batch_shape

__all__ = ["Padding", "Window", "image_shape", "make_window", "padding_argument", "pair"]

#: What ``padding`` may be after :func:`padding_argument`.
Padding = str | tuple[int, int]


def pair(owner: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``minimum``, as a (height, width) tuple."""
    values = (value, value) if _is_integer(value) else tuple(value) \
        if isinstance(value, list | tuple) else None
    if values is None or len(values) != 2 or not all(
            _is_integer(v) and v >= minimum for v in values):
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return int(values[0]), int(values[1])


def padding_argument(owner: str, value: Any) -> Padding:
    """``"same"``, ``"valid"``, or the padding of each side as a (height, width) pair."""
    if isinstance(value, str):
        if value.lower() not in ("same", "valid"):
            raise ValueError(f"{owner}: padding must be 'same', 'valid', an integer >= 0 or "
                             f"a pair of them, got {value!r}")
        return value.lower()
    return pair(owner, "padding", value, 0)


def image_shape(layer: Layer, input_shape: Shape) -> tuple[int, int, int]:
    """(C, H, W) from a layer's input shape, or a ShapeError naming the layer."""
    if len(input_shape) != 3:
        raise ShapeError(
            f"layer '{layer.name}' ({type(layer).__name__}) takes images of shape (batch, "
            f"channels, height, width), received inputs of shape {batch_shape(input_shape)}")
    channels, height, width = input_shape
    return channels, height, width


def make_window(layer: Layer, input_shape: Shape, size: tuple[int, int],
                stride: tuple[int, int], dilation: tuple[int, int], padding: Padding) -> Window:
    """The :class:`Window` of ``layer`` on (C, H, W) inputs, with ``padding`` resolved to
    pixels per side, or a ShapeError naming the layer when the window does not fit in the
    padded input."""
    _, height, width = image_shape(layer, input_shape)
    span = (dilation[0] * (size[0] - 1) + 1, dilation[1] * (size[1] - 1) + 1)
    if padding == "valid":
        sides = ((0, 0), (0, 0))
    elif padding == "same":
        sides = tuple(_same_padding(n, s, k) for n, s, k in
                      zip((height, width), stride, span, strict=True))
    else:
        sides = ((padding[0], padding[0]), (padding[1], padding[1]))
    window = Window(size, stride, dilation, sides)
    described = f"the {size[0]}×{size[1]} window"
    if dilation != (1, 1):
        described += f" (dilation {dilation[0]}×{dilation[1]}: span {span[0]}×{span[1]})"
    padded = window.padded_size(height, width)
    if min(window.output_size(height, width)) < 1:
        raise ShapeError(
            f"layer '{layer.name}' ({type(layer).__name__}): {described} does not fit in "
            f"the input of {height}×{width} pixels padded to {padded[0]}×{padded[1]} "
            f"(padding {sides}); use a smaller window, padding='same' or larger images")
    return window


def _same_padding(size: int, stride: int, span: int) -> tuple[int, int]:
    """Padding (before, after) giving ⌈size / stride⌉ outputs; the odd pixel goes after."""
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
