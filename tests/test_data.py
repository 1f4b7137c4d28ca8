"""Host-side data utilities and the built-in datasets."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.data import batch_indices, one_hot, train_test_split


def test_batch_indices_cover_everything_once_in_a_seeded_order():
    batches = list(batch_indices(10, 4, shuffle=True, rng=3))
    assert [len(b) for b in batches] == [4, 4, 2]
    order = np.concatenate(batches)
    assert sorted(order) == list(range(10))
    np.testing.assert_array_equal(order, np.concatenate(list(batch_indices(10, 4, rng=3))))
    assert not np.array_equal(order, np.concatenate(list(batch_indices(10, 4, rng=4))))
    np.testing.assert_array_equal(np.concatenate(list(batch_indices(5, 2, shuffle=False))),
                                  np.arange(5))
    with pytest.raises(ValueError, match="batch_size"):
        list(batch_indices(5, 0))


def test_stratified_split_keeps_class_shares():
    y = np.repeat(np.arange(3), [50, 30, 20])
    x = np.arange(100.0)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_fraction=0.2, stratify=True)
    assert np.bincount(y_test).tolist() == [10, 6, 4]
    assert np.bincount(y_train).tolist() == [40, 24, 16]
    assert sorted(np.concatenate([x_train, x_test])[:, 0]) == list(range(100))
    np.testing.assert_array_equal(y_test, y[x_test[:, 0].astype(int)])  # rows stay paired


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        one_hot(np.array([3]), 3)


@pytest.mark.parametrize("make", [xpnn.datasets.two_moons, xpnn.datasets.two_spirals])
def test_two_class_sets_are_seeded_and_balanced(make):
    x, y = make(101, seed=5)
    assert x.shape == (101, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert abs(int(y.sum()) - 50) <= 1
    x_again, _ = make(101, seed=5)
    np.testing.assert_array_equal(x, x_again)
    assert not np.array_equal(x, make(101, seed=6)[0])


def test_regression_sets():
    x, y = xpnn.datasets.noisy_sine(50, noise=0.0, seed=1)
    np.testing.assert_allclose(y, np.sin(x), atol=1e-6)
    x, y, w, b = xpnn.datasets.linear_regression(40, 2, noise=0.0, seed=2)
    np.testing.assert_allclose(y[:, 0], x @ w + b)


def test_digits():
    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    (x_train, _), (x_test, y_test) = xpnn.datasets.load_digits()
    assert x_train.shape[1] == 64 and len(x_train) + len(x_test) == 1797
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert set(np.unique(y_test)) == set(range(10))
