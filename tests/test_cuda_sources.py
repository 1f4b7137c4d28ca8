"""The CUDA sources of the CuPy backend compile, without a GPU (``pytest -m nvrtc``).

Every source of :mod:`xpnn.backends.cuda_kernels` is compiled by NVRTC with the options the
backend uses, for the A100 (sm_80) and H100/H200 (sm_90) architectures: to machine code
(cubin, what CuPy builds for the GPU it runs on) and to PTX, in which every kernel the
module lists must appear under its ``extern "C"`` name. NVRTC comes with CuPy's wheels
(``cupy-cuda12x`` and ``nvidia-cuda-nvrtc-cu12``, or ``cupy-cuda12x[ctk]``) and needs no
driver; where it is missing the tests are skipped with the reason.
"""

from __future__ import annotations

import re

import pytest
from xpnn.backends import cuda_kernels

pytestmark = pytest.mark.nvrtc

ARCHITECTURES = ("80", "90")


@pytest.fixture(scope="module")
def nvrtc():
    """CuPy's NVRTC bindings, with the library loaded (skip with the reason otherwise)."""
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError as error:
        pytest.skip(f"CuPy is not installed ({error}): pip install 'cupy-cuda12x>=14' "
                    "'nvidia-cuda-nvrtc-cu12==12.*' (the test extra brings them on Linux x86-64)")
    try:
        nvrtc.getVersion()
    except Exception as error:  # the shared library is missing or unusable
        pytest.skip(f"CuPy is installed but NVRTC cannot be loaded ({type(error).__name__}: "
                    f"{error}): pip install 'nvidia-cuda-nvrtc-cu12==12.*'")
    return nvrtc


def compile_source(nvrtc, name: str, target: str) -> tuple[bytes | str, str]:
    """Compile source ``name`` for ``target`` (``sm_90``: cubin, ``compute_90``: PTX);
    return the output and NVRTC's log. Raises with the log when compilation fails."""
    program = nvrtc.createProgram(cuda_kernels.SOURCES[name], f"{name}.cu", (), ())
    try:
        options = [*cuda_kernels.NVRTC_OPTIONS, f"--gpu-architecture={target}"]
        try:
            nvrtc.compileProgram(program, options)
        except nvrtc.NVRTCError as error:
            raise AssertionError(f"{name}.cu does not compile for {target}:\n"
                                 f"{nvrtc.getProgramLog(program)}") from error
        log = nvrtc.getProgramLog(program)
        output = nvrtc.getCUBIN(program) if target.startswith("sm_") else nvrtc.getPTX(program)
        return output, log
    finally:
        nvrtc.destroyProgram(program)


@pytest.fixture(params=ARCHITECTURES, ids=lambda arch: f"sm_{arch}")
def arch(request, nvrtc):
    if int(request.param) not in nvrtc.getSupportedArchs():
        pytest.skip(f"this NVRTC ({nvrtc.getVersion()}) cannot target sm_{request.param}")
    return request.param


@pytest.mark.parametrize("name", sorted(cuda_kernels.SOURCES))
def test_source_compiles_to_machine_code_without_warnings(nvrtc, name, arch):
    cubin, log = compile_source(nvrtc, name, f"sm_{arch}")
    assert len(cubin) > 0
    assert "warning" not in log.lower(), log


@pytest.mark.parametrize("name", sorted(cuda_kernels.SOURCES))
def test_ptx_defines_every_listed_kernel(nvrtc, name, arch):
    ptx, _ = compile_source(nvrtc, name, f"compute_{arch}")
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    entries = set(re.findall(r"\.entry\s+(\w+)\(", text))
    assert entries == set(cuda_kernels.KERNELS[name])


def test_no_fused_multiply_add_in_the_optimizer_updates(nvrtc):
    """The options keep a · b + c as two roundings (as the generic version computes it):
    the optimizer kernels contain no fma instruction."""
    ptx, _ = compile_source(nvrtc, "optimizers", "compute_90")
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert "fma." not in text


def test_every_kernel_name_is_listed_once():
    names = [name for kernels in cuda_kernels.KERNELS.values() for name in kernels]
    assert len(names) == len(set(names))
    assert set(cuda_kernels.KERNELS) == set(cuda_kernels.SOURCES)
