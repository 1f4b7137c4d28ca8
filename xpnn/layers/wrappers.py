"""Wrappers: layers that apply another layer in a new way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xpnn import config
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, BuildContext, Context, Layer, Parameter, Shape, batch_shape

if TYPE_CHECKING:
    from xpnn.backends.base import Backend


class TimeDistributed(Layer):
    """Apply one layer to every step of a sequence, with the same weights at every step.

    Forward, for x of shape (batch, time, *step_shape)::

        y[:, t] = layer(x[:, t])     computed as one call on the (batch·time, *step_shape)
                                     rows, reshaped back to (batch, time, *output_shape)

    Backward reshapes G = dL/dy the same way and runs the inner layer's backward once, so
    its parameter gradients are sums over the batch and the steps; returns dL/dx shaped like
    x. The inner layer is built for one step's shape; its parameters are this layer's,
    named ``"<this layer>/<inner layer>/<param>"`` so that they stay unique in a model.
    ``trainable`` is the inner layer's flag (None keeps the one it was made with).

    Dense already maps the last axis of any input, so ``TimeDistributed(Dense(k))`` equals
    ``Dense(k)``; the wrapper is for layers that expect (batch, features) rows, such as
    Softmax over a step's classes or BatchNorm with statistics over batch and steps.
    """

    def __init__(self, layer: Layer | dict[str, Any], *, name: str | None = None,
                 trainable: bool | None = None) -> None:
        self.layer = (layer if isinstance(layer, Layer)
                      else config.deserialize(layer, Layer, "layer"))
        if self.layer.built:
            raise ValueError(f"TimeDistributed: layer '{self.layer.name}' is already built; "
                             "wrap a new layer (to share one, call it in a graph model)")
        super().__init__(name=name, trainable=self.layer.trainable if trainable is None
                         else trainable)

    @property
    def trainable(self) -> bool:
        """Whether the inner layer's parameters are trained."""
        return self.layer.trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.layer.trainable = value

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(time, *step_shape) -> (time, *inner output shape)."""
        if len(input_shape) < 2:
            raise ShapeError(f"layer '{self.name}' (TimeDistributed) needs inputs of shape "
                             f"(batch, time, features...), received "
                             f"{batch_shape(input_shape)}")
        return (input_shape[0], *self.layer.compute_output_shape(input_shape[1:]))

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Build the inner layer for one step's shape and prefix its parameter names."""
        super().build(input_shape, context)
        self.layer.build(self.input_shape[1:], context)
        for param in self.layer.parameters():
            param.name = f"{self.name}/{param.name}"

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = layer(x reshaped to (batch·time, ...)), reshaped to (batch, time, ...); keeps
        the inner layer's context."""
        xp = self.xp
        batch, steps = int(x.shape[0]), int(x.shape[1])
        rows = xp.reshape(x, (batch * steps, *self.input_shape[1:]))
        ctx.inner = Context(ctx.training, ctx.needs_input_grad)
        return xp.reshape(self.layer.forward(ctx.inner, rows),
                          (batch, steps, *self.output_shape[1:]))

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """The inner layer's backward on the (batch·time, ...) rows; dL/dx reshaped back."""
        xp = self.xp
        batch, steps = int(grad_output.shape[0]), int(grad_output.shape[1])
        grad = self.layer.backward(
            ctx.inner, xp.reshape(grad_output, (batch * steps, *self.output_shape[1:])))
        return None if grad is None else xp.reshape(grad, (batch, steps, *self.input_shape[1:]))

    def parameters(self) -> list[Parameter]:
        """The inner layer's parameters."""
        return self.layer.parameters()

    def trainable_parameters(self) -> list[Parameter]:
        """The inner layer's trainable parameters."""
        return self.layer.trainable_parameters()

    def count_params(self) -> int:
        """The number of scalars in the inner layer's parameters."""
        return self.layer.count_params()

    def to(self, backend: Backend) -> None:
        """Move the inner layer, then this one."""
        self.layer.to(backend)
        super().to(backend)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments; the inner layer as ``{"class", "config"}``."""
        return {**super().get_config(), "layer": config.serialize(self.layer)}
