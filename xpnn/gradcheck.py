"""Central-difference gradient checks for layers, graph models and losses (float64 only).

For a layer or a model, the scalar checked is f = Σ_k Σ y_k ⊙ R_k with y_k its outputs and
fixed random R_k, so df/dy_k = R_k is fed to the backward pass; the returned dL/dx of every
float input and each trainable parameter's grad are compared with

    numeric_i = (f(θ + h e_i) − f(θ − h e_i)) / (2h)

entry by entry, using the error |analytic − numeric| / max(1, |analytic|, |numeric|). For a
loss, f is the loss value itself and the gradient checked is dL/dy_pred.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnn.device import DeviceLike, get_backend
from xpnn.errors import DTypeError, GradcheckError
from xpnn.layers.base import BuildContext, Layer
from xpnn.losses import Loss

if TYPE_CHECKING:
    from xpnn.backends.base import Backend
    from xpnn.model import Model


@dataclass
class GradcheckResult:
    """The outcome of :func:`gradcheck`: the worst error and where it occurred."""

    max_error: float
    worst: str
    tolerance: float
    checked: int

    @property
    def passed(self) -> bool:
        """Whether the worst error is within the tolerance."""
        return self.max_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"gradcheck {verdict}: max relative error {self.max_error:.3e} at {self.worst} "
                f"(tolerance {self.tolerance:.1e}, {self.checked} entries)")


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """|a − n| / max(1, |a|, |n|), elementwise."""
    scale = np.maximum(1.0, np.maximum(np.abs(analytic), np.abs(numeric)))
    return np.abs(analytic - numeric) / scale


def gradcheck(
    target: Layer | Model | Loss,
    x: Any,
    y: np.ndarray | None = None,
    *,
    device: DeviceLike | None = None,
    training: bool = True,
    step: float = 1e-6,
    tolerance: float = 1e-6,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradcheckResult:
    """Check a backward pass against central differences, in float64.

    ``target`` is a Layer (built here for ``x`` if it is not built yet), a float64 Model (on
    its own device; ``device`` is ignored) or a Loss (then ``y`` holds the targets). ``x`` is
    a host array, or a list of them for a layer or model with several inputs (integer arrays,
    token ids, are passed through unchecked). Raises :class:`~xpnn.errors.GradcheckError`
    naming the worst entry if the check fails and ``raise_on_failure`` is set.
    """
    several = isinstance(x, list | tuple)
    hosts = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind in "fc"
             else np.asarray(a) for a in (x if several else [x])]
    floats = [i for i, a in enumerate(hosts) if a.dtype.kind == "f"]
    rng = np.random.default_rng(seed)
    if isinstance(target, Loss):
        backend = get_backend(device)
        function, params = _loss_function(target, backend, y), []
    elif isinstance(target, Layer):
        backend = get_backend(device)
        function, params = _layer_function(target, backend, hosts, several, training, rng)
    else:
        backend = target.backend
        function, params = _model_function(target, hosts, training, rng)
    with backend.scope():
        analytic = function(hosts, True)
        results = []
        for i in floats:
            def at_input(value: np.ndarray, i: int = i) -> float:
                return function([value if j == i else a for j, a in enumerate(hosts)], False)

            name = "input" if len(hosts) == 1 else f"input {i}"
            results.append((name, analytic["inputs"][i],
                            _numeric_gradient(hosts[i], at_input, step)))
        for param in params:
            original = backend.to_host(param.value).astype(np.float64)

            def with_value(value: np.ndarray, param: Any = param) -> float:
                param.value = backend.asarray(value)
                return function(hosts, False)

            numeric = _numeric_gradient(original, with_value, step)
            param.value = backend.asarray(original)
            results.append((param.name, analytic[param.name], numeric))
    return _verdict(results, tolerance, raise_on_failure)


def _loss_function(loss: Loss, backend: Backend, y: Any) -> Any:
    if y is None:
        raise ValueError("gradcheck of a loss needs targets y")
    y_host = np.asarray(y)
    y_dev = backend.asarray(y_host, dtype="float64" if y_host.dtype.kind == "f" else None)

    def function(hosts: list[np.ndarray], gradients: bool) -> Any:
        if not gradients:
            return float(loss(backend.asarray(hosts[0]), y_dev))
        _, grad = loss.value_and_grad(backend.asarray(hosts[0]), y_dev)
        return {"inputs": [backend.to_host(grad)]}

    return function


def _layer_function(layer: Layer, backend: Backend, hosts: list[np.ndarray], several: bool,
                    training: bool, rng: np.random.Generator) -> tuple[Any, list[Any]]:
    if not layer.built:
        shapes = [tuple(a.shape[1:]) for a in hosts]
        layer.build(shapes if several else shapes[0], BuildContext(backend, "float64", rng))
    if layer.dtype_name != "float64":
        raise DTypeError(f"gradcheck needs a float64 layer; '{layer.name}' is "
                         f"{layer.dtype_name}")
    params = [p for p in layer.parameters() if p.trainable]
    output_shapes = layer.output_shape if isinstance(layer.output_shape, list) else [
        layer.output_shape]
    batch = hosts[0].shape[0]
    weights = [backend.asarray(rng.standard_normal((batch, *shape))) for shape in output_shapes]
    multiple = isinstance(layer.output_shape, list)

    def function(values: list[np.ndarray], gradients: bool) -> Any:
        arrays = [backend.asarray(a) for a in values]
        inputs = arrays if several else arrays[0]
        if not gradients:
            outputs = layer(inputs, training=training)
            outputs = list(outputs) if multiple else [outputs]
            return _weighted_total(backend, outputs, weights)
        for param in params:
            param.grad = None
        _, ctx = layer.apply(inputs, training=training)
        grads = layer.backward(ctx, tuple(weights) if multiple else weights[0])
        grads = list(grads) if several else [grads]
        return {"inputs": [None if g is None else backend.to_host(g) for g in grads],
                **{p.name: backend.to_host(p.grad) for p in params}}

    return function, params


def _model_function(model: Model, hosts: list[np.ndarray], training: bool,
                    rng: np.random.Generator) -> tuple[Any, list[Any]]:
    if model.dtype != "float64":
        raise DTypeError(f"gradcheck needs a float64 model; '{model.name}' is {model.dtype}")
    backend, graph = model.backend, model.graph
    params = model.trainable_parameters()
    batch = hosts[0].shape[0]
    weights = [backend.asarray(rng.standard_normal((batch, *spec.shape)))
               for spec in model.output_specs]

    def function(values: list[np.ndarray], gradients: bool) -> Any:
        arrays = [backend.asarray(a) for a in values]
        if not gradients:
            outputs, _ = graph.forward(arrays, training=training)
            return _weighted_total(backend, outputs, weights)
        for param in params:
            param.grad = None
        _, contexts = graph.forward(arrays, training=training, record=True, input_grads=True)
        grads = graph.backward(contexts, weights)
        return {"inputs": [None if g is None else backend.to_host(g) for g in grads],
                **{p.name: backend.to_host(p.grad) for p in params}}

    return function, params


def _weighted_total(backend: Backend, outputs: list[Any], weights: list[Any]) -> float:
    return sum(float(backend.xp.sum(out * w)) for out, w in zip(outputs, weights, strict=True))


def _verdict(results: list[tuple[str, Any, np.ndarray]], tolerance: float,
             raise_on_failure: bool) -> GradcheckResult:
    worst_error, worst_where, checked = 0.0, "nowhere", 0
    for name, analytic_grad, numeric_grad in results:
        if analytic_grad is None:
            raise GradcheckError(f"no gradient was returned for {name}")
        if analytic_grad.shape != numeric_grad.shape:
            raise GradcheckError(f"gradient of {name} has shape {analytic_grad.shape}, "
                                 f"expected {numeric_grad.shape}")
        errors = relative_error(analytic_grad, numeric_grad)
        checked += errors.size
        if errors.size and errors.max() > worst_error:
            index = np.unravel_index(int(np.argmax(errors)), errors.shape)
            worst_error = float(errors.max())
            worst_where = (f"{name}[{', '.join(map(str, index))}] (analytic "
                           f"{analytic_grad[index]:.6e}, numeric {numeric_grad[index]:.6e})")
    result = GradcheckResult(worst_error, worst_where, tolerance, checked)
    if raise_on_failure and not result.passed:
        raise GradcheckError(str(result))
    return result


def _numeric_gradient(point: np.ndarray, f: Any, step: float) -> np.ndarray:
    grad = np.zeros_like(point)
    probe = point.copy()
    for index in np.ndindex(point.shape):
        original = probe[index]
        probe[index] = original + step
        upper = f(probe.copy())
        probe[index] = original - step
        lower = f(probe.copy())
        probe[index] = original
        grad[index] = (upper - lower) / (2.0 * step)
    return grad
