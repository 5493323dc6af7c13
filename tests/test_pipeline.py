"""The pipeline's PTransforms on a real Beam runner (TestPipeline + assert_that)."""

import apache_beam as beam
import numpy as np
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipeline import pipeline
from beam_pipeline.planning.plan import FileTask
from beam_pipeline.reading import layouts
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
        batches = p | beam.Create([tuple(tasks[:2]), (tasks[2],)]) | pipeline.ReadSamples(_config(tmp_path))
        # (sample index in its file, length after truncation to max_length=4)
        rows = batches | beam.FlatMap(lambda b: [(int(i), int(n)) for i, n in zip(b.indices, b.lengths)])
        assert_that(rows, equal_to([(0, 1), (1, 4), (0, 4), (1, 2), (2, 3)]))


def test_a_group_of_small_files_is_pooled_into_batches_of_about_chunk_bytes(tmp_path):
    _, tasks = _files(tmp_path)
    with test_pipeline.TestPipeline() as p:
        batches = p | beam.Create([tuple(tasks)]) | pipeline.ReadSamples(_config(tmp_path))
        # 64-byte chunks of [t, 2] float32 samples (8 bytes a step), in plan order across files:
        # a.npz gives one batch of 1 + 4 steps (40 bytes), b.npz one of 4 (truncated) + 2 and
        # one of 3; the first two pooled reach 88 >= 64 bytes, the last is the rest.
        sizes = batches | beam.Map(lambda b: (b.path, [int(n) for n in b.lengths]))
        assert_that(sizes, equal_to([("", [1, 4, 4, 2]), (str(tmp_path / "b.npz"), [3])]))
