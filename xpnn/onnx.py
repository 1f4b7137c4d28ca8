"""Export a model to ONNX, for inference in ONNX Runtime and every other ONNX runtime.

    model.export("model.onnx")                      # the format from the suffix
    xpnn.onnx.export(model, "model.onnx", opset=17)  # the same function
    python -m xpnn export model.xpnn model.onnx      # the same, from a saved model

**What is written.** One ONNX graph in *inference* semantics: BatchNorm with its running
statistics, Dropout as nothing. The default opset is 17 and the IR version is pinned to the
lowest one that can carry the opset (IR 8 for opsets 15–18): an exporter that stamps the
newest IR its ``onnx`` package knows makes files that older runtimes refuse ("Unsupported
model IR version"), although they implement every operator the file uses. Opsets
``MIN_OPSET`` to ``MAX_OPSET`` are accepted (15: ``Shape`` with ``start``/``end``; 21: the
newest one ONNX Runtime 1.20, the oldest release the ``onnx`` extra allows, implements).

**Names and shapes.** The graph input is named ``<first layer>_input`` and the output after
the last layer (Keras's convention); the batch axis is the symbolic dimension ``"batch"``.
For sequence models the time axis (axis 1 of the input) is the symbolic dimension ``"time"``
when every layer that sees it works at any length: xpnn builds a model for one length T,
but the ONNX recurrent ops, ``Gather``, ``MatMul`` and the element-wise ops do not care, so
the exported graph runs at any length (see ``dynamic_time`` of :func:`to_onnx`). Parameters
become initializers named like the parameters (``"dense/kernel"``).

**Float types.** The graph computes in the model's dtype unless ``dtype=`` says otherwise
(the weights are cast on the host). A float64 graph is valid ONNX, but ONNX Runtime's CPU
provider (1.32) has no double kernels for ``Conv``, ``AveragePool``, ``GlobalAveragePool``,
``RNN``, ``LSTM``, ``GRU`` and ``Erf`` (GELU's exact form, also inside opset 20's ``Gelu``):
export such a model with ``dtype="float32"`` to run it there (float64 MLPs, BatchNorm,
pooling by maximum, Embedding, attention, LayerNormalization and the tanh GELU run in
double).

**Converters.** A converter is a function ``converter(layer, inputs, ctx) -> outputs``: it
reads the layer's parameters and settings, adds nodes and initializers to the
:class:`ExportContext` ``ctx`` and returns the ONNX names of the layer's output tensors.
It never runs the layer and never changes it. The export walks the model's layers in order
and chains their tensors; a layer used twice would simply emit its nodes twice over the same
initializers (``ctx.parameter`` gives each parameter one initializer). Register converters
for your own layers with :func:`register`::

    @xpnn.onnx.register(Scale, time="keep")
    def convert_scale(layer, inputs, ctx):
        \"\"\"Scale → Mul.\"\"\"
        factor = ctx.parameter(layer, layer.factor)
        return ctx.node("Mul", [inputs[0], factor], name=f"{layer.name}/Mul")

This module needs the ``onnx`` package only when exporting (``pip install "xpnn[onnx]"``); it
imports nothing of the model core, so that any model object with the duck-typed attributes
``layers``, ``built``, ``input_shape``, ``output_shape``, ``dtype`` and ``name`` exports.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnn._version import __version__
from xpnn.errors import NotReadyError, XpnnError
from xpnn.layers import (
    GELU,
    GRU,
    LSTM,
    Add,
    Average,
    AvgPool2D,
    BatchNorm,
    BatchNorm2D,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePool2D,
    Layer,
    LayerNormalization,
    LeakyReLU,
    MaxPool2D,
    MultiHeadAttention,
    Multiply,
    PaddingMask,
    Parameter,
    PositionalEmbedding,
    ReLU,
    Sigmoid,
    SimpleRNN,
    Softmax,
    Subtract,
    Tanh,
    TimeDistributed,
)
from xpnn.saving import atomic_write

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_OPSET",
    "IR_VERSIONS",
    "MAX_OPSET",
    "MIN_OPSET",
    "TIME_RULES",
    "ExportContext",
    "ExportError",
    "Registration",
    "check_format",
    "converter_for",
    "export",
    "register",
    "to_onnx",
]

#: The opset written when none is asked for.
DEFAULT_OPSET = 17
#: The opsets accepted (see the module docstring for why these bounds).
MIN_OPSET, MAX_OPSET = 15, 21
#: The IR version written for each accepted opset: the lowest that can carry it (onnx's
#: ``helper.find_min_ir_version_for``, pinned here so that the file does not depend on the
#: installed ``onnx``).
IR_VERSIONS = {15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}
#: How a layer treats the time axis (axis 1 of a sequence model's input), see :func:`register`.
TIME_RULES = ("fixed", "keep", "sequence", "reduce")

#: A converter: (layer, ONNX names of its inputs, context) -> ONNX names of its outputs.
Converter = Callable[[Any, Sequence[str], "ExportContext"], Sequence[str]]
#: A time rule, or a function of the layer returning one.
TimeRule = str | Callable[[Any], str]


class ExportError(XpnnError, ValueError):
    """A model cannot be exported as asked: a layer without a converter, a layer that cannot
    take a symbolic time axis, an unsupported opset or dtype."""


# -- the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    """A layer class's converter and its time rule (see :func:`register`)."""

    converter: Converter
    time: TimeRule = "fixed"

    def time_rule(self, layer: Any) -> str:
        """The time rule for this layer (the rule, or the rule function's answer)."""
        rule = self.time(layer) if callable(self.time) else self.time
        if rule not in TIME_RULES:
            raise ExportError(f"the time rule of layer '{layer.name}' ({type(layer).__name__})"
                              f" is {rule!r}; it must be one of {TIME_RULES}")
        return rule


_REGISTRY: dict[type, Registration] = {}


