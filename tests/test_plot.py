"""xpnn.plot: every figure is written as a PNG and shows what it claims to show."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="xpnn.plot needs matplotlib (xpnn[plot])")

import matplotlib.pyplot as plt
from matplotlib.contour import ContourSet

import xpnn
import xpnn.plot


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000


def _moons_model(epochs: int = 3, **fit_options) -> tuple[xpnn.Sequential, xpnn.History]:
    x, y = xpnn.datasets.two_moons(64, seed=0)
    model = xpnn.Sequential([xpnn.Dense(8), xpnn.ReLU(), xpnn.Dense(1), xpnn.Sigmoid()],
                            device="cpu", seed=0)
    model.compile(loss="binary_crossentropy", optimizer=xpnn.Adam(0.01), metrics=["accuracy"])
    history = model.fit(x, y, epochs=epochs, verbose=0, validation_data=(x, y), **fit_options)
    return model, history


def _legend_labels(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


# -- training_curves ---------------------------------------------------------------------------
def test_training_curves_one_panel_per_quantity_train_and_validation(tmp_path):
    _, history = _moons_model()
    out = tmp_path / "curves" / "x.png"  # the folder is created
    figure = xpnn.plot.training_curves(history, out, title="two moons")
    _assert_png(out)
    # the constant learning rate is left out: loss and accuracy only
    assert [ax.get_title() for ax in figure.axes] == ["loss", "accuracy"]
    loss_ax = figure.axes[0]
    train, validation = loss_ax.get_lines()
    assert (train.get_linestyle(), validation.get_linestyle()) == ("-", "--")
    assert train.get_color() == validation.get_color()
    assert list(train.get_xdata()) == [1, 2, 3]  # 1-based epochs
    np.testing.assert_allclose(validation.get_ydata(), history["val_loss"])
    assert _legend_labels(loss_ax) == ["train", "validation"]
    assert figure.get_suptitle() == "two moons"


def test_training_curves_learning_rate_panel_when_it_changes():
    schedule = xpnn.LearningRateScheduler(lambda epoch, rate: 0.01 * 0.5 ** epoch)
    _, history = _moons_model(callbacks=[schedule])
    figure = xpnn.plot.training_curves(history)
    assert [ax.get_title() for ax in figure.axes] == ["loss", "accuracy", "learning_rate"]
    rate_ax = figure.axes[2]
    assert rate_ax.get_yscale() == "log" and len(rate_ax.get_lines()) == 1


def test_training_curves_compares_labelled_runs(tmp_path):
    histories = {"plain": _moons_model(epochs=2)[1], "longer": _moons_model(epochs=4)[1]}
    figure = xpnn.plot.training_curves(histories, tmp_path / "x.png", keys=["accuracy"])
    _assert_png(tmp_path / "x.png")
    (ax,) = figure.axes
    assert _legend_labels(ax) == ["plain", "longer"]
    assert ax.get_legend().get_title().get_text() == "dashed: validation"
    colours = [line.get_color() for line in ax.get_lines()]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [2, 2, 4, 4]


def test_training_curves_plain_dict_and_given_axes():
    figure, axes = plt.subplots(1, 2)
    returned = xpnn.plot.training_curves({"loss": [3.0, 2.0, 1.0]}, ax=axes[1], title="mine")
    assert returned is figure
    assert axes[1].get_title() == "mine" and len(axes[1].get_lines()) == 1
    assert not axes[0].get_lines()
    with pytest.raises(ValueError, match="ax holds one panel"):
        xpnn.plot.training_curves({"loss": [1.0], "mae": [1.0]}, ax=axes[0])
    with pytest.raises(ValueError, match="available"):
        xpnn.plot.training_curves({"loss": [1.0]}, keys=["accuracy"])


# -- activation_histograms ---------------------------------------------------------------------
def test_activation_histograms_one_panel_per_activation_layer(tmp_path):
    model = xpnn.Sequential([xpnn.Dense(16), xpnn.Tanh(), xpnn.Dense(16), xpnn.ReLU(),
                             xpnn.Dense(1), xpnn.Sigmoid()], device="cpu", seed=0)
    x, _ = xpnn.datasets.two_moons(50, seed=0)
    figure = xpnn.plot.activation_histograms(model, x, tmp_path / "x.png", bins=10)
    _assert_png(tmp_path / "x.png")
    assert model.built
    activations = [layer.name for layer in model.layers if not layer.parameters()]
    assert len(activations) == 3
    assert [ax.get_title() for ax in figure.axes] == activations
    tanh_counts = [patch.get_height() for patch in figure.axes[0].patches]
    assert len(tanh_counts) == 10 and sum(tanh_counts) == 50 * 16
    sigmoid_ax = figure.axes[2]
    low, high = sigmoid_ax.patches[0].get_x(), sigmoid_ax.patches[-1].get_x()
    assert 0 <= low < high <= 1  # sigmoid outputs lie in (0, 1)


def test_activation_histograms_selects_layers_by_name_or_type():
    model = xpnn.Sequential([xpnn.Dense(4), xpnn.ReLU(), xpnn.Dense(2)], device="cpu", seed=0)
    x = np.random.default_rng(0).standard_normal((20, 3))
    dense_name = model.layers[0].name
    figure = xpnn.plot.activation_histograms(model, x, layers=[dense_name, xpnn.ReLU])
    assert [ax.get_title() for ax in figure.axes] == [dense_name, model.layers[1].name]
    with pytest.raises(ValueError, match="no layer matches"):
        xpnn.plot.activation_histograms(model, x, layers=["conv"])


# -- decision_regions --------------------------------------------------------------------------
def _filled_regions(ax) -> int:
    """How many class intervals the filled contour actually covers (matplotlib ≥ 3.8)."""
    (contours,) = [c for c in ax.collections if isinstance(c, ContourSet)]
    return sum(len(p.vertices) > 0 for p in contours.get_paths())


def test_decision_regions_of_a_three_class_model(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 3.0], [-3.0, -2.0], [3.0, -2.0]])
    y = np.repeat(np.arange(3), 30)
    x = (centres[y] + 0.5 * rng.standard_normal((90, 2))).astype(np.float32)
    model = xpnn.Sequential([xpnn.Dense(3)], device="cpu", seed=0)
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(0.05), metrics=["accuracy"])
    model.fit(x, y, epochs=20, verbose=0)
    assert model.evaluate(x, y)["accuracy"] > 0.95
    figure = xpnn.plot.decision_regions(model, x, y, tmp_path / "x.png", resolution=60,
                                        title="blobs")
    _assert_png(tmp_path / "x.png")
    (ax,) = figure.axes
    assert _filled_regions(ax) == 3 and ax.get_title() == "blobs"
    (points,) = [c for c in ax.collections if not isinstance(c, ContourSet)]
    assert len(points.get_offsets()) == 90
    assert len(np.unique(points.get_facecolors(), axis=0)) == 3
    assert (points.get_edgecolors()[:, :3] == 0).all()  # black edges


def test_decision_regions_binary_into_given_axes():
    model, _ = _moons_model()
    x, y = xpnn.datasets.two_moons(64, seed=0)
    figure, axes = plt.subplots(1, 2)
    assert xpnn.plot.decision_regions(model, x, y[:, None], ax=axes[0], resolution=40) is figure
    assert _filled_regions(axes[0]) == 2
    # a threshold above every output leaves one class
    assert xpnn.plot.decision_regions(model, x, y, ax=axes[1], resolution=40,
                                      threshold=1.0) is figure
    assert _filled_regions(axes[1]) == 1


def test_decision_regions_rejects_inputs_that_are_not_2d():
    model, _ = _moons_model(epochs=1)
    with pytest.raises(ValueError, match=r"received shape \(10, 3\)"):
        xpnn.plot.decision_regions(model, np.zeros((10, 3)), np.zeros(10, np.int64))
    with pytest.raises(ValueError, match=r"received shape \(10,\)"):
        xpnn.plot.decision_regions(model, np.zeros(10), np.zeros(10, np.int64))


# -- optimizer_trajectories --------------------------------------------------------------------
def _descent(start: tuple[float, float], rate: float, steps: int = 15) -> np.ndarray:
    point, visited = np.array(start), [start]
    for _ in range(steps):
        point = point - rate * np.array([point[0] / 10, 2 * point[1]])
        visited.append(tuple(point))
    return np.array(visited)


def test_optimizer_trajectories_one_panel_per_optimizer(tmp_path):
    paths = {name: _descent((-7.0, 2.0), rate) for name, rate in
             (("slow", 0.1), ("medium", 0.3), ("fast", 0.9))}
    figure = xpnn.plot.optimizer_trajectories(lambda x, y: x**2 / 20 + y**2, paths,
                                              tmp_path / "x.png", title="f")
    _assert_png(tmp_path / "x.png")
    assert [ax.get_title() for ax in figure.axes] == list(paths)
    assert figure.get_suptitle() == "f"
    first = figure.axes[0]
    path_line, start, minimum = first.get_lines()
    np.testing.assert_allclose(path_line.get_xydata(), paths["slow"])
    assert tuple(start.get_xydata()[0]) == (-7.0, 2.0)
    assert minimum.get_marker() == "+" and tuple(minimum.get_xydata()[0]) == (0, 0)
    assert first.get_xlim() == (-10, 10) and first.get_ylim() == (-5, 5)


def test_optimizer_trajectories_all_paths_on_given_axes():
    figure, ax = plt.subplots()
    paths = {"a": _descent((5.0, 4.0), 0.2), "b": _descent((-5.0, -4.0), 0.2)}
    assert xpnn.plot.optimizer_trajectories(lambda x, y: x**2 + y**2, paths, ax=ax) is figure
    assert _legend_labels(ax) == ["a", "b"]
    with pytest.raises(ValueError, match=r"\(steps, 2\)"):
        xpnn.plot.optimizer_trajectories(lambda x, y: x + y, {"bad": np.zeros((4, 3))})


# -- learning_rate_curve -----------------------------------------------------------------------
def test_learning_rate_curve_marks_the_suggestion(tmp_path):
    rates = np.geomspace(1e-5, 1.0, 50)
    losses = 2.0 - np.tanh(np.log10(rates) + 3)
    figure = xpnn.plot.learning_rate_curve(rates, losses, tmp_path / "x.png", suggestion=1e-3,
                                           title="range test")
    _assert_png(tmp_path / "x.png")
    (ax,) = figure.axes
    curve, marker = ax.get_lines()
    assert ax.get_xscale() == "log" and ax.get_title() == "range test"
    np.testing.assert_allclose(curve.get_xydata(), np.column_stack([rates, losses]))
    assert list(marker.get_xdata()) == [1e-3, 1e-3]
    assert _legend_labels(ax) == ["suggestion 1.00e-03"]


def test_lr_finder_result_plot_uses_learning_rate_curve(tmp_path):
    model, _ = _moons_model(epochs=1)
    x, y = xpnn.datasets.two_moons(64, seed=0)
    result = xpnn.lr_find(model, x, y, steps=20, batch_size=8)
    figure = result.plot(tmp_path / "lr.png")
    _assert_png(tmp_path / "lr.png")
    assert figure.axes[0].get_xscale() == "log"


# -- without matplotlib ------------------------------------------------------------------------
def test_clear_import_error_without_matplotlib(monkeypatch):
    import importlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    importlib.reload(xpnn.plot)  # importing xpnn.plot itself needs no matplotlib
    with pytest.raises(ImportError, match=r"pip install 'xpnn\[plot\]'") as caught:
        xpnn.plot.pyplot()
    assert isinstance(caught.value.__cause__, ImportError)
    with pytest.raises(ImportError, match=r"xpnn\.plot needs matplotlib"):
        xpnn.plot.learning_rate_curve([1e-3], [1.0])


def test_an_example_without_matplotlib_says_how_to_install_it():
    """Was: a bare ModuleNotFoundError from the example's own ``import matplotlib``."""
    import subprocess
    from pathlib import Path

    example = Path(__file__).parents[1] / "examples" / "loss_saturation.py"
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; "
            f"runpy.run_path({str(example)!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert ("ImportError: xpnn.plot needs matplotlib, which is not installed here: pip "
            "install 'xpnn[plot]' (or pip install matplotlib)") in result.stderr
