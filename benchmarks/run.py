"""Run the xpnn benchmarks: ``python -m benchmarks`` or ``python benchmarks/run.py``.

For each device (default: every available one among ``cpu`` and ``cuda``) and each of its
cases (on a CPU ``mlp128``, ``mlp32``, ``tiny``, ``adam10m``, ``lenet``; on a GPU ``mlp128``,
``mlp1024``, ``tiny``, ``adam10m``, ``lenet256``; ``--only`` chooses others), time xpnn, the
hand-written NumPy/CuPy reference and PyTorch (when installed) interleaved run by run, print
a table with the xpnn/PyTorch and xpnn/NumPy time ratios and the achieved share of the
device's float32 GEMM peak, and write everything to a JSON file. A device asked for with
``--device`` that cannot run here is an error (exit status 2) that says why. See
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import from the repository root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

# Full float32 matrix products on a GPU, as PyTorch's defaults are (set before CuPy loads).
os.environ.setdefault("CUPY_TF32", "0")

import xpnn
from benchmarks import machine, parallel, report, torch_impl
from benchmarks.cases import CASE_NAMES, default_cases, make_case
from benchmarks.timing import Unavailable, measure_interleaved

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time xpnn against hand-written NumPy and PyTorch (when installed).")
    parser.add_argument("--device", action="append", metavar="DEVICE",
                        help="xpnn device to run on (repeatable; default: every available "
                             "one among cpu and cuda)")
    parser.add_argument("--only", action="append", metavar="NAME", choices=CASE_NAMES,
                        help=f"run only this case (repeatable): {', '.join(CASE_NAMES)}; "
                             "default: the device's own list")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed passes per implementation (default 5, 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke test (2,000 samples or 4 batches per "
                             "MLP epoch, 5 CNN batches, 2 repeats)")
    parser.add_argument("--pause", type=float, default=None,
                        help="seconds of sleep before each pass (default 0.5, 0.05 with "
                             "--quick): lets NumPy's BLAS threads stop spinning")
    parser.add_argument("--max-noise", type=float, default=0.10, metavar="SHARE",
                        help="run a pass again (at most --retries times) when other "
                             "processes used more than this share of the cores during it "
                             "(default 0.10; 1 disables)")
    parser.add_argument("--retries", type=int, default=None,
                        help="retries of a noisy pass (default 2, 0 with --quick)")
    parser.add_argument("--idle-wait", type=float, default=30.0, metavar="S",
                        help="before a retry, wait up to S seconds for a quiet second "
                             "(default 30)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help=f"where to write the results (default {DEFAULT_JSON.name} "
                             "beside this script)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if args.pause is None:
        args.pause = 0.05 if args.quick else 0.5
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def available_devices(requested: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The devices to run on and, for each requested-but-unusable one, why it is skipped."""
    usable, skipped = [], {}
    for name in requested or ["cpu", "cuda"]:
        try:
            xpnn.get_backend(name)
        except xpnn.DeviceUnavailableError as error:
            skipped[name] = str(error).splitlines()[0]
        except ValueError as error:
            skipped[name] = str(error)
        else:
            usable.append(name)
    return usable, skipped


