"""Small built-in datasets that need no network, as NumPy arrays.

Synthetic sets are generated from a seed; :func:`load_digits` reads the 8×8 handwritten
digits that ship inside scikit-learn (``pip install 'xpnn[examples]'``).
"""

from __future__ import annotations

import numpy as np

from xpnn.data import train_test_split


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: x (4, 2) float32 and y (4, 1) float32 with y = x₁ XOR x₂."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return x, y


def two_moons(n: int = 200, *, noise: float = 0.1, seed: int | None = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: x (n, 2) float32, y (n,) int64 in {0, 1}."""
    rng = np.random.default_rng(seed)
    n_upper = n // 2
    angle_upper = rng.uniform(0.0, np.pi, n_upper)
    angle_lower = rng.uniform(0.0, np.pi, n - n_upper)
    upper = np.stack([np.cos(angle_upper), np.sin(angle_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(angle_lower), 0.5 - np.sin(angle_lower)], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n_upper, np.int64), np.ones(n - n_upper, np.int64)])
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def two_spirals(n: int = 400, *, noise: float = 0.05, turns: float = 1.5,
                seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals of ``turns`` turns: x (n, 2) float32, y (n,) int64."""
    rng = np.random.default_rng(seed)
    n_first = n // 2
    labels = np.concatenate([np.zeros(n_first, np.int64), np.ones(n - n_first, np.int64)])
    radius = np.sqrt(rng.uniform(0.05, 1.0, n))
    angle = 2.0 * np.pi * turns * radius + np.pi * labels
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order].astype(np.float32), labels[order]


def noisy_sine(n: int = 200, *, noise: float = 0.1, seed: int | None = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """y = sin(x) + noise for x uniform in [−π, π]: x (n, 1), y (n, 1), float32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-np.pi, np.pi, (n, 1))
    y = np.sin(x) + noise * rng.standard_normal((n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def linear_regression(n: int = 200, features: int = 3, *, noise: float = 0.1,
                      seed: int | None = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """y = x w + b + noise with random w, b: returns x (n, features), y (n, 1) (float64),
    and the true w (features,) and b."""
    rng = np.random.default_rng(seed)
    true_w = rng.uniform(-2.0, 2.0, features)
    true_b = float(rng.uniform(-1.0, 1.0))
    x = rng.standard_normal((n, features))
    y = x @ true_w + true_b + noise * rng.standard_normal(n)
    return x, y[:, None], true_w, true_b


def load_digits(*, test_fraction: float = 0.2, seed: int | None = 0
                ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The 1,797 8×8 handwritten digits of scikit-learn, split stratified by class.

    Returns ``(x_train, y_train), (x_test, y_test)`` with x (n, 64) float32 scaled to [0, 1]
    and y (n,) int64 labels 0–9.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError("the digits dataset ships with scikit-learn: "
                          "pip install 'xpnn[examples]'") from error
    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_fraction=test_fraction, seed=seed, stratify=True)
    return (x_train, y_train), (x_test, y_test)
