"""The layer contract.

A layer is built from the shape of its input (``build(input_shape, context)``, shapes without
the batch axis: by a model, or from the first arrays it is called on), owns its parameters
and their gradients as named arrays on its device, and implements two methods that work on
one *call* at a time:

- ``forward(ctx, inputs) -> outputs``: computes the outputs and keeps on the call's
  :class:`Context` exactly what ``backward`` will need (``ctx.input = x``), never on the
  layer; ``ctx.training`` is the mode;
- ``backward(ctx, grad_output) -> grad_input``: given dL/d(outputs) of that call, *adds*
  dL/dθ of the call to each parameter's ``grad`` (:meth:`Parameter.accumulate_grad`) and
  returns dL/d(inputs) — None where ``ctx.needs_input_grad`` says no one needs it.

So a layer may be called several times in one step (a shared layer, a graph with branches):
each call has its own context, and the parameter gradients of all calls add up. Whoever runs
the step (a model's training step) resets the gradients once per step.

``inputs`` is one array, or a list of arrays for a layer with several inputs (the merge
layers, a recurrent layer given an initial state), and then ``backward`` returns one gradient
per input, in order. A layer with several outputs (a recurrent layer with
``return_state=True``) returns them as a tuple, and its ``backward`` takes a tuple of
gradients, None for an output that received none.

Calling a layer:

- on symbolic tensors (:func:`xpnn.Input` and the outputs of other calls) records a node of a
  graph and returns symbolic outputs (see :mod:`xpnn.graph`);
- on arrays, ``layer(x, training=...)`` checks them (shape, dtype, device, against what the
  layer was built for, with an error naming the layer) and returns the outputs;
  ``layer.apply(x, training=...)`` returns ``(outputs, ctx)``, and ``layer.backward(ctx,
  grad)`` then runs the backward pass of that call. ``forward`` itself does no checking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from xpnn.backends import backend_type_of
from xpnn.device import backend_of
from xpnn.errors import DeviceError, DTypeError, GraphError, ShapeError
from xpnn.graph import Context, SymbolicTensor, record_call, symbolic_inputs
from xpnn.names import snake_case, unique_name

if TYPE_CHECKING:
    from xpnn.backends.base import Backend, RandomGenerator

Shape = tuple[int, ...]
Array = Any


@dataclass
class BuildContext:
    """What a layer needs to build itself.

    ``backend`` is the device, ``dtype`` the float dtype name, ``rng`` the seeded host generator
    for initial weights, ``next_layer`` the layer that will consume this layer's output (the
    only one, in a graph; a Dense layer uses it to pick He initialisation before a ReLU),
    ``noise_seed`` the seed of
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

    ``grad`` is None until the first backward pass of a step reaches the parameter; every
    call of the layer in that step adds its share (:meth:`accumulate_grad`), and the model
    resets it to None before the next step.

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

    def accumulate_grad(self, grad: Array) -> None:
        """Add one call's dL/dθ to ``grad`` (the first call of a step sets it; later calls
        add out of place, so no array a layer handed over is ever changed)."""
        self.grad = grad if self.grad is None else self.grad + grad

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


def batch_shape(shape: Shape, batch: str = "batch") -> str:
    """``(batch, 8, 8)`` for the per-sample shape (8, 8): how messages show a batch."""
    return "(" + ", ".join([batch, *map(str, shape)]) + ")"


