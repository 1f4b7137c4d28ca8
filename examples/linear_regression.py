"""Linear regression two ways: the normal equation and gradient descent agree.

The closed form solves (XᵀX) θ = Xᵀy for θ = (w, b); gradient descent trains a single
Dense(1) layer on ½·mean squared error with full-batch SGD. Both should find the same
parameters to 3 decimals.

    python examples/linear_regression.py [--device cpu] [--epochs 300]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import xpnn


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y, true_w, true_b = xpnn.datasets.linear_regression(500, 3, noise=0.3, seed=args.seed)

    design = np.hstack([x, np.ones((len(x), 1))])
    theta = np.linalg.solve(design.T @ design, design.T @ y)[:, 0]

    model = xpnn.Sequential([xpnn.Dense(1, kernel_initializer="zeros")],
                            device=args.device, dtype="float64", seed=args.seed)
    model.compile(loss="mse", optimizer=xpnn.SGD(0.5))
    model.fit(x, y, epochs=args.epochs, batch_size=len(x), shuffle=False, verbose=0)
    kernel, bias = model.get_weights()
    descent = np.concatenate([kernel[:, 0], bias])

    print("            " + "  ".join(f"{name:>8}" for name in ("w1", "w2", "w3", "b")))
    print("true      " + "  ".join(f"{v:8.4f}" for v in [*true_w, true_b]))
    print("normal eq " + "  ".join(f"{v:8.4f}" for v in theta))
    print("gradient  " + "  ".join(f"{v:8.4f}" for v in descent))
    gap = float(np.max(np.abs(theta - descent)))
    agree = gap < 5e-4
    print(f"largest difference {gap:.2e}: {'agree' if agree else 'DISAGREE'} to 3 decimals")
    if not agree:
        sys.exit(1)
    return gap


if __name__ == "__main__":
    main()
