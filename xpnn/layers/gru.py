"""The GRU layer: its cell, one step forward and back (the time loop is
:class:`~xpnn.layers.recurrent.Recurrent`'s)."""

from __future__ import annotations

from typing import Any

from xpnn import functional as fn
from xpnn.layers.base import Array, BuildContext
from xpnn.layers.recurrent import Recurrent


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

    def build(self, input_shape: Any, context: BuildContext) -> None:
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
        """Adds dL/db_U = Σ δq_t."""
        self.recurrent_bias.accumulate_grad(self.xp.sum(d_recurrent, axis=0))
