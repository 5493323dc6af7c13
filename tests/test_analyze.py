"""The statistics analyzer on a real Beam runner: its outputs (what tf.Transform freezes into
the graph) and its report (what the manifest shows) against a NumPy float64 reference."""

import apache_beam as beam
import numpy as np
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipeline.finalize import scratch
from beam_pipeline.passes.analyze import SummarizeTrainingSplit
from transforms.features import DatasetSpec

SPEC = DatasetSpec(trailing_shape=(3,), source_dtype="float32", max_length=8)


def _batches(rng) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Analyzer inputs as tf.Transform hands them over: (values [rows, 3], lengths [n], labels [n])."""
    out = []
    for n in (5, 1, 12):
        lengths = rng.integers(1, 9, size=n)
        values = rng.standard_t(2, size=(int(lengths.sum()), 3)) * [1, 50, 0.01] + [1e4, 0, -3]
        out.append((values.astype(np.float32), lengths, rng.integers(0, 4, size=n)))
    return out


def _close_to(want: np.ndarray):
    def check(got):
        [value] = got
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)
    return check


def test_outputs_and_report_equal_a_float64_reference(tmp_path):
    batches = _batches(np.random.default_rng(7))
    values = np.concatenate([b[0] for b in batches]).astype(np.float64)
    lengths = np.concatenate([b[1] for b in batches])
    labels = np.concatenate([b[2] for b in batches])
    with test_pipeline.TestPipeline() as p:
        outputs = p | beam.Create(batches, reshuffle=False) | SummarizeTrainingSplit(SPEC, str(tmp_path))
        for i, want in enumerate((values.mean(0), values.var(0), values.min(0), values.max(0))):
            assert_that(outputs[i], _close_to(want), label=f"statistic{i}")
        assert_that(outputs[4] | beam.Map(int), equal_to([int(labels.max())]), label="largest_label")

    [stats] = scratch.read_records(str(tmp_path))
    np.testing.assert_allclose(stats.mean, values.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, values.std(0), rtol=1e-10)
    np.testing.assert_array_equal(stats.min, values.min(0))
    np.testing.assert_array_equal(stats.max, values.max(0))
    assert (stats.count, stats.samples, stats.steps, stats.longest) == (
        len(values), len(lengths), int(lengths.sum()), int(lengths.max()))
    assert stats.labels == {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}
