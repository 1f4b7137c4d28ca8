"""Pooling layers over images (NCHW, or NHWC with ``data_format="channels_last"``): max,
average, and global average. Each computes on the (N, C, H, W) view of its input (see
:mod:`xpnn.layers.windows`) and returns its output in the input's format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xpnn.layers import windows
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape

if TYPE_CHECKING:
    from xpnn.backends.base import Backend


class Pool2D(Layer):
    """Base class of the windowed pooling layers: each channel pooled on its own over
    ``pool_size`` windows moved by ``stride`` (default: ``pool_size``, windows side by side)
    over the input with ``padding`` ("valid", "same", an int or a pair; at most half the
    window per side, so that every window holds at least one real pixel). ``data_format``:
    None or ``"channels_first"`` ((N, C, H, W) in and out) or ``"channels_last"``
    ((N, H, W, C) in and out), as in :class:`~xpnn.layers.Conv2D`."""

    def __init__(self, pool_size: int | tuple[int, int] = 2,
                 stride: int | tuple[int, int] | None = None,
                 padding: str | int | tuple[int, int] = 0, *, data_format: str | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.data_format = windows.data_format_argument(owner, data_format)
        self.data_format_given = data_format is not None
        self.pool_size = windows.pair(owner, "pool_size", pool_size, 1)
        self.stride = (self.pool_size if stride is None
                       else windows.pair(owner, "stride", stride, 1))
        self.padding = windows.padding_argument(owner, padding)
        if not isinstance(self.padding, str) and any(
                pad > size // 2 for pad, size in zip(self.padding, self.pool_size, strict=True)):
            raise ValueError(f"{owner}: padding {self.padding} exceeds half of the pool size "
                             f"{self.pool_size}, so some windows would hold padding only")

    def window_for(self, input_shape: Shape) -> windows.Window:
        """The pooling window on inputs of ``input_shape`` ((C, H, W), or (H, W, C) for
        channels-last), padding resolved."""
        return windows.make_window(self, input_shape, self.pool_size, self.stride, (1, 1),
                                   self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(C, H, W) -> (C, H_out, W_out); channels-last (H, W, C) -> (H_out, W_out, C)."""
        channels, height, width = windows.image_shape(self, input_shape)
        out_h, out_w = self.window_for(input_shape).output_size(height, width)
        return windows.in_format(self.data_format, (channels, out_h, out_w))

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Resolve the window for ``input_shape``."""
        super().build(input_shape, context)
        self.window = self.window_for(self.input_shape)
        self.image_shape = windows.image_shape(self, self.input_shape)  # (C, H, W)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "stride": list(self.stride),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
                "data_format": self.data_format if self.data_format_given else None}


class MaxPool2D(Pool2D):
    """Max pooling: each output is the largest input of its window (per channel)::

        y[n, c, i, j] = max_{p, q} x_pad[n, c, i·s_h + p, j·s_w + q]

    with padding pixels at −∞. Backward routes each output's gradient to the input that won
    its window: dL/dx[n, c, u, v] = Σ over the windows won by (u, v) of G[n, c, i, j]
    (overlapping windows may add several). Ties have a single winner: the first tap of the
    window in row-major order (the one ``argmax`` returns), as in PyTorch.
    """

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = the maximum of each window (the backend's ``max_pool`` kernel); keeps each
        window's winning tap."""
        xp = self.xp
        y, ctx.winner = self.backend.max_pool(
            windows.to_channels_first(xp, x, self.data_format), self.window)
        return windows.from_channels_first(xp, y, self.data_format)

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx: each output's gradient at its window's winning input."""
        xp = self.xp
        grad_input = self.backend.max_pool_backward(
            windows.to_channels_first(xp, grad_output, self.data_format), ctx.winner,
            (int(grad_output.shape[0]), *self.image_shape), self.window)
        return windows.from_channels_first(xp, grad_input, self.data_format)


class AvgPool2D(Pool2D):
    """Average pooling: each output is the mean of the real (not padding) inputs of its
    window (per channel; TensorFlow's rule, PyTorch's ``count_include_pad=False``)::

        y[n, c, i, j] = (1 / m_ij) Σ_{p, q} x_pad[n, c, i·s_h + p, j·s_w + q]

    where padding pixels are 0 and m_ij counts the window's real pixels (k_h·k_w without
    padding). Backward spreads each output's gradient evenly over its window:
    dL/dx[n, c, u, v] = Σ over the windows containing (u, v) of G[n, c, i, j] / m_ij.
    """

    def _windows(self, x: Array) -> Array:
        """The windows of x (N, C, H, W) as (N, H_out, W_out, k_h·k_w, C), padding
        holding 0."""
        batch = int(x.shape[0])
        out_h, out_w = self.window.output_size(*self.image_shape[1:])
        channels = int(x.shape[1])
        area = self.pool_size[0] * self.pool_size[1]
        return self.xp.reshape(self.backend.unfold(x, self.window),
                               (batch, out_h, out_w, area, channels))

    def _fold(self, grad_windows: Array) -> Array:
        """dL/dx (N, C, H, W) from per-window gradients (N, H_out, W_out, k_h·k_w, C)."""
        batch, out_h, out_w, _, channels = (int(n) for n in grad_windows.shape)
        shaped = self.xp.reshape(grad_windows, (batch, out_h, out_w, *self.pool_size, channels))
        return self.backend.fold(shaped, (batch, *self.image_shape), self.window)

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Resolve the window and count the real pixels of each window."""
        super().build(input_shape, context)
        self.inverse_counts = self._count_inverse()

    def _count_inverse(self) -> Array:
        """1 / m_ij as (1, H_out, W_out, 1) on the layer's device: the unfolded windows of
        an image of ones, padded with zeros, summed."""
        xp = self.xp
        _, height, width = self.image_shape
        ones = xp.ones((1, 1, height, width), dtype=self.dtype,
                       device=self.backend.native_device)
        return 1.0 / xp.sum(self._windows(ones), axis=3)

    def to(self, backend: Backend) -> None:
        """Move to another device, counting the windows' pixels there."""
        moving = self.backend is not None and backend is not self.backend
        super().to(backend)
        if moving:
            self.inverse_counts = self._count_inverse()

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = the mean of each window's real inputs."""
        xp = self.xp
        image = windows.to_channels_first(xp, x, self.data_format)
        means = xp.sum(self._windows(image), axis=3) * self.inverse_counts  # (N, H', W', C)
        return means if self.data_format == "channels_last" else xp.permute_dims(
            means, (0, 3, 1, 2))

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx: G / m spread over each window."""
        xp = self.xp
        area = self.pool_size[0] * self.pool_size[1]
        grad_last = (grad_output if self.data_format == "channels_last"
                     else xp.permute_dims(grad_output, (0, 2, 3, 1)))
        share = grad_last * self.inverse_counts
        shape = (*share.shape[:3], area, share.shape[3])
        grad_input = self._fold(xp.broadcast_to(xp.expand_dims(share, axis=3), shape))
        return windows.from_channels_first(xp, grad_input, self.data_format)


class GlobalAveragePool2D(Layer):
    """The mean of each channel over the whole image: (N, C, H, W) -> (N, C) (channels-last:
    (N, H, W, C) -> (N, C))::

        y[n, c] = (1 / (H W)) Σ_{u, v} x[n, c, u, v]

    Backward: dL/dx[n, c, u, v] = G[n, c] / (H W). ``data_format`` as in
    :class:`~xpnn.layers.Conv2D`.
    """

    def __init__(self, *, data_format: str | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.data_format = windows.data_format_argument("GlobalAveragePool2D", data_format)
        self.data_format_given = data_format is not None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(C, H, W) (or (H, W, C)) -> (C,)."""
        channels, _, _ = windows.image_shape(self, input_shape)
        return (channels,)

    def _image_axes(self) -> tuple[int, int]:
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = the mean over the height and width axes."""
        return self.xp.mean(x, axis=self._image_axes())

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = G / (H W) at every pixel."""
        xp = self.xp
        channels, height, width = windows.image_shape(self, self.input_shape)
        batch = int(grad_output.shape[0])
        share = grad_output * (1.0 / (height * width))
        pixels = windows.in_format(self.data_format, (1, height, width))
        shape = windows.in_format(self.data_format, (channels, 1, 1))
        return xp.reshape(share, (batch, *shape)) * xp.ones(
            (1, *pixels), dtype=self.dtype, device=self.backend.native_device)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(),
                "data_format": self.data_format if self.data_format_given else None}
