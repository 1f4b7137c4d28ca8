"""Weight initializers, drawn on the host.

An initializer is called as ``init(shape, fan_in, fan_out, rng)`` with a seeded
``numpy.random.Generator`` and returns a float64 NumPy array. Layers cast it to the model's
dtype on the host and copy it to the device, so one seed gives bit-identical initial weights on
every device.

==================  =====================================  ==============================
name                distribution                           suited to
==================  =====================================  ==============================
``zeros``           0                                      biases
``ones``            1                                      normalisation scales (γ)
``normal``          N(0, std²), std = 0.01 by default      the classic small-scale init
``glorot_uniform``  U(-a, a), a = √(6 / (fan_in+fan_out))  tanh, sigmoid, linear (Xavier)
``glorot_normal``   N(0, 2 / (fan_in + fan_out))           tanh, sigmoid, linear (Xavier)
``he_uniform``      U(-a, a), a = √(6 / fan_in)            ReLU family
``he_normal``       N(0, 2 / fan_in)                       ReLU family
``lecun_uniform``   U(-a, a), a = √(3 / fan_in)            SELU, linear
``lecun_normal``    N(0, 1 / fan_in)                       SELU, linear
==================  =====================================  ==============================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xpnn.config import Configurable


class Initializer(Configurable):
    """Base class: ``__call__(shape, fan_in, fan_out, rng)`` returns a float64 host array."""

    name = "initializer"

    def __call__(
        self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw a float64 array of ``shape`` for a layer with these fans."""
        raise NotImplementedError


class Zeros(Initializer):
    """All zeros."""

    name = "zeros"

    def __call__(
        self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw an array of ``shape``."""
        return np.zeros(shape, dtype=np.float64)


class Ones(Initializer):
    """All ones."""

    name = "ones"

    def __call__(
        self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw an array of ``shape``."""
        return np.ones(shape, dtype=np.float64)


class Normal(Initializer):
    """N(0, std²); ``std=0.01`` is the classic small-scale initialisation."""

    name = "normal"

    def __init__(self, std: float = 0.01) -> None:
        self.std = float(std)

    def __call__(
        self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw an array of ``shape``."""
        return self.std * rng.standard_normal(shape)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {"std": self.std}


class VarianceScaling(Initializer):
    """Uniform or normal with variance ``scale / fan``; the Glorot, He and LeCun families."""

    def __init__(self, name: str, scale: float, fan: str, distribution: str) -> None:
        self.name, self.scale, self.fan, self.distribution = name, scale, fan, distribution

    def __call__(
        self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw an array of ``shape``."""
        fan = {"in": fan_in, "avg": (fan_in + fan_out) / 2.0}[self.fan]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)  # U(-a, a) has variance a²/3
            return rng.uniform(-limit, limit, size=shape)
        return math.sqrt(variance) * rng.standard_normal(shape)

    def __repr__(self) -> str:
        return f"initializers.get({self.name!r})"


_NAMED: dict[str, Initializer] = {
    "zeros": Zeros(),
    "ones": Ones(),
    "glorot_uniform": VarianceScaling("glorot_uniform", 1.0, "avg", "uniform"),
    "glorot_normal": VarianceScaling("glorot_normal", 1.0, "avg", "normal"),
    "xavier_uniform": VarianceScaling("glorot_uniform", 1.0, "avg", "uniform"),
    "xavier_normal": VarianceScaling("glorot_normal", 1.0, "avg", "normal"),
    "he_uniform": VarianceScaling("he_uniform", 2.0, "in", "uniform"),
    "he_normal": VarianceScaling("he_normal", 2.0, "in", "normal"),
    "lecun_uniform": VarianceScaling("lecun_uniform", 1.0, "in", "uniform"),
    "lecun_normal": VarianceScaling("lecun_normal", 1.0, "in", "normal"),
}


def get(spec: str | dict[str, Any] | Initializer) -> Initializer:
    """An initializer from its name (see the table above), a serialized config, or an
    :class:`Initializer`."""
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, dict):
        return deserialize(spec)
    if spec == "normal":
        return Normal()
    try:
        return _NAMED[spec]
    except KeyError:
        names = sorted([*_NAMED, "normal"])
        raise ValueError(f"unknown initializer {spec!r}; expected one of {names}") from None


def serialize(init: Initializer) -> str | dict[str, Any]:
    """The name, or ``{"name": ..., **config}`` for a configured initializer."""
    config = init.get_config()
    return {"name": init.name, **config} if config else init.name


def deserialize(spec: str | dict[str, Any]) -> Initializer:
    """Inverse of :func:`serialize`."""
    if isinstance(spec, dict):
        config = dict(spec)
        name = config.pop("name")
        if name == "normal":
            return Normal(**config)
        return get(name)
    return get(spec)


# -- a weight layer's kernel initializer, which may be "auto" --------------------------------------

#: A kernel initializer argument: ``"auto"``, a name, a serialized config or an initializer.
KernelSpec = str | dict[str, Any] | Initializer


def kernel(spec: KernelSpec) -> Initializer | str:
    """``"auto"`` as is, anything else as :func:`get` reads it (Dense and Conv2D)."""
    return spec if spec == "auto" else get(spec)


def resolve_kernel(init: Initializer | str, next_layer: Any) -> Initializer:
    """The initializer a weight layer uses: ``"auto"`` becomes the next layer's
    ``preferred_initializer`` (He normal before a ReLU-family layer), else Glorot uniform."""
    if init != "auto":
        return init
    return get(getattr(next_layer, "preferred_initializer", None) or "glorot_uniform")


def serialize_kernel(init: Initializer | str) -> str | dict[str, Any]:
    """``"auto"`` as is, anything else as :func:`serialize` writes it."""
    return init if init == "auto" else serialize(init)
