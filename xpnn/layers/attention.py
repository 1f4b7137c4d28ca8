"""Multi-head attention (Vaswani et al. 2017), self- and cross-, with causal and padding masks.

**Inputs.** A call takes its tensors in one of these layouts (shapes without the batch axis;
T_q and T_k the query's and the keys' lengths):

- ``mha(x)``: self-attention, query = key = value = x of (T, D);
- ``mha([query, value])``: cross-attention, key = value; ``mha([query, value, key])``;
- any of these with ``padding_mask=m`` (``mha(x, padding_mask=m)``), which appends m to
  the list: ``[x, m]``, ``[query, value, m]``, ``[query, value, key, m]``. m is a boolean
  (or integer, non-zero = valid) array of shape (batch, T_k), True at the key steps that
  hold data; queries never attend to the others. In a graph, m is an
  ``xpnn.Input((T_k,), dtype="bool")`` or ``Embedding(..., mask_zero=True).compute_mask(ids)``
  (a :class:`~xpnn.layers.embedding.PaddingMask` node). It has no gradient.

So the inputs of a call are one tensor or a list, as everywhere in a graph; the layer tells
the mask from the sequences by its rank. One call of a shared layer must use the layout of
the others.

**Outputs.** y of (T_q, D_q) (the query's width), and with ``return_attention_scores=True``
also the attention weights A of (heads, T_q, T_k), as a second output: ``y, scores =
mha(x)``. The scores are a differentiable output like any other: a loss on them adds its
gradient to the weights' (see ``Backend.attention_backward``).
"""

from __future__ import annotations

import math
from typing import Any

from xpnn import checks, initializers
from xpnn.errors import DeviceError, DTypeError, ShapeError
from xpnn.graph import SymbolicTensor
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape, batch_shape

#: One initializer argument: a name, a serialized config, or an Initializer.
InitializerSpec = str | dict[str, Any] | initializers.Initializer

