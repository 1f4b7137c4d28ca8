"""Host-side data utilities: seeded mini-batch order, splitting, one-hot encoding."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def batch_indices(
    num_samples: int, batch_size: int, *, shuffle: bool = True,
    rng: np.random.Generator | int | None = None,
) -> Iterator[np.ndarray]:
    """Index arrays of successive mini-batches covering ``range(num_samples)`` once.

    With ``shuffle`` the order is a permutation drawn from ``rng`` (a Generator or a seed);
    the last batch may be smaller.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    order = (np.random.default_rng(rng).permutation(num_samples) if shuffle
             else np.arange(num_samples))
    for start in range(0, num_samples, batch_size):
        yield order[start:start + batch_size]


def train_test_split(
    x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2, seed: int | None = 0,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle and split into ``(x_train, x_test, y_train, y_test)``.

    With ``stratify`` (integer labels) each class keeps its share in both parts.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    rng = np.random.default_rng(seed)
    if stratify:
        test_parts = []
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            test_parts.append(members[: round(len(members) * test_fraction)])
        test = np.sort(np.concatenate(test_parts))
        train = np.setdiff1d(np.arange(len(x)), test)
        test, train = rng.permutation(test), rng.permutation(train)
    else:
        order = rng.permutation(len(x))
        n_test = round(len(x) * test_fraction)
        test, train = order[:n_test], order[n_test:]
    return x[train], x[test], y[train], y[test]


def one_hot(labels: np.ndarray, num_classes: int, dtype: str = "float32") -> np.ndarray:
    """(N,) integer labels -> (N, num_classes) rows of zeros with a 1 at the label."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], received "
                         f"{labels.min()}..{labels.max()}")
    return (labels[..., None] == np.arange(num_classes)).astype(dtype)
