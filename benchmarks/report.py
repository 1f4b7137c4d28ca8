"""Turning timings into result records, an aligned text table, the targets, and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.cases import DIAGNOSTICS, HAND, HAND_BLAS, TORCH, XPNN, Case
from benchmarks.timing import Timing

Record = dict[str, Any]

#: The issue's targets: (device type, case, quantity, bound, "<=" or ">=").
TARGETS = (
    ("cpu", "mlp128", "vs_torch", 1.0, "<="),
    ("cpu", "mlp128", "fraction_of_peak", 0.60, ">="),
    ("cpu", "mlp128", "vs_blas", 1.25, "<="),
    ("cpu", "mlp32", "vs_blas", 1.30, "<="),
    ("cpu", "tiny", "vs_torch", 0.3, "<="),
    ("cpu", "tiny", "vs_numpy", 1.0, "<="),
    ("cpu", "adam10m", "fraction_of_peak", 0.70, ">="),
    ("cuda", "mlp128", "vs_torch", 1.2, "<="),
    ("cpu", "lenet", "vs_torch", 1.0, "<="),
    ("cuda", "lenet", "vs_torch", 1.5, "<="),
    ("cuda", "lenet256", "vs_torch", 1.5, "<="),
    ("cpu", "transformer", "vs_torch", 1.3, "<="),
    ("cpu", "dp128", "throughput_vs_one_process", 0.9, ">="),
)
#: The row a case's target is checked on, where it is not the xpnn row.
TARGET_IMPL = {"dp128": "2 ranks x 1 thread"}


def records_for(device: str, case: Case, timings: dict[str, Timing]) -> list[Record]:
    """One record per implementation of ``case``: times per unit (median, min, max),
    achieved rate, and the ratios to PyTorch and hand NumPy (see :func:`apply_peaks` for
    the fraction of peak)."""
    medians = {name: t.median / case.per_pass for name, t in timings.items() if t.ok}
    references = {name: medians.get(name) for name in (TORCH, HAND, HAND_BLAS)}
    records = []
    for name, timing in timings.items():
        record: Record = {"device": device, "case": case.name, "title": case.title,
                          "impl": name, "unit": case.unit, "status": timing.status}
        if timing.ok:
            per_unit = [seconds / case.per_pass for seconds in timing.times]
            median = medians[name]
            record.update({
                "seconds_per_pass": timing.times,
                "other_cpu_share_per_pass": timing.noise,
                "discarded_passes": timing.discarded,
                "units_per_pass": case.per_pass,
                "median": median, "min": min(per_unit), "max": max(per_unit),
            })
            if name not in DIAGNOSTICS:
                for key, reference in (("vs_torch", TORCH), ("vs_numpy", HAND),
                                       ("vs_blas", HAND_BLAS)):
                    base = references[reference]
                    record[key] = None if base is None or name == reference else median / base
            pass_seconds = timing.median
            if case.flops:
                record["gflops"] = case.flops / pass_seconds / 1e9
                record["gflops_computed"] = case.flops_computed / pass_seconds / 1e9
            if case.bytes:
                record["gbytes_per_s"] = case.bytes / pass_seconds / 1e9
            if case.samples:
                record["samples_per_s"] = case.samples / pass_seconds
        records.append(record)
    return records


def apply_peaks(records: list[Record], peaks: dict[str, Any]) -> None:
    """Set each record's ``fraction_of_peak``: its GFLOP/s over the GEMM peak, or its GB/s
    over the copy bandwidth (None where there is no rate or no peak)."""
    for record in records:
        for rate_key, peak_key in (("gflops", "gemm"), ("gbytes_per_s", "bandwidth")):
            if rate_key in record:
                peak = peaks.get(peak_key)
                record["fraction_of_peak"] = record[rate_key] / peak if peak else None


def format_seconds(seconds: float) -> str:
    """4 significant digits in s, ms or µs."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            decimals = max(0, 3 - math.floor(math.log10(value))) if value > 0 else 0
            return f"{value:.{min(decimals, 3)}f} {unit}"
    raise AssertionError("unreachable")


def _ratio(value: float | None, is_reference: bool) -> str:
    if is_reference:
        return ""
    return "—" if value is None else f"{value:.2f}"


def _noise(shares: list[float | None]) -> str:
    known = [share for share in shares if share is not None]
    return f"{100 * max(known):.0f} %" if known else "?"


