"""Figures of training runs and of the classic textbook experiments (needs matplotlib:
``pip install 'xpnn[plot]'``).

- :func:`training_curves`: one panel per quantity of a :class:`~xpnn.History` (the loss and
  each metric), training solid and validation dashed; the learning rate on a log axis when it
  changed. Several runs can be compared, one colour each.
- :func:`activation_histograms`: a histogram of the outputs of each activation layer of a
  model for a batch of inputs (saturation, collapse, dead units).
- :func:`decision_regions`: the class a model predicts over the plane of 2-D inputs, with
  the data points on top.
- :func:`optimizer_trajectories`: the paths of optimizers over the contour plot of a function
  of two variables.
- :func:`learning_rate_curve`: the loss against the learning rate of a range test
  (:func:`xpnn.lr_find`), with the suggested rate marked.

Every function returns the matplotlib ``Figure``. Given a ``path``, it also writes a PNG
there (creating the folders) and closes the figure in pyplot, so that loops do not leak
figures; the returned figure can still be saved again. matplotlib is imported on the first
call, with the non-interactive Agg backend unless the caller imported ``matplotlib.pyplot``
first. Plotting is host-side: model outputs are copied to NumPy before they are drawn.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from xpnn.model import History

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from xpnn.layers.base import Layer
    from xpnn.model import Sequential

#: One run for :func:`training_curves`: a History or a plain dict of per-epoch lists.
Run = History | Mapping[str, Sequence[float]]
PathLike = str | os.PathLike[str]

_DPI = 100
_LEARNING_RATE = "learning_rate"
_VALIDATION = "val_"


def pyplot() -> ModuleType:
    """``matplotlib.pyplot``, with the Agg backend unless pyplot was already imported; an
    ImportError that says how to install matplotlib where it is missing (scripts that draw
    their own figures get pyplot here: ``plt = xpnn.plot.pyplot()``)."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("xpnn.plot needs matplotlib, which is not installed here: pip "
                          "install 'xpnn[plot]' (or pip install matplotlib)") from error
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Figure, path: PathLike | None) -> Figure:
    """Save ``figure`` as a PNG at ``path`` (if given; parent folders are created) and
    release it from pyplot; returns the figure. Every function here ends with it, and
    scripts that compose their own figures can use it too."""
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, dpi=_DPI, bbox_inches="tight")
        pyplot().close(figure)
    return figure


def _panels(count: int, columns: int, size: tuple[float, float], **options: Any
            ) -> tuple[Figure, list[Axes]]:
    """A new figure with ``count`` panels in rows of at most ``columns``."""
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure, grid = pyplot().subplots(rows, columns, squeeze=False, layout="constrained",
                                      figsize=(size[0] * columns, size[1] * rows), **options)
    axes = list(grid.ravel())
    for unused in axes[count:]:
        figure.delaxes(unused)
    return figure, axes[:count]


# -- training curves ---------------------------------------------------------------------------
def _runs(history: Run | Mapping[str, Run]) -> dict[str | None, Run]:
    """``{label: run}``; the label is None for a single run."""
    if isinstance(history, History):
        return {None: history}
    if not history:
        raise ValueError("training_curves: the history is empty")
    if all(isinstance(run, History | Mapping) for run in history.values()):
        return dict(history)
    return {None: history}


def _series(run: Run) -> Mapping[str, Sequence[float]]:
    return run.history if isinstance(run, History) else run


def _epochs(run: Run, length: int) -> list[int]:
    """The 1-based epochs of the first ``length`` values of a run (validation values are
    missing for an epoch whose training loss was not finite, which ends the run)."""
    if isinstance(run, History):
        return [epoch + 1 for epoch in run.epoch[:length]]
    return list(range(1, length + 1))


