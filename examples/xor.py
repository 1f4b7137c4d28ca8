"""A two-layer network learns XOR, which no single neuron can.

    python examples/xor.py [--device cpu] [--epochs 500] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

import xpnn


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y = xpnn.datasets.xor()
    model = xpnn.Sequential([xpnn.Dense(4), xpnn.Tanh(), xpnn.Dense(1), xpnn.Sigmoid()],
                            device=args.device, seed=args.seed)
    model.compile(loss="binary_crossentropy", optimizer=xpnn.Momentum(0.5, 0.9),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=args.epochs, batch_size=4, verbose=0, seed=args.seed)
    probabilities = model.predict(x)
    for inputs, target, p in zip(x, y, probabilities, strict=True):
        print(f"{int(inputs[0])} XOR {int(inputs[1])} = {int(target[0])}   "
              f"network says {p[0]:.3f}")
    accuracy = float(np.mean((probabilities > 0.5) == (y > 0.5)))
    print(f"loss {history['loss'][-1]:.4f}, accuracy {accuracy:.2f} after {args.epochs} epochs")
    return accuracy


if __name__ == "__main__":
    main()