def table(records: list[Record]) -> str:
    """An aligned text table, one row per (device, case, implementation); ``others`` is the
    most that other processes used of the cores during any of the row's timed passes."""
    header = ("device", "case", "impl", "per", "median", "min", "max", "rate", "of peak",
              "×torch", "×numpy", "others")
    rows: list[tuple[str, ...]] = []
    for record in records:
        lead = (record["device"], record["case"])
        if record["status"] != "ok":
            rows.append((*lead, record["impl"], record["unit"], record["status"]))
            continue
        if "gflops" in record:
            rate = f"{record['gflops']:.1f} GF/s"
        elif "gbytes_per_s" in record:
            rate = f"{record['gbytes_per_s']:.1f} GB/s"
        elif "samples_per_s" in record:
            rate = f"{record['samples_per_s']:,.0f} sa/s"
        else:
            rate = ""
        fraction = record.get("fraction_of_peak")
        rows.append((
            *lead, record["impl"], record["unit"], format_seconds(record["median"]),
            format_seconds(record["min"]), format_seconds(record["max"]), rate,
            "" if fraction is None else f"{100 * fraction:.0f} %",
            _ratio(record.get("vs_torch"), record["impl"] in (TORCH, *DIAGNOSTICS)),
            _ratio(record.get("vs_numpy"), record["impl"] in (HAND, *DIAGNOSTICS)),
            _noise(record.get("other_cpu_share_per_pass", [])),
        ))
    full = [row for row in rows if len(row) == len(header)]
    widths = [max(len(row[i]) for row in [header, *full]) for i in range(len(header))]
    right = {4, 5, 6, 7, 8, 9, 10, 11}

    def line(row: tuple[str, ...]) -> str:
        if len(row) < len(header):  # an n/a or error row: the reason runs on
            return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) \
                + "  " + row[-1]
        return "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                         for i, cell in enumerate(row)).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, rows)])


def check_targets(records: list[Record]) -> list[Record]:
    """The issue's targets against the xpnn rows measured in this run."""
    checks = []
    for device_type, case, quantity, bound, sense in TARGETS:
        for record in records:
            if (record.get("impl") != TARGET_IMPL.get(case, XPNN) or record["case"] != case
                    or not record["device"].startswith(device_type)
                    or record["status"] != "ok"):
                continue
            value = record.get(quantity)
            met = None if value is None else (value <= bound if sense == "<=" else value >= bound)
            checks.append({"device": record["device"], "case": case, "quantity": quantity,
                           "value": value, "bound": bound, "sense": sense, "met": met})
    return checks


def targets_text(checks: list[Record]) -> str:
    """The target checks as lines of text."""
    names = {"vs_torch": "xpnn / PyTorch time", "vs_numpy": "xpnn / hand NumPy time",
             "vs_blas": "xpnn / numpy BLAS only", "fraction_of_peak": "xpnn share of the peak",
             "throughput_vs_one_process": "2 ranks / 1 process samples/s"}
    lines = []
    for check in checks:
        value, bound = check["value"], check["bound"]
        percent = check["quantity"] == "fraction_of_peak"
        shown = ("n/a" if value is None else f"{100 * value:.0f} %" if percent
                 else f"{value:.2f}")
        limit = f"{100 * bound:.0f} %" if percent else f"{bound:g}"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
        lines.append(f"  {check['device']:<6} {check['case']:<8} "
                     f"{names[check['quantity']]:<28} {shown:>6}  {check['sense']} "
                     f"{limit:<5}  {verdict}")
    return "\n".join(lines) if lines else "  (no target applies to what was run)"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


#: Above this share of the cores used by other processes, a case's timings are flagged.
NOISE_WARNING = 0.05


def noise_text(by_case: dict[str, float | None], whole: float | None,
               load_before: list[float] | None, load_after: list[float] | None) -> str:
    """What other processes used of the machine while each case ran, with a warning when it
    is enough to distort the figures."""
    def percent(share: float | None) -> str:
        return "?" if share is None else f"{100 * share:.0f} %"

    parts = ", ".join(f"{name} {percent(share)}" for name, share in by_case.items())
    text = (f"CPU used by other processes: {percent(whole)} of the cores over the run"
            + (f" ({parts})" if parts else "")
            + f"; load average before {load_before}, after {load_after}")
    noisy = [name for name, share in by_case.items()
             if share is not None and share > NOISE_WARNING]
    if noisy:
        text += (f"\nWARNING: other processes used more than {100 * NOISE_WARNING:.0f} % of "
                 f"the cores during {', '.join(noisy)}: those figures are unreliable; "
                 "re-run on an idle machine")
    return text


def peak_warnings(records: list[Record], peaks: dict[str, dict[str, Any]]) -> list[str]:
    """Warnings for rows that computed matrix products faster than the measured GEMM peak
    allows: then the peak measurement itself was slowed down (by other processes or the
    host), and every "of peak" figure of that device is too high."""
    warnings = []
    for record in records:
        peak = peaks.get(record["device"], {}).get("gemm")
        rate = record.get("gflops_computed")
        if peak and rate and rate > peak:
            warnings.append(
                f"WARNING: {record['device']} {record['case']} {record['impl']} computed "
                f"{rate:.0f} GFLOP/s of products, above the measured GEMM peak "
                f"({peak:.0f}): the peak measurement was disturbed; the 'of peak' column "
                "is too high for this device")
    return warnings