def _quantities(runs: Mapping[str | None, Run], keys: Sequence[str] | None) -> list[str]:
    """The quantities to draw, one panel each: ``keys`` or all, the learning rate last and
    only if it changed in some run."""
    available: list[str] = []
    for run in runs.values():
        for key in _series(run):
            name = key.removeprefix(_VALIDATION)
            if name not in available:
                available.append(name)
    if keys is None:
        chosen = [name for name in available if name != _LEARNING_RATE]
        chosen += [name for name in available if name == _LEARNING_RATE]
    else:
        unknown = [key for key in keys if key not in available]
        if unknown:
            raise ValueError(f"training_curves: no history has {unknown}; available: "
                             f"{available}")
        chosen = list(keys)
    return [name for name in chosen if name != _LEARNING_RATE or any(
        len(set(_series(run).get(_LEARNING_RATE, ()))) > 1 for run in runs.values())]


def training_curves(history: Run | Mapping[str, Run], path: PathLike | None = None, *,
                    keys: Sequence[str] | None = None, title: str | None = None,
                    ax: Axes | None = None) -> Figure:
    """Per-epoch curves of one or several training runs.

    ``history`` is what ``fit`` returns (an :class:`~xpnn.History`), a plain dict of
    per-epoch lists, or a dict mapping a label to either, to compare runs (one colour each,
    the labels in the legend). One panel per quantity (the loss, then each metric; ``keys``
    chooses which, in that order): the training value solid, its ``val_`` counterpart dashed
    in the same colour, against the 1-based epoch. The learning rate gets a panel with a log
    axis when it changed during some run, and is left out when it stayed constant.

    With ``ax``, the one quantity chosen is drawn into it (so that a figure can compose
    several comparisons) and its figure is returned; ``title`` then titles that panel,
    otherwise the figure.
    """
    from matplotlib.ticker import MaxNLocator

    runs = _runs(history)
    quantities = _quantities(runs, keys)
    if not quantities:
        raise ValueError("training_curves: nothing to draw")
    if ax is None:
        figure, axes = _panels(len(quantities), 3, (4.5, 3.5))
    elif len(quantities) == 1:
        figure, axes = ax.figure, [ax]
    else:
        raise ValueError(f"training_curves: ax holds one panel but {quantities} are chosen; "
                         "pass keys=[one of them]")
    compare = len(runs) > 1 or next(iter(runs)) is not None
    for panel, quantity in zip(axes, quantities, strict=True):
        validated = False
        for index, (label, run) in enumerate(runs.items()):
            series = _series(run)
            colour = f"C{index}"
            for key, style, name in (
                (quantity, "-", label if compare else "train"),
                (_VALIDATION + quantity, "--", f"_{label}" if compare else "validation"),
            ):
                values = series.get(key)
                if values is None:
                    continue
                validated = validated or style == "--"
                panel.plot(_epochs(run, len(values)), values, style, color=colour, label=name)
        if quantity == _LEARNING_RATE:
            panel.set_yscale("log")
        panel.set_title(quantity)
        panel.set_xlabel("epoch")
        panel.set_ylabel(quantity)
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        if compare or validated:
            panel.legend(title="dashed: validation" if compare and validated else None)
    if title is not None:
        if ax is None:
            figure.suptitle(title)
        else:
            ax.set_title(title)
    return save(figure, path)


# -- activation histograms ---------------------------------------------------------------------
def _selected(model: Sequential, layers: Sequence[str | type] | None) -> list[Layer]:
    """The layers whose outputs to show: those named (by name or type), else the layers
    without parameters (activations), else all."""
    if layers is None:
        return [layer for layer in model.layers if not layer.parameters()] or model.layers
    chosen = [layer for layer in model.layers if any(
        isinstance(layer, wanted) if isinstance(wanted, type)
        else wanted in (layer.name, type(layer).__name__) for wanted in layers)]
    if not chosen:
        names = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers]
        raise ValueError(f"activation_histograms: no layer matches {list(layers)}; the model "
                         f"has {names}")
    return chosen