def register(layer_class: type, converter: Converter | None = None, *,
             time: TimeRule = "fixed") -> Any:
    """Register ``converter`` for layers of exactly ``layer_class`` (a subclass needs its own:
    it may compute something else). Use it as a decorator, ``@register(MyLayer)``, or call
    it, ``register(MyLayer, convert)``; a later registration replaces an earlier one.

    ``converter(layer, inputs, ctx)`` gets the layer, the ONNX names of its input tensors and
    the :class:`ExportContext`; it adds nodes and initializers through ``ctx`` and returns the
    names of its output tensors (one for a layer in a Sequential).

    ``time`` says how the layer treats the time axis, axis 1 of its input (or a function of
    the layer returning one of these):

    - ``"fixed"`` (the default): its nodes are only right for the length it was built for;
    - ``"keep"``: they work at any length of axis 1 and keep it at axis 1 of the output
      (element-wise layers and Dense on (batch, time, features));
    - ``"sequence"``: like ``"keep"``, for a layer that reads its input as a sequence
      (Embedding, TimeDistributed, a recurrent layer returning sequences): a model with one
      gets a symbolic time axis when no layer before says ``"fixed"``;
    - ``"reduce"``: a sequence layer that takes any length and returns no time axis (a
      recurrent layer returning its last state).
    """
    if time not in TIME_RULES and not callable(time):
        raise ValueError(f"register: time must be one of {TIME_RULES} or a function of the "
                         f"layer, got {time!r}")
    if converter is None:
        def decorate(function: Converter) -> Converter:
            register(layer_class, function, time=time)
            return function

        return decorate
    if not isinstance(layer_class, type):
        raise TypeError(f"register takes a layer class, got {layer_class!r}")
    _REGISTRY[layer_class] = Registration(converter, time)
    return converter


def converter_for(layer: Any) -> Registration:
    """The registration for ``layer``'s class, or an :class:`ExportError` saying how to add
    one."""
    registration = _REGISTRY.get(type(layer))
    if registration is None:
        name = type(layer).__name__
        raise ExportError(
            f"layer '{layer.name}' ({name}) has no ONNX converter. Register one before "
            f"exporting:\n\n    @xpnn.onnx.register({name})\n    def convert(layer, inputs, "
            f"ctx):\n        ...  # ctx.node(...), ctx.parameter(layer, ...)\n        return "
            f"[output_name]\n\n(see the xpnn.onnx module docstring)")
    return registration


# -- the context converters write into -----------------------------------------------------
def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install \"xpnn[onnx]\" "
                          "(or pip install onnx)") from None
    return onnx


class ExportContext:
    """One ONNX graph under construction: what converters add nodes and initializers to.

    ``opset`` is the opset being written, ``dtype`` the NumPy float dtype of the graph
    (weights are cast to it). Names are made unique here: a converter passes a readable
    hint (``f"{layer.name}/MatMul"``) and gets back the name it may use.
    """

    def __init__(self, *, opset: int = DEFAULT_OPSET, dtype: str = "float32") -> None:
        self.onnx = _onnx()
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.float_type = self.onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken: set[str] = set()
        self._cached: dict[Any, str] = {}

    def unique(self, hint: str) -> str:
        """``hint``, or ``hint_1``, ``hint_2``, ... if it is taken; the name is then taken."""
        name, suffix = hint, 1
        while name in self._taken:
            name = f"{hint}_{suffix}"
            suffix += 1
        self._taken.add(name)
        return name

    def node(self, op_type: str, inputs: Sequence[str], *, name: str,
             outputs: int | Sequence[str] = 1, **attributes: Any) -> list[str]:
        """Add an ONNX node and return the names of its outputs.

        ``name`` is a hint for the node's name; a single output tensor takes the node's name,
        several take ``"<node>:<i>"``, or ``"<node>:<label>"`` when ``outputs`` is a list of
        labels (an empty label skips an optional output: its name is ``""``).
        ``attributes`` are the node's attributes (``perm=[1, 0, 2]``).
        """
        node_name = self.unique(name)
        if isinstance(outputs, int):
            names = ([node_name] if outputs == 1
                     else [self.unique(f"{node_name}:{i}") for i in range(outputs)])
        else:
            names = [self.unique(f"{node_name}:{label}") if label else "" for label in outputs]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names,
                                                     name=node_name, **attributes))
        return names

    def initializer(self, key: Any, name: str, array: Any) -> str:
        """Add ``array`` as an initializer named after ``name`` and return its name; float
        arrays are cast to the graph's dtype. A second call with the same ``key`` (any
        hashable, e.g. ``(layer, "W")``) returns the first one's name and adds nothing."""
        if key is not None and key in self._cached:
            return self._cached[key]
        values = np.asarray(array)
        if np.issubdtype(values.dtype, np.floating):
            values = values.astype(self.dtype)
        unique = self.unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.ascontiguousarray(values), unique))
        if key is not None:
            self._cached[key] = unique
        return unique

    def parameter(self, layer: Any, parameter: Parameter) -> str:
        """The initializer holding ``parameter`` of ``layer`` (a host copy, named like the
        parameter), added once however often it is asked for."""
        return self.initializer(("parameter", parameter), parameter.name,
                                self.host(layer, parameter))

    def constant(self, values: Sequence[int], name: str) -> str:
        """An int64 initializer (shapes, axes), shared by every node that needs the same
        values."""
        array = np.asarray(values, dtype=np.int64)
        return self.initializer(("constant", tuple(array.tolist())), name, array)

    def host(self, layer: Any, parameter: Parameter) -> np.ndarray:
        """A NumPy copy of a parameter of ``layer``, wherever the layer lives."""
        return np.asarray(layer.backend.to_host(parameter.value))

    def rename_output(self, tensor: str, name: str) -> str:
        """Make ``tensor`` available as ``name`` (a graph output): the node that makes it is
        renamed, or an Identity node is added when no node of this graph makes it (a graph
        input, an initializer). ``name`` should come from :meth:`unique`."""
        makers = [node for node in self.nodes if tensor in node.output]
        if not makers:
            identity = self.onnx.helper.make_node("Identity", [tensor], [name],
                                                  name=self.unique(f"{name}/Identity"))
            self.nodes.append(identity)
            return name
        for node in self.nodes:
            for field in (node.input, node.output):
                for index, value in enumerate(field):
                    if value == tensor:
                        field[index] = name
        return name


