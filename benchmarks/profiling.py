"""Where xpnn's training time goes: ``python -m benchmarks.profiling [--case mlp128]``.

Two views of one ``fit`` epoch of a benchmark case on the CPU:

1. a phase breakdown: the model's, layers', loss's and optimizer's methods are wrapped with
   timers (on the instances; nothing in xpnn is changed), giving the time per step of each
   phase and its share of the epoch; what is left is the ``fit`` loop itself. Each wrapped
   call costs about half a microsecond more, which matters only for the tiny net;
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
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import from the repository root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import xpnn
from benchmarks.specs import MLPSpec, mlp_spec, tiny_spec
from benchmarks.xpnn_impl import build_mlp, resetter

SPECS: dict[str, Callable[[bool], MLPSpec]] = {
    "mlp128": lambda quick: mlp_spec(128, quick),
    "mlp32": lambda quick: mlp_spec(32, quick),
    "tiny": tiny_spec,
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
def instrumented(model: xpnn.Sequential, timer: PhaseTimer) -> Iterator[None]:
    """Wrap the model's phases with ``timer`` for the duration of the block.

    Phases: ``check_input`` (every layer's per-call check), ``<layer>.forward`` and
    ``<layer>.backward``, ``loss.check_shapes``, ``loss.forward``, ``loss.backward``,
    ``model.trainable_parameters``, ``optimizer.penalty``, ``optimizer.gradients``,
    ``optimizer.update`` (inside ``optimizer.step``, whose own bookkeeping is the rest of
    ``optimizer.step``), ``model._batch`` (batch gather and copy), ``Mean.add`` (epoch loss
    accumulation), ``model._input_data`` / ``model._target_data`` (once per fit).
    """
    patched: list[tuple[Any, str]] = []

    def patch(owner: Any, attribute: str, phase: str) -> None:
        setattr(owner, attribute, timer.wrap(getattr(owner, attribute), phase))
        patched.append((owner, attribute))

    for layer in model.layers:
        patch(layer, "check_input", "check_input (all layers)")
        patch(layer, "forward", f"{layer.name}.forward")
        patch(layer, "backward", f"{layer.name}.backward")
    patch(model.loss, "check_shapes", "loss.check_shapes")
    patch(model.loss, "forward", "loss.forward")
    patch(model.loss, "backward", "loss.backward")
    for attribute in ("trainable_parameters", "_batch", "_input_data", "_target_data"):
        patch(model, attribute, f"model.{attribute}")
    for attribute in ("penalty", "step", "gradients", "update"):
        patch(model.optimizer, attribute, f"optimizer.{attribute}")
    original_add = xpnn.metrics.Mean.add
    xpnn.metrics.Mean.add = timer.wrap(original_add, "Mean.add (epoch loss)")
    try:
        yield
    finally:
        xpnn.metrics.Mean.add = original_add
        for owner, attribute in patched:
            delattr(owner, attribute)  # back to the class's method


#: Phases timed inside another timed phase (not added again to the total).
NESTED = {"optimizer.gradients": "optimizer.step", "optimizer.update": "optimizer.step",
          "loss.check_shapes": "loss.forward"}


def phase_report(timer: PhaseTimer, total: float, steps: int) -> str:
    """The phases as a table: µs per step, share of the epoch, calls."""
    lines = [f"{'phase':<34} {'µs/step':>9} {'share':>7} {'calls':>7}"]
    accounted = 0.0
    for phase, seconds in sorted(timer.seconds.items(), key=lambda item: -item[1]):
        nested = phase in NESTED or phase.startswith("loss.check")
        if not nested:
            accounted += seconds
        name = f"  (in {NESTED[phase]}) {phase}" if phase in NESTED else phase
        lines.append(f"{name:<34} {1e6 * seconds / steps:>9.2f} {100 * seconds / total:>6.1f}%"
                     f" {timer.calls[phase]:>7}")
    rest = total - accounted
    lines.append(f"{'rest: fit loop, batch order, Python':<34} {1e6 * rest / steps:>9.2f} "
                 f"{100 * rest / total:>6.1f}%")
    lines.append(f"{'total (instrumented epoch)':<34} {1e6 * total / steps:>9.2f} "
                 f"{100.0:>6.1f}%")
    return "\n".join(lines)


def profile_case(name: str, quick: bool, top: int) -> str:
    """Warm up, time a plain epoch, then an instrumented one and a cProfiled one; return
    the report."""
    spec = SPECS[name](quick)
    x, y = spec.data()
    model = build_mlp(spec, "cpu")
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
        f"{name}: {spec.sizes}, batch {spec.batch_size}, {spec.samples:,} samples, "
        f"{spec.steps} steps per epoch",
        f"plain epoch (best of 2): {plain:.4f} s = {1e6 * plain / spec.steps:.2f} µs/step; "
        f"instrumented {total:.4f} s; under cProfile {profiled:.4f} s",
        "",
        phase_report(timer, total, spec.steps),
        "",
        f"cProfile, top {top} by internal time:",
        stream.getvalue().strip(),
    ])


def main(argv: list[str] | None = None) -> int:
    """Profile the chosen cases and print the reports."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(SPECS),
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
