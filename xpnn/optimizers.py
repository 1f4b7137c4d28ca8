"""Optimizers: one object updates every parameter of a model in place, on its device.

Per-parameter state (velocity, moments) is kept in ``optimizer.state[parameter.name]`` as
arrays on the parameters' device, created by ``build`` and moved by ``to`` when the model
moves. ``state_dict`` / ``load_state_dict`` round-trip it through host (NumPy) arrays.

Notation: w a parameter, g = dL/dw its gradient, η the learning rate, t the step count of the
parameter (1 on its first update).

The elementwise updates of Momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW are the
backend's named kernels (``momentum_step``, ``adagrad_step``, ``rmsprop_step``, ``adam_step``);
the NumPy backend runs large arrays through the momentum and Adam kernels block by block,
without temporaries, and the CuPy backend runs each as one CUDA kernel.

Flushing tiny state: state that decays geometrically where the gradient is zero (a velocity
or a moment of a dead ReLU unit: v ← μ v, again and again) would sink into the subnormal
numbers and stay there (in float32 0.9 × 1.4e-45 rounds back to 1.4e-45); arithmetic on
subnormals is many times slower on many CPUs. So every ``FLUSH_INTERVAL`` optimizer steps,
the entries of the ``decaying_slots`` smaller in magnitude than ``FLUSH_BELOW`` are set to
zero. Such entries move no weight: in float32 w + v = w for |v| < 1e-30 unless |w| is below
about 1e-23, and for |m| < 1e-30 Adam's step η_t m / (√v + ε̂) is below about 1e-22 η
(ε = 1e-8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from xpnn import checks
from xpnn.config import Configurable
from xpnn.errors import NotReadyError

if TYPE_CHECKING:
    from xpnn.backends.base import Backend
    from xpnn.layers.base import Parameter

Array = Any

#: Optimizer steps between two flushes of tiny decaying state (see the module docstring).
FLUSH_INTERVAL = 32
#: Decaying state entries smaller in magnitude than this are flushed to zero.
FLUSH_BELOW = 1e-30


class Optimizer(Configurable):
    """Base class: subclasses define ``slots`` (state array names) and ``update``."""

    name = "optimizer"
    #: Names of the per-parameter state arrays, each created as zeros like the parameter.
    slots: tuple[str, ...] = ()
    #: The slots that decay geometrically where the gradient is zero, and are flushed.
    decaying_slots: tuple[str, ...] = ()

    def __init__(self, learning_rate: float, *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        owner = type(self).__name__
        self.learning_rate = checks.number(owner, "learning_rate", learning_rate, 0,
                                           low_open=True)
        #: The rate training started with; learning-rate schedules count from it.
        self.initial_learning_rate = self.learning_rate
        self.weight_decay = checks.number(owner, "weight_decay", weight_decay, 0)
        self.clip_norm = (None if clip_norm is None
                          else checks.number(owner, "clip_norm", clip_norm, 0, low_open=True))
        self.clip_value = (None if clip_value is None else
                           checks.number(owner, "clip_value", clip_value, 0, low_open=True))
        self.iterations = 0
        self.state: dict[str, dict[str, Any]] = {}
        self.backend: Backend | None = None

    def build(self, parameters: Iterable[Parameter], backend: Backend) -> None:
        """Create zero state for trainable parameters not seen before, on ``backend``'s
        device (non-trainable parameters, such as running statistics, get none)."""
        self.to(backend)
        for param in parameters:
            if param.trainable and param.name not in self.state:
                xp = backend.xp
                entry: dict[str, Any] = {slot: xp.zeros_like(param.value) for slot in self.slots}
                entry["step"] = 0
                self.state[param.name] = entry

    # -- the objective's extra terms and the gradient transformations -------------------------
    def l2_coefficient(self, param: Parameter) -> float:
        """λ of the L2 term ½λ‖w‖² for ``param``: its own ``weight_decay`` if set, else the
        optimizer's; 0 for biases and other non-regularizable parameters."""
        if not param.regularizable:
            return 0.0
        return self.weight_decay if param.weight_decay is None else param.weight_decay

    def penalty(self, parameters: Iterable[Parameter]) -> Array | None:
        """The L2 term Σ ½λ‖w‖² over ``parameters`` (a device scalar), or None when no
        parameter is decayed; ``fit`` adds it to the reported loss."""
        xp = self.backend.xp
        terms = [(0.5 * coefficient) * xp.sum(param.value * param.value)
                 for param in parameters if (coefficient := self.l2_coefficient(param))]
        return sum(terms[1:], terms[0]) if terms else None

    def gradients(self, parameters: list[Parameter]) -> list[Array]:
        """The gradients the update rules use: dL/dw + λw (the L2 term), then each entry
        clipped to [−clip_value, clip_value], then all of them scaled by
        clip_norm / max(‖g‖, clip_norm) where ‖g‖ is the global norm over all parameters."""
        xp = self.backend.xp
        grads = []
        for param in parameters:
            coefficient = self.l2_coefficient(param)
            grads.append(param.grad + coefficient * param.value if coefficient else param.grad)
        if self.clip_value is not None:
            grads = [xp.clip(grad, -self.clip_value, self.clip_value) for grad in grads]
        if self.clip_norm is not None and grads:
            scale = self.clip_norm / xp.clip(global_norm(xp, grads), min=self.clip_norm)
            grads = [grad * scale for grad in grads]
        return grads

    def step(self, parameters: Iterable[Parameter]) -> None:
        """Update every parameter that has a gradient, in place, with :meth:`gradients`."""
        params = [param for param in parameters if param.grad is not None]
        for param, grad in zip(params, self.gradients(params), strict=True):
            try:
                state = self.state[param.name]
            except KeyError:
                raise NotReadyError(
                    f"{type(self).__name__} has no state for parameter '{param.name}': build "
                    "the optimizer with the model's parameters first (model.compile does)"
                ) from None
            state["step"] += 1
            self.update(param, grad, state)
        self.iterations += 1
        if self.decaying_slots and self.iterations % FLUSH_INTERVAL == 0:
            self.flush_tiny()

    def flush_tiny(self) -> None:
        """Set the entries of the decaying slots with |s| < ``FLUSH_BELOW`` to zero, in
        place (NaN stays NaN)."""
        xp = self.backend.xp
        for state in self.state.values():
            for slot in self.decaying_slots:
                array = state[slot]
                array *= xp.astype(xp.abs(array) >= FLUSH_BELOW, array.dtype)

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """Apply one update to ``param.value`` in place."""
        raise NotImplementedError

    # -- devices and persistence -------------------------------------------------------------
    def to(self, backend: Backend) -> None:
        """Move all state arrays to ``backend``'s device."""
        if self.backend is not None and self.backend is not backend:
            source = self.backend
            for entry in self.state.values():
                for slot in self.slots:
                    entry[slot] = backend.asarray(source.to_host(entry[slot]))
        self.backend = backend

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, step counts and state, with arrays as NumPy host copies."""
        source = self.backend
        return {
            "class": type(self).__name__,
            "config": self.get_config(),
            "iterations": self.iterations,
            "initial_learning_rate": self.initial_learning_rate,
            "state": {
                name: {key: (source.to_host(value) if key in self.slots else value)
                       for key, value in entry.items()}
                for name, entry in self.state.items()
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, onto this optimizer's device."""
        if state_dict.get("class") != type(self).__name__:
            raise ValueError(f"state of a {state_dict.get('class')} cannot be loaded into "
                             f"{type(self).__name__}")
        if self.backend is None:
            raise NotReadyError(f"{type(self).__name__}: build the optimizer (compile the "
                                "model) before loading its state")
        for key, value in state_dict["config"].items():
            setattr(self, key, value)
        self.iterations = int(state_dict["iterations"])
        self.initial_learning_rate = float(state_dict.get("initial_learning_rate",
                                                          self.learning_rate))
        self.state = {
            name: {key: (self.backend.to_device(value) if key in self.slots else int(value))
                   for key, value in entry.items()}
            for name, entry in state_dict["state"].items()
        }


    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters (constructor arguments)."""
        return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                "clip_norm": self.clip_norm, "clip_value": self.clip_value}


class SGD(Optimizer):
    """Plain stochastic gradient descent: w ← w − η g."""

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, **options: Any) -> None:
        super().__init__(learning_rate, **options)

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """w ← w − η g."""
        param.value -= self.learning_rate * grad


class Momentum(Optimizer):
    """SGD with classical (heavy-ball) momentum μ::

        v ← μ v − η g
        w ← w + v
    """

    name = "momentum"
    slots = ("velocity",)
    decaying_slots = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9,
                 **options: Any) -> None:
        super().__init__(learning_rate, **options)
        self.momentum = checks.number(type(self).__name__, "momentum", momentum, 0, 1)

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """v ← μ v − η g;  w ← w + v."""
        self.backend.momentum_step(param.value, state["velocity"], grad, self.learning_rate,
                                   self.momentum)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {**super().get_config(), "momentum": self.momentum}


class Nesterov(Momentum):
    """Nesterov accelerated gradient, in the form that needs g only at the current w
    (Sutskever et al. 2013; the look-ahead folded into the update)::

        v ← μ v − η g
        w ← w − η g + μ v
    """

    name = "nesterov"

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """v ← μ v − η g;  w ← w − η g + μ v."""
        self.backend.momentum_step(param.value, state["velocity"], grad, self.learning_rate,
                                   self.momentum, nesterov=True)


class AdaGrad(Optimizer):
    """AdaGrad: per-entry rates shrinking with the summed squared gradients::

        h ← h + g²
        w ← w − η g / (√h + ε)
    """

    name = "adagrad"
    slots = ("sum_squares",)

    def __init__(self, learning_rate: float = 0.01, epsilon: float = 1e-7,
                 **options: Any) -> None:
        super().__init__(learning_rate, **options)
        self.epsilon = _epsilon(self, epsilon)

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """h ← h + g²;  w ← w − η g / (√h + ε)."""
        self.backend.adagrad_step(param.value, state["sum_squares"], grad, self.learning_rate,
                                  self.epsilon)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {**super().get_config(), "epsilon": self.epsilon}


class RMSProp(Optimizer):
    """RMSProp: AdaGrad with a decaying average of squared gradients (decay ρ)::

        h ← ρ h + (1 − ρ) g²
        w ← w − η g / (√h + ε)
    """

    name = "rmsprop"
    slots = ("mean_square",)
    decaying_slots = ("mean_square",)

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9,
                 epsilon: float = 1e-7, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        self.rho = checks.number(type(self).__name__, "rho", rho, 0, 1)
        self.epsilon = _epsilon(self, epsilon)

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """h ← ρ h + (1 − ρ) g²;  w ← w − η g / (√h + ε)."""
        self.backend.rmsprop_step(param.value, state["mean_square"], grad, self.learning_rate,
                                  self.rho, self.epsilon)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction by 1 − βᵗ::

        m ← β₁ m + (1 − β₁) g          m̂ = m / (1 − β₁ᵗ)
        v ← β₂ v + (1 − β₂) g²         v̂ = v / (1 − β₂ᵗ)
        w ← w − η m̂ / (√v̂ + ε)

    computed as w ← w − η_t m / (√v + ε̂) with η_t = η √(1 − β₂ᵗ) / (1 − β₁ᵗ) and
    ε̂ = ε √(1 − β₂ᵗ), which is the same update with two fewer passes over w.
    """

    name = "adam"
    slots = ("m", "v")
    decaying_slots = ("m", "v")

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8,
                 **options: Any) -> None:
        super().__init__(learning_rate, **options)
        self.beta_1 = checks.number(type(self).__name__, "beta_1", beta_1, 0, 1)
        self.beta_2 = checks.number(type(self).__name__, "beta_2", beta_2, 0, 1)
        self.epsilon = _epsilon(self, epsilon)

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """The Adam step above, with t = this parameter's step count."""
        self.adam_step(param, grad, state)

    def adam_step(self, param: Parameter, grad: Array, state: dict[str, Any],
                  decoupled_decay: float = 0.0) -> None:
        """Moments, bias correction and the parameter step (shared with AdamW, which passes
        its decoupled decay ηλ)."""
        t = state["step"]
        correction_2 = math.sqrt(1.0 - self.beta_2**t)
        step_size = self.learning_rate * correction_2 / (1.0 - self.beta_1**t)
        self.backend.adam_step(param.value, state["m"], state["v"], grad, self.beta_1,
                               self.beta_2, step_size, self.epsilon * correction_2,
                               decoupled_decay)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay λ (Loshchilov & Hutter 2019)::

        w ← w − η λ w        (weights only: kernels, not biases)
        then the Adam step.

    Here ``weight_decay`` is this decoupled decay: it is not added to the gradient or to the
    reported loss. A layer's own ``weight_decay`` still adds the coupled L2 term.
    """

    name = "adamw"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.01,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 **options: Any) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay,
                         **options)

    def l2_coefficient(self, param: Parameter) -> float:
        """Only a layer's own coefficient: the optimizer's decay is decoupled."""
        if not param.regularizable or param.weight_decay is None:
            return 0.0
        return param.weight_decay

    def update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """Decay the weights by η λ, then the Adam step (one ``adam_step`` kernel)."""
        decay = self.learning_rate * self.weight_decay if param.regularizable else 0.0
        self.adam_step(param, grad, state, decay)


def global_norm(xp: Any, arrays: list[Array]) -> Array:
    """‖(a₁, a₂, …)‖₂ = √(Σᵢ Σ aᵢ²), the norm of all arrays taken as one vector (a device
    scalar)."""
    return xp.sqrt(sum(xp.sum(array * array) for array in arrays))


def _epsilon(optimizer: Optimizer, value: float) -> float:
    return checks.number(type(optimizer).__name__, "epsilon", value, 0, low_open=True)


_BY_NAME: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW)
}


def get(spec: str | Optimizer) -> Optimizer:
    """An optimizer from its name (``"adam"``, ``"sgd"``, ...) with default settings, or an
    :class:`Optimizer`."""
    if isinstance(spec, Optimizer):
        return spec
    try:
        return _BY_NAME[spec]()
    except KeyError:
        raise ValueError(f"unknown optimizer {spec!r}; expected one of "
                         f"{sorted(_BY_NAME)}") from None
