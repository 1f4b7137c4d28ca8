"""The ``xpnn`` command (also ``python -m xpnn``).

- ``xpnn info``: versions, the backends found and their devices, the MPI library and the
  size of the MPI job (``mpiexec -n N python -m xpnn info``);
- ``xpnn export model.xpnn model.onnx [--opset N] [--dtype float32] [--fixed-time]``: a
  saved model (or checkpoint) as an ONNX file, through :func:`xpnn.onnx.export`;
- ``xpnn test [--backend NAME ...] [--quick] [-- PYTEST ARGS]``: the cross-backend test
  matrix against the installed package (:mod:`xpnn.selftest`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def info() -> str:
    """A report of versions, backends and devices, one line each."""
    import xpnn
    from xpnn import distributed
    from xpnn.device import Device, get_backend, get_device
    from xpnn.errors import DeviceUnavailableError

    lines = [
        f"xpnn {xpnn.__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"numpy {_version('numpy')}, array-api-compat {_version('array-api-compat')}, "
        f"array-api-strict {_version('array-api-strict')}",
        "backends:",
    ]
    for label, dev in (("numpy ", Device("cpu")), ("strict", Device("strict"))):
        try:
            lines.append(f"  {label} available   {get_backend(dev).describe()}")
        except DeviceUnavailableError as error:
            lines.append(f"  {label} unavailable {error}")
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount() if cupy.is_available() else 0
    except Exception:
        count = 0
    if count:
        for index in range(count):
            lines.append(f"  cupy   available   {get_backend(Device('cuda', index)).describe()}")
    else:
        try:
            get_backend(Device("cuda", 0))
        except DeviceUnavailableError as error:
            lines.append(f"  cupy   unavailable {error}")
    lines.append(f"mpi: {distributed.describe()}")
    try:
        lines.append(f"default device: {get_device()}")
    except (DeviceUnavailableError, ValueError) as error:
        lines.append(f"default device: error: {error}")
    return "\n".join(lines)


def export(source: str, target: str, *, opset: int, dtype: str | None,
           dynamic_time: bool | None, format: str | None = None) -> str:
    """Load the model saved at ``source`` (on the CPU) and export it to ``target``; return a
    one-line report."""
    import xpnn
    from xpnn import onnx as onnx_export

    onnx_export.check_format(target, format)
    model = xpnn.load(source, device="cpu")
    onnx_export.export(model, target, opset=opset, dtype=dtype, dynamic_time=dynamic_time)
    return (f"exported model '{model.name}' ({len(model.layers)} layers, "
            f"{model.count_params():,} parameters) to {target} "
            f"(ONNX opset {opset}, IR version {onnx_export.IR_VERSIONS[opset]})")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from xpnn.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    parser = argparse.ArgumentParser(prog="xpnn", description="xpnn's command line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    commands.add_parser("info", help="versions, backends and devices")
    exporter = commands.add_parser(
        "export", help="export a saved model to ONNX",
        description="Export a model saved by model.save (or a checkpoint) to an ONNX file.")
    exporter.add_argument("source", help="the saved model, e.g. model.xpnn")
    exporter.add_argument("target", help="the ONNX file to write, e.g. model.onnx")
    exporter.add_argument("--format", default=None, help="onnx (default: from the suffix)")
    exporter.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                          choices=range(MIN_OPSET, MAX_OPSET + 1), metavar="N",
                          help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default "
                               f"{DEFAULT_OPSET})")
    exporter.add_argument("--dtype", choices=["float32", "float64"], default=None,
                          help="the graph's float type (default: the model's)")
    time = exporter.add_mutually_exclusive_group()
    time.add_argument("--dynamic-time", dest="dynamic_time", action="store_const", const=True,
                      default=None, help="demand a symbolic time axis")
    time.add_argument("--fixed-time", dest="dynamic_time", action="store_const", const=False,
                      help="keep the time length the model was built for")
    tester = commands.add_parser(
        "test", help="run the cross-backend test matrix against the installed package",
        description="Run the test matrix (every layer, loss, optimizer and kernel on every "
                    "backend lane) against the installed xpnn; needs pytest. Arguments after "
                    "-- go to pytest.")
    tester.add_argument("--backend", action="append", choices=["numpy", "strict", "cupy"],
                        help="a lane to run (repeatable; default: every lane)")
    tester.add_argument("--quick", action="store_true", help="leave out the slow tests")
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.command == "info":
        print(info())
        return 0
    if args.command == "test":
        from xpnn.selftest import test

        return test(args.backend, quick=args.quick, pytest_args=extra)
    from xpnn.errors import XpnnError

    try:
        print(export(args.source, args.target, opset=args.opset, dtype=args.dtype,
                     dynamic_time=args.dynamic_time, format=args.format))
    except (XpnnError, ValueError, ImportError, OSError) as error:
        print(f"xpnn export: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
