"""The machine: CPU model, cores, library versions, BLAS, and the float32 GEMM peak."""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any

import numpy as np


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags of interest (avx2, avx512f, ...) listed in /proc/cpuinfo."""
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def numpy_blas() -> str:
    """NumPy's BLAS library, name and version, from ``numpy.show_config``."""
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:
        return "unknown"


def blas_pools() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process, as ``threadpoolctl`` reports them: name
    (``internal_api``), version, the kernel it chose (``architecture``: OpenBLAS's core
    type, such as Haswell or SkylakeX), thread count and threading layer."""
    import threadpoolctl

    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{key: pool.get(key) for key in keys}
            for pool in threadpoolctl.threadpool_info() if pool.get("user_api") == "blas"]


def blas_text(pools: list[dict[str, Any]]) -> str:
    """The BLAS pools in a few words: ``openblas 0.3.31 (kernel Haswell, 2 threads)``."""
    return "; ".join(f"{pool['internal_api']} {pool['version']} (kernel {pool['architecture']}, "
                     f"{pool['num_threads']} threads)" for pool in pools) or "no BLAS found"


def forced_core_warning() -> str | None:
    """A warning when the environment forces OpenBLAS to another kernel than the one it
    would pick for this CPU (``OPENBLAS_CORETYPE``; ``OPENBLAS_L2_SIZE`` changes its
    blocking), else None."""
    forced = {key: os.environ[key] for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
              if key in os.environ}
    if not forced:
        return None
    settings = ", ".join(f"{key}={value}" for key, value in forced.items())
    return (f"warning: {settings} forces OpenBLAS's kernel choice (an older core type): its "
            "products are slower than this CPU allows; for benchmarks run with "
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")


def describe(torch_module: Any | None, torch_reason: str | None) -> dict[str, Any]:
    """The machine and library versions as JSON-compatible values."""
    import xpnn

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "blas_pools": blas_pools(),
        "forced_core": forced_core_warning(),
        "xpnn": xpnn.__version__,
        "torch": None,
        "thread_env": {key: os.environ[key] for key in
                       ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "XPNN_FAST_KERNELS")
                       if key in os.environ},
    }
    if torch_module is not None:
        info["torch"] = torch_module.__version__
        info["torch_threads"] = torch_module.get_num_threads()
        info["torch_cuda"] = bool(torch_module.cuda.is_available())
    else:
        info["torch_missing"] = torch_reason
    return info


def gemm_gflops(matmul: Any, make: Any, sync: Any, size: int, repeats: int) -> float:
    """Best-of-``repeats`` GFLOP/s of an (size × size) @ (size × size) float32 product,
    counted as 2·size³ floating-point operations."""
    a, b = make(size, 0), make(size, 1)
    out = matmul(a, b)  # warm-up (thread pool start, page faults)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = matmul(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    del out
    return 2.0 * size**3 / best / 1e9


def numpy_gemm_peak(sizes: tuple[int, ...], repeats: int) -> dict[str, float]:
    """NumPy float32 GEMM GFLOP/s for each size (key ``str(size)``) and their maximum
    (key ``"peak"``), which is the reference for the fractions of peak."""
    rng = np.random.default_rng(0)

    def make(size: int, _: int) -> np.ndarray:
        return rng.random((size, size), dtype=np.float32)

    rates = {str(size): gemm_gflops(np.matmul, make, lambda: None, size, repeats)
             for size in sizes}
    rates["peak"] = max(rates.values())
    return rates


def torch_gemm_peak(torch: Any, device: str, sizes: tuple[int, ...],
                    repeats: int) -> dict[str, float]:
    """The same measurement with PyTorch on ``device`` (for information: its BLAS may be a
    different library from NumPy's)."""
    generator = torch.Generator(device="cpu").manual_seed(0)

    def make(size: int, _: int) -> Any:
        return torch.rand((size, size), generator=generator, dtype=torch.float32).to(device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    rates = {str(size): gemm_gflops(torch.matmul, make, sync, size, repeats) for size in sizes}
    rates["peak"] = max(rates.values())
    return rates


def cupy_gemm_peak(sizes: tuple[int, ...], repeats: int) -> dict[str, float]:
    """The float32 GEMM peak of the current CUDA device through CuPy (TF32 as CuPy is
    configured: set ``CUPY_TF32=0`` for full float32)."""
    import cupy

    rng = np.random.default_rng(0)

    def make(size: int, _: int) -> Any:
        return cupy.asarray(rng.random((size, size), dtype=np.float32))

    def sync() -> None:
        cupy.cuda.Device().synchronize()

    rates = {str(size): gemm_gflops(cupy.matmul, make, sync, size, repeats) for size in sizes}
    rates["peak"] = max(rates.values())
    return rates


def cupy_copy_bandwidth(megabytes: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` GB/s of copying a ``megabytes`` float32 array into another on the
    current CUDA device (bytes read plus bytes written): the reference for the Adam step's
    share of the memory bandwidth on a GPU."""
    import cupy

    count = megabytes * 2**20 // 4
    source = cupy.ones(count, dtype=cupy.float32)
    target = cupy.empty_like(source)
    device = cupy.cuda.Device()
    cupy.copyto(target, source)
    device.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        cupy.copyto(target, source)
        device.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2.0 * source.nbytes / best / 1e9


def copy_bandwidth(megabytes: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` GB/s of copying a ``megabytes`` float32 array into another
    (bytes read plus bytes written): the memory-bound reference for optimizer steps."""
    count = megabytes * 2**20 // 4
    source = np.ones(count, dtype=np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2.0 * source.nbytes / best / 1e9


class CpuMonitor:
    """How much of the machine other processes used between ``start`` and ``share``: the
    busy time in /proc/stat minus this process's own CPU time, over wall time × cores.

    A noise indicator: timings taken while other processes used a sizeable share (more than
    a few per cent) of a 2-core machine are unreliable, BLAS-threaded ones especially.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float | None, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        busy = None
        try:
            with open("/proc/stat", encoding="utf-8") as stat:
                values = [int(v) for v in stat.readline().split()[1:9]]
            busy = (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            pass
        return time.perf_counter(), busy, own.ru_utime + own.ru_stime

    def share(self, helpers: float = 0.0) -> float | None:
        """Other processes' share of all cores since construction (None if unknown);
        ``helpers`` CPU seconds of processes working for this one (the ranks of a
        data-parallel benchmark) do not count as others'."""
        wall_0, busy_0, own_0 = self.start
        wall_1, busy_1, own_1 = self._sample()
        if busy_0 is None or busy_1 is None or wall_1 <= wall_0:
            return None
        other = (busy_1 - busy_0) - (own_1 - own_0) - helpers
        return min(1.0, max(0.0, other / ((wall_1 - wall_0) * (os.cpu_count() or 1))))
