"""The benchmark cases and, for each, its implementations (xpnn, hand NumPy, PyTorch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks import hand, torch_impl, xpnn_impl
from benchmarks.specs import adam_spec, lenet_spec, mlp_spec, tiny_spec
from benchmarks.timing import Runner

#: Every case, in table order.
CASE_NAMES = ("mlp128", "mlp32", "tiny", "adam10m", "lenet")

#: Implementation names: the framework, the hand-written floor, the reference framework.
XPNN, HAND, TORCH = "xpnn", "numpy", "torch"
#: An extra xpnn row of the tiny case: the per-call ``train_on_batch`` path.
XPNN_TOB = "xpnn train_on_batch"
#: Extra rows of the MLP cases: only the matrix products of an epoch (the BLAS ceiling).
HAND_BLAS, TORCH_BLAS = "numpy BLAS only", "torch BLAS only"
#: Rows that are diagnostics, not implementations: no ratios are computed for them.
DIAGNOSTICS = (HAND_BLAS, TORCH_BLAS)


@dataclass
class Case:
    """One benchmark on one device, ready to time.

    A timed pass is one unit of work: an epoch (``unit="epoch"``), or ``per_pass`` steps
    (``unit="step"``, reported per step). ``flops`` (matrix-product FLOPs by the 6·N·Σ i·o
    convention; ``flops_computed`` without the first layer's dL/dx), ``bytes`` (least
    memory traffic) and ``samples`` (training samples, for a samples-per-second rate) are per
    pass, when they are meaningful.
    """

    name: str
    title: str
    unit: str
    per_pass: int
    builders: dict[str, Callable[[], Runner]]
    flops: float | None = None
    flops_computed: float | None = None
    bytes: float | None = None
    samples: int | None = None
    details: dict[str, object] = field(default_factory=dict)


def make_case(name: str, device: str, quick: bool) -> Case | str:
    """The case ``name`` on ``device`` (``quick``: tiny sizes), or the reason it is
    skipped."""
    if name in ("mlp128", "mlp32"):
        spec = mlp_spec(128 if name == "mlp128" else 32, quick)
        x, y = spec.data()
        return Case(
            name, f"MLP 784-512-512-10, batch {spec.batch_size}, {spec.samples:,} samples",
            "epoch", 1,
            {XPNN: lambda: xpnn_impl.mlp_fit_runner(spec, x, y, device),
             HAND: lambda: hand.mlp_runner(spec, x, y, device),
             TORCH: lambda: torch_impl.mlp_runner(spec, x, y, device),
             HAND_BLAS: lambda: hand.products_runner(spec, device),
             TORCH_BLAS: lambda: torch_impl.products_runner(spec, device)},
            flops=spec.epoch_flops(), flops_computed=spec.epoch_flops_computed(),
            details={"sizes": spec.sizes, "batch_size": spec.batch_size,
                     "samples": spec.samples, "steps": spec.steps,
                     "parameters": spec.parameters})
    if name == "tiny":
        spec = tiny_spec(quick)
        x, y = spec.data()
        return Case(
            name, f"2-16-16-1 net, batch 8, {spec.steps:,} steps per pass", "step", spec.steps,
            {XPNN: lambda: xpnn_impl.mlp_fit_runner(spec, x, y, device),
             HAND: lambda: hand.mlp_runner(spec, x, y, device),
             TORCH: lambda: torch_impl.mlp_runner(spec, x, y, device),
             XPNN_TOB: lambda: xpnn_impl.mlp_train_on_batch_runner(spec, x, y, device)},
            details={"sizes": spec.sizes, "batch_size": spec.batch_size,
                     "samples": spec.samples, "steps": spec.steps,
                     "parameters": spec.parameters, "loss": "BCE with logits"})
    if name == "adam10m":
        spec = adam_spec(quick)
        return Case(
            name, f"Adam step, {spec.parameters / 1e6:.1f} M parameters", "step", spec.steps,
            {XPNN: lambda: xpnn_impl.adam_runner(spec, device),
             HAND: lambda: hand.adam_runner(spec, device),
             TORCH: lambda: torch_impl.adam_runner(spec, device)},
            bytes=spec.min_bytes_per_step() * spec.steps,
            details={"shapes": spec.shapes, "parameters": spec.parameters,
                     "steps_per_pass": spec.steps})
    if name == "lenet":
        spec = lenet_spec(quick)
        x, y = spec.data()
        return Case(
            name, f"CNN (conv 32, conv 64, dense 128), batch {spec.batch_size}, "
            f"{spec.samples:,} samples", "epoch", 1,
            {XPNN: lambda: xpnn_impl.lenet_runner(spec, x, y, device),
             TORCH: lambda: torch_impl.lenet_runner(spec, x, y, device)},
            samples=spec.samples,
            details={"layers": "Conv 1->32 3x3 pad 1, ReLU, MaxPool 2, Conv 32->64 3x3 pad 1, "
                               "ReLU, MaxPool 2, Flatten, Dense 3136->128, ReLU, Dense 128->10",
                     "input": "NCHW (N, 1, 28, 28)", "batch_size": spec.batch_size,
                     "samples": spec.samples, "steps": spec.steps,
                     "parameters": spec.parameters})
    raise ValueError(f"unknown case {name!r}; expected one of {CASE_NAMES}")
