"""Bad input and impossible devices give clear errors naming expected and received."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import xpnn


def _model(device="cpu"):
    model = xpnn.Sequential([xpnn.Dense(3)], device=device, seed=0)
    model.compile("softmax_crossentropy", "sgd")
    model.build((4,))
    return model


def test_wrong_input_width(lane):
    with pytest.raises(xpnn.ShapeError, match=r"\(samples, 4\), received \(2, 5\)"):
        _model(lane.device).predict(np.zeros((2, 5)))


def test_wrong_label_length_and_range(lane):
    model = _model(lane.device)
    with pytest.raises(xpnn.ShapeError, match="x has 3 samples but y has 2"):
        model.fit(np.zeros((3, 4)), np.zeros(2, np.int64), verbose=0)
    with pytest.raises(xpnn.LabelError, match=r"\[0, 2\].*from -1 to 3"):
        model.fit(np.zeros((3, 4)), np.array([0, 3, -1]), verbose=0)


def test_nan_input(lane):
    x = np.zeros((3, 4))
    x[1, 2] = np.nan
    with pytest.raises(xpnn.NonFiniteError, match="1 NaN"):
        _model(lane.device).predict(x)


def test_finite_input_whose_sum_overflows_is_accepted(lane):
    """The finiteness check sums the input first; a sum that overflows is no error."""
    x = np.zeros((3, 4), dtype=np.float32)
    x[:, 0] = 3e38  # the sum is 9e38: above the largest float32
    assert np.isfinite(_model(lane.device).predict(x)).all()
    x[1, 2] = -np.inf
    with pytest.raises(xpnn.NonFiniteError, match="1 NaN or infinite"):
        _model(lane.device).predict(x)


def test_data_on_another_device():
    strict = pytest.importorskip("array_api_strict")
    x = strict.asarray(np.zeros((2, 4), np.float32), device=strict.Device("device1"))
    with pytest.raises(xpnn.DeviceError, match=r"cpu but x is .* on strict"):
        _model("cpu").predict(x)


def test_cuda_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(sys.modules["xpnn.device"], "_backends", {})
    with pytest.raises(xpnn.DeviceUnavailableError, match=r"CuPy.*xpnn\[cuda12\]"):
        xpnn.Sequential(device="cuda:1")
    with pytest.raises(xpnn.DeviceUnavailableError):
        xpnn.set_device("cuda")
    model = xpnn.Sequential([xpnn.Dense(1)], device="auto")
    assert str(model.device) == "cpu"
