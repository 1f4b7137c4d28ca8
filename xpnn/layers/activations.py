"""Activation layers: elementwise (Sigmoid, Tanh, ReLU, LeakyReLU) and row-wise (Softmax).

Each keeps on the call's context only what its backward needs: its output (Sigmoid, Tanh,
Softmax), its input (LeakyReLU) or the mask [x > 0] (ReLU).
"""

from __future__ import annotations

from typing import Any

from xpnn import checks
from xpnn import functional as fn
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, Context, Layer, Shape


class Sigmoid(Layer):
    """y = σ(x) = 1 / (1 + e^{-x}) (stable form); returns dL/dx = G ⊙ y ⊙ (1 − y)."""

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = σ(x)."""
        ctx.output = fn.sigmoid(self.xp, x)
        return ctx.output

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = G ⊙ y ⊙ (1 − y)."""
        y = ctx.output
        return grad_output * y * (1.0 - y)


class Tanh(Layer):
    """y = tanh(x); returns dL/dx = G ⊙ (1 − y²)."""

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = tanh(x)."""
        ctx.output = self.xp.tanh(x)
        return ctx.output

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = G ⊙ (1 − y²)."""
        y = ctx.output
        return grad_output * (1.0 - y * y)


class ReLU(Layer):
    """y = max(x, 0); returns dL/dx = G ⊙ [x > 0] (the subgradient at 0 is taken as 0)."""

    preferred_initializer = "he_normal"

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = max(x, 0); keeps the boolean mask [x > 0]."""
        ctx.mask = x > 0
        return self.xp.maximum(x, 0.0)

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = G ⊙ [x > 0] (the backend's ``apply_mask`` kernel)."""
        return self.backend.apply_mask(grad_output, ctx.mask)


class LeakyReLU(Layer):
    """y = x for x > 0, αx otherwise; returns dL/dx = G for x > 0, αG otherwise."""

    preferred_initializer = "he_normal"

    def __init__(self, alpha: float = 0.01, *, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.alpha = checks.number("LeakyReLU", "alpha", alpha, 0, 1)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = x where x > 0, else αx."""
        ctx.input = x
        return self.xp.where(x > 0, x, self.alpha * x)

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = G where x > 0, else αG."""
        return self.xp.where(ctx.input > 0, grad_output, self.alpha * grad_output)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(Layer):
    """y_j = e^{x_j} / Σ_k e^{x_k} along the last axis (shifted by the row maximum).

    Backward, with the Jacobian ∂y_j/∂x_i = y_j (δ_ij − y_i)::

        dL/dx = y ⊙ (G − Σ_j G_j y_j)

    For classification prefer a linear output with :class:`~xpnn.losses.SoftmaxCrossEntropy`,
    whose fused gradient softmax(z) − y is cheaper and more accurate.
    """

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The input shape; a batch of scalars is refused (softmax would mix samples)."""
        if not input_shape:
            raise ShapeError(f"layer '{self.name}' (Softmax) normalises the last axis and needs"
                             " inputs of shape (batch, ..., classes), received a batch of "
                             "scalars")
        return tuple(input_shape)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = softmax(x) along the last axis."""
        ctx.output = fn.softmax(self.xp, x, axis=-1)
        return ctx.output

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = y ⊙ (G − Σ_j G_j y_j)."""
        y = ctx.output
        return y * (grad_output - self.xp.sum(grad_output * y, axis=-1, keepdims=True))
