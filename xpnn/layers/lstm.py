"""The LSTM layer: its cell, one step forward and back (the time loop is
:class:`~xpnn.layers.recurrent.Recurrent`'s)."""

from __future__ import annotations

from typing import Any

from xpnn import functional as fn
from xpnn.layers.base import Array, BuildContext
from xpnn.layers.recurrent import Recurrent


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
