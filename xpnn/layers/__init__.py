"""Layers: each implements ``build`` / ``forward`` / ``backward`` (see :mod:`.base`)."""

from xpnn.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.layers.base import BuildContext, Layer, Parameter
from xpnn.layers.dense import Dense

__all__ = [
    "BuildContext",
    "Dense",
    "Layer",
    "LeakyReLU",
    "Parameter",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
