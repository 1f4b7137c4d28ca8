"""The data-parallel case (``dp128``): one epoch of the ``mlp128`` MLP trained by

- **1 process × 2 threads**: plain ``fit`` with two BLAS threads (the reference),
- **2 ranks × 1 thread**: ``mpiexec -n 2``, ``fit(distributed=True)``, one BLAS thread each,
- **1 process × 1 thread**: plain ``fit`` with one BLAS thread (the unit of scaling).

Each configuration is a group of long-lived worker processes (``python -m benchmarks.parallel
serve DIR``, under ``mpiexec`` for the ranks), started once with its BLAS threads fixed by
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` (which OpenBLAS reads at start). The harness
sends each worker ``run <index>`` or ``reset`` through a FIFO of its own and reads rank 0's
answer from a result FIFO, so the usual harness times the passes, interleaved with the other
configurations, with its pauses, noise checks and retries. Between passes every worker
blocks in a read of its FIFO: an idle rank does not spin in MPI and steal a core from the
configuration being timed.

A worker measures inside a pass the time its rank spent in sums over the ranks (the
gradient sum of each step, through shared memory or ``Allreduce``, and the small sums of
the epoch's logs) and the CPU time of all its ranks; the harness subtracts that CPU time
from its noise measure (the workers are not "other processes").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.specs import mlp_spec
from benchmarks.timing import Runner, Unavailable

REPO = Path(__file__).resolve().parent.parent
#: The reference (one process using both cores), the data-parallel row, and the unit of
#: scaling (one process, one core).
REFERENCE, PARALLEL, SERIAL = "1 process x 2 threads", "2 ranks x 1 thread", \
    "1 process x 1 thread"
#: The configurations: row name -> (processes, BLAS threads per process).
CONFIGURATIONS = {REFERENCE: (1, 2), PARALLEL: (2, 1), SERIAL: (1, 1)}
#: Seconds to wait for a worker's answer before declaring it dead.
ANSWER_TIMEOUT = 900.0


def mpiexec() -> str:
    """The ``mpiexec`` beside this Python (the mpich wheel's) or on PATH; raises
    :class:`Unavailable` when there is none or mpi4py is missing."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise Unavailable("mpi4py is not installed (pip install -e '.[mpi]')") from None
    found = Path(sys.executable).parent / "mpiexec"
    if found.exists():
        return str(found)
    on_path = shutil.which("mpiexec")
    if on_path is None:
        raise Unavailable("no mpiexec (the mpich wheel of the mpi extra brings one)")
    return on_path


class WorkerGroup:
    """One configuration's worker processes and the FIFOs to talk to them."""

    def __init__(self, processes: int, threads: int, quick: bool) -> None:
        self.processes = processes
        self.directory = Path(tempfile.mkdtemp(prefix="xpnn-dp-"))
        self.commands = []
        for rank in range(processes):
            path = self.directory / f"command{rank}"
            os.mkfifo(path)
            # read-write: opening never blocks, and the worker's read end never sees EOF
            self.commands.append(os.open(path, os.O_RDWR))
        os.mkfifo(self.directory / "result")
        self.result = os.open(self.directory / "result", os.O_RDWR)
        self.buffer = b""
        command = [sys.executable, "-m", "benchmarks.parallel", "serve", str(self.directory)]
        if quick:
            command.append("--quick")
        if processes > 1:
            command = [mpiexec(), "-n", str(processes), *command]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads),
               "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._finalizer = weakref.finalize(self, _stop, self.process, self.commands,
                                           self.result, self.directory)
        self.answer()  # "ready"
        #: What the workers reported for each pass, in order.
        self.passes: list[dict[str, Any]] = []

    def send(self, line: str) -> None:
        """Send one command line to every rank."""
        for descriptor in self.commands:
            os.write(descriptor, (line + "\n").encode())

    def answer(self) -> dict[str, Any]:
        """Rank 0's next answer (a JSON line)."""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while b"\n" not in self.buffer:
            if self.process.poll() is not None:
                raise RuntimeError(f"the workers ended (status {self.process.returncode}): "
                                   + self.process.stderr.read().decode()[-2000:])
            ready, _, _ = select.select([self.result], [], [], 1.0)
            if ready:
                self.buffer += os.read(self.result, 65536)
            elif time.monotonic() > deadline:
                raise RuntimeError("the workers did not answer in time")
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, index: int) -> None:
        """One timed pass: an epoch on every rank."""
        self.send(f"run {index}")
        self.passes.append(self.answer())

    def reset(self) -> None:
        """Back to the initial weights and optimizer state (untimed)."""
        self.send("reset")
        self.answer()

    def helper_cpu(self) -> float:
        """CPU seconds the workers used in the last pass, all ranks and threads."""
        return self.passes[-1]["cpu_s"] if self.passes else 0.0

    def close(self) -> None:
        """Stop the workers."""
        self._finalizer()


