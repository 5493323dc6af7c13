"""Layout detection and file-level checks, on files built in memory (no Beam)."""

import numpy as np
import pytest

from beam_pipeline import errors
from beam_pipeline.reading import layouts
from tests.support.helpers import npy_file, npz_file

OPTS = layouts.ReadOptions()


def _samples_of(plan: layouts.FilePlan) -> list[np.ndarray]:
    values = plan.read_values()
    bounds = np.concatenate([[0], np.cumsum(plan.lengths)])
    return [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


RNG = np.random.default_rng(0)
SEQS = [RNG.normal(size=(t, 3)).astype(np.float32) for t in (4, 1, 6)]


def test_dense_layout():
    x = RNG.normal(size=(5, 7, 2)).astype(np.float32)
    plan = layouts.plan_file(npz_file(x=x, y=np.arange(5)), OPTS)
    assert (plan.layout, plan.trailing_shape, plan.lengths.tolist()) == ("dense", (2,), [7] * 5)
    np.testing.assert_array_equal(np.stack(_samples_of(plan)), x)


def test_ragged_layout():
    plan = layouts.plan_file(npz_file(x=np.concatenate(SEQS), lengths=[4, 1, 6], y=[2, 0, 1]), OPTS)
    assert plan.layout == "ragged" and plan.labels.tolist() == [2, 0, 1]
    for got, want in zip(_samples_of(plan), SEQS):
        np.testing.assert_array_equal(got, want)


def test_per_key_layout_orders_keys_numerically():
    arrays = {f"x_{i:06d}": s for i, s in enumerate(SEQS)}
    plan = layouts.plan_file(npz_file(**arrays, y=np.array(["a", "b", "c"])), OPTS)
    assert plan.layout == "per_key" and plan.label_kind == "string"
    assert plan.labels.tolist() == [b"a", b"b", b"c"]
    for got, want in zip(_samples_of(plan), SEQS):
        np.testing.assert_array_equal(got, want)


def test_per_file_layout_takes_the_given_label():
    plan = layouts.plan_file(npy_file(SEQS[0]), OPTS, file_label=layouts.label_from_text("cat"))
    assert (plan.layout, plan.labels.tolist(), plan.label_kind) == ("per_file", [b"cat"], "string")
    np.testing.assert_array_equal(_samples_of(plan)[0], SEQS[0])


def test_sibling_label_file():
    x = RNG.normal(size=(3, 5)).astype(np.float64)
    plan = layouts.plan_file(npy_file(x), OPTS, sibling=npy_file(np.array([1.0, 0.0, 2.0])))
    assert plan.layout == "dense" and plan.labels.tolist() == [1, 0, 2] and plan.trailing_shape == ()


@pytest.mark.parametrize("arrays,reason", [
    (dict(x=np.zeros((3, 2)), y=[0.5, 1, 2]), errors.BAD_LABEL),
    (dict(x=np.zeros((3, 2)), y=[0, 1]), errors.LABEL_COUNT),
    (dict(x=np.zeros((3, 2))), errors.MISSING_KEY),
    (dict(x=np.zeros((5, 2)), lengths=[2, 2], y=[0, 1]), errors.BAD_LENGTHS),
    (dict(x=np.zeros((2, 2)), lengths=[3, -1], y=[0, 1]), errors.BAD_LENGTHS),
    (dict(x=np.zeros((3, 2), np.complex64), y=[0, 1, 2]), errors.BAD_DTYPE),
    (dict(x=np.array([["a", "b"]]), y=[0]), errors.BAD_DTYPE),
    (dict(x=np.zeros((0, 2)), y=np.zeros(0, int)), errors.EMPTY_FILE),
    (dict(features=np.zeros((3, 2)), y=[0, 1, 2]), errors.MISSING_KEY),
])
def test_file_level_problems(arrays, reason):
    with pytest.raises(errors.BadInputError) as info:
        layouts.plan_file(npz_file(**arrays), OPTS)
    assert info.value.reason == reason


def test_file_size_limit_is_checked_from_headers():
    opts = layouts.ReadOptions(max_file_bytes=1000)
    with pytest.raises(errors.BadInputError) as info:
        layouts.plan_file(npz_file(x=np.zeros((100, 10)), y=np.zeros(100, int)), opts)
    assert info.value.reason == errors.TOO_LARGE
