"""Device selection: parsing, precedence, thread-local ``with`` blocks, ``auto`` and CUDA errors.

Everything here runs without a GPU: the ``cpu`` and ``strict`` devices stand in for real ones,
and CUDA failures are produced with a fake ``cupy`` module in ``sys.modules``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

import xpnn
from xpnn import Device, DeviceError, DeviceUnavailableError, XpnnError

devmod = sys.modules["xpnn.device"]  # ``xpnn.device`` is the context-manager function

pytest.importorskip("array_api_strict")

CPU = Device("cpu")
STRICT = Device("strict")


@pytest.fixture(autouse=True)
def clean_device_state(monkeypatch):
    """No XPNN_DEVICE, no process default and an empty ``with`` stack, restored afterwards."""
    monkeypatch.delenv("XPNN_DEVICE", raising=False)
    monkeypatch.setattr(devmod, "_process_default", None)
    saved_stack = list(devmod._stack())
    devmod._stack().clear()
    yield
    stack = devmod._stack()
    leaked = list(stack)
    stack[:] = saved_stack
    assert not leaked, f"a test left {leaked} on the device stack"


@pytest.fixture
def fresh_backends(monkeypatch):
    """An empty backend cache for this test only, so fake backends never leak out."""
    cache: dict = {}
    monkeypatch.setattr(devmod, "_backends", cache)
    monkeypatch.setattr(devmod, "_auto_reported", set())
    return cache


@pytest.fixture
def no_cupy(monkeypatch, fresh_backends):
    """CuPy cannot be imported, even on a machine where it is installed."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    return fresh_backends


def fake_cupy(monkeypatch, *, available=True, count=1):
    """Install a fake ``cupy`` whose ``is_available()`` and device count are given."""

    def is_available():
        if isinstance(available, BaseException):
            raise available
        return available

    def get_device_count():
        return count

    fake = types.SimpleNamespace(
        __version__="0.0-fake",
        is_available=is_available,
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count)),
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    return fake


def _model(**kwargs):
    return xpnn.Sequential([xpnn.Dense(2)], seed=0, **kwargs)


# -- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ("cpu", Device("cpu", 0)),
    ("cuda", Device("cuda", 0)),
    ("cuda:0", Device("cuda", 0)),
    ("cuda:1", Device("cuda", 1)),
    ("cuda:12", Device("cuda", 12)),
    ("strict", Device("strict", 0)),
    ("CPU", CPU),
    ("  Strict\n", STRICT),
    ("CUDA:3", Device("cuda", 3)),
    (" cuda:2 ", Device("cuda", 2)),
])
def test_parse_valid(spec, expected):
    parsed = Device.parse(spec)
    assert parsed == expected
    assert (parsed.type, parsed.index) == (expected.type, expected.index)


def test_parse_device_object_is_returned_as_is():
    dev = Device("cuda", 3)
    assert Device.parse(dev) is dev


@pytest.mark.parametrize(("dev", "text"), [
    (CPU, "cpu"), (STRICT, "strict"), (Device("cuda"), "cuda:0"), (Device("cuda", 5), "cuda:5"),
])
def test_str_round_trips(dev, text):
    assert str(dev) == text
    assert Device.parse(text) == dev


def test_devices_are_hashable_values():
    assert Device.parse("cuda:1") == Device("cuda", 1)
    assert Device.parse("cuda:1") != Device("cuda", 0)
    assert len({Device.parse("cuda"), Device("cuda", 0), Device.parse("CUDA:0")}) == 1


@pytest.mark.parametrize("spec", [
    "gpu", "cuda:-1", "cuda:x", "", "   ", "cpu:0", "cpu:1", "strict:0", "cuda:1.0",
    "cuda: 1", "cuda :1", "cuda:1:2", "auto",
])
def test_parse_invalid_raises_value_error(spec):
    with pytest.raises(ValueError, match=r"cannot parse device .*expected 'cpu', 'cuda'") as info:
        Device.parse(spec)
    assert repr(spec) in str(info.value)