def measure_peaks(device: str, quick: bool, torch: Any | None) -> dict[str, Any]:
    """The float32 GEMM peak (the reference for the fractions of peak: NumPy's on the CPU,
    CuPy's on a GPU), the memory copy bandwidth on the CPU, and PyTorch's GEMM rate on the
    same device for information. It is measured before and after a device's cases and the
    higher value kept (``gemm``, ``bandwidth``)."""
    sizes = (1024, 2048) if quick else (2048, 4096)
    repeats = 2 if quick else 6
    peaks: dict[str, Any] = {"gemm_sizes": sizes}
    if device == "cpu":
        peaks["numpy_gemm"] = machine.numpy_gemm_peak(sizes, repeats)
        peaks["gemm"] = peaks["numpy_gemm"]["peak"]
        peaks["bandwidth"] = machine.copy_bandwidth(64 if quick else 512)
    else:
        try:
            peaks["cupy_gemm"] = machine.cupy_gemm_peak(sizes, repeats)
            peaks["gemm"] = peaks["cupy_gemm"]["peak"]
            peaks["bandwidth"] = machine.cupy_copy_bandwidth(64 if quick else 512)
        except Exception as error:
            peaks["gemm"] = None
            peaks["gemm_error"] = f"{type(error).__name__}: {error}"
    if torch is not None:
        try:
            target, _ = torch_impl.torch_device(device)
            peaks["torch_gemm"] = machine.torch_gemm_peak(torch, str(target), sizes, repeats)
        except Unavailable as reason:
            peaks["torch_gemm"] = f"n/a: {reason}"
    return peaks


def peaks_text(device: str, peaks: dict[str, Any]) -> str:
    """One line describing the measured peaks of a device."""
    parts = []
    for key, label in (("numpy_gemm", "NumPy"), ("cupy_gemm", "CuPy"), ("torch_gemm", "torch")):
        value = peaks.get(key)
        if isinstance(value, dict):
            sizes = ", ".join(f"{size}: {value[str(size)]:.1f}" for size in peaks["gemm_sizes"])
            parts.append(f"{label} float32 GEMM {value['peak']:.1f} GFLOP/s ({sizes})")
    if peaks.get("bandwidth"):
        parts.append(f"copy bandwidth {peaks['bandwidth']:.1f} GB/s")
    return f"{device}: " + "; ".join(parts) if parts else f"{device}: no peak measured"


