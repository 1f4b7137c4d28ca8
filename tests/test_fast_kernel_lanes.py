"""The NumPy backend's fused kernels forced on at every array size and switched off: the
layer, convolution, training and optimizer tests run again in a subprocess for each setting
of ``XPNN_FAST_KERNELS`` (by default small arrays go to NumPy, so the suite's small tests
would barely reach the fused kernels)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from xpnn.backends import fused

HERE = Path(__file__).resolve().parent
FILES = ["test_layers.py", "test_conv.py", "test_training.py", "test_optimizers.py"]


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["all", "0"])
def test_the_layers_train_with_the_fused_kernels_everywhere_and_nowhere(setting):
    if setting == "all" and fused.UNAVAILABLE:
        pytest.skip(f"the fused kernels cannot run here: {fused.UNAVAILABLE}")
    env = {**os.environ, "XPNN_FAST_KERNELS": setting}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--backend", "numpy",
         *(str(HERE / name) for name in FILES)],
        env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
