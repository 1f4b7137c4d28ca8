"""Token and position embeddings, and the padding mask of token ids: integer ids to learned
vectors (Embedding), positions to learned or sinusoidal vectors added to a sequence
(PositionalEmbedding), ids to the boolean mask of the steps that are not padding
(PaddingMask)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from xpnn import checks, initializers
from xpnn.backends import backend_type_of
from xpnn.device import backend_of
from xpnn.errors import LabelError, NotReadyError, ShapeError
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape, batch_shape

if TYPE_CHECKING:
    from xpnn.backends.base import Backend


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

    ``mask_zero=True`` declares id 0 the padding token: :meth:`compute_mask` then gives the
    boolean (batch, time) mask of the other steps, which attention takes as its
    ``padding_mask``. Nothing is propagated behind the scenes (no Keras-style implicit
    masks): the mask is a tensor of the graph like any other::

        ids = xpnn.Input((64,), name="ids")
        embed = xpnn.Embedding(vocab, 32, mask_zero=True)
        h = xpnn.MultiHeadAttention(4, 8)(embed(ids), padding_mask=embed.compute_mask(ids))
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
        mask_zero: bool = False,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name=name, trainable=trainable)
        self.mask_zero = bool(mask_zero)
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
            "mask_zero": self.mask_zero,
        }

    def compute_mask(self, ids: Any) -> Any:
        """The valid-step mask ids ≠ 0 of ``ids`` (symbolic: a :class:`PaddingMask` node of
        the graph; arrays: the boolean array), for a layer with ``mask_zero=True``."""
        if not self.mask_zero:
            raise ValueError(f"layer '{self.name}' (Embedding) has no padding token: build it "
                             "with mask_zero=True to reserve id 0 for padding")
        return PaddingMask(0, name=f"{self.name}_mask")(ids)


class PaddingMask(Layer):
    """The valid steps of a sequence of token ids, as booleans::

        mask[n, t] = (ids[n, t] ≠ pad_id)

    for :class:`~xpnn.layers.attention.MultiHeadAttention`'s ``padding_mask``. No parameters
    and no gradient (ids have none; ``backward`` returns None); its output is a boolean
    tensor of the graph (``output_dtype``), so it can be an input of other layers but not a
    model's output.
    """

    integer_input = True
    output_dtype = "bool"

    def __init__(self, pad_id: int = 0, *, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.pad_id = checks.integer("PaddingMask", "pad_id", pad_id, -(2**31))

    def _build_from(self, inputs: Any) -> None:
        """Build on the device of the ids (a mask has no float dtype: float32 is recorded)."""
        if isinstance(inputs, list | tuple) or backend_type_of(inputs) is None:
            super()._build_from(inputs)  # the base class says what is wrong
            return
        self.build(tuple(int(n) for n in inputs.shape[1:]),
                   BuildContext(backend_of(inputs), "float32", None))

    def forward(self, ctx: Context, ids: Array) -> Array:
        """mask = (ids ≠ pad_id)."""
        return ids != self.pad_id

    def backward(self, ctx: Context, grad_output: Array) -> None:
        """None: token ids have no gradient."""
        return None

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "pad_id": self.pad_id}


class PositionalEmbedding(Layer):
    """Adds a vector per position to a sequence of vectors x of shape (batch, time, dim),
    time ≤ ``max_length``::

        y[n, t, :] = x[n, t, :] + P[t, :]

    ``kind="learned"``: P is a (max_length, dim) parameter (``embeddings``, initialised
    N(0, 0.02²) as in GPT-2), and backward adds the gradient of each position over the
    batch, dL/dP[t] = Σ_n G[n, t] (0 for positions beyond the built length);
    ``kind="sinusoidal"`` (Vaswani et al. 2017): P is fixed, no parameters::

        P[t, 2i] = sin(t / 10000^{2i/dim})     P[t, 2i + 1] = cos(t / 10000^{2i/dim})

    computed in float64 when the layer is built and cast to its dtype. Both return
    dL/dx = G.
    """

    KINDS = ("learned", "sinusoidal")

    def __init__(self, max_length: int, dim: int, kind: str = "learned", *,
                 embeddings_initializer: str | dict[str, Any] | initializers.Initializer
                 | None = None, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.max_length = checks.integer("PositionalEmbedding", "max_length", max_length, 1)
        self.dim = checks.integer("PositionalEmbedding", "dim", dim, 1)
        if kind not in self.KINDS:
            raise ValueError(f"PositionalEmbedding: kind must be one of {self.KINDS}, got "
                             f"{kind!r}")
        self.kind = kind
        self.embeddings_initializer = initializers.get(
            embeddings_initializer if embeddings_initializer is not None
            else {"name": "normal", "std": 0.02})

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(time, dim) -> (time, dim), with time ≤ max_length."""
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[1] != self.dim or not 1 <= shape[0] <= self.max_length:
            raise ShapeError(f"layer '{self.name}' (PositionalEmbedding) takes sequences of "
                             f"shape (batch, time, {self.dim}) with time <= {self.max_length}, "
                             f"received {batch_shape(shape)}")
        return shape

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create P (learned) or the sinusoid table (fixed)."""
        super().build(input_shape, context)
        shape = (self.max_length, self.dim)
        if self.kind == "learned":
            self.embeddings = self.add_parameter(
                "embeddings", self.embeddings_initializer(shape, self.max_length, self.dim,
                                                          context.rng), False)
        else:
            self.table = self._sinusoids()

    def _sinusoids(self) -> Array:
        """The (time, dim) sinusoid table on the layer's device, in its dtype."""
        xp, device = self.xp, self.backend.native_device
        time = self.input_shape[0]
        columns = xp.arange(self.dim, device=device)
        pair = xp.astype(columns // 2, xp.float64)
        frequency = xp.exp(pair * (-2.0 * math.log(10000.0) / self.dim))
        angle = (xp.reshape(xp.arange(time, dtype=xp.float64, device=device), (time, 1))
                 * xp.reshape(frequency, (1, self.dim)))
        table = xp.where(columns % 2 == 0, xp.sin(angle), xp.cos(angle))
        return xp.astype(table, self.dtype)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = x + P[:time]."""
        if self.kind == "learned":
            return x + self.embeddings.value[:self.input_shape[0], :]
        return x + self.table

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """Adds dL/dP[t] = Σ_n G[n, t] (learned); returns dL/dx = G."""
        if self.kind == "learned" and self.trainable:
            xp = self.xp
            grad = xp.sum(grad_output, axis=0)
            missing = self.max_length - self.input_shape[0]
            if missing:
                grad = xp.concat([grad, xp.zeros((missing, self.dim), dtype=grad.dtype,
                                                 device=self.backend.native_device)], axis=0)
            self.embeddings.accumulate_grad(grad)
        return grad_output if ctx.needs_input_grad[0] else None

    def to(self, backend: Backend) -> None:
        """Move to another device (the sinusoid table is computed there again)."""
        super().to(backend)
        if self.kind == "sinusoidal" and self.built:
            self.table = self._sinusoids()

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "max_length": self.max_length, "dim": self.dim,
                "kind": self.kind,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer)}
