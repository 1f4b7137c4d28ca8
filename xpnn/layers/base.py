"""The layer contract.

A layer is built lazily from the shape of its first input (``build(input_shape, context)``,
shapes without the batch axis), owns its parameters and their gradients as named arrays on its
device, and implements

- ``forward(x, training) -> y``, caching only what ``backward`` needs, and
- ``backward(grad_output) -> grad_input``, which *overwrites* each parameter's ``grad`` with
  dL/dθ for the batch and returns dL/dx.

Calling a layer (``layer(x, training=...)``) checks the input's shape, dtype and device against
what the layer was built for and raises an error naming the layer, the expected and the
received values; ``forward`` itself does no checking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from xpnn.errors import DeviceError, DTypeError, ShapeError

if TYPE_CHECKING:
    from xpnn.backends.base import Backend, RandomGenerator

Shape = tuple[int, ...]
Array = Any


@dataclass
class BuildContext:
    """What a layer needs to build itself.

    ``backend`` is the device, ``dtype`` the float dtype name, ``rng`` the seeded host generator
    for initial weights, ``next_layer`` the layer that will consume this layer's output (a
    Dense layer uses it to pick He initialisation before a ReLU), ``noise_seed`` the seed of
    the device generator of a layer that draws random numbers while it runs (Dropout; None:
    fresh entropy). It is separate from ``rng`` so that adding a Dropout layer does not change
    the initial weights of the other layers.
    """

    backend: Backend
    dtype: str
    rng: np.random.Generator
    next_layer: Layer | None = None
    noise_seed: int | None = None


class Parameter:
    """A named array of a layer and its gradient, both on the owning layer's device.

    ``trainable`` parameters are updated by the optimizer from ``grad``; non-trainable ones
    are state that ``forward`` itself updates (BatchNorm's running statistics): they have no
    gradient, but are saved, restored and moved with the model like every parameter.
    ``regularizable`` marks weights (kernels) as opposed to biases: L2 weight decay applies to
    the former only, with the coefficient ``weight_decay`` when it is set (None: the
    optimizer's coefficient).
    """

    __slots__ = ("grad", "name", "regularizable", "trainable", "value", "weight_decay")

    def __init__(self, name: str, value: Array, regularizable: bool = True,
                 trainable: bool = True, weight_decay: float | None = None) -> None:
        self.name = name
        self.value = value
        self.grad: Array | None = None
        self.regularizable = regularizable
        self.trainable = trainable
        self.weight_decay = weight_decay

    @property
    def shape(self) -> Shape:
        """The parameter's shape."""
        return tuple(self.value.shape)

    @property
    def size(self) -> int:
        """The number of scalars in the parameter."""
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.shape})"


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", name).lower()


