"""``python -m xpnn info``: versions, the backends found and their devices."""

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
    try:
        lines.append(f"default device: {get_device()}")
    except (DeviceUnavailableError, ValueError) as error:
        lines.append(f"default device: error: {error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m xpnn", description=__doc__)
    parser.add_argument("command", choices=["info"], help="what to do")
    parser.parse_args(argv)
    print(info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
