"""Layers: each implements ``build`` / ``forward`` / ``backward`` (see :mod:`.base`)."""

from xpnn.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.layers.base import BuildContext, Layer, Parameter
from xpnn.layers.dense import Dense
from xpnn.layers.dropout import Dropout
from xpnn.layers.normalization import BatchNorm

__all__ = [
    "BatchNorm",
    "BuildContext",
    "Dense",
    "Dropout",
    "Layer",
    "LeakyReLU",
    "Parameter",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
