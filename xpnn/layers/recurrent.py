"""Recurrent layers: SimpleRNN, LSTM and GRU, with full backpropagation through time.

Inputs are sequences of shape (batch, time, features) in the layer's float dtype; the time
length, like every shape in xpnn, is fixed when the layer is built. Outputs are the hidden
states of every step, (batch, time, units), with ``return_sequences=True``, else the last
one, (batch, units).

Every layer fuses its gates: one kernel W (features, G·units), one recurrent kernel U
(units, G·units) and one bias (G·units,), G being the number of gate blocks (1, 4, 3). The
input projection x_t W + b of all steps is one matrix product before the loop; each step then
costs one product h_{t−1} U. Backward walks the steps in reverse, carrying dL/dh (and dL/dc),
and finishes with one product each for dL/dW, dL/dU and dL/dx.

**In a Sequential** a recurrent layer takes (batch, time, features) and gives (batch, time,
units) or (batch, units), starting from a zero state: stack them, follow one with
``Dense`` (which maps the last axis, so a Dense after ``return_sequences=True`` is applied
at every step) or with :class:`TimeDistributed`.

**Standalone** (calling the layer yourself), two more things work:

- ``layer(x, initial_state=h0)`` (LSTM: ``initial_state=(h0, c0)``), each of shape
  (batch, units), starts from that state instead of zeros;
- ``return_state=True`` makes the layer return ``(outputs, h_T)`` (LSTM:
  ``(outputs, h_T, c_T)``); ``backward`` then takes the gradients in the same form,
  ``(dL/doutputs, dL/dh_T[, dL/dc_T])``, where any entry may be None (no gradient).

After ``backward`` the layer also holds ``initial_state_gradients`` (dL/dh_0, and dL/dc_0
for the LSTM: the gradient with respect to the initial state, given or zero) and
``state_gradients``, dL/dh_t for every step t as (batch, time, units): the total gradient
reaching the hidden state of step t, from the outputs and from the steps after it. It is
what shows vanishing and exploding gradients (``examples/vanishing_gradients.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from xpnn import checks, config, initializers
from xpnn import functional as fn
from xpnn.errors import DeviceError, DTypeError, ShapeError
from xpnn.layers.base import Array, BuildContext, Layer, Parameter, Shape, _describe_array

if TYPE_CHECKING:
    from xpnn.backends.base import Backend

#: One initializer argument: a name, a serialized config, or an Initializer.
InitializerSpec = str | dict[str, Any] | initializers.Initializer

#: The activations of SimpleRNN, each with its derivative written through its output y.
_ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")


class Recurrent(Layer):
    """Base class of the recurrent layers: the time loop forward and backward, the fused
    parameters, the initial state, and the two outputs of ``return_state``.

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
        self._cache_input: Array | None = None
        self._cache_steps: list[tuple[Array, ...]] | None = None
        self._cache_previous_h: list[Array] | None = None
        self._cache_state_gradients: list[Array] | None = None
        self._cache_initial_state_gradients: tuple[Array, ...] | None = None

    # -- shapes and parameters ---------------------------------------------------------------
    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """(time, features) -> (time, units) with ``return_sequences``, else (units,)."""
        if len(input_shape) != 2 or input_shape[0] < 1:
            raise ShapeError(
                f"layer '{self.name}' ({type(self).__name__}) needs inputs of shape (batch, "
                f"time, features) with time >= 1, received (batch, "
                f"{', '.join(map(str, input_shape))})".replace(", )", ")"))
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create W (features, G·units), U (units, G·units) and b (G·units,)."""
        super().build(input_shape, context)
        if self.return_state and context.next_layer is not None:
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}) has return_state=True and "
                f"returns (outputs, states), which the next layer "
                f"'{context.next_layer.name}' cannot take: use return_state standalone only")
        features, width = self.input_shape[-1], self.gates * self.units
        self.kernel = self.add_parameter(
            "kernel", self.kernel_initializer((features, width), features, width, context.rng),
            True, weight_decay=self.weight_decay)
        self.recurrent_kernel = self.add_parameter(
            "recurrent_kernel",
            self.recurrent_initializer((self.units, width), self.units, width, context.rng),
            True, weight_decay=self.weight_decay)
        self.bias = self.add_parameter("bias", self._initial_bias(context), False)

    def _initial_bias(self, context: BuildContext) -> Any:
        """The initial bias as a host array (the LSTM adds its forget-gate ones)."""
        width = self.gates * self.units
        return self.bias_initializer((width,), self.input_shape[-1], width, context.rng)

    # -- running -------------------------------------------------------------------------------
    def __call__(self, x: Array, training: bool = False,
                 initial_state: Array | Sequence[Array] | None = None) -> Any:
        """Check ``x`` (building the layer first if needed) and ``initial_state``, then
        ``forward``."""
        if not self.built:
            self._build_from(x)
        self.check_input(x)
        state = (None if initial_state is None
                 else self.check_initial_state(initial_state, int(x.shape[0])))
        return self.forward(x, training=training, initial_state=state)

    def check_initial_state(self, initial_state: Array | Sequence[Array],
                            batch: int) -> tuple[Array, ...]:
        """The initial state as a tuple of arrays of shape (batch, units), or a clear error.

        SimpleRNN and GRU take h0 (or ``[h0]``), the LSTM takes ``(h0, c0)``.
        """
        where = f"layer '{self.name}' ({type(self).__name__})"
        names = ", ".join(f"{name}0" for name in self.state_names)
        if isinstance(initial_state, list | tuple):
            states = tuple(initial_state)
        elif len(self.state_names) == 1:
            states = (initial_state,)
        else:
            raise ShapeError(f"{where} takes initial_state=({names}), received a single "
                             f"{_describe_array(initial_state)}")
        if len(states) != len(self.state_names):
            raise ShapeError(f"{where} takes initial_state=({names}): "
                             f"{len(self.state_names)} array(s), received {len(states)}")
        for name, state in zip(self.state_names, states, strict=True):
            if not self.backend.owns(state):
                raise DeviceError(f"{where} lives on {self.backend.device} but its initial "
                                  f"{name}0 is {_describe_array(state)}")
            if tuple(state.shape) != (batch, self.units):
                raise ShapeError(f"{where} expected initial {name}0 of shape (batch, units) = "
                                 f"{(batch, self.units)}, received {tuple(state.shape)}")
            if state.dtype != self.dtype:
                raise DTypeError(f"{where} expected initial {name}0 of dtype "
                                 f"{self.dtype_name}, received "
                                 f"{self.backend.dtype_name(state.dtype)}")
        return states

    def forward(self, x: Array, training: bool = False,
                initial_state: tuple[Array, ...] | None = None) -> Any:
        """Run the recurrence over the steps of ``x``; see the class docstring."""
        xp = self.xp
        batch, steps, features = (int(n) for n in x.shape)
        # the input projection x_t W + b of every step in one product
        projected = xp.reshape(
            xp.matmul(xp.reshape(x, (batch * steps, features)), self.kernel.value)
            + self.bias.value, (batch, steps, self.gates * self.units))
        state = initial_state if initial_state is not None else tuple(
            xp.zeros((batch, self.units), dtype=self.dtype, device=self.backend.native_device)
            for _ in self.state_names)
        caches, previous_h, outputs = [], [], []
        for t in range(steps):
            previous_h.append(state[0])
            recurrent = xp.matmul(state[0], self.recurrent_kernel.value)
            state, cache = self._cell(projected[:, t, :], recurrent, state)
            caches.append(cache)
            outputs.append(state[0])
        self._cache_input = x
        self._cache_steps, self._cache_previous_h = caches, previous_h
        y = xp.stack(outputs, axis=1) if self.return_sequences else outputs[-1]
        return (y, *state) if self.return_state else y

    def backward(self, grad_output: Array | Sequence[Array | None]) -> Array | None:
        """Backpropagation through time: sets dL/dW, dL/dU, dL/db (see each layer's
        docstring for the step), ``state_gradients`` and ``initial_state_gradients``;
        returns dL/dx (None when ``needs_input_grad`` is False).

        With ``return_state`` the gradient is ``(dL/doutputs, dL/dh_T[, dL/dc_T])``.
        """
        xp = self.xp
        x = self._cache_input
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
            d_projected, d_recurrent, direct = self._cell_backward(carried,
                                                                  self._cache_steps[t])
            grad_projected.append(d_projected)
            if d_recurrent is None:  # the same pre-activation takes x_t W and h_{t−1} U
                d_recurrent = d_projected
            else:
                grad_recurrent.append(d_recurrent)
            through_u = xp.matmul(d_recurrent, transposed_u)
            carried = (through_u if direct[0] is None else direct[0] + through_u, *direct[1:])
        self._cache_initial_state_gradients = carried
        self._cache_state_gradients = grad_h[::-1]
        width = self.gates * self.units
        d_projected = xp.reshape(xp.stack(grad_projected[::-1], axis=1), (batch * steps, width))
        if self.trainable:
            d_recurrent = d_projected if not grad_recurrent else xp.reshape(
                xp.stack(grad_recurrent[::-1], axis=1), (batch * steps, width))
            previous_h = xp.reshape(xp.stack(self._cache_previous_h, axis=1),
                                    (batch * steps, self.units))
            self.kernel.grad = xp.matmul(
                xp.matrix_transpose(xp.reshape(x, (batch * steps, features))), d_projected)
            self.recurrent_kernel.grad = xp.matmul(xp.matrix_transpose(previous_h), d_recurrent)
            self.bias.grad = xp.sum(d_projected, axis=0)
            self._recurrent_bias_gradient(d_recurrent)
        if not self.needs_input_grad:
            return None
        return xp.reshape(xp.matmul(d_projected, xp.matrix_transpose(self.kernel.value)),
                          (batch, steps, features))

    def _recurrent_bias_gradient(self, d_recurrent: Array) -> None:
        """Set the gradient of a bias inside the recurrent term (the GRU's); none here."""

    @property
    def state_gradients(self) -> Array | None:
        """dL/dh_t for every step, (batch, time, units), from the last ``backward`` (None
        before one): the gradient reaching step t's hidden state from the outputs and from
        all later steps."""
        grads = self._cache_state_gradients
        return None if grads is None else self.xp.stack(grads, axis=1)

    @property
    def initial_state_gradients(self) -> tuple[Array, ...] | None:
        """(dL/dh_0,) or, for the LSTM, (dL/dh_0, dL/dc_0) from the last ``backward``: the
        gradient with respect to the initial state (given, or zero)."""
        return self._cache_initial_state_gradients

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
        if activation not in _ACTIVATIONS:
            raise ValueError(f"SimpleRNN: activation must be one of {_ACTIVATIONS}, got "
                             f"{activation!r}")
        self.activation = activation
        super().__init__(units, **options)

    def _cell(self, projected: Array, recurrent: Array, state: tuple[Array, ...]
              ) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
        """h_t = φ(x_t W + b + h_{t−1} U)."""
        xp, a = self.xp, projected + recurrent
        if self.activation == "tanh":
            h = xp.tanh(a)
        elif self.activation == "sigmoid":
            h = fn.sigmoid(xp, a)
        elif self.activation == "relu":
            h = xp.maximum(a, 0.0)
        else:
            h = a
        return (h,), (h,)

    def _cell_backward(self, grad_state: tuple[Array, ...], cache: tuple[Array, ...]
                       ) -> tuple[Array, Array | None, tuple[Array | None, ...]]:
        """δa_t = δh_t ⊙ φ'(a_t); h_{t−1} is reached through U only."""
        (grad_h,), (h,) = grad_state, cache
        if self.activation == "tanh":
            grad_a = grad_h * (1.0 - h * h)
        elif self.activation == "sigmoid":
            grad_a = grad_h * h * (1.0 - h)
        elif self.activation == "relu":
            grad_a = self.xp.where(h > 0, grad_h, 0.0)
        else:
            grad_a = grad_h
        return grad_a, None, (None,)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "activation": self.activation}