def _stop(process: subprocess.Popen, commands: list[int], result: int,
          directory: Path) -> None:
    for descriptor in commands:
        with contextlib.suppress(OSError):
            os.write(descriptor, b"quit\n")
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for descriptor in [*commands, result]:
        os.close(descriptor)
    shutil.rmtree(directory, ignore_errors=True)


def runner(configuration: str, quick: bool, groups: dict[str, WorkerGroup]) -> Runner:
    """The harness's runner of one configuration; its worker group is kept in ``groups``
    (for the per-pass figures)."""
    processes, threads = CONFIGURATIONS[configuration]
    group = groups[configuration] = WorkerGroup(processes, threads, quick)
    return Runner(group.run, reset=group.reset, helper_cpu=group.helper_cpu)


def annotate(records: list[dict[str, Any]], groups: dict[str, WorkerGroup]) -> None:
    """Add to each configuration's record its samples per second, the time in MPI sums per
    step, and the parallel row's throughput relative to the reference (the issue's floor:
    at least 0.9) and its scaling efficiency (samples/s over N × one 1-thread process's)."""
    by_name = {record["impl"]: record for record in records if record["status"] == "ok"}
    for name, record in by_name.items():
        group = groups.get(name)
        if group is None:
            continue
        timed = group.passes[1:]  # the first pass was the warm-up
        steps = timed[0]["steps"] if timed else 1
        record["processes"], record["threads"] = CONFIGURATIONS[name]
        record["steps_per_epoch"] = steps
        if group.processes > 1 and timed:
            gradient = [p["gradient_allreduce_s"] / steps * 1e3 for p in timed]
            every = [p["allreduce_s"] / steps * 1e3 for p in timed]
            record["allreduce_ms_per_step"] = float(np.median(gradient))
            record["allreduce_ms_per_step_all_sums"] = float(np.median(every))
            record["gradient_bytes"] = timed[0]["gradient_bytes"]
            record["compute_ms_per_step"] = (record["median"] * 1e3 - float(np.median(every))
                                             * steps) / steps
    parallel, reference, serial = (by_name.get(name) for name in (PARALLEL, REFERENCE,
                                                                   SERIAL))
    if parallel is not None and reference is not None:
        parallel["throughput_vs_one_process"] = reference["median"] / parallel["median"]
        # the same ratio pass by pass (passes are interleaved: pass i of each ran together)
        pairs = zip(reference["seconds_per_pass"], parallel["seconds_per_pass"], strict=False)
        parallel["throughput_ratio_per_pass"] = [ref / par for ref, par in pairs]
    if parallel is not None and serial is not None:
        processes = CONFIGURATIONS[PARALLEL][0]
        parallel["scaling_efficiency"] = serial["median"] / (processes * parallel["median"])
    if serial is not None:
        serial["compute_ms_per_step"] = serial["median"] * 1e3 / serial["steps_per_epoch"]