class Layer:
    """Base class of all layers; see the module docstring for the contract."""

    #: The kernel initializer a preceding Dense layer should use by default (None: Glorot).
    preferred_initializer: ClassVar[str | None] = None
    #: Whether the layer takes integer inputs (token ids) that a model must not cast to its
    #: float dtype (Embedding).
    integer_input: ClassVar[bool] = False
    #: Whether ``check_input`` looks at the values of every batch (Embedding's id range), so
    #: that a graph runs it on every call, not only on its first run.
    checks_values: ClassVar[bool] = False
    #: The dtype name of the layer's outputs when they are not floats of the layer's dtype
    #: (PaddingMask: ``"bool"``); None: the layer's float dtype. Such outputs carry no
    #: gradient.
    output_dtype: ClassVar[str | None] = None
    #: Whether the layer's training forward and backward take part in collective operations
    #: over the ranks of a distributed fit (a synchronized BatchNorm, see
    #: :mod:`xpnn.distributed`): every rank must then run them in every step, also a rank
    #: whose share of the batch is empty.
    collective: bool = False

    def __init__(self, *, name: str | None = None, trainable: bool = True) -> None:
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = trainable
        self.input_shape: Any = None
        self.output_shape: Any = None
        self.backend: Backend | None = None
        self.dtype_name: str | None = None
        self._params: dict[str, Parameter] = {}
        #: The device generator of a layer that draws random numbers while it runs
        #: (Dropout); checkpoints save and restore its state.
        self.generator: RandomGenerator | None = None
        #: How many times the layer was called on symbolic tensors (names later calls'
        #: outputs ``dense_1``, ...).
        self.calls = 0

    # -- building --------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        """Whether :meth:`build` has run."""
        return self.input_shape is not None

    def build(self, input_shape: Any, context: BuildContext) -> None:
        """Create the parameters for inputs of ``input_shape`` (no batch axis; a list of
        shapes for a layer called on a list).

        Subclasses that own parameters extend this, calling ``super().build`` first.
        """
        self.input_shape = ([tuple(int(n) for n in s) for s in input_shape]
                            if isinstance(input_shape, list)
                            else tuple(int(n) for n in input_shape))
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
        value = self.backend.to_device(host_value, self.dtype_name)
        param = Parameter(f"{self.name}/{name}", value, regularizable, trainable, weight_decay)
        self._params[name] = param
        return param

    def make_generator(self, seed: int | None, context: BuildContext) -> None:
        """Create ``self.generator``, the layer's random generator on its device (for a layer
        that draws random numbers while it runs: dropout masks), seeded by ``seed`` or, when
        that is None, by the model's ``noise_seed`` for this layer; checkpoints save its
        position and :meth:`to` moves it."""
        self.generator_seed = seed if seed is not None else context.noise_seed
        self.generator = context.backend.generator(self.generator_seed)

    def matches_built_shape(self, input_shape: Any) -> bool:
        """Whether a call on inputs of ``input_shape`` fits the built layer: a shared layer
        takes the shapes it was built for at every call."""
        def normal(shape: Any) -> Any:
            return [tuple(s) for s in shape] if isinstance(shape, list) else tuple(shape)

        return normal(input_shape) == normal(self.input_shape)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape (no batch axis) for an input shape; identity by default. A layer
        with several outputs returns a list of shapes."""
        return tuple(input_shape)

    # -- running -----------------------------------------------------------------------------
    def __call__(self, inputs: Any, training: bool = False) -> Any:
        """On symbolic tensors: record a graph node and return its symbolic outputs. On
        arrays: check them (building the layer first if needed) and return the outputs."""
        if symbolic_inputs(self, inputs) is not None:
            return record_call(self, inputs)
        outputs, _ = self.apply(inputs, training=training)
        return outputs

    def apply(self, inputs: Any, training: bool = False) -> tuple[Any, Context]:
        """Check ``inputs`` (building the layer first if needed), run ``forward`` and return
        ``(outputs, ctx)``; ``backward(ctx, grad_output)`` then backpropagates this call."""
        if symbolic_inputs(self, inputs) is not None:
            raise GraphError(f"layer '{self.name}' ({type(self).__name__}): apply runs on "
                             "arrays; call the layer to record a graph node")
        if not self.built:
            self._build_from(inputs)
        self.check_input(inputs)
        arrays = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        ctx = Context(training, tuple(bool(self.xp.isdtype(a.dtype, "real floating"))
                                      for a in arrays))
        return self.forward(ctx, inputs), ctx

    def forward(self, ctx: Context, inputs: Any) -> Any:
        """Compute the outputs for a batch, keeping on ``ctx`` what ``backward`` needs; see
        each layer's docstring."""
        raise NotImplementedError

    def backward(self, ctx: Context, grad_output: Any) -> Any:
        """Given dL/d(outputs) of the call ``ctx``, add dL/dθ to the parameters' grads and
        return dL/d(inputs)."""
        raise NotImplementedError

    def check_symbolic_input(self, tensors: list[SymbolicTensor]) -> None:
        """Refuse symbolic inputs of the wrong kind (token ids where floats are needed, or
        floats for a layer that takes ids)."""
        for tensor in tensors:
            if self.integer_input:
                if tensor.dtype not in (None, "int32", "int64"):
                    raise DTypeError(f"layer '{self.name}' ({type(self).__name__}) takes "
                                     f"integer token ids, but '{tensor.name}' has dtype "
                                     f"{tensor.dtype}")
            elif tensor.dtype not in (None, "float32", "float64"):
                raise DTypeError(f"layer '{self.name}' ({type(self).__name__}) takes floats, "
                                 f"but '{tensor.name}' has dtype {tensor.dtype}")

    def check_input(self, inputs: Any) -> None:
        """Raise a clear error unless ``inputs`` match the built shapes, dtype and device."""
        assert self.backend is not None and self.input_shape is not None
        where = f"layer '{self.name}' ({type(self).__name__})"
        arrays = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        shapes = self.input_shape if isinstance(self.input_shape, list) else [self.input_shape]
        if len(arrays) != len(shapes) or isinstance(inputs, list | tuple) != isinstance(
                self.input_shape, list):
            expected = (f"a list of {len(shapes)} arrays"
                        if isinstance(self.input_shape, list) else "one array")
            received = (f"a list of {len(arrays)}" if isinstance(inputs, list | tuple)
                        else "one array")
            raise ShapeError(f"{where} takes {expected}, received {received}")
        for index, (x, shape) in enumerate(zip(arrays, shapes, strict=True)):
            what = "input" if len(arrays) == 1 else f"input {index}"
            self.check_array(x, shape, what)

    def check_array(self, x: Any, shape: Shape, what: str = "input") -> None:
        """Check one input array: on the layer's device, of ``(batch, *shape)``, of the
        layer's dtype (integer for a layer that takes token ids)."""
        where = f"layer '{self.name}' ({type(self).__name__})"
        if not self.backend.owns(x):
            raise DeviceError(
                f"{where} lives on {self.backend.device} but its {what} is "
                f"{describe_array(x)}; move the data with model.backend.asarray() "
                "or pass NumPy arrays to fit/predict")
        if tuple(x.shape[1:]) != shape or len(x.shape) != len(shape) + 1:
            raise ShapeError(f"{where} expected {what} of shape {batch_shape(shape)}, "
                             f"received {tuple(x.shape)}")
        if self.integer_input:
            if not self.xp.isdtype(x.dtype, "integral"):
                raise DTypeError(f"{where} takes integer token ids, received dtype "
                                 f"{self.backend.dtype_name(x.dtype)}")
        elif x.dtype != self.dtype:
            raise DTypeError(f"{where} expected {what} of dtype {self.dtype_name}, received "
                             f"{self.backend.dtype_name(x.dtype)}")

    def _build_from(self, inputs: Any) -> None:
        """Build for the shapes, dtype and device of the first arrays the layer is called
        on (a standalone layer)."""
        arrays = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        for x in arrays:
            if not hasattr(x, "shape") or backend_type_of(x) is None:
                raise DeviceError(f"layer '{self.name}' ({type(self).__name__}) runs on "
                                  "arrays of an xpnn backend (NumPy, CuPy, array-api-strict) "
                                  f"or symbolic tensors, received {describe_array(x)}")
        backend = backend_of(arrays[0])
        dtype = backend.dtype_name(arrays[0].dtype)
        if dtype not in ("float32", "float64"):
            raise DTypeError(f"layer '{self.name}' ({type(self).__name__}) builds from "
                             f"float32 or float64 input, received {dtype}: build it first "
                             "with layer.build(input_shape, BuildContext(backend, dtype, "
                             "rng)), or use it in a model")
        shapes = [tuple(int(n) for n in x.shape[1:]) for x in arrays]
        shape = shapes if isinstance(inputs, list | tuple) else shapes[0]
        self.build(shape, BuildContext(backend, dtype, np.random.default_rng()))

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
        """Move parameters to another backend's device (their grads are dropped). A device
        generator moves with its position where both devices can report it (NumPy and
        strict); otherwise it restarts from the layer's seed."""
        if self.backend is None or backend is self.backend:
            return
        source = self.backend
        for param in self._params.values():
            param.value = backend.to_device(source.to_host(param.value), self.dtype_name)
            param.grad = None
        self.backend, self.xp = backend, backend.xp
        self.dtype = backend.dtype(self.dtype_name)
        if self.generator is not None:
            position = self.generator.get_state()
            self.generator = backend.generator(self.generator_seed)
            self.generator.set_state(position)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-compatible values (``type(self)(**config)``)."""
        return {"name": self.name, "trainable": self.trainable}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def describe_array(x: Any) -> str:
    """``a numpy.ndarray on cpu with shape (3, 4)``, ``a Python list``: what an error message
    says of an object that was passed where an array was expected."""
    where = backend_type_of(x)
    if where is None and type(x).__module__ == "builtins":
        return f"a Python {type(x).__name__}"
    place = f"on {where}" if where is not None else "(not an array of an xpnn backend)"
    shape = getattr(x, "shape", None)
    return f"a {type(x).__module__}.{type(x).__name__} {place}" + (
        f" with shape {tuple(shape)}" if shape is not None else "")