@pytest.mark.parametrize("spec", [None, 0, 1.0, ["cpu"]])
def test_parse_non_string_raises_type_error(spec):
    with pytest.raises(TypeError, match="a device is a string like 'cpu' or 'cuda:0'"):
        Device.parse(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:-1", "cuda:x", ""])
def test_public_entry_points_reject_bad_specs(spec):
    with pytest.raises(ValueError, match="cannot parse device"):
        xpnn.get_device(spec)
    with pytest.raises(ValueError, match="cannot parse device"):
        xpnn.set_device(spec)
    with pytest.raises(ValueError, match="cannot parse device"), xpnn.device(spec):
        pass  # pragma: no cover - never entered
    with pytest.raises(ValueError, match="cannot parse device"):
        _model(device=spec)


def test_none_means_default_except_for_the_with_block():
    assert xpnn.get_device(None) == CPU
    assert _model(device=None).device == CPU
    with pytest.raises(TypeError, match="a device is a string"), xpnn.device(None):
        pass  # pragma: no cover - never entered


@pytest.mark.parametrize(("kind", "index", "match"), [
    ("gpu", 0, "unknown device type 'gpu'"),
    ("CPU", 0, "unknown device type 'CPU'"),
    ("cuda", -1, "device 'cuda' has no ordinal -1"),
    ("cpu", 1, "device 'cpu' has no ordinal 1"),
    ("strict", 2, "device 'strict' has no ordinal 2"),
])
def test_device_constructor_validates(kind, index, match):
    with pytest.raises(ValueError, match=match):
        Device(kind, index)


@pytest.mark.parametrize("spec", ["cuda:", "cpu:", "strict:"])
def test_parse_rejects_trailing_colon(spec):
    with pytest.raises(ValueError, match="cannot parse device"):
        Device.parse(spec)


@pytest.mark.parametrize("spec", ["cuda:²", "cuda:١"])
def test_parse_rejects_non_ascii_digits(spec):
    with pytest.raises(ValueError, match="cannot parse device"):
        Device.parse(spec)


# -- precedence ------------------------------------------------------------------------------

def test_default_is_cpu():
    assert xpnn.get_device() == CPU
    assert _model().device == CPU
    assert xpnn.get_backend().device == CPU


@pytest.mark.parametrize("value", ["strict", "  STRICT ", "Strict\n"])
def test_env_var_beats_builtin_default(monkeypatch, value):
    monkeypatch.setenv("XPNN_DEVICE", value)
    assert xpnn.get_device() == STRICT
    assert _model().device == STRICT


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_env_var_is_ignored(monkeypatch, value):
    monkeypatch.setenv("XPNN_DEVICE", value)
    assert xpnn.get_device() == CPU


def test_env_var_is_read_at_each_call(monkeypatch):
    assert xpnn.get_device() == CPU
    monkeypatch.setenv("XPNN_DEVICE", "strict")
    assert xpnn.get_device() == STRICT
    monkeypatch.delenv("XPNN_DEVICE")
    assert xpnn.get_device() == CPU


def test_bad_env_var_names_the_variable(monkeypatch):
    monkeypatch.setenv("XPNN_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"XPNN_DEVICE='gpu' is not a device: cannot parse"):
        xpnn.get_device()
    with pytest.raises(ValueError, match=r"XPNN_DEVICE='gpu'"):
        _model()


def test_bad_env_var_is_not_consulted_when_something_else_decides(monkeypatch):
    monkeypatch.setenv("XPNN_DEVICE", "gpu")
    assert xpnn.get_device("cpu") == CPU
    assert _model(device="strict").device == STRICT
    with xpnn.device("strict"):
        assert xpnn.get_device() == STRICT
    xpnn.set_device("strict")
    assert xpnn.get_device() == STRICT


def test_env_var_cuda_without_cupy_is_unavailable(monkeypatch, no_cupy):
    monkeypatch.setenv("XPNN_DEVICE", "cuda")
    with pytest.raises(DeviceUnavailableError, match="CuPy, which is not installed"):
        xpnn.get_device()


@pytest.mark.parametrize(("env", "default"), [("cpu", "strict"), ("strict", "cpu")])
def test_set_device_beats_env_var(monkeypatch, env, default):
    monkeypatch.setenv("XPNN_DEVICE", env)
    xpnn.set_device(default)
    assert xpnn.get_device() == Device.parse(default)
    assert _model().device == Device.parse(default)
    xpnn.set_device(None)  # clearing it hands the decision back to the env var
    assert xpnn.get_device() == Device.parse(env)


def test_set_device_accepts_device_objects_and_is_process_wide():
    xpnn.set_device(STRICT)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(xpnn.get_device()))
    thread.start()
    thread.join(5)
    assert seen == [STRICT]


def test_failed_set_device_keeps_the_previous_default():
    xpnn.set_device("strict")
    with pytest.raises(ValueError):
        xpnn.set_device("gpu")
    assert xpnn.get_device() == STRICT


@pytest.mark.parametrize(("outer", "inner"), [("cpu", "strict"), ("strict", "cpu")])
def test_with_block_beats_set_device(monkeypatch, outer, inner):
    monkeypatch.setenv("XPNN_DEVICE", outer)
    xpnn.set_device(outer)
    with xpnn.device(inner) as dev:
        assert dev == Device.parse(inner)
        assert xpnn.get_device() == Device.parse(inner)
        assert _model().device == Device.parse(inner)
        assert xpnn.get_backend().device == Device.parse(inner)
    assert xpnn.get_device() == Device.parse(outer)


@pytest.mark.parametrize(("context", "explicit"), [("cpu", "strict"), ("strict", "cpu")])
def test_explicit_argument_beats_everything(monkeypatch, context, explicit):
    monkeypatch.setenv("XPNN_DEVICE", context)
    xpnn.set_device(context)
    with xpnn.device(context):
        assert xpnn.get_device(explicit) == Device.parse(explicit)
        assert xpnn.get_device(Device.parse(explicit)) == Device.parse(explicit)
        assert _model(device=explicit).device == Device.parse(explicit)
        assert xpnn.get_backend(explicit).device == Device.parse(explicit)


def test_backends_are_cached_per_device():
    assert xpnn.get_backend("strict") is xpnn.get_backend(STRICT)
    assert xpnn.get_backend("cpu") is xpnn.get_backend(" CPU ")
    assert xpnn.get_backend("cpu") is not xpnn.get_backend("strict")


# -- the with stack ----------------------------------------------------------------------------

def test_nesting_restores_the_outer_device():
    with xpnn.device("strict"):
        assert xpnn.get_device() == STRICT
        with xpnn.device("cpu"):
            assert xpnn.get_device() == CPU
            with xpnn.device("strict"):
                assert xpnn.get_device() == STRICT
            assert xpnn.get_device() == CPU
        assert xpnn.get_device() == STRICT
    assert xpnn.get_device() == CPU
    assert devmod._stack() == []


def test_nesting_restores_the_outer_device_when_the_body_raises():
    with xpnn.device("strict"):
        with pytest.raises(KeyError), xpnn.device("cpu"):
            assert xpnn.get_device() == CPU
            raise KeyError("boom")
        assert xpnn.get_device() == STRICT
    with pytest.raises(RuntimeError, match="outer"), xpnn.device("strict"):
        raise RuntimeError("outer")
    assert xpnn.get_device() == CPU
    assert devmod._stack() == []


def test_a_failed_with_block_pushes_nothing(no_cupy):
    with xpnn.device("strict"):
        with pytest.raises(DeviceUnavailableError), xpnn.device("cuda:0"):
            pass  # pragma: no cover - never entered
        assert xpnn.get_device() == STRICT
        assert devmod._stack() == [STRICT]


def test_with_block_is_not_seen_by_another_thread():
    entered, checked = threading.Event(), threading.Event()
    seen: dict[str, Device] = {}
    errors: list[BaseException] = []

    def other() -> None:
        try:
            assert entered.wait(5)
            seen["other, during"] = xpnn.get_device()
            seen["other model"] = _model().device
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            checked.set()

    thread = threading.Thread(target=other)
    thread.start()
    with xpnn.device("strict"):
        entered.set()
        assert checked.wait(5)
        seen["main, during"] = xpnn.get_device()
    thread.join(5)
    assert not errors
    assert seen == {"other, during": CPU, "other model": CPU, "main, during": STRICT}


def test_with_block_in_a_thread_does_not_leak_to_the_main_thread():
    entered, release = threading.Event(), threading.Event()
    seen: dict[str, Device] = {}
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with xpnn.device("strict"):
                seen["thread"] = xpnn.get_device()
                entered.set()
                assert release.wait(5)
            seen["thread after"] = xpnn.get_device()
        except BaseException as error:
            errors.append(error)
            entered.set()

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert entered.wait(5)
        seen["main"] = xpnn.get_device()
        seen["main model"] = _model().device
    finally:
        release.set()
        thread.join(5)
    assert not errors
    assert seen == {"thread": STRICT, "main": CPU, "main model": CPU, "thread after": CPU}


# -- a model's device is fixed at creation -------------------------------------------------------

def _parameter_devices(model):
    model.predict(np.ones((3, 4), np.float32))  # builds the model
    params = model.parameters()
    assert params
    return {xpnn.get_backend("strict").owns(p.value) for p in params}


def test_model_device_is_fixed_when_changing_the_process_default():
    model = _model()
    xpnn.set_device("strict")
    assert model.device == CPU
    assert _parameter_devices(model) == {False}
    assert all(isinstance(p.value, np.ndarray) for p in model.parameters())
    assert _model().device == STRICT


def test_model_device_is_fixed_after_leaving_the_with_block(monkeypatch):
    with xpnn.device("strict"):
        model = _model()
    monkeypatch.setenv("XPNN_DEVICE", "cpu")
    assert model.device == STRICT
    assert _parameter_devices(model) == {True}


def test_model_created_before_a_with_block_stays_put():
    model = _model()
    with xpnn.device("strict"):
        assert model.device == CPU
        assert _parameter_devices(model) == {False}


def test_model_to_moves_it_explicitly():
    model = _model()
    _parameter_devices(model)
    assert model.to("strict") is model
    assert model.device == STRICT
    assert {xpnn.get_backend("strict").owns(p.value) for p in model.parameters()} == {True}


# -- auto ----------------------------------------------------------------------------------------

AUTO_NO_CUPY = ("xpnn: device 'auto' chose cpu (CUDA needs CuPy, which is not installed: "
                "install CuPy with pip install 'xpnn[cuda12]'")


def test_auto_without_cupy_falls_back_to_cpu_and_says_why(capsys, no_cupy):
    assert xpnn.get_device("auto") == CPU
    err = capsys.readouterr().err
    assert err.startswith(AUTO_NO_CUPY)
    assert err.count("\n") == 1
    assert capsys.readouterr().out == ""


def test_auto_reports_its_choice_once(capsys, no_cupy):
    assert xpnn.get_device(" AUTO ") == CPU
    assert AUTO_NO_CUPY in capsys.readouterr().err
    assert _model(device="auto").device == CPU
    with xpnn.device("auto") as dev:
        assert dev == CPU
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["set_device", "env"])
def test_auto_as_default(capsys, monkeypatch, no_cupy, where):
    if where == "env":
        monkeypatch.setenv("XPNN_DEVICE", "auto")
    else:
        xpnn.set_device("auto")
    assert xpnn.get_device() == CPU
    assert _model().device == CPU
    assert capsys.readouterr().err.count("device 'auto' chose cpu") == 1


