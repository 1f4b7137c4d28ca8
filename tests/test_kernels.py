"""The training kernels of the backends: every specialisation against the generic version
written with standard functions (``Backend.<kernel>``), on random inputs, on every lane."""

from __future__ import annotations

import numpy as np
import pytest
from xpnn.backends.base import Backend

DTYPES = ("float32", "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (64, 33), (3, 4, 5)])
def test_apply_mask_matches_the_generic_kernel(lane, dtype, shape, rng):
    values = lane.asarray(rng.standard_normal(shape), dtype)
    mask = lane.asarray(rng.standard_normal(shape) > 0)
    specialised = lane.backend.apply_mask(values, mask)
    generic = Backend.apply_mask(lane.backend, values, mask)
    expected = np.where(lane.to_host(mask), lane.to_host(values), 0.0)
    lane.assert_close(generic, expected, dtype, what="generic apply_mask")
    lane.assert_close(specialised, expected, dtype, what=f"{lane.name} apply_mask")
    np.testing.assert_array_equal(lane.to_host(specialised), lane.to_host(generic))


def _state_arrays(lane, rng, shape, dtype, count):
    """``count`` random arrays of ``shape`` on the lane, twice: for the specialised and
    the generic kernel (each updates its own copies in place)."""
    hosts = [rng.standard_normal(shape) for _ in range(count)]

    def fresh(host):  # a copy: the NumPy backend's asarray may return the host array itself
        return lane.xp.asarray(lane.asarray(host, dtype), copy=True)

    return [fresh(h) for h in hosts], [fresh(h) for h in hosts]


@pytest.fixture(params=["whole", "blocks", "strided"])
def layout(request, lane, monkeypatch):
    """How the specialisation sees the arrays: as one block, in many small blocks (the
    NumPy backend's block size made tiny), or as non-contiguous views. The NumPy backend's
    size threshold is lowered so that its blocked kernels run on these small arrays."""
    if hasattr(lane.backend, "BLOCK_BYTES"):
        monkeypatch.setattr(lane.backend, "BLOCKED_FROM", 0)
        if request.param == "blocks":
            monkeypatch.setattr(lane.backend, "BLOCK_BYTES", 256)  # 64 float32, 32 float64
    elif request.param == "blocks":
        pytest.skip(f"the {lane.name} backend has no blocked kernels")
    return request.param


def _shaped(lane, arrays, layout):
    """Transposed views for the strided layout (the arrays are (37, 50) then)."""
    if layout != "strided":
        return arrays
    return [lane.xp.permute_dims(array, (1, 0)) for array in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_momentum_step_matches_the_generic_kernel(lane, dtype, nesterov, layout, rng):
    """Five steps with fresh random gradients: bit-identical to ``Backend.momentum_step``
    and to the textbook update computed in float64."""
    shape = (37, 50)
    (value, velocity), (value_g, velocity_g) = _state_arrays(lane, rng, shape, dtype, 2)
    expected_w = lane.to_host(value).astype(np.float64)
    expected_v = lane.to_host(velocity).astype(np.float64)
    views = _shaped(lane, [value, velocity], layout)
    views_g = _shaped(lane, [value_g, velocity_g], layout)
    for _ in range(5):
        host_grad = rng.standard_normal(shape)
        grad = lane.asarray(host_grad, dtype)
        lane.backend.momentum_step(*views, _shaped(lane, [grad], layout)[0], 0.05, 0.9,
                                   nesterov=nesterov)
        Backend.momentum_step(lane.backend, *views_g, _shaped(lane, [grad], layout)[0],
                              0.05, 0.9, nesterov=nesterov)
        expected_v = 0.9 * expected_v - 0.05 * host_grad
        expected_w += (0.9 * expected_v - 0.05 * host_grad) if nesterov else expected_v
    lane.assert_close(value, expected_w, dtype, what="w")
    lane.assert_close(velocity, expected_v, dtype, what="v")
    np.testing.assert_array_equal(lane.to_host(value), lane.to_host(value_g))
    np.testing.assert_array_equal(lane.to_host(velocity), lane.to_host(velocity_g))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_step_matches_the_generic_kernel(lane, dtype, layout, rng):
    """Five steps with fresh random gradients: bit-identical to ``Backend.adam_step`` and
    close to the textbook update computed in float64."""
    shape = (37, 50)
    (value, m, v), (value_g, m_g, v_g) = _state_arrays(lane, rng, shape, dtype, 3)
    v, v_g = v * v, v_g * v_g  # second moments are not negative
    expected = [lane.to_host(a).astype(np.float64) for a in (value, m, v)]
    views = _shaped(lane, [value, m, v], layout)
    views_g = _shaped(lane, [value_g, m_g, v_g], layout)
    for step in range(1, 6):
        host_grad = rng.standard_normal(shape)
        grad = _shaped(lane, [lane.asarray(host_grad, dtype)], layout)[0]
        step_size, epsilon = 1e-3 / step, 1e-8 * step
        lane.backend.adam_step(*views, grad, 0.9, 0.999, step_size, epsilon)
        Backend.adam_step(lane.backend, *views_g, grad, 0.9, 0.999, step_size, epsilon)
        w, m_host, v_host = expected
        m_host = 0.9 * m_host + 0.1 * host_grad
        v_host = 0.999 * v_host + 0.001 * host_grad**2
        expected = [w - step_size * m_host / (np.sqrt(v_host) + epsilon), m_host, v_host]
    for got, got_g, want, name in zip((value, m, v), (value_g, m_g, v_g), expected, "wmv",
                                      strict=True):
        lane.assert_close(got, want, dtype, what=name)
        np.testing.assert_array_equal(lane.to_host(got), lane.to_host(got_g), err_msg=name)