# -- exporting a model -------------------------------------------------------------------------
def check_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The export format for ``path``: ``format`` if given (only ``"onnx"`` exists), else
    from the suffix (``.onnx``); a ValueError otherwise."""
    if format is None:
        if Path(path).suffix.lower() == ".onnx":
            return "onnx"
        raise ValueError(f"cannot tell the export format from '{path}': use a .onnx suffix or "
                         "format='onnx'")
    if format.lower() != "onnx":
        raise ValueError(f"unknown export format {format!r}: the one format is 'onnx'")
    return "onnx"


def export(model: Any, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET,
           dtype: str | None = None, dynamic_time: bool | None = None) -> None:
    """Write ``model`` to ``path`` as an ONNX file (atomically: a crash leaves the previous
    file); the arguments are those of :func:`to_onnx`. The model is not changed."""
    proto = to_onnx(model, opset=opset, dtype=dtype, dynamic_time=dynamic_time)
    data = proto.SerializeToString()
    atomic_write(path, lambda file: file.write(data))


def to_onnx(model: Any, *, opset: int = DEFAULT_OPSET, dtype: str | None = None,
            dynamic_time: bool | None = None) -> onnx.ModelProto:
    """The ONNX model of a built xpnn model (an ``onnx.ModelProto``), checked by
    ``onnx.checker.check_model(full_check=True)``.

    ``opset``: ``MIN_OPSET`` to ``MAX_OPSET`` (default 17); the IR version follows
    (``IR_VERSIONS``). ``dtype``: the graph's float type, ``"float32"`` or ``"float64"``
    (default: the model's). ``dynamic_time``: None makes the time axis symbolic for a
    sequence model whose layers allow it and fixed otherwise; True demands it (an
    :class:`ExportError` names the layer that needs a fixed length); False fixes it.
    """
    onnx = _onnx()
    layers = _check_model(model)
    if not (isinstance(opset, int) and MIN_OPSET <= opset <= MAX_OPSET):
        raise ExportError(f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got "
                          f"{opset!r}")
    dtype = model.dtype if dtype is None else dtype
    if dtype not in ("float32", "float64"):
        raise ExportError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    graph = model.graph
    registrations = {id(layer): converter_for(layer) for layer in layers}  # all up front
    timed = _time_axis(graph, registrations, dynamic_time)

    ctx = ExportContext(opset=opset, dtype=dtype)
    names: dict[int, str] = {}
    helper = onnx.helper
    graph_inputs = []
    for tensor, spec in zip(graph.inputs, model.input_specs, strict=True):
        names[id(tensor)] = ctx.unique(spec.name)
        dims: list[int | str] = ["batch", *spec.shape]
        if timed[id(tensor)]:
            dims[1] = "time"
        kind = (ctx.float_type if not spec.integer
                else onnx.helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype)))
        graph_inputs.append(helper.make_tensor_value_info(names[id(tensor)], kind, dims))
    for node in graph.nodes:
        layer = node.layer
        outputs = list(registrations[id(layer)].converter(
            layer, [names[id(t)] for t in node.inputs], ctx))
        if len(outputs) != len(node.outputs):
            raise ExportError(f"the converter of layer '{layer.name}' "
                              f"({type(layer).__name__}) returned {len(outputs)} outputs; the "
                              f"layer has {len(node.outputs)}")
        for tensor, name in zip(node.outputs, outputs, strict=True):
            names[id(tensor)] = name
    graph_outputs = []
    for tensor, spec in zip(graph.outputs, model.output_specs, strict=True):
        name = ctx.rename_output(names[id(tensor)], ctx.unique(spec.name))
        names[id(tensor)] = name
        dims = ["batch", *spec.shape]
        if timed[id(tensor)]:
            dims[1] = "time"
        graph_outputs.append(helper.make_tensor_value_info(name, ctx.float_type, dims))
    onnx_graph = helper.make_graph(ctx.nodes, model.name, graph_inputs, graph_outputs,
                                   initializer=ctx.initializers)
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=IR_VERSIONS[opset], producer_name="xpnn",
                              producer_version=__version__)
    summary = getattr(model, "summary", None)
    if callable(summary):
        proto.doc_string = summary(print_fn=None)
    helper.set_model_props(proto, {"xpnn_model": model.name, "xpnn_dtype": model.dtype})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _check_model(model: Any) -> list[Any]:
    """The model's layers, or a clear error if it cannot be exported yet."""
    name = getattr(model, "name", type(model).__name__)
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"export takes an xpnn model (with layers), got {type(model).__name__}")
    if not layers:
        raise NotReadyError(f"model '{name}' has no layers: there is nothing to export")
    if not getattr(model, "built", False):
        raise NotReadyError(f"model '{name}' is not built, so its shapes and weights are not "
                            "known yet: call model.build(input_shape) (or fit or predict) "
                            "before exporting")
    return list(layers)


def _time_axis(graph: Any, registrations: dict[int, Registration],
               request: bool | None) -> dict[int, bool]:
    """Which tensors of the graph (by id) carry a symbolic time axis at axis 1.

    The sequences are found backwards: the input x of a "sequence" or "reduce" layer, and
    the inputs of a "keep" layer whose output is a sequence. Then, forwards from the model's
    inputs that are sequences (with ``request`` True: also every input of rank ≥ 2 without
    the batch axis), a layer passes the time axis on to its first output unless it
    "reduce"s it (a recurrent layer's final states never have it); a "fixed" layer that
    receives one blocks the export of a symbolic time axis (``request`` True: an error
    naming it). With ``request`` None the axis is symbolic when nothing blocks it and the
    model has a sequence layer; False fixes it."""
    rules = {id(node): registrations[id(node.layer)].time_rule(node.layer)
             for node in graph.nodes}
    sequences: set[int] = set()
    for node in reversed(graph.nodes):
        rule = rules[id(node)]
        if rule in ("sequence", "reduce"):
            sequences.add(id(node.inputs[0]))
        elif rule == "keep" and id(node.outputs[0]) in sequences:
            sequences.update(id(t) for t in node.inputs)
    timed = {id(t): id(t) in sequences or (bool(request) and len(t.shape) >= 2)
             for t in graph.inputs}
    blocker = None
    for node in graph.nodes:
        rule = rules[id(node)]
        reads = [timed[id(t)] for t in node.inputs]
        carried = (reads[0] if rule in ("sequence", "reduce") else any(reads))
        if any(reads) and rule == "fixed" and blocker is None:
            blocker = node.layer
        for index, tensor in enumerate(node.outputs):
            timed[id(tensor)] = carried and rule != "reduce" and index == 0
    if request and blocker is not None:
        raise ExportError(
            f"dynamic_time=True, but layer '{blocker.name}' ({type(blocker).__name__}) only "
            "works at the length it was built for (its converter's time rule is 'fixed'); "
            "export with dynamic_time=None or False")
    has_sequence = any(rule in ("sequence", "reduce") for rule in rules.values())
    symbolic = blocker is None and (has_sequence if request is None else bool(request))
    return {key: value and symbolic for key, value in timed.items()}


