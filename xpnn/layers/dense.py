"""The fully connected layer."""

from __future__ import annotations

from typing import Any

from xpnn import checks, initializers
from xpnn import functional as fn
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape

#: The activations ``Dense(activation=...)`` fuses (Keras's names; None means "linear").
ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh")


class Dense(Layer):
    """Fully connected layer: an affine map of the last axis, optionally followed by an
    activation φ.

    Forward, for x of shape (N, D_in) (or (..., D_in), mapped row by row)::

        z = x W + b        W: (D_in, D_out),  b: (D_out,)
        y = φ(z)           φ: the activation (identity for "linear")

    Backward, given G = dL/dy of shape (N, D_out), through the activation first (computed
    from the output y, which is all the call keeps besides x)::

        dL/dz = G                          linear
        dL/dz = G ⊙ [y > 0]                relu
        dL/dz = G ⊙ y ⊙ (1 − y)            sigmoid
        dL/dz = G ⊙ (1 − y²)               tanh
        dL/dz = y ⊙ (G − Σ_j G_j y_j)      softmax (over the last axis)

    then, with Γ = dL/dz::

        dL/dW = xᵀ Γ       dL/db = Σ_n Γ_n       returns dL/dx = Γ Wᵀ

    ``activation`` is None or ``"linear"`` (no activation), ``"relu"``, ``"sigmoid"``,
    ``"tanh"`` or ``"softmax"`` (Keras's names; for others, such as LeakyReLU, add the
    activation layer after Dense). ``Dense(10, activation="relu")`` computes exactly what
    ``Dense(10)`` followed by ``ReLU()`` computes, with one layer call.

    ``kernel_initializer="auto"`` (the default) is He normal when the activation is
    ``"relu"``, Glorot uniform for the other activations, and, without an activation, He
    normal when the next layer of a model is ReLU-family and Glorot uniform otherwise (see
    :mod:`xpnn.initializers`; Keras's default is Glorot uniform whatever the activation).
    ``weight_decay`` λ adds the L2 term ½λ‖W‖² to the loss and λW to dL/dW for this layer's
    kernel (None: the optimizer's ``weight_decay``; the bias is never decayed).
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
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
        self.activation = "linear" if activation is None else activation
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"Dense: activation must be None or one of {list(ACTIVATIONS)}, "
                             f"got {activation!r}; for another activation add its layer "
                             "after Dense (e.g. xpnn.LeakyReLU())")
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
        if self.activation == "linear":
            init = initializers.resolve_kernel(self.kernel_initializer, context.next_layer)
        elif self.kernel_initializer == "auto":
            init = initializers.get("he_normal" if self.activation == "relu"
                                    else "glorot_uniform")
        else:
            init = self.kernel_initializer
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
        """y = φ(x W + b); keeps x, and y when there is an activation. Inputs of rank > 2
        are multiplied as one matrix of rows (NumPy's stacked ``matmul`` of a (B, T, d)
        array by a matrix was measured 70x slower than the same product on the (B·T, d)
        rows)."""
        ctx.input = x
        xp = self.xp
        rows = x if x.ndim == 2 else xp.reshape(x, (-1, self.input_shape[-1]))
        z = xp.matmul(rows, self.kernel.value)
        if self.bias is not None:
            self.backend.add_bias(z, self.bias.value)  # z is fresh: added in place
        if x.ndim != 2:
            z = xp.reshape(z, (*x.shape[:-1], self.units))
        if self.activation == "linear":
            return z
        if self.activation == "softmax":
            y = fn.softmax(xp, z, axis=-1)
        else:
            y = fn.ACTIVATIONS[self.activation][0](xp, z)
        ctx.output = y
        return y

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """dL/dz from G through the activation; adds dL/dW = xᵀ dL/dz and
        dL/db = Σ_n (dL/dz)_n; returns dL/dx = (dL/dz) Wᵀ."""
        xp = self.xp
        x = ctx.input
        grad_z = self._activation_backward(ctx, grad_output)
        if self.trainable:
            fan_in = self.input_shape[-1]
            x_rows = xp.reshape(x, (-1, fan_in)) if x.ndim != 2 else x
            grad_rows = (xp.reshape(grad_z, (-1, self.units))
                         if grad_z.ndim != 2 else grad_z)
            self.kernel.accumulate_grad(xp.matmul(x_rows.T, grad_rows))  # .T: both are 2-D
            if self.bias is not None:
                self.bias.accumulate_grad(xp.sum(grad_rows, axis=0))
        if not ctx.needs_input_grad[0]:
            return None
        if grad_z.ndim == 2:
            return xp.matmul(grad_z, self.kernel.value.T)
        grad_rows = xp.reshape(grad_z, (-1, self.units))
        return xp.reshape(xp.matmul(grad_rows, self.kernel.value.T), tuple(x.shape))

    def _activation_backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dz from G = dL/dy and the kept output y (see the class docstring)."""
        if self.activation == "linear":
            return grad_output
        y = ctx.output
        if self.activation == "relu":
            return self.backend.apply_mask(grad_output, y > 0)  # [y > 0] = [z > 0]
        if self.activation == "softmax":
            return y * (grad_output - self.xp.sum(grad_output * y, axis=-1, keepdims=True))
        return grad_output * fn.ACTIVATIONS[self.activation][1](self.xp, y)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize_kernel(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "weight_decay": self.weight_decay,
        }
