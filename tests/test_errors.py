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


# -- the messages of the usual mistakes (issue 16): what was expected, what came, the fix -------

def test_a_python_list_given_to_model_call_points_to_predict(lane):
    """Was: "... its input is a builtins.list of no xpnn backend"."""
    model = _model(lane.device)
    with pytest.raises(xpnn.DeviceError, match=r"model 'sequential(_\d+)?': model\(x\) takes a "
                                               r"batch of arrays on .*, but its input is a "
                                               r"Python list; call model\.predict\(x\), which "
                                               r"takes lists"):
        model([[0.0, 1.0, 2.0, 3.0]])
    assert model.predict([[0.0, 1.0, 2.0, 3.0]]).shape == (1, 3)
    with pytest.raises(xpnn.DeviceError, match=r"received a Python list"):
        xpnn.Dense(2)([[0.0, 1.0]])


def test_saving_into_a_missing_folder_names_the_folder(lane, tmp_path):
    """Was: FileNotFoundError naming a temporary file, '.../.m.xpnn.tmp-abc123'."""
    model = _model(lane.device)
    target = tmp_path / "runs" / "m.xpnn"
    pattern = (rf"cannot write '{target}': the folder '{target.parent}' does not exist; "
               r"create it first")
    for save in (model.save, model.save_weights):
        with pytest.raises(FileNotFoundError, match=pattern):
            save(target)
    assert not list(tmp_path.iterdir())
    target.parent.mkdir()
    model.save(target)
    assert xpnn.load(target, device=lane.device).count_params() == model.count_params()


def test_build_takes_an_int_a_shape_or_keras_shape_with_the_batch_axis(lane):
    """Was: build(64) -> "'int' object is not iterable"."""
    for shape in (64, (64,), [64], (None, 64)):
        model = xpnn.Sequential([xpnn.Dense(3)], device=lane.device)
        model.build(shape)
        assert model.input_shape == (64,)
    model = xpnn.Sequential([xpnn.Dense(3)], device=lane.device)
    for shape in ("64", (0,), (None,), 2.5):
        with pytest.raises(xpnn.ShapeError, match=r"input_shape must be positive integers "
                                                  r"without the batch axis, e\.g\. \(64,\)"):
            model.build(shape)


def test_a_dense_layer_on_images_asks_for_flatten(lane):
    """Was: a label-shape error ("integer class labels must have shape (10, 4, 6) ...")."""
    model = xpnn.Sequential([xpnn.Conv2D(4, 3), xpnn.ReLU(), xpnn.Dense(3, name="head")],
                            device=lane.device, seed=0)
    model.compile("softmax_crossentropy", "adam")
    rng = np.random.default_rng(0)
    with pytest.raises(xpnn.ShapeError, match=r"y does not fit output 'head' of shape "
                                              r"\(samples, 4, 6, 3\): .*Layer 'head' \(Dense\) "
                                              r"receives images of shape \(batch, 4, 6, 6\) "
                                              r"and maps only their last axis.*add "
                                              r"xpnn\.Flatten\(\) \(or "
                                              r"xpnn\.GlobalAveragePool2D\(\)\) before it"):
        model.fit(rng.standard_normal((10, 1, 8, 8)), rng.integers(0, 3, 10), verbose=0)
    sequence = xpnn.Sequential([xpnn.Dense(3)], device=lane.device)  # (time, features): meant
    sequence.compile("softmax_crossentropy", "adam")
    with pytest.raises(xpnn.ShapeError) as error:
        sequence.fit(rng.standard_normal((10, 5, 4)), rng.integers(0, 3, 10), verbose=0)
    assert "Flatten" not in str(error.value)


def test_a_missing_history_key_lists_the_keys_and_the_likely_one(lane):
    """Was: a bare KeyError: 'acc'."""
    model = _model(lane.device)
    model.compile("softmax_crossentropy", "sgd", metrics=["accuracy"])
    x, y = np.zeros((6, 4)), np.array([0, 1, 2, 0, 1, 2])
    history = model.fit(x, y, epochs=2, verbose=0)
    with pytest.raises(KeyError) as error:
        history["acc"]
    assert isinstance(error.value, xpnn.MissingKeyError)
    assert str(error.value) == ("History has no 'acc' (its keys are ['loss', 'accuracy', "
                                "'learning_rate']): did you mean 'accuracy'?")
    with pytest.raises(xpnn.MissingKeyError, match=r"validation logs \(val_\.\.\.\) come with "
                                                   r"fit\(\.\.\., validation_data="):
        history["val_accuracy"]
    with pytest.raises(xpnn.MissingKeyError, match=r"did you mean 'learning_rate'\?"):
        history["lr"]
    assert "accuracy" in history and "acc" not in history
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    with pytest.raises(xpnn.MissingKeyError, match=r"did you mean 'val_accuracy'\?"):
        history["val_acc"]
    with pytest.raises(xpnn.MissingKeyError, match=r"has no layer 'conv'; its layers are"):
        model.get_layer("conv")