class Layer:
    """Base class of all layers; see the module docstring for the contract."""

    #: The kernel initializer a preceding Dense layer should use by default (None: Glorot).
    preferred_initializer: ClassVar[str | None] = None
    #: Whether the layer takes integer inputs (token ids) that a model must not cast to its
    #: float dtype (Embedding).
    integer_input: ClassVar[bool] = False

    def __init__(self, *, name: str | None = None, trainable: bool = True) -> None:
        self.name = name or _snake_case(type(self).__name__)
        self.trainable = trainable
        #: False when no layer before this one needs dL/dx (the first layer of a model):
        #: ``backward`` may then skip that product and return None.
        self.needs_input_grad = True
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.backend: Backend | None = None
        self.dtype_name: str | None = None
        self._params: dict[str, Parameter] = {}
        #: The device generator of a layer that draws random numbers while it runs
        #: (Dropout); checkpoints save and restore its state.
        self.generator: RandomGenerator | None = None

    # -- building --------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        """Whether :meth:`build` has run."""
        return self.input_shape is not None

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create the parameters for inputs of ``input_shape`` (no batch axis).

        Subclasses that own parameters extend this, calling ``super().build`` first.
        """
        self.input_shape = tuple(int(n) for n in input_shape)
        self.backend = context.backend
        self.xp = context.backend.xp
        self.dtype_name = context.dtype
        self.dtype = context.backend.dtype(context.dtype)
        self.output_shape = self.compute_output_shape(self.input_shape)

    def add_parameter(self, name: str, host_value: np.ndarray, regularizable: bool, *,
                      trainable: bool = True, weight_decay: float | None = None) -> Parameter:
        """Register a parameter from a host array (cast on the host, then copied to the
        device: parameters are updated in place and must not share the caller's memory)."""
        assert self.backend is not None
        value = self.xp.asarray(self.backend.asarray(host_value, dtype=self.dtype_name),
                                copy=True)
        param = Parameter(f"{self.name}/{name}", value, regularizable, trainable, weight_decay)
        self._params[name] = param
        return param

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The output shape (no batch axis) for an input shape; identity by default."""
        return tuple(input_shape)

    # -- running -----------------------------------------------------------------------------
    def __call__(self, x: Array, training: bool = False) -> Array:
        """Check ``x`` against the layer (building it first if needed), then ``forward``."""
        if not self.built:
            self._build_from(x)
        self.check_input(x)
        return self.forward(x, training=training)

    def forward(self, x: Array, training: bool = False) -> Array:
        """Compute the output for a batch ``x``; see each layer's docstring."""
        raise NotImplementedError

    def backward(self, grad_output: Array) -> Array | None:
        """Given dL/dy for the last ``forward``, set parameter grads and return dL/dx."""
        raise NotImplementedError

    def check_input(self, x: Array) -> None:
        """Raise a clear error if ``x`` does not match the built shape, dtype or device."""
        assert self.backend is not None and self.input_shape is not None
        if not self.backend.owns(x):
            raise DeviceError(
                f"layer '{self.name}' ({type(self).__name__}) lives on {self.backend.device} "
                f"but received {_describe_array(x)}; move the data with model.backend.asarray() "
                "or pass NumPy arrays to fit/predict"
            )
        if tuple(x.shape[1:]) != self.input_shape or len(x.shape) != len(self.input_shape) + 1:
            expected = f"(batch, {', '.join(map(str, self.input_shape))})".replace(", )", ")")
            raise ShapeError(
                f"layer '{self.name}' ({type(self).__name__}) expected input of shape {expected}"
                f", received {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise DTypeError(
                f"layer '{self.name}' ({type(self).__name__}) expected dtype {self.dtype_name}, "
                f"received {self.backend.dtype_name(x.dtype)}"
            )

    def _build_from(self, x: Array) -> None:
        from xpnn.device import backend_of

        backend = backend_of(x)
        dtype = backend.dtype_name(x.dtype)
        if dtype not in ("float32", "float64"):
            raise DTypeError(f"layer '{self.name}' builds from float32 or float64 input, "
                             f"received {dtype}")
        self.build(tuple(x.shape[1:]), BuildContext(backend, dtype, np.random.default_rng()))

    # -- parameters and state ----------------------------------------------------------------
    def parameters(self) -> list[Parameter]:
        """This layer's parameters (trainable and not), in a fixed order."""
        return list(self._params.values())

    def trainable_parameters(self) -> list[Parameter]:
        """The parameters the optimizer updates: none if the layer is frozen."""
        if not self.trainable:
            return []
        return [p for p in self._params.values() if p.trainable]

    def count_params(self) -> int:
        """The number of scalars in this layer's parameters."""
        return sum(p.size for p in self._params.values())

    def to(self, backend: Backend) -> None:
        """Move parameters (and their grads) to another backend's device."""
        if self.backend is None or backend is self.backend:
            return
        source = self.backend
        for param in self._params.values():
            param.value = backend.asarray(source.to_host(param.value))
            param.grad = None
        self.backend, self.xp = backend, backend.xp
        self.dtype = backend.dtype(self.dtype_name)
        self._clear_cache()

    def _clear_cache(self) -> None:
        """Drop arrays cached by ``forward`` (they live on the old device after ``to``)."""
        for key in [k for k in vars(self) if k.startswith("_cache")]:
            setattr(self, key, None)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-compatible values (``type(self)(**config)``)."""
        return {"name": self.name, "trainable": self.trainable}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _describe_array(x: Any) -> str:
    from xpnn.backends import backend_type_of

    where = backend_type_of(x)
    place = f"on {where}" if where is not None else "of no xpnn backend"
    shape = getattr(x, "shape", None)
    return f"a {type(x).__module__}.{type(x).__name__} {place}" + (
        f" with shape {tuple(shape)}" if shape is not None else "")
