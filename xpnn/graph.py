"""Graphs of layer calls: symbolic tensors, nodes, and running a graph forward and back.

Calling a layer on a :class:`SymbolicTensor` (made by :func:`Input`, or returned by an earlier
call) runs nothing: it records a :class:`Node` — the layer, the tensors it was called on and
the tensors it returns, whose shapes the layer computes from its input shapes — and returns
those output tensors. :class:`Graph` takes a model's input and output tensors, collects every
node between them in the order the calls were made (which is a topological order: a call can
only use tensors that exist), and runs them:

- **forward**: each node's layer runs on the arrays of its input tensors with a fresh
  :class:`~xpnn.layers.base.Context`, which the graph keeps for the backward pass;
- **backward**: the nodes in reverse order, each given dL/d(its outputs) and returning
  dL/d(its inputs); where a tensor feeds several nodes (fan-out) the gradients it receives
  are summed, dL/dt = Σ_consumers dL/dt|_consumer. A layer called by several nodes (a shared
  layer) adds the parameter gradients of each call to the same ``Parameter.grad``.

Shapes never include the batch axis. The graph checks every node's inputs and outputs (shape,
dtype, device) on its first run after being built or moved; later runs check only what
depends on the values (Embedding's id range), since the shapes cannot change.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from xpnn.errors import DeviceError, DTypeError, GraphError, ShapeError
from xpnn.names import unique_name

Array = Any
Shape = tuple[int, ...]

#: The dtypes an :func:`Input` may declare (None: the model's float dtype, or integer ids
#: when every layer reading it takes token ids).
INPUT_DTYPES = (None, "float32", "float64", "int32", "int64", "bool")

_serials = itertools.count()
_serial_lock = threading.Lock()


def _next_serial() -> int:
    with _serial_lock:
        return next(_serials)


class GraphLayer(Protocol):
    """What a graph uses of a layer (:class:`xpnn.layers.base.Layer` is the implementation;
    this module sits below it and does not import it)."""

    name: str
    calls: int
    checks_values: bool
    output_dtype: str | None
    built: bool
    input_shape: Any
    backend: Any
    dtype: Any
    dtype_name: str | None

    def check_symbolic_input(self, tensors: list[SymbolicTensor]) -> None: ...  # noqa: D102
    def matches_built_shape(self, input_shape: Any) -> bool: ...  # noqa: D102
    def compute_output_shape(self, input_shape: Any) -> Any: ...  # noqa: D102
    def check_input(self, inputs: Any) -> None: ...  # noqa: D102
    def forward(self, ctx: Context, inputs: Any) -> Any: ...  # noqa: D102
    def backward(self, ctx: Context, grad_output: Any) -> Any: ...  # noqa: D102
    def trainable_parameters(self) -> list[Any]: ...  # noqa: D102


class Context:
    """One call of a layer on arrays: its mode and what its forward keeps for its backward.

    A layer's ``forward(ctx, inputs)`` stores on ``ctx`` exactly what its
    ``backward(ctx, grad_output)`` will need (``ctx.input = x``); nothing of a call is kept
    on the layer itself, so a layer can be called any number of times in one step, each call
    with its own context. ``training`` is the mode of the call; ``needs_input_grad[i]`` says
    whether the call's i-th input needs dL/dx_i (False for the model's inputs and token ids:
    ``backward`` may then skip that product and return None in its place).
    """

    def __init__(self, training: bool = False,
                 needs_input_grad: tuple[bool, ...] = (True,)) -> None:
        self.training = training
        self.needs_input_grad = needs_input_grad

    def __repr__(self) -> str:
        kept = ", ".join(key for key in vars(self) if key not in ("training",
                                                                  "needs_input_grad"))
        return (f"Context(training={self.training}, needs_input_grad={self.needs_input_grad}"
                f", kept: {kept or 'nothing'})")


class SymbolicTensor:
    """A placeholder for the arrays that will flow along one edge of a graph.

    ``shape`` excludes the batch axis; ``dtype`` is a dtype name, or None for "the model's
    float dtype"; ``node`` is the call that produces it (None for an :func:`Input`) and
    ``index`` which of that call's outputs it is.
    """

    __slots__ = ("dtype", "index", "name", "node", "serial", "shape")

    def __init__(self, shape: Shape, dtype: str | None, node: Node | None, index: int,
                 name: str) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node
        self.index = index
        self.name = name
        self.serial = _next_serial()

    @property
    def is_input(self) -> bool:
        """Whether this tensor is a graph input (made by :func:`Input`)."""
        return self.node is None

    def __repr__(self) -> str:
        dtype = self.dtype or "float"
        return f"SymbolicTensor(name={self.name!r}, shape={(None, *self.shape)}, dtype={dtype})"


class Node:
    """One call of a layer in a graph: ``inputs`` (the tensors it was called on; ``as_list``
    says whether they were passed as a list) and ``outputs`` (one tensor per output of the
    layer; ``multiple_outputs`` says whether the call returned a list)."""

    __slots__ = ("as_list", "inputs", "layer", "multiple_outputs", "outputs", "serial")

    def __init__(self, layer: GraphLayer, inputs: list[SymbolicTensor], as_list: bool) -> None:
        self.layer = layer
        self.inputs = inputs
        self.as_list = as_list
        self.outputs: list[SymbolicTensor] = []
        self.multiple_outputs = False
        self.serial = _next_serial()

    def input_structure(self, values: list[Any]) -> Any:
        """``values`` (one per input tensor) shaped as the layer was called: a list, or the
        single value."""
        return list(values) if self.as_list else values[0]

    def __repr__(self) -> str:
        names = ", ".join(t.name for t in self.inputs)
        return f"Node({self.layer.name}({names}))"


def Input(shape: Sequence[int], dtype: str | None = None, name: str | None = None  # noqa: N802
          ) -> SymbolicTensor:
    """A symbolic input of a graph model: arrays of shape ``(batch, *shape)``.

    ``dtype`` None means the model's float dtype, or integer token ids when every layer that
    reads this input takes ids (Embedding); name an explicit dtype (``"int64"``, ``"bool"``,
    ``"float32"``...) to say otherwise. ``name`` names the input in ``fit``/``predict``
    dicts and summaries (default ``input``, ``input_1``, ...).
    """
    if isinstance(shape, int):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise ShapeError(f"Input: shape must be a tuple of positive integers without the "
                         f"batch axis, e.g. (64,), received {shape!r}") from None
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                            for n in shape):
        raise ShapeError(f"Input: shape must be a tuple of positive integers without the "
                         f"batch axis, e.g. (64,), received {shape!r}")
    if dtype not in INPUT_DTYPES:
        raise DTypeError(f"Input: dtype must be one of {INPUT_DTYPES}, received {dtype!r}")
    return SymbolicTensor(shape, dtype, None, 0, name or unique_name("input"))


def symbolic_inputs(layer: GraphLayer, inputs: Any) -> list[SymbolicTensor] | None:
    """The symbolic tensors ``layer`` is called on, as a list; None when the call is on
    arrays. A call that mixes symbolic tensors and arrays is refused."""
    items = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
    symbolic = [isinstance(item, SymbolicTensor) for item in items]
    if not any(symbolic):
        return None
    if not all(symbolic):
        kinds = ", ".join(type(item).__name__ for item in items)
        raise GraphError(f"layer '{layer.name}' ({type(layer).__name__}) was called on a mix "
                         f"of symbolic tensors and arrays ({kinds}): in a graph, make every "
                         "input an xpnn.Input or a layer's output")
    return items


def record_call(layer: GraphLayer, inputs: Any) -> SymbolicTensor | list[SymbolicTensor]:
    """Record the call ``layer(inputs)`` on symbolic tensors: check the inputs, compute the
    output shapes, and return the output tensor(s) of a new :class:`Node`."""
    as_list = isinstance(inputs, list | tuple)
    tensors = list(inputs) if as_list else [inputs]
    layer.check_symbolic_input(tensors)
    shapes = [tensor.shape for tensor in tensors]
    input_shape: Any = shapes if as_list else shapes[0]
    if layer.built and not layer.matches_built_shape(input_shape):
        raise ShapeError(
            f"layer '{layer.name}' ({type(layer).__name__}) was built for inputs of shape "
            f"{_describe_shapes(layer.input_shape)} and cannot be called on "
            f"{_describe_shapes(input_shape)}: a shared layer takes the same shapes at every "
            "call")
    output_shape = layer.compute_output_shape(input_shape)
    node = Node(layer, tensors, as_list)
    node.multiple_outputs = isinstance(output_shape, list)
    base = layer.name if layer.calls == 0 else f"{layer.name}_{layer.calls}"
    layer.calls += 1
    dtype = layer.output_dtype
    if node.multiple_outputs:
        node.outputs = [SymbolicTensor(shape, dtype, node, index, f"{base}/{index}")
                        for index, shape in enumerate(output_shape)]
        return list(node.outputs)
    node.outputs = [SymbolicTensor(output_shape, dtype, node, 0, base)]
    return node.outputs[0]


def _describe_shapes(shape: Any) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(str((None, *s)) for s in shape) + "]"
    return str((None, *shape))


class _Step:
    """One node of a compiled graph: where its inputs and outputs live among the graph's
    value slots, and which slots can be dropped once it has run (what a run reads per node,
    worked out once)."""

    __slots__ = (
        "as_list",
        "drop",
        "input_slots",
        "layer",
        "multiple_outputs",
        "node",
        "output_slots",
        "single",
    )

    def __init__(self, node: Node, input_slots: list[int], output_slots: list[int]) -> None:
        self.node = node
        self.layer = node.layer
        self.input_slots = input_slots
        self.output_slots = output_slots
        self.as_list = node.as_list
        self.multiple_outputs = node.multiple_outputs
        #: One input array and one output array: the common case, run without lists.
        self.single = not node.as_list and not node.multiple_outputs
        self.drop: list[int] = []


class Graph:
    """The nodes between ``inputs`` and ``outputs`` in a runnable order (see the module
    docstring). ``owner`` names the model in error messages.

    Refused with a :class:`~xpnn.errors.GraphError`: inputs that are not :func:`Input`
    tensors, outputs that are not floats (a layer's boolean mask), an output that depends on
    an Input that is not among ``inputs``, an input that no output depends on, two different
    layers (or two inputs) with one name, a cycle.
    """

    def __init__(self, inputs: Sequence[SymbolicTensor], outputs: Sequence[SymbolicTensor],
                 owner: str) -> None:
        where = f"model '{owner}'"
        self.inputs, self.outputs = list(inputs), list(outputs)
        for role, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            if not tensors:
                raise GraphError(f"{where} needs at least one tensor in its {role}")
            for tensor in tensors:
                if not isinstance(tensor, SymbolicTensor):
                    raise GraphError(f"{where}: its {role} must be symbolic tensors (from "
                                     f"xpnn.Input and layer calls), received "
                                     f"{type(tensor).__name__}")
        for tensor in self.inputs:
            if not tensor.is_input:
                raise GraphError(f"{where}: input '{tensor.name}' is the output of layer "
                                 f"'{tensor.node.layer.name}'; a model's inputs come from "
                                 "xpnn.Input")
        for tensor in self.outputs:
            if tensor.node is not None and tensor.dtype is not None:
                raise GraphError(f"{where}: output '{tensor.name}' holds {tensor.dtype} "
                                 f"values (layer '{tensor.node.layer.name}'), but a model's "
                                 "outputs are floats of its dtype; use it as another layer's "
                                 "input")
        _refuse_duplicates(where, "inputs", [t.name for t in self.inputs], self.inputs)
        self.nodes = self._collect(where)
        self.layers: list[GraphLayer] = []
        for node in self.nodes:
            if not any(layer is node.layer for layer in self.layers):
                self.layers.append(node.layer)
        _refuse_duplicates(where, "layers", [layer.name for layer in self.layers],
                           self.layers)
        self._number_slots()
        #: The layers in order when the graph is a chain (one input, one output, each node
        #: one array in and out, each output read by the next node only: a Sequential),
        #: which runs without value slots; None otherwise.
        self.chain = self._chain()
        #: Whether the next run checks every node's inputs and outputs.
        self.verified = False
        self._needs_cache: dict[tuple[bool, ...], Any] = {}
        #: Per node, ``needs_input_grad`` of a run that is not recorded: all False.
        self._no_grads = [(False,) * len(step.input_slots) for step in self.steps]

    # -- structure -----------------------------------------------------------------------
    def _collect(self, where: str) -> list[Node]:
        """Every node some output depends on, in call order; checks inputs and cycles."""
        found: dict[int, Node] = {}
        reached_inputs: list[SymbolicTensor] = []
        stack = list(self.outputs)
        seen: set[int] = set()
        while stack:
            tensor = stack.pop()
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if tensor.is_input:
                reached_inputs.append(tensor)
                continue
            node = tensor.node
            if id(node) not in found:
                found[id(node)] = node
                stack.extend(node.inputs)
        for tensor in reached_inputs:
            if not any(tensor is given for given in self.inputs):
                names = [t.name for t in self.inputs]
                raise GraphError(f"{where}: its outputs depend on Input '{tensor.name}', "
                                 f"which is not among its inputs {names}: pass every Input "
                                 "the outputs are computed from")
        for tensor in self.inputs:
            if not any(tensor is reached for reached in reached_inputs):
                raise GraphError(f"{where}: input '{tensor.name}' is never used: no output "
                                 "depends on it; remove it from the inputs or use it")
        nodes = sorted(found.values(), key=lambda node: node.serial)
        position = {id(node): index for index, node in enumerate(nodes)}
        for index, node in enumerate(nodes):
            for tensor in node.inputs:
                if not tensor.is_input and position[id(tensor.node)] >= index:
                    raise GraphError(f"{where} has a cycle through layer "
                                     f"'{node.layer.name}': a call cannot use a tensor that "
                                     "is computed from its own output")
        return nodes

    def _number_slots(self) -> None:
        """Give every tensor a slot in the list of values a run fills in."""
        slots: dict[int, int] = {id(t): i for i, t in enumerate(self.inputs)}
        self.steps: list[_Step] = []
        for node in self.nodes:
            input_slots = [slots[id(t)] for t in node.inputs]
            output_slots = []
            for tensor in node.outputs:
                slots[id(tensor)] = len(slots)
                output_slots.append(slots[id(tensor)])
            self.steps.append(_Step(node, input_slots, output_slots))
        self.num_slots = len(slots)
        self.output_slots = [slots[id(t)] for t in self.outputs]
        last_use: dict[int, int] = {}
        for index, step in enumerate(self.steps):
            for slot in step.input_slots:
                last_use[slot] = index
        kept = set(self.output_slots)
        for slot, index in last_use.items():
            if slot not in kept:
                self.steps[index].drop.append(slot)
        #: The slots of tensors that are not floats (token ids, masks): they never carry a
        #: gradient.
        self.integer_slots = set()
        tensors = [*self.inputs, *(t for node in self.nodes for t in node.outputs)]
        for tensor in tensors:
            if tensor.dtype is not None and tensor.dtype not in ("float32", "float64"):
                self.integer_slots.add(slots[id(tensor)])

    def _chain(self) -> list[Any] | None:
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            return None
        previous = self.inputs[0]
        for node in self.nodes:
            if not (node.inputs == [previous] and len(node.outputs) == 1
                    and not node.as_list and not node.multiple_outputs):
                return None
            previous = node.outputs[0]
        if previous is not self.outputs[0] or any(len(step.drop) != 1 for step in self.steps):
            return None
        return [node.layer for node in self.nodes]

    def needs_grad(self, input_grads: bool = False) -> list[bool]:
        """Which slots need a gradient in the backward pass: a tensor does when a layer with
        trainable parameters produced it or one of its ancestors (``input_grads``: the
        model's float inputs too)."""
        return self._plan(input_grads)[0]

    def _plan(self, input_grads: bool) -> tuple[list[bool], list[tuple[bool, ...]]]:
        """``needs_grad`` and, per node, its inputs' ``needs_input_grad``; cached per pattern
        of frozen layers (a layer's own parameters never change from trainable to not)."""
        key = (input_grads, *[layer.trainable for layer in self.layers])
        plan = self._needs_cache.get(key)
        if plan is None:
            needs = [input_grads and slot not in self.integer_slots
                     for slot in range(self.num_slots)]
            for step in self.steps:
                upstream = (bool(step.layer.trainable_parameters())
                            or any(needs[slot] for slot in step.input_slots))
                for slot in step.output_slots:
                    needs[slot] = upstream and slot not in self.integer_slots
            per_step = [tuple(needs[slot] for slot in step.input_slots) for step in self.steps]
            plan = self._needs_cache[key] = (needs, per_step)
        return plan

    def invalidate(self) -> None:
        """Check every node again on the next run (after a move to another device)."""
        self.verified = False

    # -- running -------------------------------------------------------------------------
    def forward(self, arrays: Sequence[Array], training: bool, record: bool = False,
                input_grads: bool = False, sink: dict[str, Array] | None = None
                ) -> tuple[list[Array], list[Context] | None]:
        """Run every node on the input ``arrays`` (one per input, in order); returns the
        outputs and, with ``record``, the contexts :meth:`backward` needs (``input_grads``:
        the backward pass will also return dL/d(inputs)). A ``sink`` dict receives every
        node's outputs by tensor name."""
        per_step = self._plan(input_grads)[1] if record else self._no_grads
        contexts: list[Context] = []
        if self.chain is not None and self.verified and sink is None:  # a Sequential's batch
            x = arrays[0]
            for layer, needs in zip(self.chain, per_step, strict=True):
                ctx = Context(training, needs)
                if layer.checks_values:
                    layer.check_input(x)
                x = layer.forward(ctx, x)
                contexts.append(ctx)
            return [x], contexts if record else None
        values: list[Any] = [None] * self.num_slots
        values[:len(arrays)] = arrays
        if not self.verified or sink is not None:
            self._forward_checked(values, training, per_step, contexts, sink)
        else:
            for step, needs in zip(self.steps, per_step, strict=True):  # per batch
                ctx = Context(training, needs)
                layer = step.layer
                if step.single:
                    x = values[step.input_slots[0]]
                    if layer.checks_values:
                        layer.check_input(x)
                    values[step.output_slots[0]] = layer.forward(ctx, x)
                else:
                    self._run_step(step, ctx, values)
                for slot in step.drop:
                    values[slot] = None
                contexts.append(ctx)
        return [values[slot] for slot in self.output_slots], contexts if record else None

    def _forward_checked(self, values: list[Any], training: bool,
                         per_step: list[tuple[bool, ...]], contexts: list[Context],
                         sink: dict[str, Array] | None) -> None:
        """The forward pass that checks every node's inputs and outputs (the first run) or
        hands every output to ``sink``."""
        checking = not self.verified
        for step, needs in zip(self.steps, per_step, strict=True):
            ctx = Context(training, needs)
            if checking or step.layer.checks_values:
                step.layer.check_input(step.node.input_structure(
                    [values[slot] for slot in step.input_slots]))
            outputs = self._run_step(step, ctx, values)
            if checking:
                _check_outputs(step.node, outputs)
            if sink is not None:
                sink.update({t.name: value for t, value in zip(step.node.outputs, outputs,
                                                                strict=True)})
            for slot in step.drop:
                values[slot] = None
            contexts.append(ctx)
        self.verified = True

    @staticmethod
    def _run_step(step: _Step, ctx: Context, values: list[Any]) -> list[Any]:
        """Run one node's layer on its input slots and fill its output slots."""
        inputs = step.node.input_structure([values[slot] for slot in step.input_slots])
        result = step.layer.forward(ctx, inputs)
        outputs = list(result) if step.multiple_outputs else [result]
        for slot, value in zip(step.output_slots, outputs, strict=True):
            values[slot] = value
        return outputs

    def backward(self, contexts: list[Context], grad_outputs: Sequence[Array | None],
                 release: bool = False) -> list[Array | None]:
        """Propagate dL/d(outputs) back through the nodes of the recorded run, adding the
        parameter gradients of every call; returns dL/d(inputs) (None where not asked for
        with ``input_grads`` or not reached). With ``release`` each entry of ``contexts`` is
        set to None as its node's backward runs, so what a forward kept is freed while the
        gradients are being made (the training step does this; leave it off to read a
        context afterwards, e.g. a recurrent layer's ``state_gradients``)."""
        if self.chain is not None:  # a Sequential: dL/dx of each layer is dL/dy of the one before
            grad = grad_outputs[0]
            for index in range(len(self.chain) - 1, -1, -1):
                ctx = contexts[index]
                if release:
                    contexts[index] = None
                grad = self.chain[index].backward(ctx, grad)
                if not ctx.needs_input_grad[0]:  # nothing before needs it: no parameters
                    return [None]
            return [grad]
        grads: list[Any] = [None] * self.num_slots
        for slot, grad in zip(self.output_slots, grad_outputs, strict=True):
            if grad is not None:
                grads[slot] = grad if grads[slot] is None else grads[slot] + grad
        for index in range(len(self.steps) - 1, -1, -1):
            step, ctx = self.steps[index], contexts[index]
            if release:
                contexts[index] = None
            if step.single:  # the common case, without lists
                received = grads[step.output_slots[0]]
                if received is None:
                    continue
                grads[step.output_slots[0]] = None
                grad = step.layer.backward(ctx, received)
                if grad is not None and ctx.needs_input_grad[0]:
                    slot = step.input_slots[0]
                    grads[slot] = grad if grads[slot] is None else grads[slot] + grad
                continue
            received_all = [grads[slot] for slot in step.output_slots]
            for slot in step.output_slots:
                grads[slot] = None
            if all(grad is None for grad in received_all):
                continue
            result = step.layer.backward(
                ctx, tuple(received_all) if step.multiple_outputs else received_all[0])
            returned = list(result) if step.as_list else [result]
            for slot, grad, needed in zip(step.input_slots, returned, ctx.needs_input_grad,
                                          strict=True):
                if needed and grad is not None:
                    grads[slot] = grad if grads[slot] is None else grads[slot] + grad
        return grads[:len(self.inputs)]


def _refuse_duplicates(where: str, role: str, names: list[str], objects: list[Any]) -> None:
    seen: dict[str, Any] = {}
    for name, obj in zip(names, objects, strict=True):
        if name in seen and seen[name] is not obj:
            raise GraphError(f"{where} has two different {role} named '{name}': give them "
                             "different names (automatic names are always unique)")
        seen[name] = obj


def _check_outputs(node: Node, outputs: list[Array]) -> None:
    """Each output of a node has the batch of its input, the shape its layer computed, the
    layer's dtype, and lives on the layer's device."""
    layer = node.layer
    where = f"layer '{layer.name}' ({type(layer).__name__})"
    if len(outputs) != len(node.outputs):
        raise ShapeError(f"{where} returned {len(outputs)} arrays, its output shape promised "
                         f"{len(node.outputs)}")
    for tensor, array in zip(node.outputs, outputs, strict=True):
        if not layer.backend.owns(array):
            raise DeviceError(f"{where} returned an array that is not on its device "
                              f"{layer.backend.device}")
        if tuple(array.shape[1:]) != tensor.shape:
            raise ShapeError(f"{where} returned shape {tuple(array.shape)}, but its "
                             f"compute_output_shape promised {(None, *tensor.shape)}")
        expected = layer.dtype if tensor.dtype is None else layer.backend.dtype(tensor.dtype)
        if array.dtype != expected:
            raise DTypeError(f"{where} returned dtype {layer.backend.dtype_name(array.dtype)}, "
                             f"expected {tensor.dtype or layer.dtype_name}")
