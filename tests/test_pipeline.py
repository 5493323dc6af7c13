"""The pipeline's PTransforms on a real Beam runner (TestPipeline + assert_that)."""

import apache_beam as beam
import numpy as np
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipeline import layouts, pipeline
from beam_pipeline.analyze import ValueStatsFn
from beam_pipeline.plan import FileTask
from tests.support.helpers import write_ragged
from transforms.features import DatasetSpec

SPEC = DatasetSpec(trailing_shape=(2,), source_dtype="float32", max_length=4)


def _config(tmp_path) -> pipeline.RunConfig:
    return pipeline.RunConfig(str(tmp_path / "out"), SPEC, layouts.ReadOptions(), 64, "none")


def _files(tmp_path):
    rng = np.random.default_rng(3)
    samples = [rng.normal(size=(t, 2)).astype(np.float32) for t in (1, 4, 6, 2, 3)]
    write_ragged(str(tmp_path / "a.npz"), samples[:2], [0, 1])
    write_ragged(str(tmp_path / "b.npz"), samples[2:], [1, 1, 0])
    (tmp_path / "c.npz").write_bytes(b"broken")
    tasks = [FileTask(str(tmp_path / n), "train", (tmp_path / n).stat().st_size)
             for n in ("a.npz", "b.npz", "c.npz")]
    return samples, tasks


def test_read_samples_yields_every_valid_sample_once_truncated(tmp_path):
    samples, tasks = _files(tmp_path)
    with test_pipeline.TestPipeline() as p:
        batches = p | beam.Create(tasks) | pipeline.ReadSamples(_config(tmp_path))
        # (sample index in its file, length after truncation to max_length=4)
        rows = batches | beam.FlatMap(lambda b: [(int(i), int(n)) for i, n in zip(b.indices, b.lengths)])
        assert_that(rows, equal_to([(0, 1), (1, 4), (0, 4), (1, 2), (2, 3)]))


def test_value_stats_equal_a_float64_reference(tmp_path):
    samples, tasks = _files(tmp_path)
    kept = np.concatenate([s[:4] for s in samples]).astype(np.float64)
    with test_pipeline.TestPipeline() as p:
        stats = (p | beam.Create(tasks) | pipeline.ReadSamples(_config(tmp_path))
                 | beam.CombineGlobally(ValueStatsFn(SPEC)))

        def check(results):
            [s] = results
            np.testing.assert_allclose(s.mean, kept.mean(0), rtol=1e-12)
            np.testing.assert_allclose(s.std, kept.std(0), rtol=1e-12)
            assert (s.count, s.samples, s.labels) == (len(kept), 5, {"0": 2, "1": 3})

        assert_that(stats, check)
