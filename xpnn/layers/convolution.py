"""The 2-D convolution layer."""

from __future__ import annotations

from typing import Any

from xpnn import checks, initializers
from xpnn.layers import windows
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library) of images,
    NCHW by default or NHWC with ``data_format="channels_last"``.

    Forward, for x of shape (N, C, H, W), kernel W of shape (F, C, k_h, k_w) and bias b (F,)::

        z[n, f, i, j] = b[f] + Σ_{c, p, q} W[f, c, p, q] · x_pad[n, c, i·s_h + p·d_h, j·s_w + q·d_w]

    with x_pad the input zero-padded, s the stride and d the dilation. It is computed as one
    matrix product (im2col): the backend's ``unfold`` gathers the window of every output
    position into a row of X (N·H_out·W_out rows of k_h·k_w·C values), and with W reordered
    into a (k_h·k_w·C, F) matrix Ŵ::

        Z = X Ŵ + b        (then reshaped to (N, F, H_out, W_out))

    Backward, given G = dL/dz as an (N·H_out·W_out, F) matrix, it is Dense's backward on
    those matrices::

        dL/dŴ = Xᵀ G       dL/db = Σ_rows G       dL/dX = G Ŵᵀ

    and dL/dx is dL/dX folded back onto the input (col2im: each input pixel sums the gradients
    of every window that read it; padding is dropped). The backend's ``fold_product`` computes
    fold(G Ŵᵀ) in one go, tap by tap, without storing dL/dX.

    ``kernel_size``, ``stride`` and ``dilation`` are an int or a (height, width) pair;
    ``padding`` is ``"valid"`` (0), ``"same"`` (⌈H / s⌉ × ⌈W / s⌉ outputs), an int or a pair.
    ``kernel_initializer="auto"`` is He normal before a ReLU-family layer and Glorot uniform
    otherwise, with fan_in = C·k_h·k_w and fan_out = F·k_h·k_w. ``weight_decay`` as in Dense.

    ``data_format``: None or ``"channels_first"`` (x is (N, C, H, W), z is
    (N, F, H_out, W_out)), or ``"channels_last"`` (x is (N, H, W, C), z is
    (N, H_out, W_out, F), as in Keras). The formulas above apply to the (N, C, H, W) view of
    x, so both formats compute the same numbers. The kernel is (F, C, k_h, k_w) in both
    formats (PyTorch's layout; Keras's (k_h, k_w, C, F) kernel K is
    ``K.transpose(3, 2, 0, 1)``), so weights move between the two formats unchanged. None
    (the default) is channels-first and lets a model warn when its inputs look
    channels-last (see :mod:`xpnn.layers.windows`).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        *,
        use_bias: bool = True,
        kernel_initializer: initializers.KernelSpec = "auto",
        bias_initializer: str | initializers.Initializer = "zeros",
        weight_decay: float | None = None,
        data_format: str | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name=name, trainable=trainable)
        self.data_format = windows.data_format_argument("Conv2D", data_format)
        self.data_format_given = data_format is not None
        self.filters = checks.integer("Conv2D", "filters", filters, 1)
        self.kernel_size = windows.pair("Conv2D", "kernel_size", kernel_size, 1)
        self.stride = windows.pair("Conv2D", "stride", stride, 1)
        self.padding = windows.padding_argument("Conv2D", padding)
        self.dilation = windows.pair("Conv2D", "dilation", dilation, 1)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.kernel(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight_decay = (None if weight_decay is None
                             else checks.number("Conv2D", "weight_decay", weight_decay, 0))

    def window_for(self, input_shape: Shape) -> windows.Window:
        """The sliding window on inputs of ``input_shape`` ((C, H, W), or (H, W, C) for
        channels-last), padding resolved."""
        return windows.make_window(self, input_shape, self.kernel_size, self.stride,
                                   self.dilation, self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(C, H, W) -> (filters, H_out, W_out); channels-last (H, W, C) ->
        (H_out, W_out, filters)."""
        _, height, width = windows.image_shape(self, input_shape)
        out_h, out_w = self.window_for(input_shape).output_size(height, width)
        return windows.in_format(self.data_format, (self.filters, out_h, out_w))

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create the kernel (filters, C, k_h, k_w) and the bias (filters,)."""
        super().build(input_shape, context)
        self.window = self.window_for(self.input_shape)
        self.image_shape = windows.image_shape(self, self.input_shape)  # (C, H, W)
        channels = self.image_shape[0]
        area = self.kernel_size[0] * self.kernel_size[1]
        fan_in, fan_out = channels * area, self.filters * area
        init = initializers.resolve_kernel(self.kernel_initializer, context.next_layer)
        self.resolved_kernel_initializer = init
        shape = (self.filters, channels, *self.kernel_size)
        self.kernel = self.add_parameter("kernel", init(shape, fan_in, fan_out, context.rng),
                                         True, weight_decay=self.weight_decay)
        self.bias = (
            self.add_parameter(
                "bias", self.bias_initializer((self.filters,), fan_in, fan_out, context.rng),
                False)
            if self.use_bias else None)

    def forward(self, ctx: Context, x: Array) -> Array:
        """z = X Ŵ + b, returned as (N, filters, H_out, W_out) (channels-last:
        (N, H_out, W_out, filters)); keeps the window rows X."""
        xp = self.xp
        batch = int(x.shape[0])
        out_h, out_w = self.window.output_size(*self.image_shape[1:])
        taps = self.kernel_size[0] * self.kernel_size[1] * self.image_shape[0]
        image = windows.to_channels_first(xp, x, self.data_format)
        rows = self.backend.unfold_rows(image, self.window)  # (batch·out_h·out_w, taps)
        # Ŵ[(p, q, c), f] = W[f, c, p, q]: the row order of unfold's windows
        matrix = xp.reshape(xp.permute_dims(self.kernel.value, (2, 3, 1, 0)),
                            (taps, self.filters))
        z = xp.matmul(rows, matrix)
        if self.bias is not None:
            self.backend.add_bias(z, self.bias.value)  # z is fresh: added in place
        ctx.rows = rows
        z = xp.reshape(z, (batch, out_h, out_w, self.filters))  # channels-last already
        return z if self.data_format == "channels_last" else xp.permute_dims(z, (0, 3, 1, 2))

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """Adds dL/dW (from Xᵀ G) and dL/db = Σ G; returns dL/dx = fold(G Ŵᵀ)."""
        xp = self.xp
        channels = self.image_shape[0]
        k_h, k_w = self.kernel_size
        grad_last = (grad_output if self.data_format == "channels_last"
                     else xp.permute_dims(grad_output, (0, 2, 3, 1)))
        grad_rows = xp.reshape(grad_last, (-1, self.filters))
        if self.trainable:
            # (Xᵀ G)ᵀ = Gᵀ X, of shape (F, k_h·k_w·C), back to the kernel's (F, C, k_h, k_w)
            grad_matrix_t = xp.matmul(grad_rows.T, ctx.rows)
            self.kernel.accumulate_grad(xp.permute_dims(
                xp.reshape(grad_matrix_t, (self.filters, k_h, k_w, channels)), (0, 3, 1, 2)))
            if self.bias is not None:
                self.bias.accumulate_grad(xp.sum(grad_rows, axis=0))
        if not ctx.needs_input_grad[0]:
            return None
        # dL/dx = fold(G Ŵᵀ), with Ŵᵀ as one (F, C) matrix per tap (p, q)
        taps = xp.permute_dims(self.kernel.value, (2, 3, 0, 1))
        input_shape = (int(grad_output.shape[0]), *self.image_shape)
        grad_input = self.backend.fold_product(grad_rows, taps, input_shape, self.window)
        return windows.from_channels_first(xp, grad_input, self.data_format)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation": list(self.dilation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize_kernel(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "weight_decay": self.weight_decay,
            "data_format": self.data_format if self.data_format_given else None,
        }