class LSTM(Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers
    et al. 2000).

    The fused blocks are in Keras's order i, f, g, o (input gate, forget gate, candidate,
    output gate): W is (features, 4·units), U (units, 4·units), b (4·units,). Forward, for
    t = 1 … T from h_0 and c_0 (zeros, or the initial state)::

        a_t = x_t W + h_{t−1} U + b = [a_i, a_f, a_g, a_o]
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = f ⊙ c_{t−1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    Backward, carrying δh_t (G_t from the outputs plus what step t + 1 sends back) and δc_t,
    for t = T … 1::

        δo = δh_t ⊙ tanh(c_t)
        δc = δc_t + δh_t ⊙ o ⊙ (1 − tanh²(c_t))
        δi = δc ⊙ g       δf = δc ⊙ c_{t−1}       δg = δc ⊙ i
        δa_t = [δi ⊙ i(1 − i), δf ⊙ f(1 − f), δg ⊙ (1 − g²), δo ⊙ o(1 − o)]
        δc_{t−1} = δc ⊙ f                        (the cell's additive path)
        δh_{t−1} = G_{t−1} + δa_t Uᵀ
        dL/dW = Σ_t x_tᵀ δa_t    dL/dU = Σ_t h_{t−1}ᵀ δa_t    dL/db = Σ_t Σ_batch δa_t
        dL/dx_t = δa_t Wᵀ

    The cell path multiplies the gradient by f alone at each step back, with no weight
    matrix and no squashing, so it can carry it across many steps when f ≈ 1.
    ``unit_forget_bias=True`` (the default, as in Keras) starts the forget-gate bias at 1
    (f ≈ 0.73) so the layer remembers from the start; the other biases start at
    ``bias_initializer``. Biases are never weight-decayed.
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(self, units: int, *, unit_forget_bias: bool = True, **options: Any) -> None:
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, **options)

    def _initial_bias(self, context: BuildContext) -> Any:
        """The bias initializer's values, plus 1 on the forget gate with unit_forget_bias."""
        bias = super()._initial_bias(context)
        if self.unit_forget_bias:
            bias[self.units:2 * self.units] += 1.0
        return bias

    def _cell(self, projected: Array, recurrent: Array, state: tuple[Array, ...]
              ) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
        """The gates, then c_t = f ⊙ c_{t−1} + i ⊙ g and h_t = o ⊙ tanh(c_t)."""
        xp, n = self.xp, self.units
        _, c_previous = state
        a = projected + recurrent
        sigmoids = fn.sigmoid(xp, a)  # the g block is recomputed with tanh below
        i, f, o = sigmoids[:, :n], sigmoids[:, n:2 * n], sigmoids[:, 3 * n:]
        g = xp.tanh(a[:, 2 * n:3 * n])
        c = f * c_previous + i * g
        tanh_c = xp.tanh(c)
        h = o * tanh_c
        return (h, c), (c_previous, i, f, g, o, tanh_c)

    def _cell_backward(self, grad_state: tuple[Array, ...], cache: tuple[Array, ...]
                       ) -> tuple[Array, Array | None, tuple[Array | None, ...]]:
        """δa_t of the four gates; c_{t−1} is also reached directly, through f."""
        grad_h, grad_c = grad_state
        c_previous, i, f, g, o, tanh_c = cache
        grad_o = grad_h * tanh_c
        grad_c = grad_c + grad_h * o * (1.0 - tanh_c * tanh_c)
        grad_a = self.xp.concat([
            grad_c * g * i * (1.0 - i),
            grad_c * c_previous * f * (1.0 - f),
            grad_c * i * (1.0 - g * g),
            grad_o * o * (1.0 - o),
        ], axis=1)
        return grad_a, None, (None, grad_c * f)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(Recurrent):
    """Gated recurrent unit (Cho et al. 2014) in the "reset after" form of cuDNN, PyTorch
    and Keras 2+ (``reset_after=True``): the reset gate multiplies the recurrent term
    *after* the product by U, so each step needs one fused product h_{t−1} U.

    The fused blocks are in Keras's order z, r, n (update gate, reset gate, candidate): W is
    (features, 3·units), U (units, 3·units), and there are two biases, b on the input side
    and b_U on the recurrent side (3·units each; they only differ in the candidate, where
    b_U is inside the reset gate). Forward, for t = 1 … T from h_0 (zeros, or the initial
    state)::

        p_t = x_t W + b = [p_z, p_r, p_n]          q_t = h_{t−1} U + b_U = [q_z, q_r, q_n]
        z = σ(p_z + q_z)    r = σ(p_r + q_r)    n = tanh(p_n + r ⊙ q_n)
        h_t = z ⊙ h_{t−1} + (1 − z) ⊙ n

    Backward, carrying δh_t (G_t from the outputs plus what step t + 1 sends back), for
    t = T … 1::

        δn = δh_t ⊙ (1 − z)          δz = δh_t ⊙ (h_{t−1} − n)
        δa_n = δn ⊙ (1 − n²)         δr = δa_n ⊙ q_n
        δa_z = δz ⊙ z(1 − z)         δa_r = δr ⊙ r(1 − r)
        δp_t = [δa_z, δa_r, δa_n]    δq_t = [δa_z, δa_r, δa_n ⊙ r]
        δh_{t−1} = G_{t−1} + δh_t ⊙ z + δq_t Uᵀ
        dL/dW = Σ_t x_tᵀ δp_t    dL/db = Σ_t Σ_batch δp_t    dL/dx_t = δp_t Wᵀ
        dL/dU = Σ_t h_{t−1}ᵀ δq_t    dL/db_U = Σ_t Σ_batch δq_t

    Like the LSTM's cell, the path h_{t−1} → h_t through z has no weight matrix, so the
    gradient survives many steps when z ≈ 1. Biases are never weight-decayed.
    """

    gates = 3

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create W, U, b as every recurrent layer does, and the recurrent bias b_U."""
        super().build(input_shape, context)
        width = 3 * self.units
        self.recurrent_bias = self.add_parameter(
            "recurrent_bias", self.bias_initializer((width,), self.units, width, context.rng),
            False)

    def _cell(self, projected: Array, recurrent: Array, state: tuple[Array, ...]
              ) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
        """The gates from p_t and q_t = h_{t−1} U + b_U, then h_t = n + z ⊙ (h_{t−1} − n)."""
        xp, n_units = self.xp, self.units
        (h_previous,) = state
        q = recurrent + self.recurrent_bias.value
        gates = fn.sigmoid(xp, projected[:, :2 * n_units] + q[:, :2 * n_units])
        z, r = gates[:, :n_units], gates[:, n_units:]
        q_n = q[:, 2 * n_units:]
        n = xp.tanh(projected[:, 2 * n_units:] + r * q_n)
        h = n + z * (h_previous - n)
        return (h,), (h_previous, z, r, n, q_n)

    def _cell_backward(self, grad_state: tuple[Array, ...], cache: tuple[Array, ...]
                       ) -> tuple[Array, Array | None, tuple[Array | None, ...]]:
        """δp_t and δq_t of the three blocks; h_{t−1} is also reached directly, through z."""
        xp = self.xp
        (grad_h,), (h_previous, z, r, n, q_n) = grad_state, cache
        grad_a_n = grad_h * (1.0 - z) * (1.0 - n * n)
        grad_a_z = grad_h * (h_previous - n) * z * (1.0 - z)
        grad_a_r = grad_a_n * q_n * r * (1.0 - r)
        grad_projected = xp.concat([grad_a_z, grad_a_r, grad_a_n], axis=1)
        grad_recurrent = xp.concat([grad_a_z, grad_a_r, grad_a_n * r], axis=1)
        return grad_projected, grad_recurrent, (grad_h * z,)

    def _recurrent_bias_gradient(self, d_recurrent: Array) -> None:
        """dL/db_U = Σ δq_t."""
        self.recurrent_bias.grad = self.xp.sum(d_recurrent, axis=0)


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
            raise ValueError(f"TimeDistributed: layer '{self.layer.name}' is already built "
                             "(layers cannot be shared)")
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
                             f"(batch, time, features...), received (batch, "
                             f"{', '.join(map(str, input_shape))})".replace(", )", ")"))
        return (input_shape[0], *self.layer.compute_output_shape(input_shape[1:]))

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Build the inner layer for one step's shape and prefix its parameter names."""
        super().build(input_shape, context)
        self.layer.build(self.input_shape[1:], context)
        for param in self.layer.parameters():
            param.name = f"{self.name}/{param.name}"

    def forward(self, x: Array, training: bool = False) -> Array:
        """y = layer(x reshaped to (batch·time, ...)), reshaped to (batch, time, ...)."""
        xp = self.xp
        batch, steps = int(x.shape[0]), int(x.shape[1])
        rows = xp.reshape(x, (batch * steps, *self.input_shape[1:]))
        return xp.reshape(self.layer.forward(rows, training=training),
                          (batch, steps, *self.output_shape[1:]))

    def backward(self, grad_output: Array) -> Array | None:
        """The inner layer's backward on the (batch·time, ...) rows; dL/dx reshaped back."""
        xp = self.xp
        batch, steps = int(grad_output.shape[0]), int(grad_output.shape[1])
        self.layer.needs_input_grad = self.needs_input_grad
        grad = self.layer.backward(
            xp.reshape(grad_output, (batch * steps, *self.output_shape[1:])))
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
