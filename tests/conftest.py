"""The cross-backend test matrix.

Every test that takes the ``lane`` fixture runs once per backend lane: ``numpy`` (CPU, the
reference), ``strict`` (array-api-strict on device1) and ``cupy`` (CUDA). A lane that cannot run
here is *skipped with the reason*. ``pytest --backend strict`` (repeatable) runs only the named
lanes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

# TF32 would make CuPy float32 matrix products disagree with the reference by ~1e-3.
os.environ["CUPY_TF32"] = "0"

from xpnn.backends.base import Backend

import xpnn
from xpnn.errors import DeviceUnavailableError

from .tolerances import PARITY

LANES = ("numpy", "strict", "cupy")
LANE_DEVICE = {"numpy": "cpu", "strict": "strict", "cupy": "cuda:0"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "nvrtc: compiles the CUDA sources with NVRTC and checks the CuPy backend's "
        "launches against them; needs CuPy and NVRTC, not a GPU (pytest -m nvrtc)")
    config.addinivalue_line(
        "markers", "mpi: runs programs under mpiexec -n 2 (test_distributed.py); needs the mpi "
        "extra (mpi4py and an MPI launcher), skipped with the reason without it")
    config.addinivalue_line(
        "markers", "slow: a long test (property-based searches, training runs, examples, "
        "subprocesses), left out by python -m xpnn test --quick")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend", action="append", choices=LANES, default=None,
        help="run the matrix on this lane only (repeat for several); default: every lane")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lane" in metafunc.fixturenames:
        selected = metafunc.config.getoption("backend") or list(LANES)
        metafunc.parametrize("lane", selected, indirect=True)


@dataclass
class Lane:
    """One backend under test, with helpers to move data and compare on the host."""

    name: str
    backend: Backend

    @property
    def device(self) -> str:
        return LANE_DEVICE[self.name]

    @property
    def xp(self) -> Any:
        return self.backend.xp

    def asarray(self, host: Any, dtype: str | None = None) -> Any:
        return self.backend.asarray(np.asarray(host), dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        if self.name == "numpy" and isinstance(array, np.generic):
            return np.asarray(array)  # NumPy reductions return scalars, not 0-d arrays
        assert self.backend.owns(array), (
            f"expected an array of the {self.name} lane on {self.backend.device}, "
            f"got {type(array).__module__}.{type(array).__name__}")
        return self.backend.to_host(array)

    def assert_close(self, actual: Any, expected: np.ndarray, dtype: str,
                     tolerances: dict[str, dict[str, float]] = PARITY, what: str = "") -> None:
        """``actual`` is on this lane, has ``dtype`` and matches the float64 reference."""
        host = self.to_host(actual)
        assert host.dtype == np.dtype(dtype), f"{what}: dtype {host.dtype}, expected {dtype}"
        assert host.shape == np.shape(expected), (
            f"{what}: shape {host.shape}, expected {np.shape(expected)}")
        np.testing.assert_allclose(host, expected, err_msg=f"{what} on {self.name}",
                                   **tolerances[dtype])


@pytest.fixture
def lane(request: pytest.FixtureRequest) -> Lane:
    name = request.param
    request.node.user_properties.append(("lane", name))  # per-lane counts of xpnn test
    try:
        backend = xpnn.get_backend(LANE_DEVICE[name])
    except DeviceUnavailableError as error:
        pytest.skip(f"{name} lane unavailable: {error}")
    return Lane(name, backend)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(params=["fused", "plain"])
def kernel_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The NumPy backend's kernels under test, both ways: ``fused`` (its fused kernels on
    arrays of any size, their parallel versions wherever the BLAS has several threads) and
    ``plain`` (switched off, as by ``XPNN_FAST_KERNELS=0``: its NumPy versions). Other
    lanes have one way: their ``plain`` run is skipped."""
    if "lane" in request.fixturenames and request.getfixturevalue("lane").name != "numpy":
        if request.param == "plain":
            pytest.skip("fused kernels are the NumPy backend's")
        return request.param
    from xpnn.backends import fused

    if request.param == "fused" and fused.UNAVAILABLE is not None:
        pytest.skip(f"fused kernels unavailable: {fused.UNAVAILABLE}")
    backend = xpnn.get_backend("cpu")
    monkeypatch.setattr(fused.Kernel, "PARALLEL_FROM", 0)
    monkeypatch.setattr(backend, "fast_kernels", request.param == "fused")
    monkeypatch.setattr(backend, "FUSED_FROM", 0)
    return request.param