#: The dtypes a padding mask may have.
MASK_DTYPES = ("bool", "int32", "int64")


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention with H = ``num_heads`` heads of key width
    d_k = ``key_dim`` and value width d_v = ``value_dim`` (default d_k); see the module
    docstring for the inputs and outputs.

    Forward, with X_q (batch·T_q, D_q), X_k and X_v the inputs as rows, and head h using
    columns h·d : (h + 1)·d of each projection::

        Q = X_q W_q + b_q    K = X_k W_k + b_k    V = X_v W_v + b_v     (d_k, d_k, d_v per head)
        S_h = Q_h K_hᵀ / √d_k                                          (T_q, T_k) per sample
        S_h[i, j] = −∞ where the mask forbids query i to see key j
        A_h = softmax(S_h) along j (shifted by the row maximum; a row with nothing allowed
              gets zeros, not NaN)
        O_h = (A_h ⊙ D_h) V_h            D: dropout of the weights, m/(1 − p), training only
        C = [O_1 | … | O_H]              y = C W_o + b_o                 (W_o: H·d_v × D_q)

    The mask is ``causal`` (query i sees keys j ≤ i, counted from the first step of both)
    and/or the padding mask (keys that are padding are never seen). Self-attention on one
    tensor projects Q, K and V with one product X [W_q | W_k | W_v].

    Backward, from G = dL/dy (and dL/dA when the scores are an output)::

        dL/dW_o = Cᵀ G     dL/db_o = Σ G     dL/dC = G W_oᵀ  → dL/dO_h
        dL/dQ_h, dL/dK_h, dL/dV_h: the backend's ``attention_backward`` (softmax's
            Jacobian row by row, dL/dS = A ⊙ (dL/dA − Σ_j dL/dA_ij A_ij))
        dL/dW_q = X_qᵀ dL/dQ    dL/db_q = Σ dL/dQ    dL/dX_q = dL/dQ W_qᵀ   (same for K, V)

    and an input used in several roles (self-attention: X in all three) gets the sum of its
    roles' gradients. The padding mask gets None.

    Each step of the product is a named backend kernel (``Backend.attention`` and
    ``attention_backward``): a generic Array API version, specialised by NumPy (in place).
    ``dropout`` p > 0 drops attention weights in training with the layer's device
    generator (``seed``, else the model's; saved in checkpoints like Dropout's). Kernels
    start Glorot-uniform, biases zero; ``weight_decay`` λ applies to the four kernels.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        causal: bool = False,
        dropout: float = 0.0,
        use_bias: bool = True,
        *,
        return_attention_scores: bool = False,
        kernel_initializer: InitializerSpec = "glorot_uniform",
        bias_initializer: InitializerSpec = "zeros",
        weight_decay: float | None = None,
        seed: int | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = "MultiHeadAttention"
        self.num_heads = checks.integer(owner, "num_heads", num_heads, 1)
        self.key_dim = checks.integer(owner, "key_dim", key_dim, 1)
        self.value_dim = (self.key_dim if value_dim is None
                          else checks.integer(owner, "value_dim", value_dim, 1))
        self.causal = bool(causal)
        self.dropout = checks.number(owner, "dropout", dropout, 0, 1, high_open=True)
        self.use_bias = bool(use_bias)
        self.return_attention_scores = bool(return_attention_scores)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight_decay = (None if weight_decay is None
                             else checks.number(owner, "weight_decay", weight_decay, 0))
        self.seed = seed
        #: 1/√d_k, the scale of the scores.
        self.scale = 1.0 / math.sqrt(self.key_dim)

    # -- layouts and shapes ----------------------------------------------------------------
    def _where(self) -> str:
        return f"layer '{self.name}' (MultiHeadAttention)"

    def _layout(self, input_shape: Any) -> tuple[Shape, Shape, Shape, bool, bool]:
        """(query, value, key) shapes, whether the call is self-attention on one tensor, and
        whether it has a padding mask, from the shapes of a call's inputs."""
        shapes = ([tuple(s) for s in input_shape] if isinstance(input_shape, list)
                  else [tuple(input_shape)])
        masked = len(shapes) > 1 and len(shapes[-1]) == 1
        sequences = shapes[:-1] if masked else shapes
        if not 1 <= len(sequences) <= 3:
            raise ShapeError(f"{self._where()} takes x, [query, value] or [query, value, key]"
                             f" (and a padding mask), received {len(shapes)} inputs")
        for shape in sequences:
            if len(shape) != 2:
                raise ShapeError(f"{self._where()} takes sequences of shape (batch, time, "
                                 f"features) and a (batch, time) padding mask, received "
                                 f"{batch_shape(shape)}")
        query = sequences[0]
        value = sequences[1] if len(sequences) > 1 else query
        key = sequences[2] if len(sequences) > 2 else value
        if key[0] != value[0]:
            raise ShapeError(f"{self._where()}: key and value need one length, received "
                             f"{batch_shape(key)} and {batch_shape(value)}")
        if masked and shapes[-1] != (key[0],):
            raise ShapeError(f"{self._where()}: the padding mask marks the {key[0]} key steps "
                             f"and must be of shape {batch_shape((key[0],))}, received "
                             f"{batch_shape(shapes[-1])}")
        return query, value, key, len(sequences) == 1, masked

    def compute_output_shape(self, input_shape: Any) -> Any:
        """(T_q, D_q); with ``return_attention_scores`` also (heads, T_q, T_k)."""
        query, _, key, _, _ = self._layout(input_shape)
        if self.return_attention_scores:
            return [query, (self.num_heads, query[0], key[0])]
        return query

    def check_symbolic_input(self, tensors: list[SymbolicTensor]) -> None:
        """Float sequences, and a boolean or integer padding mask."""
        masked = len(tensors) > 1 and len(tensors[-1].shape) == 1
        super().check_symbolic_input(tensors[:-1] if masked else tensors)
        if masked and tensors[-1].dtype not in MASK_DTYPES:
            raise DTypeError(f"{self._where()}: its padding mask '{tensors[-1].name}' must "
                             f"hold booleans or integers, but has dtype "
                             f"{tensors[-1].dtype or 'float'}: declare it with "
                             "xpnn.Input((time,), dtype='bool'), or use "
                             "Embedding(..., mask_zero=True).compute_mask(ids)")

    def check_input(self, inputs: Any) -> None:
        """The sequences of the built shapes in the layer's dtype, and a (batch, T_k) boolean
        or integer mask, all of one batch on the layer's device."""
        arrays = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        built = self.input_shape if isinstance(self.input_shape, list) else [self.input_shape]
        if len(arrays) != len(built) or isinstance(inputs, list | tuple) != isinstance(
                self.input_shape, list):
            raise ShapeError(f"{self._where()} was built for {len(built)} input(s) in the "
                             f"layout {self._describe_layout()}, received {len(arrays)}")
        _, _, _, _, masked = self._layout(self.input_shape)
        sequences = arrays[:-1] if masked else arrays
        names = ["query", "value", "key"] if len(sequences) > 1 else ["input"]
        for x, shape, what in zip(sequences, built, names, strict=False):
            self.check_array(x, shape, what)
        if masked:
            mask = arrays[-1]
            if not self.backend.owns(mask):
                raise DeviceError(f"{self._where()} lives on {self.backend.device} but its "
                                  "padding mask does not")
            if not self.xp.isdtype(mask.dtype, ("bool", "integral")):
                raise DTypeError(f"{self._where()}: the padding mask must hold booleans or "
                                 f"integers, received dtype {self.backend.dtype_name(mask.dtype)}")
            if tuple(mask.shape[1:]) != built[-1] or len(mask.shape) != 2:
                raise ShapeError(f"{self._where()} expected a padding mask of shape "
                                 f"{batch_shape(built[-1])}, received {tuple(mask.shape)}")
        batches = {int(a.shape[0]) for a in arrays}
        if len(batches) > 1:
            raise ShapeError(f"{self._where()}: its inputs have different batch sizes "
                             f"{sorted(batches)}")

    def _describe_layout(self) -> str:
        _, _, _, single, masked = self._layout(self.input_shape)
        names = ["x"] if single else (["query", "value"] if len(self.input_shape) - masked == 2
                                      else ["query", "value", "key"])
        names += ["padding_mask"] if masked else []
        return "[" + ", ".join(names) + "]" if len(names) > 1 else names[0]

    # -- building --------------------------------------------------------------------------
    def build(self, input_shape: Any, context: BuildContext) -> None:
        """Create W_q, W_k (D, H·d_k), W_v (D_v, H·d_v), W_o (H·d_v, D_q) and their biases,
        and the dropout generator."""
        super().build(input_shape, context)
        query, value, key, _, _ = self._layout(self.input_shape)
        width_k, width_v = self.num_heads * self.key_dim, self.num_heads * self.value_dim

        def kernel(name: str, fan_in: int, fan_out: int) -> Any:
            return self.add_parameter(
                name, self.kernel_initializer((fan_in, fan_out), fan_in, fan_out, context.rng),
                True, weight_decay=self.weight_decay)

        def bias(name: str, fan_in: int, fan_out: int) -> Any:
            if not self.use_bias:
                return None
            return self.add_parameter(
                name, self.bias_initializer((fan_out,), fan_in, fan_out, context.rng), False)

        self.query_kernel = kernel("query_kernel", query[1], width_k)
        self.query_bias = bias("query_bias", query[1], width_k)
        self.key_kernel = kernel("key_kernel", key[1], width_k)
        self.key_bias = bias("key_bias", key[1], width_k)
        self.value_kernel = kernel("value_kernel", value[1], width_v)
        self.value_bias = bias("value_bias", value[1], width_v)
        self.output_kernel = kernel("output_kernel", width_v, query[1])
        self.output_bias = bias("output_bias", width_v, query[1])
        if self.dropout > 0.0:
            self.make_generator(self.seed, context)

    # -- running ---------------------------------------------------------------------------
    def __call__(self, inputs: Any, training: bool = False, *,
                 padding_mask: Any = None) -> Any:
        """Run (or, on symbolic tensors, record) the layer on x, [query, value] or
        [query, value, key]; ``padding_mask`` appends the (batch, T_k) mask to the list."""
        if padding_mask is not None:
            inputs = ([*inputs, padding_mask] if isinstance(inputs, list | tuple)
                      else [inputs, padding_mask])
        return super().__call__(inputs, training=training)

    def _project(self, x: Array, kernel: Any, bias: Any, heads_dim: int) -> tuple[Array, Array]:
        """X (batch, T, D) as rows (batch·T, D), and its projection split into heads
        (batch, H, T, d)."""
        xp = self.xp
        batch, steps, features = (int(n) for n in x.shape)
        rows = xp.reshape(x, (batch * steps, features))
        projected = xp.matmul(rows, kernel.value)
        if bias is not None:
            projected += bias.value  # a fresh array: no temporary
        return rows, self._heads(projected, batch, steps, heads_dim)

    def _heads(self, rows: Array, batch: int, steps: int, width: int) -> Array:
        """(batch·T, H·d) rows -> (batch, H, T, d)."""
        xp = self.xp
        return xp.permute_dims(xp.reshape(rows, (batch, steps, self.num_heads, width)),
                               (0, 2, 1, 3))

    def _rows(self, heads: Array) -> Array:
        """(batch, H, T, d) -> (batch·T, H·d) rows."""
        xp = self.xp
        batch, _, steps, width = (int(n) for n in heads.shape)
        return xp.reshape(xp.permute_dims(heads, (0, 2, 1, 3)),
                          (batch * steps, self.num_heads * width))

    def _mask(self, padding: Array | None, queries: int, keys: int) -> Array | None:
        """The boolean mask of allowed (query, key) pairs, broadcastable to
        (batch, H, T_q, T_k): causal (T_q, T_k) and/or padding (batch, 1, 1, T_k)."""
        xp, device = self.xp, self.backend.native_device
        mask = None
        if self.causal:
            mask = (xp.reshape(xp.arange(queries, device=device), (queries, 1))
                    >= xp.reshape(xp.arange(keys, device=device), (1, keys)))
        if padding is not None:
            valid = padding if padding.dtype == xp.bool else padding != 0
            valid = xp.reshape(valid, (int(valid.shape[0]), 1, 1, keys))
            mask = valid if mask is None else (mask & valid)
        return mask

    def forward(self, ctx: Context, inputs: Any) -> Any:
        """y (and A) for a batch; keeps the inputs as rows, Q, K, V, A, the dropout mask and
        C."""
        xp = self.xp
        arrays = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        _, _, _, single, masked = self._layout(self.input_shape)
        padding = arrays.pop() if masked else None
        query_in = arrays[0]
        batch, queries = int(query_in.shape[0]), int(query_in.shape[1])
        ctx.single = single
        if single:  # one product X [W_q | W_k | W_v]
            rows = xp.reshape(query_in, (batch * queries, int(query_in.shape[2])))
            kernels = [self.query_kernel, self.key_kernel, self.value_kernel]
            fused = xp.matmul(rows, xp.concat([p.value for p in kernels], axis=1))
            if self.use_bias:
                fused += xp.concat([self.query_bias.value, self.key_bias.value,
                                    self.value_bias.value], axis=0)
            width_k = self.num_heads * self.key_dim
            q = self._heads(fused[:, :width_k], batch, queries, self.key_dim)
            k = self._heads(fused[:, width_k:2 * width_k], batch, queries, self.key_dim)
            v = self._heads(fused[:, 2 * width_k:], batch, queries, self.value_dim)
            ctx.rows = [rows]
            keys = queries
        else:
            value_in = arrays[1]
            key_in = arrays[2] if len(arrays) > 2 else value_in
            query_rows, q = self._project(query_in, self.query_kernel, self.query_bias,
                                          self.key_dim)
            key_rows, k = self._project(key_in, self.key_kernel, self.key_bias, self.key_dim)
            value_rows, v = self._project(value_in, self.value_kernel, self.value_bias,
                                          self.value_dim)
            ctx.rows = [query_rows, value_rows, key_rows]
            keys = int(value_in.shape[1])
        keep = None
        if ctx.training and self.dropout > 0.0:
            drawn = self.generator.uniform((batch, self.num_heads, queries, keys),
                                           self.dtype_name)
            keep = xp.astype(drawn >= self.dropout, self.dtype) * (1.0 / (1.0 - self.dropout))
        output, weights = self.backend.attention(q, k, v, self.scale,
                                                 self._mask(padding, queries, keys), keep)
        combined = self._rows(output)
        y = xp.matmul(combined, self.output_kernel.value)
        if self.output_bias is not None:
            y += self.output_bias.value
        y = xp.reshape(y, (batch, queries, int(self.output_kernel.value.shape[1])))
        ctx.q, ctx.k, ctx.v, ctx.weights, ctx.keep, ctx.combined = (q, k, v, weights, keep,
                                                                    combined)
        return (y, weights) if self.return_attention_scores else y

    def backward(self, ctx: Context, grad_output: Any) -> Any:
        """Adds the kernels' and biases' gradients; returns dL/d(inputs) (class docstring),
        None for the padding mask and where not needed."""
        xp = self.xp
        grad_weights = None
        if self.return_attention_scores:
            grad_output, grad_weights = grad_output
        q, k, v = ctx.q, ctx.k, ctx.v
        batch, _, queries, _ = (int(n) for n in q.shape)
        if grad_output is None:  # only the scores received a gradient
            grad_combined = xp.zeros(ctx.combined.shape, dtype=self.dtype,
                                     device=self.backend.native_device)
        else:
            grad_rows = xp.reshape(grad_output, (batch * queries, int(grad_output.shape[2])))
            if self.trainable:
                self.output_kernel.accumulate_grad(
                    xp.matmul(xp.matrix_transpose(ctx.combined), grad_rows))
                if self.output_bias is not None:
                    self.output_bias.accumulate_grad(xp.sum(grad_rows, axis=0))
            grad_combined = xp.matmul(grad_rows, xp.matrix_transpose(self.output_kernel.value))
        grad_q, grad_k, grad_v = self.backend.attention_backward(
            self._heads(grad_combined, batch, queries, self.value_dim), q, k, v, ctx.weights,
            self.scale, ctx.keep, grad_weights)
        projections = [(self.query_kernel, self.query_bias, self._rows(grad_q)),
                       (self.key_kernel, self.key_bias, self._rows(grad_k)),
                       (self.value_kernel, self.value_bias, self._rows(grad_v))]
        if ctx.single:
            return self._backward_fused(ctx, projections)
        return self._backward_separate(ctx, projections)

    def _backward_fused(self, ctx: Context, projections: list[tuple[Any, Any, Array]]
                        ) -> Any:
        """Self-attention: one product for the three kernels' gradients and one for dL/dX =
        [dL/dQ | dL/dK | dL/dV] [W_q | W_k | W_v]ᵀ."""
        xp = self.xp
        (rows,) = ctx.rows
        grad = xp.concat([g for _, _, g in projections], axis=1)
        if self.trainable:
            kernel_grad = xp.matmul(xp.matrix_transpose(rows), grad)
            bias_grad = xp.sum(grad, axis=0) if self.use_bias else None
            start = 0
            for kernel, bias, part in projections:
                stop = start + int(part.shape[1])
                kernel.accumulate_grad(kernel_grad[:, start:stop])
                if bias is not None:
                    bias.accumulate_grad(bias_grad[start:stop])
                start = stop
        grad_x = None
        if ctx.needs_input_grad[0]:
            kernels = xp.concat([kernel.value for kernel, _, _ in projections], axis=1)
            grad_x = xp.matmul(grad, xp.matrix_transpose(kernels))
        return self._structure(ctx, [grad_x])

    def _backward_separate(self, ctx: Context, projections: list[tuple[Any, Any, Array]]
                           ) -> Any:
        """Cross-attention: each projection's gradients, and each input's dL/dX summed over
        the roles it plays (value and key are one input in [query, value])."""
        xp = self.xp
        query_rows, value_rows, key_rows = ctx.rows
        grads: list[Array | None] = []
        for (kernel, bias, grad), rows in zip(projections, (query_rows, key_rows, value_rows),
                                              strict=True):
            if self.trainable:
                kernel.accumulate_grad(xp.matmul(xp.matrix_transpose(rows), grad))
                if bias is not None:
                    bias.accumulate_grad(xp.sum(grad, axis=0))
            grads.append(grad)
        grad_q, grad_k, grad_v = grads
        needs = ctx.needs_input_grad

        def back(grad: Array, kernel: Any) -> Array:
            return xp.matmul(grad, xp.matrix_transpose(kernel.value))

        result = [back(grad_q, self.query_kernel) if needs[0] else None]
        if len(self._sequence_shapes()) == 2:  # [query, value]: the value is also the key
            result.append(back(grad_v, self.value_kernel) + back(grad_k, self.key_kernel)
                          if needs[1] else None)
        else:
            result.append(back(grad_v, self.value_kernel) if needs[1] else None)
            result.append(back(grad_k, self.key_kernel) if needs[2] else None)
        return self._structure(ctx, result)

    def _sequence_shapes(self) -> list[Shape]:
        shapes = self.input_shape if isinstance(self.input_shape, list) else [self.input_shape]
        return [s for s in shapes if len(s) == 2]

    def _structure(self, ctx: Context, grads: list[Array | None]) -> Any:
        """The input gradients as rows reshaped to their inputs' shapes, in the call's
        layout (a list with None for the mask, or one array)."""
        xp = self.xp
        shaped = [None if g is None else xp.reshape(g, (-1, *shape))
                  for g, shape in zip(grads, self._sequence_shapes(), strict=True)]
        _, _, _, single, masked = self._layout(self.input_shape)
        if single and not masked:
            return shaped[0]
        return [*shaped, None] if masked else shaped

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "causal": self.causal,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "return_attention_scores": self.return_attention_scores,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "weight_decay": self.weight_decay,
            "seed": self.seed,
        }
