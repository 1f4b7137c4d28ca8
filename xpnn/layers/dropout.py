"""Dropout (Srivastava et al. 2014), in the inverted form."""

from __future__ import annotations

from typing import Any

from xpnn import checks
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape


class Dropout(Layer):
    """Inverted dropout with drop probability p = ``rate``.

    Training: each entry is kept with probability 1 − p and scaled so its expectation is
    unchanged::

        m ~ Bernoulli(1 − p) elementwise        y = x ⊙ m / (1 − p)
        returns dL/dx = G ⊙ m / (1 − p)

    Inference: y = x and dL/dx = G. The mask is drawn on the layer's device by its own
    generator (``Backend.generator``), seeded by ``seed`` or, when that is None, by the
    model's seed and the layer's position, so a seeded model draws the same masks on every
    run. The NumPy and strict devices draw the same masks; CuPy draws other ones.
    """

    def __init__(self, rate: float, *, seed: int | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.rate = checks.number("Dropout", "rate", rate, 0, 1)
        self.seed = seed

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create the layer's random generator on its device."""
        super().build(input_shape, context)
        self.make_generator(self.seed, context)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = x ⊙ m / (1 − p) in training (keeps the scaled mask), y = x in inference."""
        if not ctx.training or self.rate == 0.0:
            ctx.scaled_mask = None
            return x
        keep = self.generator.uniform(tuple(x.shape), self.dtype_name) >= self.rate
        ctx.scaled_mask = self.xp.astype(keep, self.dtype) * (1.0 / (1.0 - self.rate))
        return x * ctx.scaled_mask

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """dL/dx = G ⊙ m / (1 − p) (training) or G (inference)."""
        if ctx.scaled_mask is None:
            return grad_output
        return grad_output * ctx.scaled_mask

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
