"""Token embeddings: integer ids to learned vectors."""

from __future__ import annotations

from typing import Any

from xpnn import checks, initializers
from xpnn.errors import LabelError, NotReadyError, ShapeError
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape


class Embedding(Layer):
    """A lookup table of ``vocab_size`` vectors of size ``dim``: row k of the matrix E is the
    vector of token k.

    Forward, for integer ids of shape (batch, ...) (typically (batch, time))::

        y[..., :] = E[ids[...], :]              E: (vocab_size, dim); y: (batch, ..., dim)

    Backward, given G = dL/dy: each row of E collects the gradients of the positions that
    looked it up (a token used twice gets both)::

        dL/dE[k] = Σ_{positions p with ids[p] = k} G[p]

    a scatter-add, the backend's named kernel ``scatter_add``. Token ids have no gradient:
    ``backward`` returns None, so Embedding reads a model's input.

    Input checks: the ids must be integers (any integer dtype; they are not cast to the
    float dtype) in [0, vocab_size); an id out of range raises :class:`~xpnn.LabelError`
    naming the range received (never a silent wrap-around). Checking the range reads one
    boolean back from the device per call. The layer's dtype is that of the vectors (the
    model's), so a standalone Embedding must be built before it is called.

    ``embeddings_initializer`` defaults to N(0, 0.05²) (``{"name": "normal", "std":
    0.05}``); ``weight_decay`` λ puts ½λ‖E‖² in the loss as for a Dense kernel (None: the
    optimizer's ``weight_decay``).
    """

    #: Token ids are integers: a model must not cast them to its float dtype.
    integer_input = True
    #: The id range is checked on every batch.
    checks_values = True

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        embeddings_initializer: str | dict[str, Any] | initializers.Initializer | None = None,
        weight_decay: float | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name=name, trainable=trainable)
        self.vocab_size = checks.integer("Embedding", "vocab_size", vocab_size, 1)
        self.dim = checks.integer("Embedding", "dim", dim, 1)
        self.embeddings_initializer = initializers.get(
            embeddings_initializer if embeddings_initializer is not None
            else {"name": "normal", "std": 0.05})
        self.weight_decay = (None if weight_decay is None
                             else checks.number("Embedding", "weight_decay", weight_decay, 0))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(...) -> (..., dim)."""
        return (*input_shape, self.dim)

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create E (vocab_size, dim)."""
        super().build(input_shape, context)
        shape = (self.vocab_size, self.dim)
        self.embeddings = self.add_parameter(
            "embeddings",
            self.embeddings_initializer(shape, self.vocab_size, self.dim, context.rng),
            True, weight_decay=self.weight_decay)

    def _build_from(self, inputs: Any) -> None:
        """Refuse: integer ids do not tell the float dtype of the vectors."""
        raise NotReadyError(
            f"layer '{self.name}' (Embedding) cannot take its float dtype from integer token "
            "ids: use it in a model, or build it first with "
            "layer.build(input_shape, BuildContext(backend, dtype, rng))")

    def check_input(self, inputs: Any) -> None:
        """Raise a clear error unless ``inputs`` holds integer ids in [0, vocab_size) of the
        built shape on the layer's device (checking the range reads one boolean back)."""
        if isinstance(inputs, list | tuple):
            raise ShapeError(f"layer '{self.name}' (Embedding) takes one array of token ids, "
                             f"received a list of {len(inputs)}")
        self.check_array(inputs, self.input_shape, "token ids")
        xp, x = self.xp, inputs
        if bool(xp.any((x < 0) | (x >= self.vocab_size))):
            raise LabelError(
                f"layer '{self.name}' (Embedding): token ids must lie in [0, "
                f"{self.vocab_size - 1}] for vocab_size={self.vocab_size}, received ids from "
                f"{int(xp.min(x))} to {int(xp.max(x))}")

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = E[ids]; keeps the ids."""
        xp = self.xp
        ids = xp.reshape(x, (-1,))
        ctx.ids = ids
        vectors = xp.take(self.embeddings.value, ids, axis=0)
        return xp.reshape(vectors, (*x.shape, self.dim))

    def backward(self, ctx: Context, grad_output: Array) -> None:
        """Adds dL/dE = scatter-add of G's rows onto the rows of their ids; returns None
        (ids have no gradient)."""
        if self.trainable:
            rows = self.xp.reshape(grad_output, (-1, self.dim))
            self.embeddings.accumulate_grad(
                self.backend.scatter_add(ctx.ids, rows, self.vocab_size))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "dim": self.dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "weight_decay": self.weight_decay,
        }
