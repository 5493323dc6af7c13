"""The analyze pass: training samples -> Arrow RecordBatches -> tf.Transform analyzers.

tf.Transform is fed Arrow RecordBatches through tfx_bsl's TensorAdapter (instance dicts
are a test-only format, ~30x slower). Alongside, `SummarizeValues` computes the float64
statistics reported in the manifest from the very same batches.
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems
from tensorflow_metadata.proto.v0 import path_pb2, schema_pb2
from tfx_bsl.tfxio import tensor_adapter

from beam_pipeline.moments import Moments
from beam_pipeline.reports import ValueStats
from beam_pipeline.samples import SampleBatch
from transforms import features
from transforms.features import DatasetSpec
from transforms.outputs import WORK_DIR
from transforms.preprocessing import make_preprocessing_fn


def _arrow_types(spec: DatasetSpec) -> tuple[pa.DataType, pa.DataType]:
    value_type = pa.int64() if spec.raw_x_dtype == "int64" else pa.float32()
    label_type = pa.large_binary() if spec.label_kind == "string" else pa.int64()
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
    """Runs the tf.Transform analyzers over training batches and writes the transform graph.

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
        temp_dir = FileSystems.join(output_dir, WORK_DIR, "tft_tmp")
        with tft_beam.Context(temp_dir=temp_dir):
            transform_fn = ((record_batches, tensor_adapter_config(spec))
                            | "Analyze" >> tft_beam.AnalyzeDataset(make_preprocessing_fn(spec)))
        published = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(output_dir)
        return published | "TransformFnDir" >> beam.Map(lambda _: output_dir)


@dataclasses.dataclass
class _StatsAccumulator:
    values: Moments
    samples: int = 0
    steps: int = 0
    longest: int = 0
    labels: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def merge(self, other: _StatsAccumulator) -> _StatsAccumulator:
        return _StatsAccumulator(self.values.merge(other.values), self.samples + other.samples,
                                 self.steps + other.steps, max(self.longest, other.longest),
                                 self.labels + other.labels)


class ValueStatsFn(beam.CombineFn):
    """Float64 count/mean/std/min/max of valid values, plus lengths and label counts: the
    statistics reported in the manifest."""

    def __init__(self, spec: DatasetSpec):
        self._spec = spec

    def _width(self) -> int:
        s = self._spec
        return s.max_length * s.step_size if s.per_element else s.num_channels

    def create_accumulator(self) -> _StatsAccumulator:
        return _StatsAccumulator(Moments.empty(self._width()))

    def add_input(self, acc: _StatsAccumulator, batch: SampleBatch) -> _StatsAccumulator:
        labels = collections.Counter(batch.labels.tolist())
        part = _StatsAccumulator(Moments.of(batch.values.reshape(-1, self._width())), len(batch),
                                 int(batch.lengths.sum()), int(batch.lengths.max(initial=0)), labels)
        return acc.merge(part)

    def merge_accumulators(self, accumulators) -> _StatsAccumulator:
        return functools.reduce(_StatsAccumulator.merge, accumulators, self.create_accumulator())

    def extract_output(self, acc: _StatsAccumulator) -> ValueStats:
        shape = list(self._spec.stats_shape)

        def shaped(a: np.ndarray) -> list:
            return a.reshape(shape).tolist()

        labels = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): v
                  for k, v in sorted(acc.labels.items())}
        m = acc.values
        return ValueStats(count=m.count, mean=shaped(m.mean), std=shaped(m.std), min=shaped(m.min),
                          max=shaped(m.max), samples=acc.samples, steps=acc.steps, longest=acc.longest,
                          labels=labels)