def test_auto_without_a_driver_names_the_reason(capsys, monkeypatch, fresh_backends):
    fake_cupy(monkeypatch, available=False)
    assert xpnn.get_device("auto") == CPU
    err = capsys.readouterr().err
    assert err == ("xpnn: device 'auto' chose cpu (CUDA is not usable here: CuPy is installed "
                   "but finds no NVIDIA driver or no GPU (cupy.is_available() is False). Check "
                   "`nvidia-smi`, or choose device='cpu'.)\n")


def test_auto_with_the_installed_cupy_and_no_gpu_chooses_the_cpu(capsys, fresh_backends):
    """The real CuPy of this machine (the test extra installs it on Linux x86-64), where it
    finds no GPU: 'auto' means the CPU, and the reason names the missing driver or GPU."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    if cupy.is_available():
        pytest.skip("CuPy finds a GPU here: 'auto' chooses it")
    assert xpnn.get_device("auto") == CPU
    assert "CuPy is installed but finds no NVIDIA driver or no GPU" in capsys.readouterr().err
    with pytest.raises(DeviceUnavailableError, match="finds no NVIDIA driver or no GPU"):
        xpnn.get_backend("cuda")


def test_auto_picks_cuda_0_when_it_is_usable(capsys, fresh_backends):
    fake_backend = types.SimpleNamespace(device=Device("cuda", 0))
    fresh_backends[Device("cuda", 0)] = fake_backend
    assert xpnn.get_device("auto") == Device("cuda", 0)
    assert xpnn.get_backend("auto") is fake_backend
    assert capsys.readouterr().err == (
        "xpnn: device 'auto' chose cuda:0 (CuPy and a CUDA GPU are usable)\n")


# -- CUDA errors without a GPU -----------------------------------------------------------------

def test_cuda_without_cupy(no_cupy):
    for spec in ("cuda", "cuda:0", "cuda:1", Device("cuda", 2)):
        with pytest.raises(DeviceUnavailableError) as info:
            xpnn.get_backend(spec)
        message = str(info.value)
        assert message.startswith("CUDA needs CuPy, which is not installed")
        assert "pip install 'xpnn[cuda12]'" in message
        assert "'xpnn[cuda13]'" in message
        assert "device='cpu'" in message
        assert isinstance(info.value.__cause__, ImportError)
    assert no_cupy == {}  # failures are not cached


def test_device_unavailable_error_is_catchable_as_documented(no_cupy):
    for catch in (DeviceUnavailableError, DeviceError, XpnnError, RuntimeError):
        with pytest.raises(catch):
            _model(device="cuda")


@pytest.mark.parametrize("call", ["get_device", "set_device", "device", "Sequential", "to"])
def test_cuda_failures_surface_from_every_entry_point(no_cupy, call):
    with pytest.raises(DeviceUnavailableError, match=r"xpnn\[cuda12\]"):
        if call == "get_device":
            xpnn.get_device("cuda:1")
        elif call == "set_device":
            xpnn.set_device("cuda:1")
        elif call == "device":
            with xpnn.device("cuda:1"):
                pass  # pragma: no cover - never entered
        elif call == "Sequential":
            _model(device="cuda:1")
        else:
            _model().to("cuda:1")
    assert xpnn.get_device() == CPU


@pytest.mark.parametrize("available", [False, RuntimeError("cudaErrorInsufficientDriver")])
def test_cuda_without_a_driver(monkeypatch, fresh_backends, available):
    fake_cupy(monkeypatch, available=available)
    with pytest.raises(DeviceUnavailableError) as info:
        _model(device="cuda")
    message = str(info.value)
    assert message.startswith("CUDA is not usable here: CuPy is installed but finds no NVIDIA "
                              "driver or no GPU")
    assert "cupy.is_available() is False" in message
    assert "`nvidia-smi`" in message
    assert fresh_backends == {}


def test_cuda_ordinal_out_of_range_names_valid_ordinals(monkeypatch, fresh_backends):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_cupy(monkeypatch, count=1)
    with pytest.raises(DeviceUnavailableError) as info:
        xpnn.get_device("cuda:1")
    assert str(info.value) == ("cuda:1 was requested but only 1 GPU(s) are visible: "
                               "use an ordinal from 0 to 0")
    assert "CUDA_VISIBLE_DEVICES" not in str(info.value)
    assert fresh_backends == {}


def test_cuda_ordinal_out_of_range_names_cuda_visible_devices(monkeypatch, fresh_backends):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    fake_cupy(monkeypatch, count=2)
    with pytest.raises(DeviceUnavailableError) as info:
        xpnn.set_device("CUDA:7")
    assert str(info.value) == ("cuda:7 was requested but only 2 GPU(s) are visible "
                               "(CUDA_VISIBLE_DEVICES='3,5'): use an ordinal from 0 to 1")
    assert xpnn.get_device() == CPU


def test_fake_cupy_does_not_leak():
    """Runs after the fake-CuPy tests: the real state is back."""
    assert not isinstance(sys.modules.get("cupy"), types.SimpleNamespace)
    assert all(type(backend).__module__.startswith("xpnn.backends.")
               for backend in devmod._backends.values())


# -- python -m xpnn info -----------------------------------------------------------------------

def test_info_in_process_reflects_the_default_device(monkeypatch, fresh_backends):
    main = pytest.importorskip("xpnn.__main__")
    fake_cupy(monkeypatch, available=False)
    xpnn.set_device("strict")
    lines = main.info().splitlines()
    assert lines[-1] == "default device: strict"
    assert lines[-2].startswith("mpi: ")
    assert lines[-3].startswith("  cupy   unavailable CUDA is not usable here")


def test_info_reports_a_bad_env_var_without_failing(monkeypatch, capsys, no_cupy):
    main = pytest.importorskip("xpnn.__main__")
    monkeypatch.setenv("XPNN_DEVICE", "gpu")
    assert main.main(["info"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("default device: error: XPNN_DEVICE='gpu' is not a device")


def test_python_m_xpnn_info():
    env = {key: value for key, value in os.environ.items() if key != "XPNN_DEVICE"}
    result = subprocess.run([sys.executable, "-m", "xpnn", "info"], cwd="/tmp", env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    version = importlib.metadata.version
    assert lines[0] == f"xpnn {xpnn.__version__}"
    assert lines[1].startswith("python ") and sys.executable in lines[1]
    assert lines[2] == (f"numpy {version('numpy')}, array-api-compat "
                        f"{version('array-api-compat')}, array-api-strict "
                        f"{version('array-api-strict')}")
    assert lines[3] == "backends:"
    assert lines[4].startswith(f"  numpy  available   numpy {np.__version__} on cpu, fused "
                               "kernels ")
    assert lines[5].startswith(f"  strict available   array-api-strict "
                               f"{version('array-api-strict')} on device1 (standard ")
    cupy_lines = [line for line in lines if line.startswith("  cupy ")]
    assert cupy_lines
    if importlib.util.find_spec("cupy") is None:
        assert cupy_lines == [
            "  cupy   unavailable CUDA needs CuPy, which is not installed: install CuPy with pip "
            "install 'xpnn[cuda12]' (CUDA 12 driver) or 'xpnn[cuda13]' (CUDA 13 driver), or "
            "choose device='cpu' (or 'auto', which falls back to the CPU)"]
    else:
        assert all(line.startswith(("  cupy   available   cupy ", "  cupy   unavailable "))
                   for line in cupy_lines)
    assert lines[-1] == "default device: cpu"
    if importlib.util.find_spec("mpi4py") is None:
        assert lines[-2] == ("mpi: not available: mpi4py is not installed (pip install "
                             "'xpnn[mpi]')")
    else:
        assert lines[-2].startswith("mpi: ") and lines[-2].endswith(
            "world size 1: this process was not started by an MPI launcher (mpiexec -n N "
            "python ...)")
    assert result.stderr == ""