def summary(records: list[dict[str, Any]]) -> list[str]:
    """Lines of text for the data-parallel rows of a run."""
    lines = []
    for record in records:
        if record.get("case") != "dp128" or record["status"] != "ok":
            continue
        text = (f"  {record['impl']}: {record['samples_per_s']:,.0f} samples/s, "
                f"{record['median'] * 1e3 / record['steps_per_epoch']:.2f} ms/step")
        if "allreduce_ms_per_step" in record:
            text += (f"; gradient Allreduce {record['allreduce_ms_per_step']:.2f} ms/step "
                     f"({record['gradient_bytes'] / 1e6:.2f} MB), all MPI sums "
                     f"{record['allreduce_ms_per_step_all_sums']:.2f} ms/step, compute "
                     f"{record['compute_ms_per_step']:.2f} ms/step")
        if "throughput_vs_one_process" in record:
            ratios = record["throughput_ratio_per_pass"]
            text += (f"; throughput {record['throughput_vs_one_process']:.3f}x one process "
                     f"x 2 threads (per pass {min(ratios):.3f} to {max(ratios):.3f})")
        if "scaling_efficiency" in record:
            text += f"; scaling efficiency {100 * record['scaling_efficiency']:.0f} %"
        lines.append(text)
    return lines


# == the worker ===============================================================================

def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(directory: Path, quick: bool) -> None:
    """A worker: build the mlp128 model, then obey the commands of its FIFO."""
    import xpnn
    from benchmarks.xpnn_impl import build_mlp, resetter

    spec = mlp_spec(128, quick)
    x, y = spec.data()
    model = build_mlp(spec, "cpu")
    reset = resetter(model)
    comm = xpnn.distributed.world()
    several = comm is not None and comm.size > 1
    rank = comm.rank if several else 0
    meter = {"all": 0.0, "gradient": 0.0}
    gradient_size = sum(param.size for param in model.trainable_parameters())
    if several:
        plain = comm.allreduce_

        def timed(host: np.ndarray) -> np.ndarray:
            start = time.perf_counter()
            try:
                return plain(host)
            finally:
                seconds = time.perf_counter() - start
                meter["all"] += seconds
                if host.size > gradient_size:  # the gradients and their presence flags
                    meter["gradient"] += seconds

        comm.allreduce_ = timed
        shared_sum = xpnn.distributed.SharedMemorySum.sum

        def timed_sum(self: Any) -> np.ndarray:  # the gradient sum through shared memory
            start = time.perf_counter()
            try:
                return shared_sum(self)
            finally:
                seconds = time.perf_counter() - start
                meter["all"] += seconds
                meter["gradient"] += seconds

        xpnn.distributed.SharedMemorySum.sum = timed_sum
    results = open(directory / "result", "w") if rank == 0 else None  # noqa: SIM115

    def answer(payload: dict[str, Any]) -> None:
        if results is not None:
            results.write(json.dumps(payload) + "\n")
            results.flush()

    answer({"ready": True})
    with open(directory / f"command{rank}") as commands:
        for line in commands:
            command, *arguments = line.split()
            if command == "quit":
                break
            if command == "reset":
                reset()
                answer({"reset": True})
                continue
            meter.update(all=0.0, gradient=0.0)
            cpu = _cpu_seconds()
            model.fit(x, y, epochs=1, batch_size=spec.batch_size, verbose=0, shuffle=True,
                      seed=1000 + int(arguments[0]), distributed=several)
            figures = np.array([_cpu_seconds() - cpu, meter["all"], meter["gradient"]])
            if several:
                plain(figures[:1])  # every rank's CPU time (the sums' times stay rank 0's)
            answer({"cpu_s": float(figures[0]), "allreduce_s": float(figures[1]),
                    "gradient_allreduce_s": float(figures[2]), "steps": spec.steps,
                    "gradient_bytes": 4 * gradient_size})
    if results is not None:
        results.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.parallel serve DIR [--quick]``: run as a worker."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    serve(args.directory, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
