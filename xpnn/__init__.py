"""xpnn: a small, honest neural-network framework.

The same network code trains on NumPy (CPU) and CuPy (CUDA GPUs); a cross-backend test matrix
proves the two agree. Typical use::

    import xpnn
    model = xpnn.Sequential([xpnn.Dense(64), xpnn.ReLU(), xpnn.Dense(10)], device="auto")
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(1e-3), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=10, batch_size=32)
    probabilities = model.predict(x_test)
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
from xpnn.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from xpnn.checkpoint import load
from xpnn.device import Device, device, get_backend, get_device, set_device
from xpnn.errors import (
    DatasetUnavailableError,
    DeviceError,
    DeviceUnavailableError,
    DTypeError,
    FileFormatError,
    GradcheckError,
    LabelError,
    NonFiniteError,
    NotReadyError,
    ShapeError,
    XpnnError,
)
from xpnn.gradcheck import GradcheckResult, gradcheck
from xpnn.layers import (
    GRU,
    LSTM,
    AvgPool2D,
    BatchNorm,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePool2D,
    Layer,
    LeakyReLU,
    MaxPool2D,
    Parameter,
    ReLU,
    Sigmoid,
    SimpleRNN,
    Softmax,
    Tanh,
    TimeDistributed,
)
from xpnn.losses import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CategoricalCrossEntropy,
    MeanSquaredError,
    SoftmaxCrossEntropy,
)
from xpnn.lr_finder import LRFinderResult, lr_find
from xpnn.model import History, Sequential
from xpnn.optimizers import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, RMSProp
from xpnn.schedules import CosineDecay, ExponentialDecay, StepDecay

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "AvgPool2D",
    "BatchNorm",
    "BatchNorm2D",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
    "Callback",
    "CategoricalCrossEntropy",
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
    "ExponentialDecay",
    "FileFormatError",
    "Flatten",
    "GlobalAveragePool2D",
    "GradcheckError",
    "GradcheckResult",
    "History",
    "LRFinderResult",
    "LabelError",
    "Layer",
    "LeakyReLU",
    "LearningRateScheduler",
    "MaxPool2D",
    "MeanSquaredError",
    "ModelCheckpoint",
    "Momentum",
    "Nesterov",
    "NonFiniteError",
    "NotReadyError",
    "Parameter",
    "RMSProp",
    "ReLU",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "SoftmaxCrossEntropy",
    "StepDecay",
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
]
