"""Token embeddings: integer ids to learned vectors."""

from __future__ import annotations

from typing import Any

from xpnn import checks, initializers
from xpnn.errors import DeviceError, DTypeError, LabelError, NotReadyError, ShapeError
from xpnn.layers.base import Array, BuildContext, Layer, Shape, _describe_array


class Embedding(Layer):
    """A lookup table of ``vocab_size`` vectors of size ``dim``: row k of the matrix E is the
    vector of token k.

    Forward, for integer ids of shape (batch, ...) (typically (batch, time))::

        y[..., :] = E[ids[...], :]              E: (vocab_size, dim); y: (batch, ..., dim)

    Backward, given G = dL/dy: each row of E collects the gradients of the positions that
    looked it up (a token used twice gets both)::

        dL/dE[k] = Σ_{positions p with ids[p] = k} G[p]

    a scatter-add, the backend's named kernel ``scatter_add``. Token ids have no gradient:
    ``backward`` returns None, so Embedding is the first layer of a model.

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
        self._cache_ids: Array | None = None

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

    def _build_from(self, x: Array) -> None:
        """Refuse: integer ids do not tell the float dtype of the vectors."""
        raise NotReadyError(
            f"layer '{self.name}' (Embedding) cannot take its float dtype from integer token "
            "ids: use it in a Sequential, or build it first with "
            "layer.build(input_shape, BuildContext(backend, dtype, rng))")

    def check_input(self, x: Array) -> None:
        """Raise a clear error unless ``x`` holds integer ids in [0, vocab_size) of the built
        shape on the layer's device."""
        where = f"layer '{self.name}' (Embedding)"
        if not self.backend.owns(x):
            raise DeviceError(f"{where} lives on {self.backend.device} but received "
                              f"{_describe_array(x)}")
        if tuple(x.shape[1:]) != self.input_shape or len(x.shape) != len(self.input_shape) + 1:
            expected = f"(batch, {', '.join(map(str, self.input_shape))})".replace(", )", ")")
            raise ShapeError(f"{where} expected token ids of shape {expected}, received "
                             f"{tuple(x.shape)}")
        xp = self.xp
        if not xp.isdtype(x.dtype, "integral"):
            raise DTypeError(f"{where} takes integer token ids, received dtype "
                             f"{self.backend.dtype_name(x.dtype)}")
        if bool(xp.any((x < 0) | (x >= self.vocab_size))):
            raise LabelError(
                f"{where}: token ids must lie in [0, {self.vocab_size - 1}] for vocab_size="
                f"{self.vocab_size}, received ids from {int(xp.min(x))} to {int(xp.max(x))}")

    def forward(self, x: Array, training: bool = False) -> Array:
        """y = E[ids]."""
        xp = self.xp
        ids = xp.reshape(x, (-1,))
        self._cache_ids = ids
        vectors = xp.take(self.embeddings.value, ids, axis=0)
        return xp.reshape(vectors, (*x.shape, self.dim))

    def backward(self, grad_output: Array) -> None:
        """Sets dL/dE = scatter-add of G's rows onto the rows of their ids; returns None
        (ids have no gradient)."""
        if self.trainable:
            rows = self.xp.reshape(grad_output, (-1, self.dim))
            self.embeddings.grad = self.backend.scatter_add(self._cache_ids, rows,
                                                            self.vocab_size)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "dim": self.dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "weight_decay": self.weight_decay,
        }
