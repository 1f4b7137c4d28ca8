"""Central-difference gradient checks for layers and losses (float64 only).

For a layer, the scalar checked is f = Σ y ⊙ R with y = layer(x) and a fixed random R, so
df/dy = R is fed to ``backward``; its returned dL/dx and each parameter's grad are compared with

    numeric_i = (f(θ + h e_i) − f(θ − h e_i)) / (2h)

entry by entry, using the error |analytic − numeric| / max(1, |analytic|, |numeric|). For a
loss, f is the loss value itself and the gradient checked is ``loss.backward()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xpnn.device import DeviceLike, get_backend
from xpnn.errors import DTypeError, GradcheckError
from xpnn.layers.base import BuildContext, Layer
from xpnn.losses import Loss


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
    target: Layer | Loss,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    device: DeviceLike | None = None,
    training: bool = True,
    step: float = 1e-6,
    tolerance: float = 1e-6,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradcheckResult:
    """Check ``target.backward`` against central differences, in float64.

    ``target`` is a Layer (built here for ``x`` if it is not built yet) or a Loss (then ``y``
    holds the targets). ``x`` and ``y`` are host arrays; the computation runs on ``device``.
    Raises :class:`~xpnn.errors.GradcheckError` naming the worst entry if the check fails and
    ``raise_on_failure`` is set.
    """
    backend = get_backend(device)
    x_host = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    with backend.scope():
        if isinstance(target, Loss):
            if y is None:
                raise ValueError("gradcheck of a loss needs targets y")
            y_host = np.asarray(y)
            y_dev = backend.asarray(y_host, dtype="float64" if y_host.dtype.kind == "f" else None)

            def evaluate(x_dev: Any) -> float:
                return float(target(x_dev, y_dev))

            evaluate(backend.asarray(x_host))
            analytic = {"input": backend.to_host(target.backward())}
            params: dict[str, Any] = {}
        else:
            if not target.built:
                target.build(x_host.shape[1:], BuildContext(backend, "float64", rng))
            if target.dtype_name != "float64":
                raise DTypeError(f"gradcheck needs a float64 layer; '{target.name}' is "
                                 f"{target.dtype_name}")
            out_shape = (x_host.shape[0], *target.output_shape)
            weights = backend.asarray(rng.standard_normal(out_shape))

            def evaluate(x_dev: Any) -> float:
                out = target(x_dev, training=training)
                return float(backend.xp.sum(out * weights))

            evaluate(backend.asarray(x_host))
            grad_input = target.backward(weights)
            analytic = {"input": backend.to_host(grad_input)}
            params = {p.name: p for p in target.parameters() if p.trainable}
            analytic.update({name: backend.to_host(p.grad) for name, p in params.items()})

        results = []
        numeric_input = _numeric_gradient(
            x_host, lambda h: evaluate(backend.asarray(h)), step)
        results.append(("input", analytic["input"], numeric_input))
        for name, param in params.items():
            original = backend.to_host(param.value).astype(np.float64)

            def with_value(value: np.ndarray, param: Any = param) -> float:
                param.value = backend.asarray(value)
                return evaluate(backend.asarray(x_host))

            numeric = _numeric_gradient(original, with_value, step)
            param.value = backend.asarray(original)
            results.append((name, analytic[name], numeric))

    worst_error, worst_where, checked = 0.0, "nowhere", 0
    for name, analytic_grad, numeric_grad in results:
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
