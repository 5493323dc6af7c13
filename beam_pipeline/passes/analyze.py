"""The analyze pass: training samples -> Arrow RecordBatches -> tf.Transform analyzers.

tf.Transform is fed Arrow RecordBatches through tfx_bsl's TensorAdapter (instance dicts
are a test-only format, ~30x slower). Its one analyzer is `SummarizeTrainingSplit`: exact
float64 statistics merged in NumPy, frozen into the transform graph and reported to the
manifest.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import path_pb2, schema_pb2
from tfx_bsl.tfxio import tensor_adapter

from beam_pipeline.finalize import scratch
from beam_pipeline.finalize.records import ValueStats
from beam_pipeline.reading.samples import SampleBatch
from beam_pipeline.statistics import feature_stats
from beam_pipeline.statistics.moments import Moments
from transforms import features, outputs
from transforms.features import DatasetSpec
from transforms.preprocessing import analyzer_outputs, make_preprocessing_fn


def _arrow_types(spec: DatasetSpec) -> tuple[pa.DataType, pa.DataType]:
    value_type = pa.int64() if spec.raw_x_dtype == "int64" else pa.float32()
    label_type = {"string": pa.large_binary(), "float": pa.float32()}.get(spec.label_kind, pa.int64())
    return value_type, label_type


def tensor_adapter_config(spec: DatasetSpec) -> tensor_adapter.TensorAdapterConfig:
    """How tf.Transform turns our RecordBatches into the raw tensors of the spec."""
    value_type, label_type = _arrow_types(spec)
    schema = pa.schema([
        (features.X, pa.large_list(value_type)),
        (features.LENGTH, pa.large_list(pa.int64())),
        (features.LABEL, pa.large_list(label_type)),
    ])
    rep = schema_pb2.TensorRepresentation

    def dense(column: str) -> schema_pb2.TensorRepresentation:
        return rep(dense_tensor=rep.DenseTensor(column_name=column, shape=schema_pb2.FixedShape()))

    return tensor_adapter.TensorAdapterConfig(schema, {
        # Ragged, not sparse: no [values, 2] index tensor to build for every batch.
        features.X: rep(ragged_tensor=rep.RaggedTensor(feature_path=path_pb2.Path(step=[features.X]))),
        features.LENGTH: dense(features.LENGTH),
        features.LABEL: dense(features.LABEL),
    })


def to_record_batch(batch: SampleBatch, spec: DatasetSpec) -> pa.RecordBatch:
    """A SampleBatch as a RecordBatch: `x` holds each sample's values flattened."""
    value_type, label_type = _arrow_types(spec)
    flat = batch.values.reshape(-1).astype(value_type.to_pandas_dtype(), copy=False)
    offsets = batch.value_splits(spec.step_size)
    singles = pa.array(np.arange(len(batch) + 1, dtype=np.int64))
    labels = pa.array(batch.labels.tolist() if spec.label_kind == "string" else batch.labels, type=label_type)
    return pa.RecordBatch.from_arrays([
        pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat)),
        pa.LargeListArray.from_arrays(singles, pa.array(batch.lengths, type=pa.int64())),
        pa.LargeListArray.from_arrays(singles, labels),
    ], [features.X, features.LENGTH, features.LABEL])


class AnalyzeSamples(beam.PTransform):
    """Runs the tf.Transform analysis over training batches and writes the transform graph.

    Returns a PCollection holding `output_dir` once `transform_fn/` and
    `transformed_metadata/` are published there (a side input for the transform pass).
    """

    def __init__(self, spec: DatasetSpec, output_dir: str):
        super().__init__()
        self._spec = spec
        self._output_dir = output_dir

    def expand(self, batches):
        spec, output_dir = self._spec, self._output_dir
        record_batches = batches | "ToRecordBatches" >> beam.Map(to_record_batch, spec)
        summarize = SummarizeTrainingSplit(spec, output_dir)
        with tft_beam.Context(temp_dir=scratch.tft_temp_dir(output_dir)):
            transform_fn = ((record_batches, tensor_adapter_config(spec))
                            | "Analyze" >> tft_beam.AnalyzeDataset(make_preprocessing_fn(spec, summarize)))
        published = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(output_dir)
        return published | "TransformFnDir" >> beam.Map(lambda _: output_dir)


# Per-batch summaries kept for an order-independent merge, at most this many float64 values
# (128 MB; per-channel statistics of 16 channels reach it after ~250,000 batches, ~2 TB).
_MAX_KEPT_VALUES = 16 << 20


