"""Layers that only change the shape of their input."""

from __future__ import annotations

from xpnn.errors import ShapeError
from xpnn.layers.base import Array, Context, Layer, Shape


class Flatten(Layer):
    """Flattens each sample to a vector, in row-major (C-order) order: (N, d₁, …, d_k) ->
    (N, d₁·…·d_k); for NCHW images the index of x[n, c, u, v] is (c·H + u)·W + v, as in
    PyTorch's ``flatten``. Backward reshapes dL/dy back to the input's shape."""

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(d₁, …, d_k) -> (d₁·…·d_k,)."""
        if not input_shape:
            raise ShapeError(f"layer '{self.name}' (Flatten) needs inputs of shape (batch, "
                             "d1, ...), received a batch of scalars")
        size = 1
        for n in input_shape:
            size *= n
        return (size,)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = x reshaped to (N, d₁·…·d_k)."""
        return self.xp.reshape(x, (int(x.shape[0]), *self.output_shape))

    def backward(self, ctx: Context, grad_output: Array) -> Array:
        """dL/dx = G reshaped to the input's shape."""
        return self.xp.reshape(grad_output, (int(grad_output.shape[0]), *self.input_shape))
