"""Layers: each implements ``build`` / ``forward`` / ``backward`` on per-call contexts (see
:mod:`.base`)."""

from xpnn.layers.activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.layers.attention import MultiHeadAttention
from xpnn.layers.base import BuildContext, Context, Layer, Parameter
from xpnn.layers.convolution import Conv2D
from xpnn.layers.dense import Dense
from xpnn.layers.dropout import Dropout
from xpnn.layers.embedding import Embedding, PaddingMask, PositionalEmbedding
from xpnn.layers.gru import GRU
from xpnn.layers.lstm import LSTM
from xpnn.layers.merge import Add, Average, Concatenate, Merge, Multiply, Subtract
from xpnn.layers.normalization import BatchNorm, BatchNorm2D, LayerNormalization
from xpnn.layers.pooling import AvgPool2D, GlobalAveragePool2D, MaxPool2D, Pool2D
from xpnn.layers.recurrent import Recurrent, SimpleRNN
from xpnn.layers.reshaping import Flatten
from xpnn.layers.wrappers import TimeDistributed

__all__ = [
    "GELU",
    "GRU",
    "LSTM",
    "Add",
    "Average",
    "AvgPool2D",
    "BatchNorm",
    "BatchNorm2D",
    "BuildContext",
    "Concatenate",
    "Context",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePool2D",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "MaxPool2D",
    "Merge",
    "MultiHeadAttention",
    "Multiply",
    "PaddingMask",
    "Parameter",
    "Pool2D",
    "PositionalEmbedding",
    "ReLU",
    "Recurrent",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "Subtract",
    "Tanh",
    "TimeDistributed",
]