@dataclasses.dataclass(frozen=True)
class _Summary:
    """The training split's statistics so far: per-batch moments of the values, and facts.

    The batches' moments are kept apart and merged once, in an order fixed by their values
    (Moments.merge_all): the analyze pass's batches are fixed by the plan, so the statistics
    come out the same to the last bit whatever the runner, its workers or its bundles. That
    makes every record byte-identical between, say, a one-thread and a two-thread run.
    """

    parts: tuple[Moments, ...]
    samples: int = 0
    steps: int = 0
    longest: int = 0
    labels: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    stats: feature_stats.StatsAccumulator | None = None   # the split's raw-data statistics
    targets: tuple[Moments, ...] = ()   # per-batch moments of regression targets, merged as `parts`

    def merge(self, other: _Summary) -> _Summary:
        parts = self.parts + other.parts
        if sum(p.mean.size for p in parts) * 4 > _MAX_KEPT_VALUES:
            logging.warning("statistics: more than %d per-batch summaries; merging them early (the last bits of "
                            "the statistics may then depend on the runner's scheduling)", len(parts))
            parts = (Moments.merge_all(list(parts), parts[0].mean.size),)
        stats = self.stats or other.stats
        if self.stats and other.stats:
            stats.merge_from(other.stats)
        return _Summary(parts, self.samples + other.samples, self.steps + other.steps,
                        max(self.longest, other.longest), self.labels + other.labels, stats,
                        self.targets + other.targets)

    def moments(self, width: int) -> Moments:
        return Moments.merge_all(list(self.parts), width)

    def target_moments(self) -> Moments:
        return Moments.merge_all(list(self.targets), 1)


class _SummaryFn(beam.CombineFn):
    """Combines tf.Transform's analyzer input batches (values [rows, K], lengths, labels); also
    the training split's raw-data statistics (feature_stats.py), reusing the moments."""

    def __init__(self, spec: DatasetSpec):
        self._spec = spec
        self._width = spec.stats_width

    def create_accumulator(self) -> _Summary:
        return _Summary((), stats=feature_stats.StatsAccumulator.create(self._spec))

    def add_input(self, acc: _Summary, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> _Summary:
        values, lengths, labels = batch
        moments = Moments.of(values.reshape(-1, self._width))
        # Per channel, the statistics' moments are these; per element they are not.
        acc.stats.add_arrays(values, lengths, labels, None if self._spec.per_element else moments)
        targets = (Moments.of(labels.reshape(-1, 1)),) if self._spec.label_type == "regression" else ()
        part = _Summary((moments,), len(lengths), int(lengths.sum()), int(lengths.max(initial=0)),
                        self._label_counts(labels), targets=targets)
        return acc.merge(part)

    def _label_counts(self, labels: np.ndarray) -> collections.Counter:
        # Classes are counted; regression targets get numeric statistics instead (feature_stats).
        return collections.Counter(labels.tolist() if self._spec.label_type == "classification" else ())

    def merge_accumulators(self, accumulators) -> _Summary:
        return functools.reduce(_Summary.merge, accumulators, self.create_accumulator())

    def compact(self, acc: _Summary) -> _Summary:
        acc.stats.compact()   # before Beam serializes it: the sketches shrink ~5x
        return acc

    def extract_output(self, acc: _Summary) -> tuple[Moments, _Summary]:
        return acc.moments(self._width), acc


class SummarizeTrainingSplit(beam.PTransform):
    """The statistics analyzer of the preprocessing_fn (see transforms/preprocessing.py).

    tf.Transform hands it the analyzer's inputs, batch by batch, over the whole training
    split; it returns mean, var, min, max (float64 [K]) and the largest integer label, which
    tf.Transform freezes into the transform graph. The same numbers, with the split's sample
    counts, are written as a `ValueStats` report for the manifest: the manifest reports the
    very statistics the transform uses.
    """

    def __init__(self, spec: DatasetSpec, output_dir: str):
        super().__init__()
        self._spec = spec
        self._output_dir = output_dir

    def expand(self, batches):
        summary = batches | "Summarize" >> beam.CombineGlobally(_SummaryFn(self._spec))
        names = analyzer_outputs(self._spec)
        outputs = summary | "Outputs" >> beam.ParDo(_AnalyzerOutputs(self._spec, self._output_dir)).with_outputs(
            *names)
        return tuple(outputs[name] for name in names)


class _AnalyzerOutputs(beam.DoFn):
    """Hands the statistics to tf.Transform, and reports them to the launcher."""

    def __init__(self, spec: DatasetSpec, output_dir: str):
        self._spec = spec
        self._output_dir = output_dir

    def process(self, summary: tuple[Moments, _Summary]):
        m, s = summary
        scratch.write_step(self._output_dir, scratch.STATISTICS_STEP, [_value_stats(summary, self._spec)],
                           partial_stats=(outputs.TRAIN, s.stats))
        int_labels = [k for k in s.labels if not isinstance(k, bytes)]
        t = s.target_moments()
        values = (m.mean, m.variance, m.min, m.max, np.int64(max(int_labels, default=-1)), t.mean[0], t.variance[0])
        for name, value in zip(analyzer_outputs(self._spec), values):
            yield beam.pvalue.TaggedOutput(name, value)


def _value_stats(summary: tuple[Moments, _Summary], spec: DatasetSpec) -> ValueStats:
    m, s = summary
    shape = list(spec.stats_shape)

    def shaped(a: np.ndarray) -> list:
        return a.reshape(shape).tolist()

    labels = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): v
              for k, v in sorted(s.labels.items())}
    t = s.target_moments()
    target = ([float(t.mean[0]), float(t.std[0]), float(t.min[0]), float(t.max[0])]
              if spec.label_type == "regression" and t.count else None)
    return ValueStats(count=m.count, mean=shaped(m.mean), std=shaped(m.std), min=shaped(m.min), max=shaped(m.max),
                      samples=s.samples, steps=s.steps, longest=s.longest, labels=labels, target=target)
