"""Exact float64 moments, mergeable in any order, against a NumPy float64 reference."""

import numpy as np
import pytest

from beam_pipeline.statistics.moments import Moments


def _reference(values: np.ndarray) -> tuple:
    x = values.astype(np.float64)
    return len(x), x.mean(0), x.var(0), x.min(0), x.max(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_batches_merged_in_any_order_equal_one_float64_pass(dtype):
    rng = np.random.default_rng(0)
    # Large offsets and heavy tails: where running sums of x and x**2 lose the variance.
    values = (rng.standard_t(2, size=(3001, 4)) * [1, 10, 100, 1] + [1e4, -5e3, 0, 7]).astype(dtype)
    cuts = [0, 1, 17, 1000, 1001, 2500, 3001]
    parts = [Moments.of(values[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    forward = Moments.empty(4)
    for part in parts:
        forward = forward.merge(part)
    backward = Moments.empty(4)
    for part in reversed(parts):
        backward = part.merge(backward)
    count, mean, var, lo, hi = _reference(values)
    for m in (forward, backward):
        assert m.count == count
        np.testing.assert_allclose(m.mean, mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m.variance, var, rtol=1e-10)
        np.testing.assert_array_equal(m.min, lo)
        np.testing.assert_array_equal(m.max, hi)
        np.testing.assert_allclose(m.std, np.sqrt(var), rtol=1e-10)


def test_empty_batches_change_nothing():
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    m = Moments.of(values)
    merged = Moments.of(values[:0]).merge(m).merge(Moments.empty(2))
    np.testing.assert_array_equal(merged.mean, m.mean)
    np.testing.assert_array_equal(merged.m2, m.m2)
    assert Moments.empty(2).count == 0 and np.all(Moments.empty(2).variance == 0)
