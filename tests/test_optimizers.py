"""Every optimizer against an independent float64 NumPy reference of its textbook rule, on every
lane and dtype; state placement, persistence, moving with the model, errors and convergence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.optimizers import Optimizer

from .tolerances import PARITY, TRAINING

DTYPES = ("float32", "float64")
NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
STEPS = 5


# -- the reference: textbook rules, plain NumPy float64, one parameter at a time ---------------
def reference_update(kind: str, hp: dict[str, float], w: np.ndarray, g: np.ndarray,
                     state: dict[str, Any], t: int, regularizable: bool) -> np.ndarray:
    """The new value of w after step t (1-based); ``state`` is updated in place."""
    lr = hp["learning_rate"]
    zeros = np.zeros_like(w)
    if kind == "sgd":
        return w - lr * g
    if kind == "momentum":  # v = μv − ηg;  w += v
        v = hp["momentum"] * state.get("v", zeros) - lr * g
        state["v"] = v
        return w + v
    if kind == "nesterov":  # v = μv − ηg;  w += μv − ηg
        v = hp["momentum"] * state.get("v", zeros) - lr * g
        state["v"] = v
        return w + hp["momentum"] * v - lr * g
    if kind == "adagrad":  # h += g²;  w -= ηg / (√h + ε)
        h = state.get("h", zeros) + g**2
        state["h"] = h
        return w - lr * g / (np.sqrt(h) + hp["epsilon"])
    if kind == "rmsprop":  # h = ρh + (1 − ρ)g²;  w -= ηg / (√h + ε)
        h = hp["rho"] * state.get("h", zeros) + (1 - hp["rho"]) * g**2
        state["h"] = h
        return w - lr * g / (np.sqrt(h) + hp["epsilon"])
    if kind in ("adam", "adamw"):
        if kind == "adamw" and regularizable:  # decoupled decay, kernels only
            w = w - lr * hp["weight_decay"] * w
        b1, b2 = hp["beta_1"], hp["beta_2"]
        m = b1 * state.get("m", zeros) + (1 - b1) * g
        v = b2 * state.get("v", zeros) + (1 - b2) * g**2
        state["m"], state["v"] = m, v
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        return w - lr * m_hat / (np.sqrt(v_hat) + hp["epsilon"])
    raise AssertionError(kind)


@dataclass
class Case:
    """An optimizer built with ``kwargs`` and the full hyper-parameters ``hp`` it must use."""

    id: str
    cls: type[Optimizer]
    kind: str
    hp: dict[str, float]
    kwargs: dict[str, float] = field(default_factory=dict)

    def make(self) -> Optimizer:
        return self.cls(**self.kwargs)


def _custom(cls: type[Optimizer], kind: str, **hp: float) -> Case:
    return Case(kind, cls, kind, hp, hp)


# Defaults are spelled out here, independently of the library, so they are checked too.
DEFAULT_CASES = [
    Case("sgd-default", xpnn.SGD, "sgd", {"learning_rate": 0.01}),
    Case("momentum-default", xpnn.Momentum, "momentum", {"learning_rate": 0.01, "momentum": 0.9}),
    Case("nesterov-default", xpnn.Nesterov, "nesterov", {"learning_rate": 0.01, "momentum": 0.9}),
    Case("adagrad-default", xpnn.AdaGrad, "adagrad", {"learning_rate": 0.01, "epsilon": 1e-7}),
    Case("rmsprop-default", xpnn.RMSProp, "rmsprop",
         {"learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-7}),
    Case("adam-default", xpnn.Adam, "adam",
         {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
    Case("adamw-default", xpnn.AdamW, "adamw",
         {"learning_rate": 0.001, "weight_decay": 0.01, "beta_1": 0.9, "beta_2": 0.999,
          "epsilon": 1e-8}),
]
CUSTOM_CASES = [
    _custom(xpnn.SGD, "sgd", learning_rate=0.3),
    _custom(xpnn.Momentum, "momentum", learning_rate=0.05, momentum=0.5),
    _custom(xpnn.Nesterov, "nesterov", learning_rate=0.05, momentum=0.7),
    _custom(xpnn.AdaGrad, "adagrad", learning_rate=0.2, epsilon=1e-3),
    _custom(xpnn.RMSProp, "rmsprop", learning_rate=0.01, rho=0.5, epsilon=1e-4),
    _custom(xpnn.Adam, "adam", learning_rate=0.02, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
    _custom(xpnn.AdamW, "adamw", learning_rate=0.02, weight_decay=0.5, beta_1=0.8,
            beta_2=0.95, epsilon=1e-4),
]
CASES = DEFAULT_CASES + CUSTOM_CASES
CUSTOM_BY_NAME = {case.kind: case for case in CUSTOM_CASES}


# -- the fixed problem: a 2-D kernel (decayed by AdamW) and a 1-D bias (not decayed) -----------
def _problem(dtype: str) -> tuple[list[np.ndarray], list[bool], list[list[np.ndarray]]]:
    """Initial values, regularizable flags and STEPS gradient pairs, rounded to ``dtype`` so the
    reference sees exactly what the lane sees. Bias gradients are ~1e-3, where ε matters."""
    rng = np.random.default_rng(7)

    def rounded(a: np.ndarray) -> np.ndarray:
        return a.astype(dtype).astype(np.float64)

    values = [rounded(rng.standard_normal((3, 4))), rounded(rng.standard_normal(4))]
    grads = [[rounded(rng.standard_normal((3, 4))), rounded(1e-3 * rng.standard_normal(4))]
             for _ in range(STEPS)]
    return values, [True, False], grads


def _params(backend, values, regularizable, dtype) -> list[xpnn.Parameter]:
    names = ("dense/kernel", "dense/bias")
    return [xpnn.Parameter(name, backend.asarray(value.copy(), dtype=dtype), reg)
            for name, value, reg in zip(names, values, regularizable, strict=True)]


def _step(backend, opt: Optimizer, params, grads, dtype) -> None:
    for param, g in zip(params, grads, strict=True):
        param.grad = backend.asarray(g.copy(), dtype=dtype)
    opt.step(params)


def _reference_trajectory(case: Case, values, regularizable, grads) -> list[list[np.ndarray]]:
    """The reference parameter values after each step."""
    current = [v.copy() for v in values]
    states: list[dict[str, Any]] = [{} for _ in values]
    out = []
    for t, step_grads in enumerate(grads, start=1):
        current = [reference_update(case.kind, case.hp, w, g, s, t, reg)
                   for w, g, s, reg in zip(current, step_grads, states, regularizable,
                                           strict=True)]
        out.append([w.copy() for w in current])
    return out


def _assert_state_on_lane(lane, opt: Optimizer, params, dtype: str) -> None:
    for param in params:
        entry = opt.state[param.name]
        for slot in opt.slots:
            array = entry[slot]
            assert lane.backend.owns(array), f"{param.name}/{slot} left the {lane.name} lane"
            assert array.dtype == lane.backend.dtype(dtype), f"{param.name}/{slot} dtype"
            assert tuple(array.shape) == param.shape, f"{param.name}/{slot} shape"


# -- the update rules ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_steps_match_the_textbook_rule(lane, case, dtype):
    values, regularizable, grads = _problem(dtype)
    expected = _reference_trajectory(case, values, regularizable, grads)
    params = _params(lane.backend, values, regularizable, dtype)
    opt = case.make()
    opt.build(params, lane.backend)
    _assert_state_on_lane(lane, opt, params, dtype)
    for t, step_grads in enumerate(grads, start=1):
        before = [p.value for p in params]
        _step(lane.backend, opt, params, step_grads, dtype)
        for param, old, want, g in zip(params, before, expected[t - 1], step_grads, strict=True):
            assert param.value is old, f"{param.name} was rebound, not updated in place"
            lane.assert_close(param.value, want, dtype, PARITY, f"{case.id} {param.name} t={t}")
            np.testing.assert_array_equal(lane.to_host(param.grad), g.astype(dtype),
                                          err_msg="the optimizer wrote into the gradient")
            assert opt.state[param.name]["step"] == t
        _assert_state_on_lane(lane, opt, params, dtype)
    assert opt.iterations == STEPS


def test_reference_is_not_trivially_satisfied():
    """The non-default hyper-parameters change the trajectory (so the cases test them)."""
    values, regularizable, grads = _problem("float64")
    for default, custom in zip(DEFAULT_CASES, CUSTOM_CASES, strict=True):
        a = _reference_trajectory(default, values, regularizable, grads)[-1]
        b = _reference_trajectory(custom, values, regularizable, grads)[-1]
        for wa, wb in zip(a, b, strict=True):
            assert not np.allclose(wa, wb, **PARITY["float32"]), custom.id


def test_adamw_decays_kernels_but_not_biases(lane):
    """With zero gradients Adam does not move; AdamW shrinks only the regularizable one."""
    dtype = "float64"
    values, regularizable, _ = _problem(dtype)
    params = _params(lane.backend, values, regularizable, dtype)
    opt = xpnn.AdamW(0.1, weight_decay=0.5)
    opt.build(params, lane.backend)
    _step(lane.backend, opt, params, [np.zeros_like(v) for v in values], dtype)
    lane.assert_close(params[0].value, values[0] * (1 - 0.1 * 0.5), dtype, PARITY, "kernel")
    lane.assert_close(params[1].value, values[1], dtype, PARITY, "bias")


@pytest.mark.parametrize("name", NAMES)
def test_parameter_without_grad_is_left_untouched(lane, name):
    dtype = "float32"
    values, regularizable, grads = _problem(dtype)
    params = _params(lane.backend, values, regularizable, dtype)
    opt = xpnn.optimizers.get(name)
    opt.build(params, lane.backend)
    kernel, bias = params
    kernel.grad = lane.asarray(grads[0][0], dtype)
    bias.grad = None
    opt.step(params)
    np.testing.assert_array_equal(lane.to_host(bias.value), values[1].astype(dtype))
    assert opt.state[bias.name]["step"] == 0
    for slot in opt.slots:
        np.testing.assert_array_equal(lane.to_host(opt.state[bias.name][slot]), 0.0)
    assert opt.state[kernel.name]["step"] == 1
    assert not np.array_equal(lane.to_host(kernel.value), values[0].astype(dtype))


# -- persistence --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_resumes_on_another_lane(lane, name):
    """Two steps on the CPU, state_dict, load into a fresh optimizer on the lane, three more
    steps: the same as five uninterrupted steps on the CPU."""
    dtype = "float64"
    case = CUSTOM_BY_NAME[name]
    cpu = xpnn.get_backend("cpu")
    values, regularizable, grads = _problem(dtype)

    straight = _params(cpu, values, regularizable, dtype)
    opt_straight = case.make()
    opt_straight.build(straight, cpu)
    for step_grads in grads:
        _step(cpu, opt_straight, straight, step_grads, dtype)

    first = _params(cpu, values, regularizable, dtype)
    opt_first = case.make()
    opt_first.build(first, cpu)
    for step_grads in grads[:2]:
        _step(cpu, opt_first, first, step_grads, dtype)
    saved = opt_first.state_dict()
    assert saved["class"] == case.cls.__name__ and saved["iterations"] == 2
    for param in first:
        entry = saved["state"][param.name]
        assert entry["step"] == 2
        for slot in opt_first.slots:
            assert type(entry[slot]) is np.ndarray and entry[slot].dtype == np.float64
            assert not np.shares_memory(entry[slot], opt_first.state[param.name][slot])

    resumed = _params(lane.backend, [cpu.to_host(p.value) for p in first], regularizable, dtype)
    opt_resumed = case.cls()  # default hyper-parameters: load_state_dict must restore them
    opt_resumed.build(resumed, lane.backend)
    opt_resumed.load_state_dict(saved)
    assert opt_resumed.get_config() == {**case.cls().get_config(), **case.hp}
    assert opt_resumed.iterations == 2
    _assert_state_on_lane(lane, opt_resumed, resumed, dtype)
    for step_grads in grads[2:]:
        _step(lane.backend, opt_resumed, resumed, step_grads, dtype)
    assert opt_resumed.iterations == STEPS
    for got, want in zip(resumed, straight, strict=True):
        lane.assert_close(got.value, cpu.to_host(want.value), dtype, PARITY, got.name)
        if lane.name == "numpy":  # same device, same operations: bit-identical
            np.testing.assert_array_equal(got.value, want.value)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "sgd"])
def test_load_state_dict_copies_the_arrays(lane, name):
    """A loaded optimizer does not update the state_dict's arrays in place: a saved state is a
    checkpoint that can be loaded again. (Regression: NumpyBackend.asarray does not copy, and
    load_state_dict used to alias the host arrays on the numpy lane.)"""
    dtype = "float64"
    values, regularizable, grads = _problem(dtype)
    cpu = xpnn.get_backend("cpu")
    params = _params(cpu, values, regularizable, dtype)
    opt = CUSTOM_BY_NAME[name].make()
    opt.build(params, cpu)
    _step(cpu, opt, params, grads[0], dtype)
    saved = opt.state_dict()
    snapshot = {p: {s: saved["state"][p][s].copy() for s in opt.slots} for p in saved["state"]}

    on_lane = _params(lane.backend, values, regularizable, dtype)
    loaded = CUSTOM_BY_NAME[name].make()
    loaded.build(on_lane, lane.backend)
    loaded.load_state_dict(saved)
    _step(lane.backend, loaded, on_lane, grads[1], dtype)
    for pname, slots in snapshot.items():
        for slot, before in slots.items():
            np.testing.assert_array_equal(saved["state"][pname][slot], before,
                                          err_msg=f"state_dict {pname}/{slot} was modified")


def test_load_state_dict_checks_class_and_build():
    cpu = xpnn.get_backend("cpu")
    param = xpnn.Parameter("w", cpu.asarray(np.ones(3)))
    adam = xpnn.Adam()
    adam.build([param], cpu)
    saved = adam.state_dict()
    with pytest.raises(xpnn.NotReadyError):
        xpnn.Adam().load_state_dict(saved)
    other = xpnn.AdamW()
    other.build([param], cpu)
    with pytest.raises(ValueError, match="Adam"):
        other.load_state_dict(saved)


# -- errors and the registry --------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_stepping_an_unknown_parameter_raises_not_ready(lane, name):
    known = xpnn.Parameter("known", lane.asarray(np.ones((2, 2)), "float32"))
    stranger = xpnn.Parameter("stranger", lane.asarray(np.ones(2), "float32"))
    stranger.grad = lane.asarray(np.ones(2), "float32")
    opt = xpnn.optimizers.get(name)
    opt.build([known], lane.backend)
    with pytest.raises(xpnn.NotReadyError, match="stranger"):
        opt.step([stranger])


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, float("nan")])
@pytest.mark.parametrize("cls", [case.cls for case in DEFAULT_CASES], ids=NAMES)
def test_invalid_learning_rate_raises(cls, bad):
    with pytest.raises(ValueError, match="learning_rate"):
        cls(learning_rate=bad)


def test_get_by_name():
    expected = {"sgd": xpnn.SGD, "momentum": xpnn.Momentum, "nesterov": xpnn.Nesterov,
                "adagrad": xpnn.AdaGrad, "rmsprop": xpnn.RMSProp, "adam": xpnn.Adam,
                "adamw": xpnn.AdamW}
    for name, cls in expected.items():
        opt = xpnn.optimizers.get(name)
        assert type(opt) is cls, name
    adam = xpnn.optimizers.get("adam")
    assert adam.learning_rate == 0.001 and adam.beta_1 == 0.9 and adam.beta_2 == 0.999
    assert xpnn.optimizers.get("adam") is not adam  # a fresh optimizer each time
    mine = xpnn.Momentum(0.1)
    assert xpnn.optimizers.get(mine) is mine


def test_get_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'") as info:
        xpnn.optimizers.get("adamax")
    for name in NAMES:
        assert repr(name) in str(info.value)


# -- convergence --------------------------------------------------------------------------------
# f(w) = ½‖A w − b‖², A well conditioned (singular values in [1, 2]); minimum at w* = A⁻¹ b.
_A = (np.linalg.qr(np.random.default_rng(3).standard_normal((4, 4)))[0]
      @ np.diag([1.0, 1.3, 1.6, 2.0])
      @ np.linalg.qr(np.random.default_rng(4).standard_normal((4, 4)))[0])
_B = np.array([1.0, -2.0, 0.5, 1.5])
_W_STAR = np.linalg.solve(_A, _B)
_W0 = np.zeros(4)

# name -> (optimizer, steps, tolerance on ‖w − w*‖); ‖w0 − w*‖ ≈ 1.7. AdamW's decay moves
# its fixed point by about η λ ‖w*‖ / (step size), hence its looser tolerance.
CONVERGENCE = {
    "sgd": (lambda: xpnn.SGD(0.2), 100, 1e-5),
    "momentum": (lambda: xpnn.Momentum(0.1, momentum=0.5), 100, 1e-5),
    "nesterov": (lambda: xpnn.Nesterov(0.1, momentum=0.5), 100, 1e-5),
    "adagrad": (lambda: xpnn.AdaGrad(0.5), 100, 1e-5),
    "rmsprop": (lambda: xpnn.RMSProp(0.01, rho=0.999), 300, 1e-4),
    "adam": (lambda: xpnn.Adam(0.05), 300, 1e-4),
    "adamw": (lambda: xpnn.AdamW(0.05, weight_decay=1e-4), 300, 3e-4),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_converges_on_a_least_squares_problem(lane, name, dtype):
    make, steps, tolerance = CONVERGENCE[name]
    xp = lane.xp
    A, b = lane.asarray(_A, dtype), lane.asarray(_B, dtype)
    A_t = xp.matrix_transpose(A)
    w = xpnn.Parameter("w", lane.asarray(_W0.copy(), dtype))
    opt = make()
    opt.build([w], lane.backend)
    for _ in range(steps):
        w.grad = xp.matmul(A_t, xp.matmul(A, w.value) - b)  # ∇f = Aᵀ(Aw − b)
        opt.step([w])
    distance = np.linalg.norm(lane.to_host(w.value) - _W_STAR)
    assert distance < tolerance, f"{name}: ‖w − w*‖ = {distance:.2e} after {steps} steps"


# -- with the model -----------------------------------------------------------------------------
def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.standard_normal((8, 3)), rng.standard_normal((8, 2))


def _small_model(dtype: str, optimizer: Optimizer | str) -> xpnn.Sequential:
    model = xpnn.Sequential([xpnn.Dense(5), xpnn.Tanh(), xpnn.Dense(2)], device="cpu",
                            dtype=dtype, seed=5)
    model.compile("mse", optimizer)
    return model


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_to_moves_optimizer_state(lane, dtype):
    x, y = _batch()
    model = _small_model(dtype, xpnn.Adam(0.05))
    reference = _small_model(dtype, xpnn.Adam(0.05))
    model.train_on_batch(x, y)
    reference.train_on_batch(x, y)

    assert model.to(lane.device) is model
    opt = model.optimizer
    assert opt.backend is lane.backend
    assert len(opt.state) == len(model.parameters()) == 4
    for param in model.parameters():
        assert lane.backend.owns(param.value), param.name
        assert opt.state[param.name]["step"] == 1
    _assert_state_on_lane(lane, opt, model.parameters(), dtype)

    model.train_on_batch(x, y)
    reference.train_on_batch(x, y)
    _assert_state_on_lane(lane, opt, model.parameters(), dtype)
    cpu = reference.backend
    for param, ref_param in zip(model.parameters(), reference.parameters(), strict=True):
        lane.assert_close(param.value, cpu.to_host(ref_param.value), dtype, TRAINING,
                          param.name)
        for slot in opt.slots:
            lane.assert_close(opt.state[param.name][slot],
                              cpu.to_host(reference.optimizer.state[ref_param.name][slot]),
                              dtype, TRAINING, f"{param.name}/{slot}")

    model.to("cpu")  # and back again
    cpu_backend = xpnn.get_backend("cpu")
    for entry in opt.state.values():
        assert all(cpu_backend.owns(entry[slot]) for slot in opt.slots)


@pytest.mark.parametrize("name", NAMES)
def test_float32_model_stays_float32_after_a_step(lane, name):
    x, y = _batch()
    model = xpnn.Sequential([xpnn.Dense(5), xpnn.ReLU(), xpnn.Dense(2)], device=lane.device,
                            seed=5)
    model.compile("mse", name)
    model.train_on_batch(x, y)  # float64 data: cast to the model's float32 at the boundary
    f32 = lane.backend.dtype("float32")
    for param in model.parameters():
        assert lane.backend.owns(param.value) and param.value.dtype == f32, param.name
        assert lane.backend.owns(param.grad) and param.grad.dtype == f32, param.name
    _assert_state_on_lane(lane, model.optimizer, model.parameters(), "float32")
    assert model.get_weights()[0].dtype == np.float32


@pytest.mark.parametrize("name", ["momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_decaying_state_of_dead_units_is_flushed_to_zero_not_left_subnormal(lane, name):
    """BUG (all lanes, float32): the velocity of a parameter whose gradient stays zero (a dead
    ReLU unit) decayed into the subnormal numbers and stuck at 1.4e-45, because 0.9 × 1.4e-45
    rounds back to 1.4e-45; subnormal arithmetic is many times slower on many CPUs. Every
    FLUSH_INTERVAL steps, decaying state below FLUSH_BELOW is now set to zero."""
    from xpnn.optimizers import FLUSH_BELOW, FLUSH_INTERVAL

    param = xpnn.Parameter("w", lane.asarray(np.ones(3), "float32"))
    opt = {"momentum": xpnn.Momentum(0.1, 0.9), "nesterov": xpnn.Nesterov(0.1, 0.9),
           "rmsprop": xpnn.RMSProp(0.01, rho=0.9), "adam": xpnn.Adam(0.01),
           "adamw": xpnn.AdamW(0.01)}[name]
    opt.build([param], lane.backend)
    param.grad = lane.asarray([1.0, 1.0, 0.0], "float32")  # one step with a gradient
    opt.step([param])
    param.grad = lane.asarray(np.zeros(3), "float32")  # then the unit is dead
    smallest_normal = np.finfo(np.float32).smallest_normal
    for step in range(2, 1601):
        opt.step([param])
        if step % FLUSH_INTERVAL == 0:
            for slot in opt.decaying_slots:
                host = lane.to_host(opt.state["w"][slot])
                tiny = (host != 0) & (np.abs(host) < FLUSH_BELOW)
                assert not tiny.any(), (slot, step, host)
    for slot in opt.decaying_slots:
        host = lane.to_host(opt.state["w"][slot])
        assert ((host == 0) | (np.abs(host) >= smallest_normal)).all(), (slot, host)
    # the momentum velocity is gone entirely, not stuck at the smallest subnormal
    if name in ("momentum", "nesterov"):
        np.testing.assert_array_equal(lane.to_host(opt.state["w"]["velocity"]), 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_updates_do_not_write_into_set_weights_arrays(lane, dtype):
    """BUG (numpy lane): Sequential.set_weights keeps the caller's arrays as the parameters when
    their dtype already matches (xpnn/model.py:178 calls NumpyBackend.asarray, which does not
    copy: backends/numpy.py:29), so the optimizer's in-place updates overwrite them."""
    x, y = _batch()
    model = xpnn.Sequential([xpnn.Dense(5), xpnn.Tanh(), xpnn.Dense(2)], device=lane.device,
                            dtype=dtype, seed=5)
    model.compile("mse", xpnn.SGD(0.1))
    model.build((3,))
    mine = [w.copy() for w in model.get_weights()]
    kept = [w.copy() for w in mine]
    model.set_weights(mine)
    model.train_on_batch(x, y)
    assert not np.array_equal(model.get_weights()[0], kept[0])  # the step did happen
    for index, (now, before) in enumerate(zip(mine, kept, strict=True)):
        np.testing.assert_array_equal(now, before, err_msg=f"caller's array {index} changed")
