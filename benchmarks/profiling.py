"""Where xpnn's training time goes: ``python -m benchmarks.profiling [--case NAME]``.

Two views of one ``fit`` epoch of a benchmark case on the CPU (``mlp128``, ``mlp32``,
``tiny``, ``lenet``, ``transformer``):

1. a phase breakdown: the model's, layers', loss's, optimizer's and backend kernels'
   methods are wrapped with timers (on the instances; nothing in xpnn is changed), giving
   the time per step of each phase and its share of the epoch, then the same summed by
   layer class; what is left is the ``fit`` loop itself. Backend kernels run inside
   layers, so they are shown nested, not added again. Each wrapped call costs about half a
   microsecond more, which matters only for the tiny net;
2. cProfile's top functions by internal time (NumPy ufuncs such as ``maximum`` are not
   function calls to cProfile: their time is counted in the Python function that ran them).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import from the repository root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import xpnn
import xpnn.training
from benchmarks.specs import lenet_spec, mlp_spec, tiny_spec, transformer_spec
from benchmarks.xpnn_impl import build_lenet, build_mlp, build_transformer, resetter


@dataclass(frozen=True)
class Profiled:
    """A case to profile: its spec (sizes, ``data()``, ``batch_size``, ``steps``) and the
    function building its compiled xpnn model on a device."""

    spec: Callable[[bool], Any]
    build: Callable[[Any, str], xpnn.Model]


CASES: dict[str, Profiled] = {
    "mlp128": Profiled(lambda quick: mlp_spec(128, quick), build_mlp),
    "mlp32": Profiled(lambda quick: mlp_spec(32, quick), build_mlp),
    "tiny": Profiled(tiny_spec, build_mlp),
    "lenet": Profiled(lenet_spec, build_lenet),
    "transformer": Profiled(transformer_spec, build_transformer),
}
#: The backend's kernels timed as phases, each nested in the phase that calls it.
KERNELS = {
    **dict.fromkeys(("attention", "attention_backward", "erf", "scatter_add", "relu",
                     "apply_mask", "add_bias", "unfold_rows", "fold_product", "max_pool",
                     "max_pool_backward"), "layers"),
    "softmax_cross_entropy_grad": "loss.backward",
    **dict.fromkeys(("momentum_step", "adam_step", "rmsprop_step", "adagrad_step"),
                    "optimizer.update"),
}


class PhaseTimer:
    """Accumulated wall time and call counts per phase name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, function: Callable[..., Any], phase: str) -> Callable[..., Any]:
        """``function`` with its wall time added to ``phase`` on every call."""
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += clock() - start
                self.calls[phase] += 1

        return timed


@contextmanager
def instrumented(model: xpnn.Model, timer: PhaseTimer) -> Iterator[None]:
    """Wrap the model's phases with ``timer`` for the duration of the block.

    Phases: ``check_input`` (every layer's check, on the graph's first run and for layers
    that check values per batch), ``<layer>.forward`` and ``<layer>.backward``,
    ``backend.<kernel>`` (nested in the layers), ``loss.forward``, ``loss.backward``,
    ``model.trainable_parameters``, ``optimizer.penalty``, ``optimizer.gradients``,
    ``optimizer.update`` (inside ``optimizer.step``, whose own bookkeeping is the rest of
    ``optimizer.step``), ``model._rows`` (batch gather), ``Tally.add`` (epoch loss and
    metrics), ``model._data`` (once per fit).
    """
    patched: list[tuple[Any, str]] = []

    def patch(owner: Any, attribute: str, phase: str) -> None:
        setattr(owner, attribute, timer.wrap(getattr(owner, attribute), phase))
        patched.append((owner, attribute))

    for layer in model.layers:
        patch(layer, "check_input", "check_input (all layers)")
        patch(layer, "forward", f"{layer.name}.forward")
        patch(layer, "backward", f"{layer.name}.backward")
    for loss in model.output_losses:
        patch(loss, "forward", "loss.forward")
        patch(loss, "backward", "loss.backward")
    for attribute in ("trainable_parameters", "_rows", "_data"):
        patch(model, attribute, f"model.{attribute}")
    for attribute in ("penalty", "step", "gradients", "update"):
        patch(model.optimizer, attribute, f"optimizer.{attribute}")
    for kernel in KERNELS:
        patch(model.backend, kernel, f"backend.{kernel}")
    original_add = xpnn.training.Tally.add
    xpnn.training.Tally.add = timer.wrap(original_add, "Tally.add (epoch loss)")
    try:
        yield
    finally:
        xpnn.training.Tally.add = original_add
        for owner, attribute in patched:
            delattr(owner, attribute)  # back to the class's method


