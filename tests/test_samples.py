"""Per-sample checks, truncation and batching of a file's samples (no Beam)."""

import numpy as np
import pytest

from beam_pipeline import errors
from beam_pipeline.reading import layouts, samples
from tests.support.helpers import npz_file
from transforms.features import DatasetSpec

OPTS = layouts.ReadOptions()
RNG = np.random.default_rng(0)
SEQS = [RNG.normal(size=(t, 3)).astype(np.float32) for t in (4, 1, 6)]


def _select(plan, spec, **kw):
    return samples.select_samples("f", plan, plan.read_values(kw.get("sample_range")), spec,
                                  kw.pop("max_sample_bytes", 1 << 20),
                                  kw.pop("chunk_bytes", 1 << 20), **kw)


def test_per_sample_refusals_truncation_and_batching():
    seqs = [s.copy() for s in SEQS] + [np.zeros((0, 3), np.float32), np.ones((9, 3), np.float32)]
    seqs[1][0, 1] = np.nan
    plan = layouts.plan_file(npz_file(x=np.concatenate(seqs), lengths=[len(s) for s in seqs], y=[0, 1, 2, 0, -3]),
                             OPTS)
    spec = DatasetSpec(trailing_shape=(3,), source_dtype="float32", max_length=5)
    sel = _select(plan, spec, chunk_bytes=40)
    reasons = {e.sample_index: e.reason for e in sel.refusals}
    assert reasons == {1: errors.NON_FINITE, 3: errors.EMPTY_SAMPLE, 4: errors.BAD_LABEL}
    assert sel.truncated == 1
    kept = [b for b in sel.batches]
    assert len(kept) == 2   # 40-byte chunks: one sample per batch
    np.testing.assert_array_equal(kept[0].values, SEQS[0])
    np.testing.assert_array_equal(kept[1].values, SEQS[2][:5])
    assert [b.indices.tolist() for b in kept] == [[0], [2]]


def test_sample_range_selects_a_slice():
    plan = layouts.plan_file(npz_file(x=np.concatenate(SEQS), lengths=[4, 1, 6], y=[2, 0, 1]), OPTS)
    spec = DatasetSpec(trailing_shape=(3,), source_dtype="float32", max_length=6)
    sel = _select(plan, spec, sample_range=(1, 3))
    assert [b.indices.tolist() for b in sel.batches] == [[1, 2]]
    np.testing.assert_array_equal(sel.batches[0].values, np.concatenate(SEQS[1:]))


def test_file_that_disagrees_with_the_dataset_is_refused():
    plan = layouts.plan_file(npz_file(x=np.zeros((2, 3, 4), np.float32), y=[0, 1]), OPTS)
    spec = DatasetSpec(trailing_shape=(5,), source_dtype="float32", max_length=3)
    with pytest.raises(errors.BadInputError) as info:
        samples.check_file_against_spec(plan, spec)
    assert info.value.reason == errors.SHAPE_MISMATCH
