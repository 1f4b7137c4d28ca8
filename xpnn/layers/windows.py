"""Arguments and shapes shared by the image layers (convolution, pooling, BatchNorm2D).

Images are NCHW by default (``data_format="channels_first"``): a batch of shape
(N, C, H, W), so a layer's input shape (without the batch axis) is (C, H, W). With
``data_format="channels_last"`` they are NHWC, Keras's and TensorFlow's layout: (N, H, W, C)
in and out. Inside, every layer computes on the (N, C, H, W) view of its input (for NHWC
data a transposed view, which is exactly the channels-last memory the NumPy and CuPy
kernels prefer), so the two formats give the same numbers. Sizes, strides and dilations are
an int or a (height, width) pair; padding is ``"valid"`` (none), ``"same"`` (TensorFlow's
rule: ⌈in / stride⌉ outputs per axis, the odd pixel of padding after), an int, or a
(height, width) pair of ints applied on both sides.

**Spotting the other layout.** Images in the other layout are read without error when
their sizes happen to fit, as 16 channels of 16×3 pixels for a (16, 16, 3) RGB image, so
:func:`layout_hint` looks for the shape of an image in the other layout: a last axis of 1, 3
or 4 (grey, RGB, RGBA) after two axes of at least 8 that are within a factor of 2 of each
other (the height and width of an image), for a channels-first layer; the mirror image for
a channels-last one. A genuine NCHW input of that shape (C channels of C × 3 pixels) is
rare. Models warn when a channels-first layer whose ``data_format`` was not given reads such
model inputs (passing ``data_format="channels_first"`` says the layout is meant and
silences it); errors about windows that do not fit mention it too.
"""

from __future__ import annotations

import numbers
from typing import Any

from xpnn.backends.base import Window
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, Layer, Shape, batch_shape

__all__ = ["DATA_FORMATS", "Padding", "Window", "data_format_argument", "from_channels_first",
           "image_shape", "in_format", "layout_hint", "make_window", "padding_argument",
           "pair", "to_channels_first"]

#: What ``padding`` may be after :func:`padding_argument`.
Padding = str | tuple[int, int]
#: The image layouts: (N, C, H, W) and (N, H, W, C).
DATA_FORMATS = ("channels_first", "channels_last")
#: The channel counts of images (grey, RGB, RGBA) that :func:`layout_hint` looks for.
IMAGE_CHANNELS = (1, 3, 4)
#: The smallest height and width :func:`layout_hint` takes for an image.
MIN_IMAGE_SIDE = 8


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


def data_format_argument(owner: str, value: Any) -> str:
    """``"channels_first"`` (also for None, the default) or ``"channels_last"``."""
    if value is None:
        return "channels_first"
    if value not in DATA_FORMATS:
        raise ValueError(f"{owner}: data_format must be 'channels_first' (N, C, H, W) or "
                         f"'channels_last' (N, H, W, C), got {value!r}")
    return str(value)


def image_shape(layer: Layer, input_shape: Shape) -> tuple[int, int, int]:
    """(C, H, W) from a layer's input shape in its ``data_format``, or a ShapeError naming
    the layer."""
    channels_last = getattr(layer, "data_format", "channels_first") == "channels_last"
    if len(input_shape) != 3:
        layout = "height, width, channels" if channels_last else "channels, height, width"
        raise ShapeError(
            f"layer '{layer.name}' ({type(layer).__name__}) takes images of shape (batch, "
            f"{layout}), received inputs of shape {batch_shape(input_shape)}")
    if channels_last:
        height, width, channels = input_shape
    else:
        channels, height, width = input_shape
    return channels, height, width


def in_format(data_format: str, chw: Shape) -> Shape:
    """A (C, H, W) shape in ``data_format``: as it is, or (H, W, C)."""
    channels, height, width = chw
    return (height, width, channels) if data_format == "channels_last" else tuple(chw)


def to_channels_first(xp: Any, x: Array, data_format: str) -> Array:
    """The (N, C, H, W) view of a batch in ``data_format``."""
    return xp.permute_dims(x, (0, 3, 1, 2)) if data_format == "channels_last" else x


def from_channels_first(xp: Any, y: Array, data_format: str) -> Array:
    """An (N, C, H, W) batch in ``data_format`` (a view for channels-last)."""
    return xp.permute_dims(y, (0, 2, 3, 1)) if data_format == "channels_last" else y


def layout_hint(data_format: str, input_shape: Shape) -> str:
    """A sentence saying that images of ``input_shape`` (no batch axis) look like the other
    layout than ``data_format``, and how to fix it; empty when they do not (the rule is in
    the module docstring)."""
    if len(input_shape) != 3:
        return ""
    first, second, third = input_shape
    if data_format == "channels_first":
        sides, channels = (first, second), third
        fix = ("give the image layers data_format='channels_last', or transpose the data "
               "to (N, C, H, W) with x.transpose(0, 3, 1, 2)")
        other = "channels-last (N, H, W, C)"
    else:
        sides, channels = (second, third), first
        fix = ("leave data_format at its default 'channels_first', or transpose the data to "
               "(N, H, W, C) with x.transpose(0, 2, 3, 1)")
        other = "channels-first (N, C, H, W)"
    if channels not in IMAGE_CHANNELS or min(sides) < MIN_IMAGE_SIDE or max(sides) > 2 * min(
            sides):
        return ""
    return (f"inputs of shape {batch_shape(input_shape)} look like {other} images of "
            f"{sides[0]}×{sides[1]} pixels with {channels} channel(s), but the layer is "
            f"{data_format}: {fix}")


def make_window(layer: Layer, input_shape: Shape, size: tuple[int, int],
                stride: tuple[int, int], dilation: tuple[int, int], padding: Padding) -> Window:
    """The :class:`Window` of ``layer`` on inputs of ``input_shape`` (in the layer's
    ``data_format``), with ``padding`` resolved to pixels per side, or a ShapeError naming
    the layer when the window does not fit in the padded input."""
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
        hint = layout_hint(getattr(layer, "data_format", "channels_first"), input_shape)
        raise ShapeError(
            f"layer '{layer.name}' ({type(layer).__name__}): {described} does not fit in "
            f"the input of {height}×{width} pixels padded to {padded[0]}×{padded[1]} "
            f"(padding {sides}); "
            + (hint if hint else "use a smaller window, padding='same' or larger images"))
    return window


def _same_padding(size: int, stride: int, span: int) -> tuple[int, int]:
    """Padding (before, after) giving ⌈size / stride⌉ outputs; the odd pixel goes after."""
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