#: Phases timed inside another timed phase (not added again to the total).
NESTED = {"optimizer.gradients": "optimizer.step", "optimizer.update": "optimizer.step",
          **{f"backend.{kernel}": parent for kernel, parent in KERNELS.items()}}


def phase_report(timer: PhaseTimer, total: float, steps: int) -> str:
    """The phases as a table: µs per step, share of the epoch, calls."""
    lines = [f"{'phase':<44} {'µs/step':>10} {'share':>7} {'calls':>7}"]
    accounted = 0.0
    for phase, seconds in sorted(timer.seconds.items(), key=lambda item: -item[1]):
        if phase not in NESTED:
            accounted += seconds
        name = f"  (in {NESTED[phase]}) {phase}" if phase in NESTED else phase
        lines.append(f"{name:<44} {1e6 * seconds / steps:>10.2f} "
                     f"{100 * seconds / total:>6.1f}% {timer.calls[phase]:>7}")
    rest = total - accounted
    lines.append(f"{'rest: fit loop, batch order, Python':<44} {1e6 * rest / steps:>10.2f} "
                 f"{100 * rest / total:>6.1f}%")
    lines.append(f"{'total (instrumented epoch)':<44} {1e6 * total / steps:>10.2f} "
                 f"{100.0:>6.1f}%")
    return "\n".join(lines)


def class_report(model: xpnn.Model, timer: PhaseTimer, total: float, steps: int) -> str:
    """The layers' forward and backward time summed by layer class."""
    by_class: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for layer in model.layers:
        for index, direction in enumerate(("forward", "backward")):
            by_class[type(layer).__name__][index] += timer.seconds.get(
                f"{layer.name}.{direction}", 0.0)
    lines = [f"{'layer class':<24} {'forward µs/step':>16} {'backward µs/step':>17} "
             f"{'share':>7}"]
    for name, (forward, backward) in sorted(by_class.items(), key=lambda item:
                                            -sum(item[1])):
        lines.append(f"{name:<24} {1e6 * forward / steps:>16.1f} "
                     f"{1e6 * backward / steps:>17.1f} "
                     f"{100 * (forward + backward) / total:>6.1f}%")
    return "\n".join(lines)


def profile_case(name: str, quick: bool, top: int) -> str:
    """Warm up, time a plain epoch, then an instrumented one and a cProfiled one; return
    the report."""
    spec = CASES[name].spec(quick)
    x, y = spec.data()
    model = CASES[name].build(spec, "cpu")
    reset = resetter(model)

    def epoch(seed: int) -> float:
        reset()  # every epoch starts from the initial weights, as in the benchmark
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=spec.batch_size, verbose=0, shuffle=True,
                  seed=seed)
        return time.perf_counter() - start

    epoch(0)  # warm-up
    plain = min(epoch(1), epoch(2))
    timer = PhaseTimer()
    with instrumented(model, timer):
        total = epoch(3)
    profiler = cProfile.Profile()
    profiler.enable()
    profiled = epoch(4)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(top)
    return "\n".join([
        f"{name}: batch {spec.batch_size}, {spec.steps} steps per epoch",
        f"plain epoch (best of 2): {plain:.4f} s = {1e6 * plain / spec.steps:.2f} µs/step; "
        f"instrumented {total:.4f} s; under cProfile {profiled:.4f} s",
        "",
        phase_report(timer, total, spec.steps),
        "",
        class_report(model, timer, total, spec.steps),
        "",
        f"cProfile, top {top} by internal time:",
        stream.getvalue().strip(),
    ])


def main(argv: list[str] | None = None) -> int:
    """Profile the chosen cases and print the reports."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES),
                        help="case to profile (repeatable; default mlp128 and tiny)")
    parser.add_argument("--quick", action="store_true", help="the --quick sizes")
    parser.add_argument("--top", type=int, default=25, help="cProfile rows to show")
    args = parser.parse_args(argv)
    for index, name in enumerate(args.case or ["mlp128", "tiny"]):
        if index:
            print("\n" + "=" * 100 + "\n")
        print(profile_case(name, args.quick, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
