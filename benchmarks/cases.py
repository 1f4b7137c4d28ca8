"""The benchmark cases and, for each, its implementations (xpnn, hand NumPy, PyTorch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks import hand, parallel, torch_impl, xpnn_impl
from benchmarks.specs import adam_spec, lenet_spec, mlp_spec, tiny_spec, transformer_spec
from benchmarks.timing import Runner

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
    #: Adds case-specific figures to the case's records after timing (``dp128``).
    annotate: Callable[[list[dict[str, object]]], None] | None = None


def _mlp_case(name: str, batch_size: int, device: str, quick: bool) -> Case:
    spec = mlp_spec(batch_size, quick)
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


def _tiny_case(device: str, quick: bool) -> Case:
    spec = tiny_spec(quick)
    x, y = spec.data()
    return Case(
        "tiny", f"2-16-16-1 net, batch 8, {spec.steps:,} steps per pass", "step", spec.steps,
        {XPNN: lambda: xpnn_impl.mlp_fit_runner(spec, x, y, device),
         HAND: lambda: hand.mlp_runner(spec, x, y, device),
         TORCH: lambda: torch_impl.mlp_runner(spec, x, y, device),
         XPNN_TOB: lambda: xpnn_impl.mlp_train_on_batch_runner(spec, x, y, device)},
        details={"sizes": spec.sizes, "batch_size": spec.batch_size,
                 "samples": spec.samples, "steps": spec.steps,
                 "parameters": spec.parameters, "loss": "BCE with logits"})


def _adam_case(device: str, quick: bool) -> Case:
    spec = adam_spec(quick)
    return Case(
        "adam10m", f"Adam step, {spec.parameters / 1e6:.1f} M parameters", "step", spec.steps,
        {XPNN: lambda: xpnn_impl.adam_runner(spec, device),
         HAND: lambda: hand.adam_runner(spec, device),
         TORCH: lambda: torch_impl.adam_runner(spec, device)},
        bytes=spec.min_bytes_per_step() * spec.steps,
        details={"shapes": spec.shapes, "parameters": spec.parameters,
                 "steps_per_pass": spec.steps})


def _lenet_case(name: str, batch_size: int, device: str, quick: bool) -> Case:
    spec = lenet_spec(quick, batch_size)
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


def _transformer_case(name: str, large: bool, device: str, quick: bool) -> Case:
    spec = transformer_spec(quick, large)
    x, y = spec.data()
    flops = spec.epoch_flops()
    return Case(
        name, f"GPT {spec.blocks} blocks, d_model {spec.d_model}, {spec.heads} heads, "
        f"T {spec.time}, batch {spec.batch_size}, {spec.steps} steps per pass", "step",
        spec.steps,
        {XPNN: lambda: xpnn_impl.transformer_runner(spec, x, y, device),
         TORCH: lambda: torch_impl.transformer_runner(spec, x, y, device)},
        flops=flops, flops_computed=flops,
        details={"blocks": spec.blocks, "d_model": spec.d_model, "heads": spec.heads,
                 "time": spec.time, "ff": spec.ff, "vocab": spec.vocab,
                 "batch_size": spec.batch_size, "samples": spec.samples, "steps": spec.steps,
                 "parameters": spec.parameters,
                 "layers": "pre-LN blocks: causal multi-head self-attention, GELU (tanh) FFN; "
                           "learned positions; Adam; no dropout"})


def _data_parallel_case(device: str, quick: bool) -> Case:
    """``mlp128``'s epoch as 1 process × 2 BLAS threads, 2 MPI ranks × 1 thread
    (``fit(distributed=True)``) and 1 process × 1 thread (see :mod:`benchmarks.parallel`)."""
    if device != "cpu":
        raise ValueError("the data-parallel case runs on the CPU (--device cpu)")
    spec = mlp_spec(128, quick)
    groups: dict[str, parallel.WorkerGroup] = {}
    return Case(
        "dp128", f"MLP 784-512-512-10, batch {spec.batch_size} (global), "
        f"{spec.samples:,} samples, data-parallel", "epoch", 1,
        {name: (lambda name=name: parallel.runner(name, quick, groups))
         for name in parallel.CONFIGURATIONS},
        samples=spec.samples,
        details={"sizes": spec.sizes, "batch_size": spec.batch_size, "samples": spec.samples,
                 "steps": spec.steps, "parameters": spec.parameters,
                 "configurations": {name: {"processes": p, "threads": t} for name, (p, t)
                                    in parallel.CONFIGURATIONS.items()}},
        annotate=lambda records: parallel.annotate(records, groups))


#: Every case by name, in table order: a function of (device, quick) that builds it. A new
#: case is one more entry here, with its spec in ``specs.py``, its implementations in
#: ``xpnn_impl.py`` / ``torch_impl.py``, and its name in :data:`DEFAULT_CASES` for the
#: devices it suits (see the README, "Adding a case").
CASES: dict[str, Callable[[str, bool], Case]] = {
    "mlp128": lambda device, quick: _mlp_case("mlp128", 128, device, quick),
    "mlp32": lambda device, quick: _mlp_case("mlp32", 32, device, quick),
    "mlp1024": lambda device, quick: _mlp_case("mlp1024", 1024, device, quick),
    "tiny": _tiny_case,
    "adam10m": _adam_case,
    "lenet": lambda device, quick: _lenet_case("lenet", 64, device, quick),
    "lenet256": lambda device, quick: _lenet_case("lenet256", 256, device, quick),
    "transformer": lambda device, quick: _transformer_case("transformer", False, device, quick),
    "transformer512": lambda device, quick: _transformer_case("transformer512", True, device,
                                                              quick),
    "dp128": _data_parallel_case,
}
CASE_NAMES = tuple(CASES)

#: The cases each device type runs unless ``--only`` names others: on a CPU the issue's
#: sizes; on a GPU the batch-128 MLP of the issue's target, then batches sized for a large
#: GPU (MLP at 1024, CNN at 256, a 4-block d_model-512 GPT at T 256), the per-step overhead
#: and the Adam step.
DEFAULT_CASES: dict[str, tuple[str, ...]] = {
    "cpu": ("mlp128", "mlp32", "tiny", "adam10m", "lenet", "transformer", "dp128"),
    "cuda": ("mlp128", "mlp1024", "tiny", "adam10m", "lenet256", "transformer512"),
}


def default_cases(device: str) -> tuple[str, ...]:
    """The cases run on ``device`` (``cpu``, ``cuda``, ``cuda:1``) by default."""
    return DEFAULT_CASES[device.partition(":")[0]]


def make_case(name: str, device: str, quick: bool) -> Case:
    """The case ``name`` on ``device`` (``quick``: tiny sizes)."""
    try:
        build = CASES[name]
    except KeyError:
        raise ValueError(f"unknown case {name!r}; expected one of {CASE_NAMES}") from None
    return build(device, quick)
