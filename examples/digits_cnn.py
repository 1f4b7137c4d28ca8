"""Train a small convolutional network on the 8×8 handwritten digits and compare it with the MLP.

    python examples/digits_cnn.py                  # CPU (or $XPNN_DEVICE), 30 epochs
    python examples/digits_cnn.py --device cuda    # the same script on a GPU

The images are the 1,797 digits of scikit-learn, split as in digits_mlp.py (same seed, same
test set), reshaped to NCHW: (samples, 1 channel, 8, 8). Two 3×3 convolutions see each pixel's
neighbourhood, which a Dense layer on the flat 64 pixels has to learn from scratch.
"""

from __future__ import annotations

import argparse
import time

import xpnn


def build_cnn(seed: int, device: str | None = None) -> xpnn.Sequential:
    """Conv 1→32 3×3 same, ReLU, Conv 32→32 3×3 same, ReLU, MaxPool 2 (8×8 → 4×4), Flatten,
    Dropout 0.3, Dense 512→128, ReLU, Dense 128→10."""
    return xpnn.Sequential(
        [xpnn.Conv2D(32, 3, padding="same"), xpnn.ReLU(),
         xpnn.Conv2D(32, 3, padding="same"), xpnn.ReLU(), xpnn.MaxPool2D(2),
         xpnn.Flatten(), xpnn.Dropout(0.3), xpnn.Dense(128), xpnn.ReLU(), xpnn.Dense(10)],
        device=device, seed=seed)


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N, auto or strict (default: $XPNN_DEVICE or cpu)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=args.seed)
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 1x8x8 pixels")

    model = build_cnn(args.seed, args.device)
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(1e-3),
                  metrics=["accuracy"])
    model.build((1, 8, 8))
    model.summary()

    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(x_test, y_test), seed=args.seed, verbose=1)
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    print(f"test accuracy: {accuracy:.4f} ({args.epochs} epochs in {seconds:.1f} s "
          f"on {model.device})")
    return accuracy


if __name__ == "__main__":
    main()
