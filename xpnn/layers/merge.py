"""Merge layers: several inputs of one shape in, one output out (residual connections,
branches that meet, two inputs of a model).

Each is called on a list of tensors, ``Add()([x, y])``, and its backward returns one gradient
per input, in order. Shapes must match exactly (Concatenate: except along its axis): nothing
is broadcast, and a mismatch is a :class:`~xpnn.errors.ShapeError` naming the layer and every
input's shape, raised when the graph is recorded.
"""

from __future__ import annotations

from typing import Any

from xpnn import checks
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, Context, Layer, Shape, batch_shape


class Merge(Layer):
    """Base class: checks that the layer gets a list of ``min_inputs`` to ``max_inputs``
    arrays of one shape; subclasses write ``forward`` and ``backward``."""

    #: How many inputs the layer takes (``max_inputs`` None: any number).
    min_inputs = 2
    max_inputs: int | None = None

    def _where(self) -> str:
        return f"layer '{self.name}' ({type(self).__name__})"

    def _input_shapes(self, input_shape: Any) -> list[Shape]:
        if not isinstance(input_shape, list):
            raise ShapeError(f"{self._where()} merges a list of inputs, e.g. "
                             f"{type(self).__name__}()([a, b]); received one input of shape "
                             f"{batch_shape(tuple(input_shape))}")
        count = len(input_shape)
        if count < self.min_inputs or (self.max_inputs is not None and count > self.max_inputs):
            wanted = (f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs
                      else f"at least {self.min_inputs}")
            raise ShapeError(f"{self._where()} takes {wanted} inputs, received {count}")
        return [tuple(shape) for shape in input_shape]

    def _describe(self, shapes: list[Shape]) -> str:
        return ", ".join(f"input {i}: {batch_shape(shape)}" for i, shape in enumerate(shapes))

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The common shape of the inputs (all must be equal)."""
        shapes = self._input_shapes(input_shape)
        if any(shape != shapes[0] for shape in shapes):
            raise ShapeError(f"{self._where()} needs inputs of one shape (nothing is "
                             f"broadcast); received {self._describe(shapes)}")
        return shapes[0]


class Add(Merge):
    """y = x₁ + x₂ + … + x_n; returns dL/dx_i = G for every input."""

    def forward(self, ctx: Context, inputs: list[Array]) -> Array:
        """y = Σ_i x_i."""
        total = inputs[0] + inputs[1]
        for x in inputs[2:]:
            total += x  # total is a fresh array
        return total

    def backward(self, ctx: Context, grad_output: Array) -> list[Array | None]:
        """dL/dx_i = G."""
        return [grad_output if needed else None for needed in ctx.needs_input_grad]


class Subtract(Merge):
    """y = x₁ − x₂ (exactly two inputs); returns dL/dx₁ = G, dL/dx₂ = −G."""

    max_inputs = 2

    def forward(self, ctx: Context, inputs: list[Array]) -> Array:
        """y = x₁ − x₂."""
        return inputs[0] - inputs[1]

    def backward(self, ctx: Context, grad_output: Array) -> list[Array | None]:
        """dL/dx₁ = G, dL/dx₂ = −G."""
        first, second = ctx.needs_input_grad
        return [grad_output if first else None, -grad_output if second else None]


class Multiply(Merge):
    """y = x₁ ⊙ x₂ ⊙ … ⊙ x_n (elementwise); returns dL/dx_i = G ⊙ Π_{j≠i} x_j (the
    product of the other inputs, never a division by x_i)."""

    def forward(self, ctx: Context, inputs: list[Array]) -> Array:
        """y = Π_i x_i; keeps the inputs."""
        ctx.inputs = list(inputs)
        product = inputs[0] * inputs[1]
        for x in inputs[2:]:
            product *= x
        return product

    def backward(self, ctx: Context, grad_output: Array) -> list[Array | None]:
        """dL/dx_i = G ⊙ Π_{j≠i} x_j."""
        grads: list[Array | None] = []
        for i, needed in enumerate(ctx.needs_input_grad):
            grad = None
            if needed:
                grad = grad_output
                for j, x in enumerate(ctx.inputs):
                    if j != i:
                        grad = grad * x
            grads.append(grad)
        return grads


class Average(Merge):
    """y = (x₁ + … + x_n) / n; returns dL/dx_i = G / n."""

    def forward(self, ctx: Context, inputs: list[Array]) -> Array:
        """y = Σ_i x_i / n."""
        total = inputs[0] + inputs[1]
        for x in inputs[2:]:
            total += x
        return total * (1.0 / len(inputs))

    def backward(self, ctx: Context, grad_output: Array) -> list[Array | None]:
        """dL/dx_i = G / n."""
        share = grad_output * (1.0 / len(ctx.needs_input_grad))
        return [share if needed else None for needed in ctx.needs_input_grad]


class Concatenate(Merge):
    """Join the inputs along ``axis`` (counted with the batch axis, as in Keras: -1 the last,
    1 the first after the batch; the batch axis itself cannot be joined)::

        y = [x₁ | x₂ | … | x_n] along the axis, sizes d₁ + d₂ + … + d_n

    Every other axis must match. Backward slices G back into the inputs' parts:
    dL/dx_i = G[..., o_i : o_i + d_i, ...] with o_i = d₁ + … + d_{i−1}.
    """

    def __init__(self, axis: int = -1, *, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis = checks.integer("Concatenate", "axis", axis, -(2**31))
        if self.axis == 0:
            raise ValueError("Concatenate: axis 0 is the batch axis, which cannot be joined; "
                             "use axis=-1 (the last) or a positive axis counted with the batch")

    def _sample_axis(self, rank: int) -> int:
        """The axis within a sample's shape (no batch axis) of ``rank`` dimensions."""
        axis = self.axis - 1 if self.axis > 0 else self.axis + rank
        if not 0 <= axis < rank:
            raise ShapeError(f"{self._where()}: axis {self.axis} does not exist in inputs of "
                             f"rank {rank + 1} (with the batch axis)")
        return axis

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The common shape with the sizes along the axis added up."""
        shapes = self._input_shapes(input_shape)
        rank = len(shapes[0])
        if any(len(shape) != rank for shape in shapes):
            raise ShapeError(f"{self._where()} needs inputs of one rank; received "
                             f"{self._describe(shapes)}")
        axis = self._sample_axis(rank)
        others = [shape[:axis] + shape[axis + 1:] for shape in shapes]
        if any(other != others[0] for other in others):
            raise ShapeError(f"{self._where()} joins along axis {self.axis}: every other axis "
                             f"must match; received {self._describe(shapes)}")
        total = sum(shape[axis] for shape in shapes)
        return (*shapes[0][:axis], total, *shapes[0][axis + 1:])

    def forward(self, ctx: Context, inputs: list[Array]) -> Array:
        """y = the inputs joined along the axis."""
        return self.xp.concat(list(inputs), axis=self._sample_axis(len(self.output_shape)) + 1)

    def backward(self, ctx: Context, grad_output: Array) -> list[Array | None]:
        """dL/dx_i = the slice of G that x_i filled."""
        axis = self._sample_axis(len(self.output_shape))
        leading = (slice(None),) * (axis + 1)  # the batch and the axes before the joined one
        grads: list[Array | None] = []
        offset = 0
        for shape, needed in zip(self.input_shape, ctx.needs_input_grad, strict=True):
            size = shape[axis]
            if needed:
                grads.append(grad_output[(*leading, slice(offset, offset + size), ...)])
            else:
                grads.append(None)
            offset += size
        return grads

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "axis": self.axis}
