"""Layers: each implements ``build`` / ``forward`` / ``backward`` (see :mod:`.base`)."""

from xpnn.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.layers.base import BuildContext, Layer, Parameter
from xpnn.layers.convolution import Conv2D
from xpnn.layers.dense import Dense
from xpnn.layers.dropout import Dropout
from xpnn.layers.embedding import Embedding
from xpnn.layers.normalization import BatchNorm, BatchNorm2D
from xpnn.layers.pooling import AvgPool2D, GlobalAveragePool2D, MaxPool2D, Pool2D
from xpnn.layers.recurrent import GRU, LSTM, Recurrent, SimpleRNN, TimeDistributed
from xpnn.layers.reshaping import Flatten

__all__ = [
    "GRU",
    "LSTM",
    "AvgPool2D",
    "BatchNorm",
    "BatchNorm2D",
    "BuildContext",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePool2D",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Parameter",
    "Pool2D",
    "ReLU",
    "Recurrent",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "Tanh",
    "TimeDistributed",
]
