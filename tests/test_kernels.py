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
