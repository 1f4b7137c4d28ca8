"""Timing: one warm-up pass per implementation, then timed passes interleaved run by run.

Every timed pass is preceded by a pause, because NumPy's BLAS threads keep spinning for a
while after a call and would otherwise steal the cores from the next implementation (PyTorch
has its own OpenMP pool). Each implementation's figure is the median of its passes, with the
minimum and maximum.
"""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field


class Unavailable(Exception):  # noqa: N818 - a reason, not an error
    """An implementation that cannot run here (e.g. PyTorch is not installed); the message
    is the reason shown in the table."""


@dataclass
class Runner:
    """One implementation of a case, set up and ready to time.

    ``run(index)`` performs one timed unit of work (an epoch, or a fixed number of steps);
    ``index`` is the pass number, usable as a shuffling seed. ``sync`` waits for queued device
    work (a no-op on the CPU) and is inside the timed region. ``reset`` (untimed, before
    every pass) puts the model back to its initial weights and optimizer state, so that every
    pass does the same work: training drifts otherwise (dead ReLU units leave momentum
    velocities that decay into subnormal numbers, which are many times slower to compute).
    """

    run: Callable[[int], None]
    sync: Callable[[], None] = field(default=lambda: None)
    reset: Callable[[], None] = field(default=lambda: None)
    #: CPU seconds that helper processes of this implementation (the ranks of a
    #: data-parallel run) used in its last pass: not noise from "other processes".
    helper_cpu: Callable[[], float] = field(default=lambda: 0.0)


@dataclass
class Timing:
    """The timed passes of one implementation, in seconds, or why there are none."""

    times: list[float] = field(default_factory=list)
    #: Set when the implementation is not available or failed: "n/a: reason" or "error: ...".
    status: str = "ok"
    #: Other processes' share of the cores during each kept pass (None: unknown).
    noise: list[float | None] = field(default_factory=list)
    #: Passes thrown away and run again because other processes were too busy.
    discarded: int = 0

    @property
    def ok(self) -> bool:
        """Whether there are timed passes."""
        return self.status == "ok" and bool(self.times)

    @property
    def median(self) -> float:
        """Median seconds per pass."""
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        """Fastest pass, seconds."""
        return min(self.times)

    @property
    def max(self) -> float:
        """Slowest pass, seconds."""
        return max(self.times)


def measure_interleaved(
    builders: dict[str, Callable[[], Runner]],
    repeats: int,
    pause: float,
    log: Callable[[str], None] = lambda _: None,
    max_noise: float | None = None,
    retries: int = 2,
    idle_wait: float = 30.0,
) -> dict[str, Timing]:
    """Build each implementation, warm each up once, then time ``repeats`` passes of each in
    the order impl A, B, C, A, B, C, ... Before every pass the runner is reset, then the
    harness sleeps ``pause`` seconds.

    With ``max_noise``, a pass during which other processes used more than that share of
    the cores is thrown away and run again, at most ``retries`` times (the last try is kept
    whatever its noise), after waiting up to ``idle_wait`` seconds for a quiet second; each
    kept pass's noise is recorded.

    An implementation whose builder raises :class:`Unavailable` gets status ``n/a: reason``;
    one that raises anything else gets ``error: ...`` and is dropped from the rotation, so
    one broken implementation never hides the others' figures.
    """
    from benchmarks.machine import CpuMonitor

    results = {name: Timing() for name in builders}
    runners: dict[str, Runner] = {}
    for name, build in builders.items():
        try:
            runners[name] = build()
        except Unavailable as reason:
            results[name].status = f"n/a: {reason}"
        except Exception as error:
            results[name].status = _error_status(error)

    def timed(name: str, index: int) -> float | None:
        runner = runners[name]
        try:
            runner.reset()
            runner.sync()
            time.sleep(pause)
            start = time.perf_counter()
            runner.run(index)
            runner.sync()
            return time.perf_counter() - start
        except Exception as error:
            results[name].status = _error_status(error)
            del runners[name]
            return None

    for name in list(runners):  # warm-up: first-call costs, allocator, BLAS thread start
        seconds = timed(name, -1)
        if seconds is not None:
            log(f"    warm-up {name}: {seconds:.4g} s")
    for index in range(repeats):
        for name in list(runners):
            for attempt in range(retries + 1):
                monitor = CpuMonitor()
                seconds = timed(name, index)
                noise = monitor.share(runners[name].helper_cpu() if name in runners else 0.0)
                if seconds is None:
                    break
                if (max_noise is None or noise is None or noise <= max_noise
                        or attempt == retries):
                    results[name].times.append(seconds)
                    results[name].noise.append(noise)
                    break
                results[name].discarded += 1
                log(f"    {name}: pass discarded, other processes used {100 * noise:.0f} % "
                    f"of the cores ({seconds:.4g} s)")
                wait_until_quiet(max_noise, idle_wait)
    return results


def _error_status(error: BaseException) -> str:
    where = traceback.extract_tb(error.__traceback__)[-1:]
    place = f" ({where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    return f"error: {type(error).__name__}: {error}{place}"


def wait_until_quiet(max_noise: float, timeout: float) -> bool:
    """Sleep in one-second samples until other processes use at most ``max_noise`` of the
    cores (True), or ``timeout`` seconds have passed (False)."""
    from benchmarks.machine import CpuMonitor

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        monitor = CpuMonitor()
        time.sleep(1.0)
        share = monitor.share()
        if share is None or share <= max_noise:
            return True
    return False