def activation_histograms(model: Sequential, x: Any, path: PathLike | None = None, *,
                          layers: Sequence[str | type] | None = None, bins: int = 30,
                          range: tuple[float, float] | None = None,
                          title: str | None = None) -> Figure:
    """Histograms of layer outputs for the inputs ``x`` (inference mode), in a row of panels
    sharing the count axis, each titled with its layer's name.

    ``layers`` selects layers by name (``"relu_1"``), type name (``"ReLU"``) or type
    (``xpnn.ReLU``); by default the layers without parameters are shown (the activations,
    and Dropout, which passes its input through at inference), or every layer if there are
    none. The model is built for ``x`` if it is not built yet. ``bins`` and ``range`` are
    passed to ``hist``.
    """
    plt = pyplot()
    every_output = model.layer_outputs(x)
    shown = _selected(model, layers)
    outputs = [every_output[layer.name].ravel() for layer in shown]
    figure, axes = plt.subplots(1, len(shown), squeeze=False, sharey=True,
                                layout="constrained", figsize=(3.2 * len(shown), 3))
    for panel, layer, values in zip(axes[0], shown, outputs, strict=True):
        panel.hist(values, bins=bins, range=range, color="C0")
        panel.set_title(layer.name)
        panel.set_xlabel("output")
    axes[0, 0].set_ylabel("count")
    if title is not None:
        figure.suptitle(title)
    return save(figure, path)


# -- decision regions --------------------------------------------------------------------------
def _class_labels(y: Any, count: int) -> np.ndarray:
    """Integer classes from labels (N,), (N, 1) 0/1 targets or (N, C) one-hot rows."""
    labels = np.asarray(y)
    if labels.shape[0] != count or labels.ndim not in (1, 2):
        raise ValueError(f"decision_regions: y must hold one label per point, (N,), (N, 1) "
                         f"or (N, C) with N = {count}, received shape {labels.shape}")
    if labels.ndim == 2:
        labels = np.argmax(labels, axis=1) if labels.shape[1] > 1 else np.rint(labels[:, 0])
    return labels.astype(np.int64)


def decision_regions(model: Sequential, x: Any, y: Any, path: PathLike | None = None, *,
                     threshold: float = 0.5, resolution: int = 200, margin: float = 0.5,
                     ax: Axes | None = None, title: str | None = None) -> Figure:
    """The class the model predicts over the plane of 2-D inputs, with the points on top.

    ``x`` is (N, 2); ``y`` holds integer labels (N,), 0/1 targets (N, 1) or one-hot rows
    (N, C). The model predicts a ``resolution`` × ``resolution`` grid spanning the data
    ± ``margin``: with one output column the class is ``output > threshold`` (0.5 after a
    Sigmoid, 0.0 for logits), else the column of the largest output. The regions are filled
    in the colour of their class, and the points drawn in the colour of their label with
    black edges. With ``ax``, the plot is drawn into it and its figure returned.
    """
    plt = pyplot()
    points = np.asarray(x)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"decision_regions needs 2-D inputs x of shape (N, 2), received "
                         f"shape {points.shape}")
    labels = _class_labels(y, points.shape[0])
    low, high = points.min(axis=0) - margin, points.max(axis=0) + margin
    grid_x, grid_y = np.meshgrid(np.linspace(low[0], high[0], resolution),
                                 np.linspace(low[1], high[1], resolution))
    outputs = model.predict(np.column_stack([grid_x.ravel(), grid_y.ravel()]))
    outputs = outputs.reshape(grid_x.size, -1)
    predicted = (outputs[:, 0] > threshold if outputs.shape[1] == 1
                 else np.argmax(outputs, axis=1)).astype(np.int64).reshape(grid_x.shape)
    classes = max(2, int(predicted.max()) + 1, int(labels.max()) + 1)
    colours = [f"C{k}" for k in range(classes)]
    if ax is None:
        figure, ax = plt.subplots(layout="constrained", figsize=(5, 4.5))
    else:
        figure = ax.figure
    ax.contourf(grid_x, grid_y, predicted, levels=np.arange(classes + 1) - 0.5, colors=colours,
                alpha=0.3)
    ax.scatter(points[:, 0], points[:, 1], c=[colours[k] for k in labels], edgecolors="black",
               linewidths=0.6, s=25)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title is not None:
        ax.set_title(title)
    return save(figure, path)


