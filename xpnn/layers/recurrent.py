"""Recurrent layers: the time loop of SimpleRNN, LSTM and GRU, with full backpropagation
through time (the cells are in this file, :mod:`.lstm` and :mod:`.gru`).

Inputs are sequences of shape (batch, time, features) in the layer's float dtype; the time
length, like every shape in xpnn, is fixed when the layer is built. Outputs are the hidden
states of every step, (batch, time, units), with ``return_sequences=True``, else the last
one, (batch, units).

Every layer fuses its gates: one kernel W (features, G·units), one recurrent kernel U
(units, G·units) and one bias (G·units,), G being the number of gate blocks (1, 4, 3). The
input projection x_t W + b of all steps is one matrix product before the loop; each step then
costs one product h_{t−1} U. Backward walks the steps in reverse, carrying dL/dh (and dL/dc),
and finishes with one product each for dL/dW, dL/dU and dL/dx.

**Initial state and final state.** By default a layer starts from a zero state and has one
output. Called on ``[x, h0]`` (LSTM: ``[x, h0, c0]``), or as ``layer(x, initial_state=h0)``
(LSTM: ``initial_state=(h0, c0)``), each state of shape (batch, units), it starts from that
state and its backward returns ``[dL/dx, dL/dh0(, dL/dc0)]``. With ``return_state=True`` it
returns ``(outputs, h_T)`` (LSTM: ``(outputs, h_T, c_T)``), and its backward takes the
gradients in the same form, where any entry may be None (no gradient). Both work on arrays
and in graph models (``outputs, h, c = LSTM(8, return_state=True)(x)``); a ``Sequential``
takes single-output layers only.

After ``backward(ctx, ...)`` the call's context also holds ``ctx.state_gradients``, dL/dh_t
for every step t as (batch, time, units): the total gradient reaching the hidden state of
step t, from the outputs and from the steps after it — what shows vanishing and exploding
gradients (``examples/vanishing_gradients.py``) — and ``ctx.initial_state_gradients``
(dL/dh_0, and dL/dc_0 for the LSTM).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from xpnn import checks, initializers
from xpnn import functional as fn
from xpnn.errors import ShapeError
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape, batch_shape

#: One initializer argument: a name, a serialized config, or an Initializer.
InitializerSpec = str | dict[str, Any] | initializers.Initializer


class Recurrent(Layer):
    """Base class of the recurrent layers: the time loop forward and backward, the fused
    parameters, the initial state, and the outputs of ``return_state``.

    A subclass sets ``gates`` (the number of blocks of units in W, U and b) and
    ``state_names``, and writes one step forward (:meth:`_cell`) and back
    (:meth:`_cell_backward`); see the module docstring for what the layers do.
    """

    #: Number of gate blocks fused into W, U and b.
    gates: ClassVar[int] = 1
    #: Names of the recurrent state tensors: ("h",), or ("h", "c") for the LSTM.
    state_names: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(
        self,
        units: int,
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        kernel_initializer: InitializerSpec = "glorot_uniform",
        recurrent_initializer: InitializerSpec = "glorot_uniform",
        bias_initializer: InitializerSpec = "zeros",
        weight_decay: float | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.units = checks.integer(owner, "units", units, 1)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight_decay = (None if weight_decay is None
                             else checks.number(owner, "weight_decay", weight_decay, 0))

    # -- shapes and parameters ---------------------------------------------------------------
    def _sequence_shape(self, input_shape: Any) -> Shape:
        """The (time, features) of x from an input shape, checking the states' shapes when
        the layer is called on ``[x, h0(, c0)]``."""
        where = f"layer '{self.name}' ({type(self).__name__})"
        if isinstance(input_shape, list):
            sequence, states = tuple(input_shape[0]), input_shape[1:]
            self._check_state_count(len(input_shape))
            for name, shape in zip(self.state_names, states, strict=True):
                if tuple(shape) != (self.units,):
                    raise ShapeError(f"{where} expected initial {name}0 of shape "
                                     f"{batch_shape((self.units,))}, received "
                                     f"{batch_shape(tuple(shape))}")
        else:
            sequence = tuple(input_shape)
        if len(sequence) != 2 or sequence[0] < 1:
            raise ShapeError(f"{where} needs inputs of shape (batch, time, features) with "
                             f"time >= 1, received {batch_shape(sequence)}")
        return sequence

    def _check_state_count(self, inputs: int) -> None:
        """A call with an initial state takes [x, h0] (LSTM: [x, h0, c0])."""
        if inputs != 1 + len(self.state_names):
            names = ", ".join(f"{name}0" for name in self.state_names)
            raise ShapeError(f"layer '{self.name}' ({type(self).__name__}) takes [x, {names}] "
                             f"with an initial state: {1 + len(self.state_names)} inputs, "
                             f"received {inputs}")

    def compute_output_shape(self, input_shape: Any) -> Any:
        """(time, features) -> (time, units) with ``return_sequences``, else (units,); with
        ``return_state`` a list of that and one (units,) per state."""
        time, _ = self._sequence_shape(input_shape)
        output = (time, self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [output, *[(self.units,)] * len(self.state_names)]
        return output

    def build(self, input_shape: Any, context: BuildContext) -> None:
        """Create W (features, G·units), U (units, G·units) and b (G·units,) for x of
        (time, features); ``input_shape`` is that of x alone, or of ``[x, h0(, c0)]``."""
        super().build(self._sequence_shape(input_shape), context)
        features, width = self.input_shape[-1], self.gates * self.units
        self.kernel = self.add_parameter(
            "kernel", self.kernel_initializer((features, width), features, width, context.rng),
            True, weight_decay=self.weight_decay)
        self.recurrent_kernel = self.add_parameter(
            "recurrent_kernel",
            self.recurrent_initializer((self.units, width), self.units, width, context.rng),
            True, weight_decay=self.weight_decay)
        self.bias = self.add_parameter("bias", self._initial_bias(context), False)

    def matches_built_shape(self, input_shape: Any) -> bool:
        """Whether a call on ``input_shape`` fits the built layer: x of the built (time,
        features), with or without an initial state."""
        return self._sequence_shape(input_shape) == self.input_shape

    def _initial_bias(self, context: BuildContext) -> Any:
        """The initial bias as a host array (the LSTM adds its forget-gate ones)."""
        width = self.gates * self.units
        return self.bias_initializer((width,), self.input_shape[-1], width, context.rng)

    # -- running -------------------------------------------------------------------------------
    def __call__(self, inputs: Any, training: bool = False,
                 initial_state: Array | Sequence[Array] | None = None) -> Any:
        """Run (or, on symbolic tensors, record) the layer on x, or on ``[x, h0(, c0)]``;
        ``initial_state`` is the other way to give the states (h0, or (h0, c0))."""
        if initial_state is not None:
            if isinstance(inputs, list | tuple):
                raise ShapeError(f"layer '{self.name}' ({type(self).__name__}): give the "
                                 "initial state either in the input list or as "
                                 "initial_state, not both")
            states = (list(initial_state) if isinstance(initial_state, list | tuple)
                      else [initial_state])
            inputs = [inputs, *states]
        return super().__call__(inputs, training=training)

    def check_input(self, inputs: Any) -> None:
        """x of the built (batch, time, features), and each initial state (batch, units) of
        the same batch, all on the layer's device in its dtype."""
        if isinstance(inputs, list | tuple):
            self._check_state_count(len(inputs))
            x, *states = inputs
            for name, state in zip(self.state_names, states, strict=True):
                self.check_array(state, (self.units,), f"initial {name}0")
                if int(state.shape[0]) != int(x.shape[0]):
                    raise ShapeError(f"layer '{self.name}' ({type(self).__name__}): initial "
                                     f"{name}0 has {int(state.shape[0])} rows for a batch of "
                                     f"{int(x.shape[0])}")
        else:
            x = inputs
        self.check_array(x, self.input_shape)

    def forward(self, ctx: Context, inputs: Any) -> Any:
        """Run the recurrence over the steps of x; keeps x, every h_{t−1} and each step's
        cell values."""
        xp = self.xp
        given = isinstance(inputs, list | tuple)
        x, state = (inputs[0], tuple(inputs[1:])) if given else (inputs, None)
        batch, steps, features = (int(n) for n in x.shape)
        # the input projection x_t W + b of every step in one product
        projected = xp.reshape(
            xp.matmul(xp.reshape(x, (batch * steps, features)), self.kernel.value)
            + self.bias.value, (batch, steps, self.gates * self.units))
        if state is None:
            state = tuple(xp.zeros((batch, self.units), dtype=self.dtype,
                                   device=self.backend.native_device)
                          for _ in self.state_names)
        caches, previous_h, outputs = [], [], []
        for t in range(steps):
            previous_h.append(state[0])
            recurrent = xp.matmul(state[0], self.recurrent_kernel.value)
            state, cache = self._cell(projected[:, t, :], recurrent, state)
            caches.append(cache)
            outputs.append(state[0])
        ctx.input, ctx.steps, ctx.previous_h, ctx.given_state = x, caches, previous_h, given
        y = xp.stack(outputs, axis=1) if self.return_sequences else outputs[-1]
        return (y, *state) if self.return_state else y

    def backward(self, ctx: Context, grad_output: Any) -> Any:
        """Backpropagation through time: adds dL/dW, dL/dU, dL/db (see each layer's
        docstring for the step), sets ``ctx.state_gradients`` and
        ``ctx.initial_state_gradients``; returns dL/dx (None when not needed), or
        ``[dL/dx, dL/dh0(, dL/dc0)]`` when the call was given an initial state.

        With ``return_state`` the gradient is ``(dL/doutputs, dL/dh_T[, dL/dc_T])``.
        """
        xp = self.xp
        x = ctx.input
        batch, steps, features = (int(n) for n in x.shape)
        final = (None,) * len(self.state_names)
        if self.return_state:
            if not (isinstance(grad_output, list | tuple)
                    and len(grad_output) == 1 + len(self.state_names)):
                names = ", ".join(f"dL/d{name}_T" for name in self.state_names)
                raise ShapeError(f"layer '{self.name}' ({type(self).__name__}) has "
                                 f"return_state=True: backward takes (dL/doutputs, {names}), "
                                 "None where there is no gradient")
            grad_output, *final = grad_output
        carried = tuple(
            grad if grad is not None else
            xp.zeros((batch, self.units), dtype=self.dtype, device=self.backend.native_device)
            for grad in final)
        transposed_u = xp.matrix_transpose(self.recurrent_kernel.value)
        grad_projected, grad_recurrent, grad_h = [], [], []
        for t in reversed(range(steps)):
            if grad_output is not None and self.return_sequences:
                carried = (carried[0] + grad_output[:, t, :], *carried[1:])
            elif grad_output is not None and t == steps - 1:
                carried = (carried[0] + grad_output, *carried[1:])
            grad_h.append(carried[0])
            d_projected, d_recurrent, direct = self._cell_backward(carried, ctx.steps[t])
            grad_projected.append(d_projected)
            if d_recurrent is None:  # the same pre-activation takes x_t W and h_{t−1} U
                d_recurrent = d_projected
            else:
                grad_recurrent.append(d_recurrent)
            through_u = xp.matmul(d_recurrent, transposed_u)
            carried = (through_u if direct[0] is None else direct[0] + through_u, *direct[1:])
        ctx.initial_state_gradients = carried
        ctx.state_gradients = xp.stack(grad_h[::-1], axis=1)
        width = self.gates * self.units
        d_projected = xp.reshape(xp.stack(grad_projected[::-1], axis=1), (batch * steps, width))
        if self.trainable:
            d_recurrent = d_projected if not grad_recurrent else xp.reshape(
                xp.stack(grad_recurrent[::-1], axis=1), (batch * steps, width))
            previous_h = xp.reshape(xp.stack(ctx.previous_h, axis=1),
                                    (batch * steps, self.units))
            self.kernel.accumulate_grad(xp.matmul(
                xp.matrix_transpose(xp.reshape(x, (batch * steps, features))), d_projected))
            self.recurrent_kernel.accumulate_grad(
                xp.matmul(xp.matrix_transpose(previous_h), d_recurrent))
            self.bias.accumulate_grad(xp.sum(d_projected, axis=0))
            self._recurrent_bias_gradient(d_recurrent)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = xp.reshape(xp.matmul(d_projected, xp.matrix_transpose(self.kernel.value)),
                                (batch, steps, features))
        if ctx.given_state:
            return [grad_x, *(grad if needed else None for grad, needed in
                              zip(carried, ctx.needs_input_grad[1:], strict=True))]
        return grad_x

    def _recurrent_bias_gradient(self, d_recurrent: Array) -> None:
        """Add the gradient of a bias inside the recurrent term (the GRU's); none here."""

    # -- one step, written by each layer ------------------------------------------------------
    def _cell(self, projected: Array, recurrent: Array, state: tuple[Array, ...]
              ) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
        """One step from the projected input x_t W + b and the recurrent term h_{t−1} U
        (both (batch, G·units)) and the previous state; returns the new state (h_t first)
        and what the step's backward needs."""
        raise NotImplementedError

    def _cell_backward(self, grad_state: tuple[Array, ...], cache: tuple[Array, ...]
                       ) -> tuple[Array, Array | None, tuple[Array | None, ...]]:
        """One step back from dL/d(new state): returns dL/d(x_t W + b), dL/d(h_{t−1} U)
        (None: the same array, when both terms enter one sum) and the gradient reaching
        the previous state directly, not through U (None: none)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "units": self.units,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "weight_decay": self.weight_decay,
        }


class SimpleRNN(Recurrent):
    """The Elman recurrent layer.

    Forward, for t = 1 … T from h_0 (zeros, or the initial state)::

        a_t = x_t W + h_{t−1} U + b          W: (features, units), U: (units, units)
        h_t = φ(a_t)                         φ = tanh (default), sigmoid, relu or linear

    Backward, with G_t = dL/dh_t from the outputs (zero where no output was taken) and
    δh_{T} = G_T (+ dL/dh_T of ``return_state``), for t = T … 1::

        δa_t     = δh_t ⊙ φ'(a_t)            φ' from h_t: 1 − h², h(1 − h), [h > 0], 1
        δh_{t−1} = G_{t−1} + δa_t Uᵀ
        dL/dW = Σ_t x_tᵀ δa_t    dL/dU = Σ_t h_{t−1}ᵀ δa_t    dL/db = Σ_t Σ_batch δa_t
        dL/dx_t = δa_t Wᵀ        dL/dh_0 = δa_1 Uᵀ

    The factor Uᵀ diag(φ') applied at every step back is why the gradient reaching early
    steps shrinks (or grows) geometrically with the distance.
    """

    def __init__(self, units: int, activation: str = "tanh", **options: Any) -> None:
        if activation not in fn.ACTIVATIONS:
            raise ValueError(f"SimpleRNN: activation must be one of {tuple(fn.ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.activation = activation
        self._activate, self._slope = fn.ACTIVATIONS[activation]
        super().__init__(units, **options)

    def _cell(self, projected: Array, recurrent: Array, state: tuple[Array, ...]
              ) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
        """h_t = φ(x_t W + b + h_{t−1} U)."""
        h = self._activate(self.xp, projected + recurrent)
        return (h,), (h,)

    def _cell_backward(self, grad_state: tuple[Array, ...], cache: tuple[Array, ...]
                       ) -> tuple[Array, Array | None, tuple[Array | None, ...]]:
        """δa_t = δh_t ⊙ φ'(a_t); h_{t−1} is reached through U only."""
        (grad_h,), (h,) = grad_state, cache
        return grad_h * self._slope(self.xp, h), None, (None,)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "activation": self.activation}
