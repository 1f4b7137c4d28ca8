"""The fully connected layer."""

from __future__ import annotations

from typing import Any

from xpnn import checks, initializers
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape


class Dense(Layer):
    """Fully connected layer: an affine map of the last axis.

    Forward, for x of shape (N, D_in) (or (..., D_in), mapped row by row)::

        z = x W + b        W: (D_in, D_out),  b: (D_out,)

    Backward, given G = dL/dz of shape (N, D_out)::

        dL/dW = xᵀ G       dL/db = Σ_n G_n       returns dL/dx = G Wᵀ

    ``kernel_initializer="auto"`` (the default) is He normal when the next layer of a model
    is ReLU-family, and Glorot uniform otherwise (see :mod:`xpnn.initializers`).
    ``weight_decay`` λ adds the L2 term ½λ‖W‖² to the loss and λW to dL/dW for this layer's
    kernel (None: the optimizer's ``weight_decay``; the bias is never decayed).
    """

    def __init__(
        self,
        units: int,
        *,
        use_bias: bool = True,
        kernel_initializer: initializers.KernelSpec = "auto",
        bias_initializer: str | initializers.Initializer = "zeros",
        weight_decay: float | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name=name, trainable=trainable)
        self.units = checks.integer("Dense", "units", units, 1)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.kernel(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight_decay = (None if weight_decay is None
                             else checks.number("Dense", "weight_decay", weight_decay, 0))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(..., D_in) -> (..., units)."""
        if len(input_shape) < 1:
            raise ShapeError(f"layer '{self.name}' (Dense) needs inputs of shape "
                             f"(batch, ..., features), received a batch of scalars")
        return (*input_shape[:-1], self.units)

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create W (D_in, units) and b (units,) from their initializers."""
        super().build(input_shape, context)
        fan_in = self.input_shape[-1]
        init = initializers.resolve_kernel(self.kernel_initializer, context.next_layer)
        self.resolved_kernel_initializer = init
        self.kernel = self.add_parameter(
            "kernel", init((fan_in, self.units), fan_in, self.units, context.rng), True,
            weight_decay=self.weight_decay)
        self.bias = (
            self.add_parameter(
                "bias", self.bias_initializer((self.units,), fan_in, self.units, context.rng),
                False)
            if self.use_bias else None)

    def forward(self, ctx: Context, x: Array) -> Array:
        """z = x W + b; keeps x. Inputs of rank > 2 are multiplied as one matrix of rows
        (NumPy's stacked ``matmul`` of a (B, T, d) array by a matrix was measured 70x
        slower than the same product on the (B·T, d) rows)."""
        ctx.input = x
        xp = self.xp
        rows = x if x.ndim == 2 else xp.reshape(x, (-1, self.input_shape[-1]))
        z = xp.matmul(rows, self.kernel.value)
        if self.bias is not None:
            z += self.bias.value  # z is a fresh array: add in place, no temporary
        return z if x.ndim == 2 else xp.reshape(z, (*x.shape[:-1], self.units))

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """Adds dL/dW = xᵀ G and dL/db = Σ_n G_n; returns dL/dx = G Wᵀ."""
        xp = self.xp
        x = ctx.input
        if self.trainable:
            fan_in = self.input_shape[-1]
            x_rows = xp.reshape(x, (-1, fan_in)) if x.ndim != 2 else x
            grad_rows = (xp.reshape(grad_output, (-1, self.units))
                         if grad_output.ndim != 2 else grad_output)
            self.kernel.accumulate_grad(xp.matmul(x_rows.T, grad_rows))  # .T: both are 2-D
            if self.bias is not None:
                self.bias.accumulate_grad(xp.sum(grad_rows, axis=0))
        if not ctx.needs_input_grad[0]:
            return None
        if grad_output.ndim == 2:
            return xp.matmul(grad_output, self.kernel.value.T)
        grad_rows = xp.reshape(grad_output, (-1, self.units))
        return xp.reshape(xp.matmul(grad_rows, self.kernel.value.T), tuple(x.shape))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize_kernel(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "weight_decay": self.weight_decay,
        }