# -- the converters ----------------------------------------------------------------------------
def _keep_unless_features(layer: Any) -> str:
    """"keep" when axis 1 of the input is not the feature axis the layer acts on (inputs of
    rank ≥ 2 without the batch axis), else "fixed"."""
    return "keep" if len(layer.input_shape) >= 2 else "fixed"


def _batch_norm_time(layer: Any) -> str:
    """"keep" unless the normalised features are on axis 1 (BatchNorm2D's channels, or the
    features of 2-D inputs)."""
    rank = len(layer.input_shape) + 1
    return "fixed" if layer.feature_axis % rank == 1 else "keep"


def _recurrent_time(layer: Any) -> str:
    """"sequence" when the layer returns every step, else "reduce"."""
    return "sequence" if layer.return_sequences else "reduce"


@register(Dense, time=_keep_unless_features)
def convert_dense(layer: Dense, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Dense → MatMul (+ Add of the bias) (+ the activation: Relu, Sigmoid, Tanh or
    Softmax(axis=-1)): y = φ(x W + b) on the last axis of inputs of any rank."""
    [z] = ctx.node("MatMul", [inputs[0], ctx.parameter(layer, layer.kernel)],
                   name=f"{layer.name}/MatMul")
    if layer.bias is not None:
        [z] = ctx.node("Add", [z, ctx.parameter(layer, layer.bias)], name=f"{layer.name}/Add")
    if layer.activation == "linear":
        return [z]
    op_type = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
               "softmax": "Softmax"}[layer.activation]
    axis = {"axis": -1} if op_type == "Softmax" else {}
    return ctx.node(op_type, [z], name=f"{layer.name}/{op_type}", **axis)


def _elementwise(op_type: str) -> Converter:
    def convert(layer: Layer, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
        return ctx.node(op_type, [inputs[0]], name=f"{layer.name}/{op_type}")

    convert.__doc__ = f"{op_type} layer → the ONNX {op_type} op."
    convert.__name__ = f"convert_{op_type.lower()}"
    return convert


register(Sigmoid, _elementwise("Sigmoid"), time=_keep_unless_features)
register(Tanh, _elementwise("Tanh"), time=_keep_unless_features)
register(ReLU, _elementwise("Relu"), time=_keep_unless_features)


@register(LeakyReLU, time=_keep_unless_features)
def convert_leaky_relu(layer: LeakyReLU, inputs: Sequence[str], ctx: ExportContext
                       ) -> list[str]:
    """LeakyReLU → LeakyRelu(alpha)."""
    return ctx.node("LeakyRelu", [inputs[0]], name=f"{layer.name}/LeakyRelu",
                    alpha=float(layer.alpha))


@register(Softmax, time=_keep_unless_features)
def convert_softmax(layer: Softmax, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Softmax → Softmax(axis) (opset ≥ 13: along that one axis, as xpnn's; both count the
    axis with the batch axis)."""
    return ctx.node("Softmax", [inputs[0]], name=f"{layer.name}/Softmax", axis=layer.axis)


def _scalar(ctx: ExportContext, value: float) -> str:
    """A float scalar initializer of the graph's dtype, shared by every node using it."""
    return ctx.initializer(("scalar", float(value)), f"scalar_{value:g}", np.array(value))


@register(GELU, time=_keep_unless_features)
def convert_gelu(layer: GELU, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """GELU → Gelu(approximate) at opset ≥ 20; before, its formula: the exact form as
    x · ½ (1 + Erf(x/√2)) (Mul, Erf, Add, Mul, Mul), the tanh form as
    ½ x (1 + Tanh(√(2/π) (x + 0.044715 x³)))."""
    x, name = inputs[0], layer.name
    if ctx.opset >= 20:
        return ctx.node("Gelu", [x], name=f"{name}/Gelu", approximate=layer.approximate)
    if layer.approximate == "tanh":
        [square] = ctx.node("Mul", [x, x], name=f"{name}/Square")
        [cube] = ctx.node("Mul", [square, x], name=f"{name}/Cube")
        [cubic] = ctx.node("Mul", [cube, _scalar(ctx, 0.044715)], name=f"{name}/Cubic")
        [inner] = ctx.node("Add", [x, cubic], name=f"{name}/Inner")
        [scaled] = ctx.node("Mul", [inner, _scalar(ctx, math.sqrt(2.0 / math.pi))],
                            name=f"{name}/Scaled")
        [cdf] = ctx.node("Tanh", [scaled], name=f"{name}/Tanh")
    else:
        [scaled] = ctx.node("Mul", [x, _scalar(ctx, 1.0 / math.sqrt(2.0))],
                            name=f"{name}/Scaled")
        [cdf] = ctx.node("Erf", [scaled], name=f"{name}/Erf")
    [shifted] = ctx.node("Add", [cdf, _scalar(ctx, 1.0)], name=f"{name}/Add")
    [product] = ctx.node("Mul", [x, shifted], name=f"{name}/Mul")
    return ctx.node("Mul", [product, _scalar(ctx, 0.5)], name=f"{name}/Half")


@register(Dropout, time=_keep_unless_features)
def convert_dropout(layer: Dropout, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Dropout → nothing: in inference y = x, so its input tensor is its output."""
    return [inputs[0]]


def _layer_norm_time(layer: LayerNormalization) -> str:
    """"fixed" when axis 1 (the time axis) is normalised, else "keep"."""
    return "fixed" if 1 in layer.axes else "keep"


def _layer_norm_double(layer: LayerNormalization, x: str, scale: str, axes: list[int],
                       ctx: ExportContext) -> str:
    """Layer normalisation as its formula, for double graphs: the LayerNormalization op's
    epsilon is a float32 attribute, which would change a float64 model's results by about
    |Δε| / (2(σ² + ε)) (1e-10 and more, beyond the float64 tolerance); here ε is a double
    initializer. ReduceMean takes its axes as an attribute before opset 18, as an input
    from it."""
    name = layer.name

    def mean(tensor: str, label: str) -> str:
        if ctx.opset >= 18:
            return ctx.node("ReduceMean", [tensor, ctx.constant(axes, f"{name}/axes")],
                            name=f"{name}/{label}", keepdims=1)[0]
        return ctx.node("ReduceMean", [tensor], name=f"{name}/{label}", axes=axes,
                        keepdims=1)[0]

    [centred] = ctx.node("Sub", [x, mean(x, "mean")], name=f"{name}/centred")
    [square] = ctx.node("Mul", [centred, centred], name=f"{name}/square")
    [variance] = ctx.node("Add", [mean(square, "variance"), _scalar(ctx, layer.epsilon)],
                          name=f"{name}/variance_epsilon")
    [std] = ctx.node("Sqrt", [variance], name=f"{name}/std")
    [y] = ctx.node("Div", [centred, std], name=f"{name}/normalized")
    [y] = ctx.node("Mul", [y, scale], name=f"{name}/scale")
    if layer.beta is not None:
        [y] = ctx.node("Add", [y, ctx.parameter(layer, layer.beta)], name=f"{name}/shift")
    return y


@register(LayerNormalization, time=_layer_norm_time)
def convert_layer_norm(layer: LayerNormalization, inputs: Sequence[str], ctx: ExportContext
                       ) -> list[str]:
    """LayerNormalization → LayerNormalization(axis, epsilon) (opset 17), which normalises
    the trailing axes from ``axis`` on; other axes are moved to the end by a Transpose and
    back. Scale is γ (ones without ``scale``), B is β (left out without ``center``). A
    double graph gets the formula instead (:func:`_layer_norm_double`)."""
    if ctx.opset < 17:
        raise ExportError(f"layer '{layer.name}' (LayerNormalization) needs opset 17 or "
                          f"later (the ONNX LayerNormalization op); asked for {ctx.opset}")
    rank = len(layer.input_shape) + 1
    axes = list(layer.axes)
    others = [i for i in range(rank) if i not in axes]
    perm = others + axes
    x = inputs[0]
    if perm != list(range(rank)):
        [x] = ctx.node("Transpose", [x], name=f"{layer.name}/Transpose", perm=perm)
    scale = (ctx.parameter(layer, layer.gamma) if layer.gamma is not None else
             ctx.initializer((layer, "gamma"), f"{layer.name}/gamma",
                             np.ones(layer.parameter_shape)))
    if ctx.dtype == np.float64:
        y = _layer_norm_double(layer, x, scale, list(range(len(others), rank)), ctx)
    else:
        operands = [x, scale]
        if layer.beta is not None:
            operands.append(ctx.parameter(layer, layer.beta))
        [y] = ctx.node("LayerNormalization", operands,
                       name=f"{layer.name}/LayerNormalization", axis=len(others),
                       epsilon=float(layer.epsilon))
    if perm != list(range(rank)):
        [y] = ctx.node("Transpose", [y], name=f"{layer.name}/Transpose",
                       perm=[int(i) for i in np.argsort(perm)])
    return [y]


def convert_batch_norm(layer: BatchNorm, inputs: Sequence[str], ctx: ExportContext
                       ) -> list[str]:
    """BatchNorm / BatchNorm2D → BatchNormalization in inference form, with the running
    statistics: y = γ (x − running_mean) / √(running_var + ε) + β (γ = 1 and β = 0 for a
    layer without ``scale`` / ``center``). ONNX normalises axis 1: features on another axis
    (BatchNorm of (batch, time, features)) are moved there by a Transpose and back."""
    rank = len(layer.input_shape) + 1
    axis = layer.feature_axis % rank
    features = layer.input_shape[axis - 1]
    gamma = (ctx.parameter(layer, layer.gamma) if layer.gamma is not None else
             ctx.initializer((layer, "gamma"), f"{layer.name}/gamma", np.ones(features)))
    beta = (ctx.parameter(layer, layer.beta) if layer.beta is not None else
            ctx.initializer((layer, "beta"), f"{layer.name}/beta", np.zeros(features)))
    x = inputs[0]
    perm = [0, axis, *(i for i in range(1, rank) if i != axis)]
    if axis != 1:
        [x] = ctx.node("Transpose", [x], name=f"{layer.name}/Transpose", perm=perm)
    [y] = ctx.node("BatchNormalization",
                   [x, gamma, beta, ctx.parameter(layer, layer.running_mean),
                    ctx.parameter(layer, layer.running_var)],
                   name=f"{layer.name}/BatchNormalization", epsilon=float(layer.epsilon))
    if axis != 1:
        [y] = ctx.node("Transpose", [y], name=f"{layer.name}/Transpose",
                       perm=[int(i) for i in np.argsort(perm)])
    return [y]


register(BatchNorm, convert_batch_norm, time=_batch_norm_time)
register(BatchNorm2D, convert_batch_norm, time=_batch_norm_time)


def _window_attributes(window: Any) -> dict[str, list[int]]:
    """ONNX's kernel_shape, strides and pads ([top, left, bottom, right]) of a Window."""
    (top, bottom), (left, right) = window.padding
    return {"kernel_shape": list(window.size), "strides": list(window.stride),
            "pads": [top, left, bottom, right]}


def _channels_first(layer: Any, tensor: str, ctx: ExportContext) -> str:
    """A channels-last layer's (N, H, W, C) input as the (N, C, H, W) tensor the ONNX image
    ops take (a Transpose); a channels-first layer's input as it is."""
    if layer.data_format != "channels_last":
        return tensor
    return ctx.node("Transpose", [tensor], name=f"{layer.name}/Transpose_in",
                    perm=[0, 3, 1, 2])[0]


def _in_format(layer: Any, tensor: str, ctx: ExportContext) -> list[str]:
    """An (N, C, H, W) result back in the layer's format (a Transpose to (N, H, W, C) for a
    channels-last layer). Between two channels-last layers the pair of Transposes cancels;
    ONNX Runtime's optimizer removes it."""
    if layer.data_format != "channels_last":
        return [tensor]
    return ctx.node("Transpose", [tensor], name=f"{layer.name}/Transpose_out",
                    perm=[0, 2, 3, 1])


@register(Conv2D)
def convert_conv2d(layer: Conv2D, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Conv2D → Conv with explicit pads (the resolved ``"same"`` padding, odd pixel after),
    strides and dilations; the kernel (F, C, k_h, k_w) is ONNX's layout as it is in both
    data formats (channels-last: Transposes around the Conv)."""
    operands = [_channels_first(layer, inputs[0], ctx), ctx.parameter(layer, layer.kernel)]
    if layer.bias is not None:
        operands.append(ctx.parameter(layer, layer.bias))
    [y] = ctx.node("Conv", operands, name=f"{layer.name}/Conv",
                   dilations=list(layer.window.dilation), **_window_attributes(layer.window))
    return _in_format(layer, y, ctx)


@register(MaxPool2D)
def convert_max_pool(layer: MaxPool2D, inputs: Sequence[str], ctx: ExportContext
                     ) -> list[str]:
    """MaxPool2D → MaxPool with explicit pads (padding counts as −∞ in both; channels-last:
    Transposes around it)."""
    [y] = ctx.node("MaxPool", [_channels_first(layer, inputs[0], ctx)],
                   name=f"{layer.name}/MaxPool", **_window_attributes(layer.window))
    return _in_format(layer, y, ctx)


@register(AvgPool2D)
def convert_avg_pool(layer: AvgPool2D, inputs: Sequence[str], ctx: ExportContext
                     ) -> list[str]:
    """AvgPool2D → AveragePool(count_include_pad=0): the mean of each window's real pixels
    (channels-last: Transposes around it)."""
    [y] = ctx.node("AveragePool", [_channels_first(layer, inputs[0], ctx)],
                   name=f"{layer.name}/AveragePool", count_include_pad=0,
                   **_window_attributes(layer.window))
    return _in_format(layer, y, ctx)


@register(GlobalAveragePool2D)
def convert_global_average_pool(layer: GlobalAveragePool2D, inputs: Sequence[str],
                                ctx: ExportContext) -> list[str]:
    """GlobalAveragePool2D → GlobalAveragePool ((N, C, 1, 1)) + Flatten(axis=1) ((N, C));
    channels-last: a Transpose to (N, C, H, W) first."""
    [y] = ctx.node("GlobalAveragePool", [_channels_first(layer, inputs[0], ctx)],
                   name=f"{layer.name}/GlobalAveragePool")
    return ctx.node("Flatten", [y], name=f"{layer.name}/Flatten", axis=1)


@register(Flatten)
def convert_flatten(layer: Flatten, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Flatten → Flatten(axis=1): (N, d₁, …, d_k) → (N, d₁·…·d_k) in row-major order, as
    xpnn's."""
    return ctx.node("Flatten", [inputs[0]], name=f"{layer.name}/Flatten", axis=1)


@register(Embedding, time="sequence")
def convert_embedding(layer: Embedding, inputs: Sequence[str], ctx: ExportContext
                      ) -> list[str]:
    """Embedding → Gather(E, ids, axis=0): y[..., :] = E[ids[...], :] for int64 ids. xpnn
    refuses ids outside [0, vocab_size); ONNX Gather counts negative ids from the end."""
    return ctx.node("Gather", [ctx.parameter(layer, layer.embeddings), inputs[0]],
                    name=f"{layer.name}/Gather", axis=0)


@register(PaddingMask, time="keep")
def convert_padding_mask(layer: PaddingMask, inputs: Sequence[str], ctx: ExportContext
                         ) -> list[str]:
    """PaddingMask → Not(Equal(ids, pad_id)): a boolean tensor (the pad id cast like the
    ids, so int32 and int64 ids both work)."""
    pad = ctx.constant([layer.pad_id], f"{layer.name}/pad_id")
    [pad] = ctx.node("CastLike", [pad, inputs[0]], name=f"{layer.name}/CastLike")
    [equal] = ctx.node("Equal", [inputs[0], pad], name=f"{layer.name}/Equal")
    return ctx.node("Not", [equal], name=f"{layer.name}/Not")


def _index(ctx: ExportContext, value: int) -> str:
    """An int64 scalar initializer (Range takes scalars), shared."""
    return ctx.initializer(("index", value), f"index_{value}", np.array(value, np.int64))


def _sinusoid_table(length: int, dim: int) -> np.ndarray:
    """PositionalEmbedding's fixed table for ``length`` positions, in float64 on the host."""
    frequency = np.exp((np.arange(dim) // 2) * (-2.0 * math.log(10000.0) / dim))
    angle = np.arange(length)[:, None] * frequency[None, :]
    return np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))


@register(PositionalEmbedding, time="keep")
def convert_positional_embedding(layer: PositionalEmbedding, inputs: Sequence[str],
                                 ctx: ExportContext) -> list[str]:
    """PositionalEmbedding → Add(x, P[:time]): the (max_length, dim) table (the parameter,
    or the sinusoids computed on the host) sliced to the input's length, read by Shape, so
    the graph runs at any length up to max_length."""
    table = (ctx.parameter(layer, layer.embeddings) if layer.kind == "learned" else
             ctx.initializer((layer, "table"), f"{layer.name}/table",
                             _sinusoid_table(layer.max_length, layer.dim)))
    [length] = ctx.node("Shape", [inputs[0]], name=f"{layer.name}/Shape", start=1, end=2)
    [rows] = ctx.node("Slice", [table, ctx.constant([0], "zero_1d"), length,
                                ctx.constant([0], "axes_0")], name=f"{layer.name}/Slice")
    return ctx.node("Add", [inputs[0], rows], name=f"{layer.name}/Add")


def _attention_time(layer: MultiHeadAttention) -> str:
    """"keep" for attention over sequences of one length (self-attention, or cross-attention
    built on equal lengths) returning no scores, else "fixed"."""
    query, _, key, _, _ = layer._layout(layer.input_shape)
    return "keep" if query[0] == key[0] and not layer.return_attention_scores else "fixed"


@register(MultiHeadAttention, time=_attention_time)
def convert_multi_head_attention(layer: MultiHeadAttention, inputs: Sequence[str],
                                 ctx: ExportContext) -> list[str]:
    """MultiHeadAttention → per projection MatMul + Add, Reshape to (batch, T, H, d) and
    Transpose to heads; MatMul(Q, Kᵀ), Mul by 1/√d_k; the mask as Where(mask, S, lowest
    float), Softmax(axis=-1), and Where(mask, A, 0) again when a padding mask may leave a
    row with nothing allowed (the layer's zeros); MatMul(A, V), Transpose and Reshape back,
    MatMul + Add of the output projection. The causal mask is built from the lengths
    (Range, GreaterOrEqual), the padding mask unsqueezed to (batch, 1, 1, T_k) (Cast to
    bool from integers); both And-ed. Dropout is inference's identity."""
    name = layer.name
    _, _, _, single, masked = layer._layout(layer.input_shape)
    names = list(inputs)
    padding = names.pop() if masked else None
    query = names[0]
    value = query if single else names[1]
    key = names[2] if len(names) > 2 else value

    def project(x: str, kernel: Any, bias: Any, width: int, label: str,
                perm: list[int]) -> str:
        [y] = ctx.node("MatMul", [x, ctx.parameter(layer, kernel)], name=f"{name}/{label}")
        if bias is not None:
            [y] = ctx.node("Add", [y, ctx.parameter(layer, bias)], name=f"{name}/{label}_bias")
        [y] = ctx.node("Reshape", [y, ctx.constant([0, 0, layer.num_heads, width],
                                                   f"{name}/{label}_heads")],
                       name=f"{name}/{label}_reshape")
        return ctx.node("Transpose", [y], name=f"{name}/{label}_transpose", perm=perm)[0]

    q = project(query, layer.query_kernel, layer.query_bias, layer.key_dim, "query",
                [0, 2, 1, 3])
    k = project(key, layer.key_kernel, layer.key_bias, layer.key_dim, "key", [0, 2, 3, 1])
    v = project(value, layer.value_kernel, layer.value_bias, layer.value_dim, "value",
                [0, 2, 1, 3])
    [scores] = ctx.node("MatMul", [q, k], name=f"{name}/scores")
    [scores] = ctx.node("Mul", [scores, _scalar(ctx, layer.scale)], name=f"{name}/scale")
    mask = None
    if layer.causal:
        def positions(x: str, label: str, axis: int) -> str:
            [shape] = ctx.node("Shape", [x], name=f"{name}/{label}_shape")
            [length] = ctx.node("Gather", [shape, _index(ctx, 1)], name=f"{name}/{label}_length",
                                axis=0)
            [steps] = ctx.node("Range", [_index(ctx, 0), length, _index(ctx, 1)],
                               name=f"{name}/{label}_range")
            return ctx.node("Unsqueeze", [steps, ctx.constant([axis], f"axes_{axis}")],
                            name=f"{name}/{label}_positions")[0]

        [mask] = ctx.node("GreaterOrEqual", [positions(query, "query", 1),
                                             positions(key, "key", 0)],
                          name=f"{name}/causal")
    if padding is not None:
        [valid] = ctx.node("Cast", [padding], name=f"{name}/mask_bool",
                           to=ctx.onnx.TensorProto.BOOL)
        [valid] = ctx.node("Unsqueeze", [valid, ctx.constant([1, 2], "axes_1_2")],
                           name=f"{name}/mask_unsqueeze")
        mask = valid if mask is None else ctx.node("And", [mask, valid],
                                                   name=f"{name}/mask")[0]
    if mask is not None:
        lowest = ctx.initializer(("lowest",), "lowest", np.array(np.finfo(ctx.dtype).min))
        [scores] = ctx.node("Where", [mask, scores, lowest], name=f"{name}/masked")
    [weights] = ctx.node("Softmax", [scores], name=f"{name}/Softmax", axis=-1)
    if padding is not None:
        [weights] = ctx.node("Where", [mask, weights, _scalar(ctx, 0.0)],
                             name=f"{name}/masked_weights")
    [output] = ctx.node("MatMul", [weights, v], name=f"{name}/attend")
    [output] = ctx.node("Transpose", [output], name=f"{name}/merge_transpose",
                        perm=[0, 2, 1, 3])
    [output] = ctx.node("Reshape", [output, ctx.constant(
        [0, 0, layer.num_heads * layer.value_dim], f"{name}/merge_shape")],
        name=f"{name}/merge")
    [y] = ctx.node("MatMul", [output, ctx.parameter(layer, layer.output_kernel)],
                   name=f"{name}/output")
    if layer.output_bias is not None:
        [y] = ctx.node("Add", [y, ctx.parameter(layer, layer.output_bias)],
                       name=f"{name}/output_bias")
    return [y, weights] if layer.return_attention_scores else [y]


def _blocks(matrix: np.ndarray, units: int, order: Sequence[int]) -> np.ndarray:
    """The (G·units, ...) rows of ``matrix`` regrouped into the gate blocks ``order``."""
    return np.concatenate([matrix[k * units:(k + 1) * units] for k in order], axis=0)


def _recurrent(layer: Any, inputs: Sequence[str], ctx: ExportContext, op_type: str,
               weights: tuple[np.ndarray, np.ndarray, np.ndarray],
               **attributes: Any) -> list[str]:
    """The nodes shared by the recurrent converters: (batch, time, features) → Transpose →
    the time-major ONNX op (ONNX Runtime's CPU kernels refuse ``layout=1``) → Squeeze and
    Transpose back to (batch, time, units), or the last state Y_h squeezed to
    (batch, units). A call on [x, h0(, c0)] passes the states, unsqueezed, as initial_h
    (and initial_c). With ``return_state`` the final states follow: [y, h_T] (LSTM:
    [y, h_T, c_T])."""
    W, R, B = weights
    names = [ctx.initializer((layer, suffix), f"{layer.name}/{op_type}_{suffix}", value[None])
             for suffix, value in (("W", W), ("R", R), ("B", B))]
    if len(inputs) > 1:  # an initial state, (batch, units) each: ONNX's (1, batch, units)
        names.append("")  # no sequence_lens
        names += [ctx.node("Unsqueeze", [state, ctx.constant([0], "axes_0")],
                           name=f"{layer.name}/Unsqueeze_{label}")[0]
                  for state, label in zip(inputs[1:], ("h0", "c0"), strict=False)]
    [x] = ctx.node("Transpose", [inputs[0]], name=f"{layer.name}/Transpose", perm=[1, 0, 2])
    states = ["Y_h", "Y_c"] if op_type == "LSTM" else ["Y_h"]
    wanted = ([] if layer.return_sequences and not layer.return_state
              else states if layer.return_state else ["Y_h"])
    labels = ["Y" if layer.return_sequences else "", *wanted]
    outputs = ctx.node(op_type, [x, *names], name=f"{layer.name}/{op_type}", outputs=labels,
                       hidden_size=layer.units, **attributes)
    produced = dict(zip(labels, outputs, strict=True))

    def squeeze(tensor: str, axis: int, label: str) -> str:
        return ctx.node("Squeeze", [tensor, ctx.constant([axis], f"axes_{axis}")],
                        name=f"{layer.name}/Squeeze_{label}")[0]

    final = {label: squeeze(produced[label], 0, label) for label in wanted}
    if layer.return_sequences:  # Y: (time, 1, batch, units)
        [y] = ctx.node("Transpose", [squeeze(produced["Y"], 1, "Y")],
                       name=f"{layer.name}/Transpose", perm=[1, 0, 2])
    else:
        y = final["Y_h"]
    return [y, *(final[label] for label in states)] if layer.return_state else [y]


@register(SimpleRNN, time=_recurrent_time)
def convert_simple_rnn(layer: SimpleRNN, inputs: Sequence[str], ctx: ExportContext
                       ) -> list[str]:
    """SimpleRNN → Transpose, RNN, Squeeze (+ Transpose): h_t = φ(x_t W + h_{t−1} U + b) as
    ONNX's RNN with W = kernelᵀ, R = Uᵀ, B = b ‖ 0 and φ = Tanh, Sigmoid, Relu or, for
    "linear", Affine(α=1, β=0)."""
    kernel = ctx.host(layer, layer.kernel)
    recurrent = ctx.host(layer, layer.recurrent_kernel)
    bias = ctx.host(layer, layer.bias)
    activation = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu",
                  "linear": "Affine"}[layer.activation]
    extra: dict[str, Any] = ({"activation_alpha": [1.0], "activation_beta": [0.0]}
                             if activation == "Affine" else {})
    return _recurrent(layer, inputs, ctx, "RNN",
                      (kernel.T, recurrent.T, np.concatenate([bias, np.zeros_like(bias)])),
                      activations=[activation], **extra)


#: xpnn's LSTM blocks are i, f, g, o (Keras); ONNX's are i, o, f, c.
LSTM_GATE_ORDER = (0, 3, 1, 2)


@register(LSTM, time=_recurrent_time)
def convert_lstm(layer: LSTM, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """LSTM → Transpose, LSTM, Squeeze (+ Transpose). The fused blocks are reordered from
    xpnn's i, f, g, o to ONNX's i, o, f, c (``LSTM_GATE_ORDER``): W = kernelᵀ, R = Uᵀ and
    B = b ‖ 0, each regrouped; ONNX's default activations (σ, tanh, tanh) are xpnn's."""
    units = layer.units
    kernel = _blocks(ctx.host(layer, layer.kernel).T, units, LSTM_GATE_ORDER)
    recurrent = _blocks(ctx.host(layer, layer.recurrent_kernel).T, units, LSTM_GATE_ORDER)
    bias = _blocks(ctx.host(layer, layer.bias), units, LSTM_GATE_ORDER)
    return _recurrent(layer, inputs, ctx, "LSTM",
                      (kernel, recurrent, np.concatenate([bias, np.zeros_like(bias)])))


@register(GRU, time=_recurrent_time)
def convert_gru(layer: GRU, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """GRU → Transpose, GRU(linear_before_reset=1), Squeeze (+ Transpose). xpnn's blocks
    z, r, n are ONNX's z, r, h; ``linear_before_reset=1`` is the reset-after form (r
    multiplies h_{t−1} U + b_U); W = kernelᵀ, R = Uᵀ, B = b ‖ b_U."""
    bias = np.concatenate([ctx.host(layer, layer.bias),
                           ctx.host(layer, layer.recurrent_bias)])
    return _recurrent(layer, inputs, ctx, "GRU",
                      (ctx.host(layer, layer.kernel).T,
                       ctx.host(layer, layer.recurrent_kernel).T, bias),
                      linear_before_reset=1)


@register(TimeDistributed, time="sequence")
def convert_time_distributed(layer: TimeDistributed, inputs: Sequence[str],
                             ctx: ExportContext) -> list[str]:
    """TimeDistributed → Reshape to (batch·time, *step) rows, the inner layer's converter,
    Reshape back to (batch, time, *step output), the leading two sizes read from the input
    (Shape with start=0, end=2), so both may be symbolic."""
    inner = layer.layer
    [rows] = ctx.node("Reshape", [inputs[0], ctx.constant([-1, *layer.input_shape[1:]],
                                                          f"{layer.name}/rows_shape")],
                      name=f"{layer.name}/Reshape")
    outputs = list(converter_for(inner).converter(inner, [rows], ctx))
    if len(outputs) != 1:
        raise ExportError(f"the converter of layer '{inner.name}' inside '{layer.name}' "
                          f"returned {len(outputs)} outputs; TimeDistributed takes one")
    [leading] = ctx.node("Shape", [inputs[0]], name=f"{layer.name}/Shape", start=0, end=2)
    [shape] = ctx.node("Concat", [leading, ctx.constant(list(layer.output_shape[1:]),
                                                        f"{layer.name}/step_shape")],
                       name=f"{layer.name}/Concat", axis=0)
    return ctx.node("Reshape", [outputs[0], shape], name=f"{layer.name}/Reshape")


def _concatenate_time(layer: Concatenate) -> str:
    """"fixed" when the inputs are joined along axis 1 (the time axis), else "keep"."""
    return "fixed" if layer._sample_axis(len(layer.output_shape)) == 0 else "keep"


@register(Add, time="keep")
def convert_add(layer: Add, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Add → Sum (y = x₁ + … + x_n)."""
    return ctx.node("Sum", list(inputs), name=f"{layer.name}/Sum")


@register(Subtract, time="keep")
def convert_subtract(layer: Subtract, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Subtract → Sub (y = x₁ − x₂)."""
    return ctx.node("Sub", list(inputs), name=f"{layer.name}/Sub")


@register(Multiply, time="keep")
def convert_multiply(layer: Multiply, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Multiply → Mul, chained (y = x₁ ⊙ … ⊙ x_n)."""
    product = inputs[0]
    for index, factor in enumerate(inputs[1:]):
        [product] = ctx.node("Mul", [product, factor], name=f"{layer.name}/Mul_{index}")
    return [product]


@register(Average, time="keep")
def convert_average(layer: Average, inputs: Sequence[str], ctx: ExportContext) -> list[str]:
    """Average → Mean (y = (x₁ + … + x_n) / n)."""
    return ctx.node("Mean", list(inputs), name=f"{layer.name}/Mean")


@register(Concatenate, time=_concatenate_time)
def convert_concatenate(layer: Concatenate, inputs: Sequence[str], ctx: ExportContext
                        ) -> list[str]:
    """Concatenate → Concat along the same axis (counted with the batch axis)."""
    axis = layer._sample_axis(len(layer.output_shape)) + 1
    return ctx.node("Concat", list(inputs), name=f"{layer.name}/Concat", axis=axis)