# -- optimizer trajectories --------------------------------------------------------------------
def optimizer_trajectories(function: Callable[[np.ndarray, np.ndarray], np.ndarray],
                           paths: Mapping[str, Any], path: PathLike | None = None, *,
                           xlim: tuple[float, float] = (-10, 10),
                           ylim: tuple[float, float] = (-5, 5), levels: int = 20,
                           title: str | None = None, ax: Axes | None = None) -> Figure:
    """Optimizer paths over the contour lines of ``function(x, y)`` (NumPy-vectorised).

    ``paths`` maps an optimizer's name to the (steps, 2) points it visited. Each path is a
    line with markers in its own colour, its start a large open circle; the minimum, assumed
    at (0, 0), is a black "+". Several paths get one panel each (2 or 3 columns, titled with
    the name, ``title`` over the figure); with ``ax``, all paths are drawn into it, with a
    legend, and its figure is returned.
    """
    plt = pyplot()
    if not paths:
        raise ValueError("optimizer_trajectories: no paths")
    points = {name: np.asarray(visited, dtype=np.float64) for name, visited in paths.items()}
    for name, visited in points.items():
        if visited.ndim != 2 or visited.shape[1] != 2:
            raise ValueError(f"optimizer_trajectories: the path of {name!r} must have shape "
                             f"(steps, 2), received {visited.shape}")
    grid_x, grid_y = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    heights = function(grid_x, grid_y)
    if ax is not None:
        figure, groups = ax.figure, [(ax, list(points))]
    elif len(points) == 1:
        figure, single = plt.subplots(layout="constrained", figsize=(6, 4))
        groups = [(single, list(points))]
    else:
        figure, axes = _panels(len(points), 2 if len(points) <= 4 else 3, (4.5, 3),
                               sharex=True, sharey=True)
        groups = [(panel, [name]) for panel, name in zip(axes, points, strict=True)]
    colour = {name: f"C{index}" for index, name in enumerate(points)}
    for panel, names in groups:
        panel.contour(grid_x, grid_y, heights, levels=levels, cmap="viridis", linewidths=0.7,
                      alpha=0.6)
        for name in names:
            visited = points[name]
            panel.plot(visited[:, 0], visited[:, 1], "o-", color=colour[name], markersize=3,
                       linewidth=1, label=name)
            panel.plot(visited[0, 0], visited[0, 1], "o", color=colour[name], markersize=9,
                       markerfacecolor="none")
        panel.plot(0, 0, "+", color="black", markersize=12, markeredgewidth=2)
        panel.set_xlim(xlim)
        panel.set_ylim(ylim)
        panel.set_xlabel("x")
        panel.set_ylabel("y")
        if len(groups) > 1:
            panel.set_title(names[0])
        else:
            panel.legend()
    if title is not None:
        if len(groups) > 1:
            figure.suptitle(title)
        else:
            groups[0][0].set_title(title)
    return save(figure, path)


# -- learning-rate range test ------------------------------------------------------------------
def learning_rate_curve(rates: Sequence[float], losses: Sequence[float],
                        path: PathLike | None = None, *, suggestion: float | None = None,
                        title: str | None = None) -> Figure:
    """The loss against the learning rate (log axis) of a range test, with a dashed vertical
    line and its value in the legend at ``suggestion`` when given."""
    plt = pyplot()
    if len(rates) != len(losses) or len(rates) == 0:
        raise ValueError(f"learning_rate_curve: needs as many rates as losses (at least one), "
                         f"received {len(rates)} rates and {len(losses)} losses")
    figure, ax = plt.subplots(layout="constrained", figsize=(6, 4))
    ax.plot(rates, losses, color="C0")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    if suggestion is not None:
        ax.axvline(suggestion, color="C1", linestyle="--", label=f"suggestion {suggestion:.2e}")
        ax.legend()
    if title is not None:
        ax.set_title(title)
    return save(figure, path)
