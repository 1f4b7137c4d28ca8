"""Weight initializers: documented distributions on a large draw, reproducibility, Dense's "auto"
choice, bit-identical initial weights on every lane, and serialization."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import xpnn
from xpnn import initializers

DTYPES = ("float32", "float64")
FAN_IN, FAN_OUT = 400, 300  # unequal, so fan_in, fan_out and their mean give different scales
SHAPE = (FAN_IN, FAN_OUT)
N = FAN_IN * FAN_OUT

# name -> (distribution, standard deviation) from the table in xpnn/initializers.py
DOCUMENTED = {
    "normal": ("normal", 0.01),
    "glorot_uniform": ("uniform", math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "glorot_normal": ("normal", math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "xavier_uniform": ("uniform", math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "xavier_normal": ("normal", math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "he_uniform": ("uniform", math.sqrt(2.0 / FAN_IN)),
    "he_normal": ("normal", math.sqrt(2.0 / FAN_IN)),
    "lecun_uniform": ("uniform", math.sqrt(1.0 / FAN_IN)),
    "lecun_normal": ("normal", math.sqrt(1.0 / FAN_IN)),
}
UNIFORM_LIMITS = {  # a of U(-a, a), as the table states it
    "glorot_uniform": math.sqrt(6.0 / (FAN_IN + FAN_OUT)),
    "xavier_uniform": math.sqrt(6.0 / (FAN_IN + FAN_OUT)),
    "he_uniform": math.sqrt(6.0 / FAN_IN),
    "lecun_uniform": math.sqrt(3.0 / FAN_IN),
}
NAMES = ("zeros", *DOCUMENTED)


def _draw(name: str, seed: int = 0, shape=SHAPE) -> np.ndarray:
    return initializers.get(name)(shape, FAN_IN, FAN_OUT, np.random.default_rng(seed))


def assert_distribution(x: np.ndarray, kind: str, std: float, what: str) -> None:
    """Mean 0, the given std (2 % on 120 000 draws: ~10 standard errors) and the shape of
    the distribution: bounded by √3·std if uniform, with ~68.3 % within one std if normal."""
    assert abs(x.mean()) < 5 * std / math.sqrt(x.size), f"{what}: mean {x.mean():.2e}"
    assert x.std() == pytest.approx(std, rel=0.02), f"{what}: std"
    within_one_std = np.mean(np.abs(x) < std)
    if kind == "uniform":
        assert np.abs(x).max() <= math.sqrt(3.0) * std * (1 + 1e-12), f"{what}: outside U(-a, a)"
        assert within_one_std == pytest.approx(1 / math.sqrt(3.0), abs=0.01), what
    else:
        assert np.abs(x).max() > 4 * std, f"{what}: tails too light for a normal"
        assert within_one_std == pytest.approx(0.6827, abs=0.01), what


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_distribution(name):
    x = _draw(name)
    assert x.shape == SHAPE and x.dtype == np.float64
    kind, std = DOCUMENTED[name]
    assert_distribution(x, kind, std, name)


@pytest.mark.parametrize("name", sorted(UNIFORM_LIMITS))
def test_uniform_limits(name):
    x = _draw(name)
    a = UNIFORM_LIMITS[name]
    assert x.min() >= -a and x.max() <= a
    assert x.min() < -0.999 * a and x.max() > 0.999 * a  # the whole interval is used


def test_zeros():
    x = _draw("zeros", shape=(7,))
    assert x.dtype == np.float64 and x.shape == (7,)
    np.testing.assert_array_equal(x, 0.0)


def test_normal_std_defaults_to_0_01_and_is_configurable():
    assert initializers.get("normal").std == 0.01
    rng = np.random.default_rng(0)
    assert_distribution(initializers.Normal(std=0.5)(SHAPE, 1, 1, rng), "normal", 0.5,
                        "Normal(0.5)")


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_reproducible_for_a_seed(name):
    shape = (30, 20)
    np.testing.assert_array_equal(_draw(name, 42, shape), _draw(name, 42, shape))
    assert not np.array_equal(_draw(name, 42, shape), _draw(name, 43, shape))


def test_get_accepts_instances_and_rejects_unknown_names():
    mine = initializers.Normal(0.2)
    assert initializers.get(mine) is mine
    with pytest.raises(ValueError, match="unknown initializer 'orthogonal'") as info:
        initializers.get("orthogonal")
    for name in NAMES:
        assert repr(name) in str(info.value)


# -- serialization ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_serialize_round_trip(name):
    init = initializers.get(name)
    spec = json.loads(json.dumps(initializers.serialize(init)))  # JSON-compatible
    again = initializers.deserialize(spec)
    assert type(again) is type(init) and again.get_config() == init.get_config()
    np.testing.assert_array_equal(_draw(name, 3, (5, 4)),
                                  again((5, 4), FAN_IN, FAN_OUT, np.random.default_rng(3)))


def test_serialize_round_trip_keeps_the_normal_std():
    spec = initializers.serialize(initializers.Normal(0.25))
    assert spec == {"name": "normal", "std": 0.25}
    again = initializers.deserialize(json.loads(json.dumps(spec)))
    assert isinstance(again, initializers.Normal) and again.std == 0.25


def test_dense_config_with_a_configured_initializer_round_trips():
    """Layer.get_config promises ``type(self)(**config)``; Dense serializes a configured
    initializer as a dict ({"name": "normal", "std": 0.1}), which Dense.__init__ must accept
    (regression: initializers.get raised TypeError: unhashable type: 'dict')."""
    layer = xpnn.Dense(3, kernel_initializer=initializers.Normal(0.1))
    again = xpnn.Dense(**layer.get_config())
    assert isinstance(again.kernel_initializer, initializers.Normal)
    assert again.kernel_initializer.std == 0.1


# -- Dense "auto" -------------------------------------------------------------------------------
def test_dense_auto_picks_he_before_relu_family_and_glorot_otherwise():
    model = xpnn.Sequential([
        xpnn.Dense(5), xpnn.ReLU(),
        xpnn.Dense(5), xpnn.LeakyReLU(0.1),
        xpnn.Dense(5), xpnn.Tanh(),
        xpnn.Dense(5), xpnn.Sigmoid(),
        xpnn.Dense(5, kernel_initializer="lecun_normal"), xpnn.ReLU(),  # explicit wins
        xpnn.Dense(5), xpnn.Dense(3),  # Dense before Dense, and the last layer
    ], seed=0)
    model.build((4,))
    dense = [layer for layer in model.layers if isinstance(layer, xpnn.Dense)]
    chosen = [layer.resolved_kernel_initializer.name for layer in dense]
    assert chosen == ["he_normal", "he_normal", "glorot_uniform", "glorot_uniform",
                      "lecun_normal", "glorot_uniform", "glorot_uniform"]


@pytest.mark.parametrize(("activation", "kind", "std"), [
    (xpnn.ReLU, "normal", math.sqrt(2.0 / FAN_IN)),
    (xpnn.Tanh, "uniform", math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
], ids=["relu", "tanh"])
def test_dense_auto_kernel_has_the_chosen_distribution(activation, kind, std):
    """The drawn kernel, not only the recorded choice, follows the auto rule; bias is zero."""
    model = xpnn.Sequential([xpnn.Dense(FAN_OUT), activation()], dtype="float64", seed=1)
    model.build((FAN_IN,))
    kernel, bias = model.get_weights()
    assert kernel.shape == SHAPE
    assert_distribution(kernel, kind, std, f"Dense before {activation.__name__}")
    np.testing.assert_array_equal(bias, 0.0)


# -- the same seed on every lane ----------------------------------------------------------------
def _model(device: str, dtype: str, seed: int) -> xpnn.Sequential:
    model = xpnn.Sequential([xpnn.Dense(6), xpnn.ReLU(), xpnn.Dense(4), xpnn.Tanh(),
                             xpnn.Dense(2, kernel_initializer="lecun_uniform")],
                            device=device, dtype=dtype, seed=seed)
    model.build((5,))
    return model


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_gives_bit_identical_weights_on_every_lane(lane, dtype):
    on_lane = _model(lane.device, dtype, seed=123)
    on_cpu = _model("cpu", dtype, seed=123)
    for param in on_lane.parameters():
        assert lane.backend.owns(param.value), param.name
        assert param.value.dtype == lane.backend.dtype(dtype), param.name
    lane_weights, cpu_weights = on_lane.get_weights(), on_cpu.get_weights()
    assert len(lane_weights) == len(cpu_weights) == 6
    for a, b in zip(lane_weights, cpu_weights, strict=True):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)

    other = _model(lane.device, dtype, seed=124).get_weights()
    for index in (0, 2, 4):  # kernels (biases are zeros for every seed)
        assert not np.array_equal(other[index], lane_weights[index])
