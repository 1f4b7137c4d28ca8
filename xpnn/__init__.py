"""xpnn: a small, honest neural-network framework.

The same network code trains on NumPy (CPU) and CuPy (CUDA GPUs); a cross-backend test matrix
proves the two agree. Typical use::

    import xpnn
    model = xpnn.Sequential([xpnn.Dense(64), xpnn.ReLU(), xpnn.Dense(10)], device="auto")
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(1e-3), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=10, batch_size=32)
    logits = model.predict(x_test)

or, as a graph of layer calls (branches, residual connections, shared layers)::

    x = xpnn.Input((64,))
    h = xpnn.ReLU()(xpnn.Dense(64)(x))
    model = xpnn.Model(x, xpnn.Dense(10)(xpnn.Add()([x, h])))
"""

from xpnn import (
    callbacks,
    data,
    datasets,
    functional,
    initializers,
    losses,
    metrics,
    onnx,
    optimizers,
    schedules,
)
from xpnn._version import __version__
from xpnn.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from xpnn.device import Device, device, get_backend, get_device, set_device
from xpnn.errors import (
    DatasetUnavailableError,
    DeviceError,
    DeviceUnavailableError,
    DTypeError,
    FileFormatError,
    GradcheckError,
    GraphError,
    LabelError,
    MissingKeyError,
    NonFiniteError,
    NotReadyError,
    OutOfMemoryError,
    PredictionError,
    ShapeError,
    XpnnError,
)
from xpnn.gradcheck import GradcheckResult, gradcheck
from xpnn.graph import Context, Input, SymbolicTensor
from xpnn.history import Evaluation, History
from xpnn.layers import (
    GELU,
    GRU,
    LSTM,
    Add,
    Average,
    AvgPool2D,
    BatchNorm,
    BatchNorm2D,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePool2D,
    Layer,
    LayerNormalization,
    LeakyReLU,
    MaxPool2D,
    MultiHeadAttention,
    Multiply,
    PaddingMask,
    Parameter,
    PositionalEmbedding,
    ReLU,
    Sigmoid,
    SimpleRNN,
    Softmax,
    Subtract,
    Tanh,
    TimeDistributed,
)
from xpnn.losses import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CategoricalCrossEntropy,
    MeanSquaredError,
    SoftmaxCrossEntropy,
    SparseCategoricalCrossEntropy,
)
from xpnn.lr_finder import LRFinderResult, lr_find
from xpnn.model import Model, Sequential, load
from xpnn.optimizers import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, RMSProp
from xpnn.schedules import CosineDecay, ExponentialDecay, StepDecay
from xpnn.selftest import test

__all__ = [
    "GELU",
    "GRU",
    "LSTM",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Add",
    "Average",
    "AvgPool2D",
    "BatchNorm",
    "BatchNorm2D",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
    "Callback",
    "CategoricalCrossEntropy",
    "Concatenate",
    "Context",
    "Conv2D",
    "CosineDecay",
    "DTypeError",
    "DatasetUnavailableError",
    "Dense",
    "Device",
    "DeviceError",
    "DeviceUnavailableError",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "Evaluation",
    "ExponentialDecay",
    "FileFormatError",
    "Flatten",
    "GlobalAveragePool2D",
    "GradcheckError",
    "GradcheckResult",
    "GraphError",
    "History",
    "Input",
    "LRFinderResult",
    "LabelError",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "LearningRateScheduler",
    "MaxPool2D",
    "MeanSquaredError",
    "MissingKeyError",
    "Model",
    "ModelCheckpoint",
    "Momentum",
    "MultiHeadAttention",
    "Multiply",
    "Nesterov",
    "NonFiniteError",
    "NotReadyError",
    "OutOfMemoryError",
    "PaddingMask",
    "Parameter",
    "PositionalEmbedding",
    "PredictionError",
    "RMSProp",
    "ReLU",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "SoftmaxCrossEntropy",
    "SparseCategoricalCrossEntropy",
    "StepDecay",
    "Subtract",
    "SymbolicTensor",
    "Tanh",
    "TerminateOnNaN",
    "TimeDistributed",
    "XpnnError",
    "__version__",
    "callbacks",
    "data",
    "datasets",
    "device",
    "functional",
    "get_backend",
    "get_device",
    "gradcheck",
    "initializers",
    "load",
    "losses",
    "lr_find",
    "metrics",
    "onnx",
    "optimizers",
    "schedules",
    "set_device",
    "test",
]