def peaks_summary(device: str, peaks: dict[str, Any]) -> str:
    """The peaks measured before and after the cases, and the ones used."""
    lines = [peaks_text(f"{device} before", peaks)]
    if isinstance(peaks.get("again"), dict):
        lines.append(peaks_text(f"{device} after", peaks["again"]))
    used = [f"GEMM {peaks['gemm']:.1f} GFLOP/s"] if peaks.get("gemm") else []
    if peaks.get("bandwidth"):
        used.append(f"copy {peaks['bandwidth']:.1f} GB/s")
    if used:
        lines.append(f"{device} peaks used (the higher): " + ", ".join(used))
    return "\n".join(lines)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (a noise indicator), if the OS reports them."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table and the targets; write the JSON file."""
    args = parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        torch = torch_impl.load_torch()
        torch_reason = None
    except Unavailable as reason:
        torch, torch_reason = None, str(reason)
    devices, skipped_devices = available_devices(args.device)
    if args.device and skipped_devices:  # asked for explicitly: an error, not a skip
        for name, reason in skipped_devices.items():
            log(f"error: --device {name} cannot run here: {reason}")
        log("(the GPU-sized cases run on the CPU too: python -m benchmarks --device cpu "
            "--only mlp1024 --only lenet256 --quick)")
        return 2
    info = machine.describe(torch, torch_reason)
    info["devices"] = {name: xpnn.get_backend(name).describe() for name in devices}
    info["cupy_tf32"] = os.environ.get("CUPY_TF32")
    load_before = load_average()
    log(f"xpnn benchmarks on {info['cpu']} ({info['cores']} cores), numpy {info['numpy']} "
        f"({info['numpy_blas']}), torch {info['torch'] or 'n/a'}; load {load_before}")
    log(f"BLAS: {machine.blas_text(info['blas_pools'])}")
    if info["forced_core"]:
        log(info["forced_core"])
    for name, reason in skipped_devices.items():
        log(f"{name}: skipped: {reason}")

    cases_by_device = {device: list(args.only or default_cases(device)) for device in devices}
    records: list[report.Record] = []
    all_peaks: dict[str, Any] = {}
    noise_by_case: dict[str, float | None] = {}
    whole_run = machine.CpuMonitor()
    for device in devices:
        log(f"[{device}] measuring the GEMM peak ...")
        peaks = all_peaks[device] = measure_peaks(device, args.quick, torch)
        log("  " + peaks_text(device, peaks))
        for name in cases_by_device[device]:
            case = make_case(name, device, args.quick)
            log(f"[{device}] {name}: {case.title}")
            monitor = machine.CpuMonitor()
            timings = measure_interleaved(case.builders, args.repeats, args.pause, log,
                                          max_noise=args.max_noise, retries=args.retries,
                                          idle_wait=args.idle_wait)
            noise = monitor.share()
            noise_by_case[f"{device} {name}"] = noise
            case_records = report.records_for(device, case, timings)
            if case.annotate is not None:
                case.annotate(case_records)
            for record in case_records:
                record["other_cpu_share"] = noise
            for record in case_records:
                shown = (report.format_seconds(record["median"]) + f" per {record['unit']}"
                         if record["status"] == "ok" else record["status"])
                log(f"    {record['impl']}: {shown}")
            records.extend(case_records)
        # the peak again after the cases: one measurement can be hit by other processes
        log(f"[{device}] measuring the GEMM peak again ...")
        again = measure_peaks(device, args.quick, torch)
        peaks["again"] = again
        for key in ("gemm", "bandwidth"):
            if again.get(key) and (not peaks.get(key) or again[key] > peaks[key]):
                peaks[key] = again[key]
        report.apply_peaks([r for r in records if r["device"] == device], peaks)

    checks = report.check_targets(records)
    elapsed = time.perf_counter() - started
    load_after = load_average()
    print()
    print(f"xpnn {info['xpnn']} benchmarks, {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {info['cpu']}, {info['cores']} cores; numpy {info['numpy']} "
          f"({info['numpy_blas']}); torch {info['torch'] or 'n/a'}"
          + (f" ({torch_reason})" if torch_reason else
             f" ({info.get('torch_threads')} threads)"))
    print(f"BLAS: {machine.blas_text(info['blas_pools'])}")
    if info["forced_core"]:
        print(info["forced_core"])
    for device in devices:
        print(f"{device}: {info['devices'][device]}")
        print(peaks_summary(device, all_peaks[device]))
    for name, reason in skipped_devices.items():
        print(f"{name}: skipped: {reason}")
    print(f"{args.repeats} timed passes per implementation after a warm-up, interleaved, "
          f"{args.pause:g} s pause before each; median [min, max] per unit"
          + (" (--quick sizes)" if args.quick else ""))
    print()
    print(report.table(records))
    print()
    dp_lines = parallel.summary(records)
    if dp_lines:
        print("data-parallel (dp128):")
        print("\n".join(dp_lines))
        print()
    print("targets:")
    print(report.targets_text(checks))
    for line in report.peak_warnings(records, all_peaks):
        print(line)
    print()
    print(report.noise_text(noise_by_case, whole_run.share(), load_before, load_after))
    print(f"{elapsed:.0f} s; JSON: {args.json}")
    report.write_json(args.json, {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {"devices": devices, "cases": cases_by_device, "repeats": args.repeats,
                     "pause_s": args.pause, "quick": args.quick,
                     "max_noise": args.max_noise, "retries": args.retries,
                     "idle_wait_s": args.idle_wait},
        "skipped_devices": skipped_devices,
        "machine": info,
        "peaks": all_peaks,
        "load_average": {"before": load_before, "after": load_after},
        "other_cpu_share": {"run": whole_run.share(), **noise_by_case},
        "flop_convention": "matrix products, 6·N·Σ i·o per epoch (forward 2, backward 4 per "
                           "multiply-add of each layer); gflops_computed uses N·(6·Σ i·o − "
                           "2·i₁·o₁), without the first layer's dL/dx, which nobody computes",
        "results": records,
        "targets": checks,
        "elapsed_s": elapsed,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
