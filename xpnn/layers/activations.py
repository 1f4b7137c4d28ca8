"""Activation layers: elementwise (Sigmoid, Tanh, ReLU, LeakyReLU, GELU) and along an axis
(Softmax).

Each keeps on the call's context only what its backward needs: its output (Sigmoid, Tanh,
Softmax), its input (LeakyReLU; GELU with Φ(x) or tanh u) or the mask [x > 0] (ReLU).
"""

from __future__ import annotations

import math
from typing import Any

from xpnn import checks
from xpnn import functional as fn
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, Context, Layer, Shape, batch_shape


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
        """y = max(x, 0); keeps the boolean mask [x > 0] (both from the backend's ``relu``
        kernel)."""
        y, ctx.mask = self.backend.relu(x)
        return y

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
    """y_j = e^{x_j} / Σ_k e^{x_k} along ``axis`` (counted with the batch axis, as in Keras:
    −1 the last, 1 the first after the batch; the batch axis itself is refused), shifted by
    the maximum along the axis.

    Backward, with the Jacobian ∂y_j/∂x_i = y_j (δ_ij − y_i) along the axis::

        dL/dx = y ⊙ (G − Σ_j G_j y_j)

    For classification prefer a linear output with :class:`~xpnn.losses.SoftmaxCrossEntropy`,
    whose fused gradient softmax(z) − y is cheaper and more accurate.
    """

    def __init__(self, axis: int = -1, *, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis = checks.integer("Softmax", "axis", axis, -(2**31))
        if self.axis == 0:
            raise ValueError("Softmax: axis 0 is the batch axis, which would mix samples; use "
                             "axis=-1 (the last) or a positive axis counted with the batch")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The input shape; refused when the axis does not exist in it (a batch of scalars
        has no axis to normalise)."""
        rank = len(input_shape) + 1
        if not -rank < self.axis < rank or self.axis % rank == 0:
            raise ShapeError(f"layer '{self.name}' (Softmax) normalises axis {self.axis}, "
                             f"which inputs of shape {batch_shape(tuple(input_shape))} do not "
                             "have besides the batch axis")
        return tuple(input_shape)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = softmax(x) along the axis."""
        ctx.output = fn.softmax(self.xp, x, axis=self.axis)
        return ctx.output

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = y ⊙ (G − Σ_j G_j y_j)."""
        y = ctx.output
        return y * (grad_output - self.xp.sum(grad_output * y, axis=self.axis, keepdims=True))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "axis": self.axis}


#: √(2/π), the slope of the tanh approximation of GELU at 0 (before the cubic term).
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
#: The cubic coefficient of the tanh approximation (Hendrycks & Gimpel 2016).
_GELU_CUBIC = 0.044715


class GELU(Layer):
    """The Gaussian error linear unit (Hendrycks & Gimpel 2016), y = x Φ(x) with Φ the
    standard normal distribution function, in one of two named forms:

    ``approximate="none"`` (the exact form, PyTorch's default)::

        Φ(x) = ½ (1 + erf(x/√2))         y = x Φ(x)
        returns dL/dx = G ⊙ (Φ(x) + x φ(x))       φ(x) = e^{−x²/2} / √(2π)

    ``approximate="tanh"`` (GPT-2's, PyTorch's ``approximate='tanh'``)::

        u = √(2/π) (x + 0.044715 x³)     t = tanh(u)     y = ½ x (1 + t)
        returns dL/dx = G ⊙ (½ (1 + t) + ½ x (1 − t²) √(2/π) (1 + 3 · 0.044715 x²))

    erf is the backend's named kernel ``erf`` (the Array API standard has none).
    """

    APPROXIMATIONS = ("none", "tanh")

    def __init__(self, approximate: str = "none", *, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if approximate not in self.APPROXIMATIONS:
            raise ValueError(f"GELU: approximate must be one of {self.APPROXIMATIONS}, got "
                             f"{approximate!r}")
        self.approximate = approximate

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = x Φ(x) (exact) or ½ x (1 + tanh u) (tanh form); keeps x and Φ(x) or tanh u.
        (Fresh arrays are updated in place: fewer temporaries of the input's size.)"""
        ctx.input = x
        if self.approximate == "tanh":
            u = x * x
            u *= _GELU_CUBIC
            u += 1.0
            u *= x
            u *= _SQRT_2_OVER_PI
            ctx.tanh = self.xp.tanh(u)
            y = ctx.tanh + 1.0
            y *= x
            y *= 0.5
            return y
        ctx.cdf = self.backend.erf(x * (1.0 / math.sqrt(2.0)))
        ctx.cdf *= 0.5
        ctx.cdf += 0.5
        return x * ctx.cdf

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = G ⊙ (Φ + x φ) (exact), or the tanh form's derivative (class docstring)."""
        x = ctx.input
        if self.approximate == "tanh":
            t = ctx.tanh
            slope = x * x  # √(2/π) (1 + 3 · 0.044715 x²)
            slope *= 3.0 * _GELU_CUBIC * _SQRT_2_OVER_PI
            slope += _SQRT_2_OVER_PI
            derivative = t * t  # 1 − t²
            derivative *= -1.0
            derivative += 1.0
            derivative *= slope
            derivative *= x
            derivative += t
            derivative += 1.0
            derivative *= 0.5
        else:
            square = x * x
            square *= -0.5
            derivative = self.xp.exp(square)  # φ(x) √(2π)
            derivative *= x
            derivative *= 1.0 / math.sqrt(2.0 * math.pi)
            derivative += ctx.cdf
        derivative *= grad_output
        return derivative

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "approximate": self.approximate}
