"""Layers: each implements ``build`` / ``forward`` / ``backward`` (see :mod:`.base`)."""

from xpnn.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.layers.base import BuildContext, Layer, Parameter
from xpnn.layers.dense import Dense
from xpnn.layers.dropout import Dropout
from xpnn.layers.embedding import Embedding
from xpnn.layers.normalization import BatchNorm
from xpnn.layers.recurrent import GRU, LSTM, Recurrent, SimpleRNN, TimeDistributed

__all__ = [
    "GRU",
    "LSTM",
    "BatchNorm",
    "BuildContext",
    "Dense",
    "Dropout",
    "Embedding",
    "Layer",
    "LeakyReLU",
    "Parameter",
    "ReLU",
    "Recurrent",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "Tanh",
    "TimeDistributed",
]
