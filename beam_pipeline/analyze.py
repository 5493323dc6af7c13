"""The analyze pass: training samples -> Arrow RecordBatches -> tf.Transform analyzers.

tf.Transform is fed Arrow RecordBatches through tfx_bsl's TensorAdapter (instance dicts
are a test-only format, ~30x slower). Alongside, `SummarizeValues` computes the float64
statistics reported in the manifest from the very same batches.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems
from tensorflow_metadata.proto.v0 import path_pb2, schema_pb2
from tfx_bsl.tfxio import tensor_adapter

from beam_pipeline.paths import WORK_DIR
from beam_pipeline.samples import SampleBatch
from transforms import features
from transforms.features import DatasetSpec
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


class ValueStatsFn(beam.CombineFn):
    """Float64 count/mean/std/min/max of valid values (Chan's parallel merge), plus lengths
    and label counts: the statistics reported in the manifest."""

    def __init__(self, spec: DatasetSpec):
        self._spec = spec

    def _width(self) -> int:
        s = self._spec
        return s.max_length * s.step_size if s.per_element else s.num_channels

    def create_accumulator(self) -> dict:
        k = self._width()
        return {"n": 0, "mean": np.zeros(k), "m2": np.zeros(k), "min": np.full(k, np.inf),
                "max": np.full(k, -np.inf), "samples": 0, "steps": 0, "longest": 0, "labels": {}}

    def add_input(self, acc: dict, batch: SampleBatch) -> dict:
        values = batch.values.reshape(-1, self._width()).astype(np.float64)
        if len(values):
            mean = values.mean(axis=0)
            part = {"n": len(values), "mean": mean, "m2": ((values - mean) ** 2).sum(axis=0),
                    "min": values.min(axis=0), "max": values.max(axis=0)}
            acc = self._merge_values(acc, part)
        acc["samples"] += len(batch)
        acc["steps"] += int(batch.lengths.sum())
        acc["longest"] = max(acc["longest"], int(batch.lengths.max(initial=0)))
        keys, counts = np.unique(batch.labels, return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist()):
            acc["labels"][key] = acc["labels"].get(key, 0) + count
        return acc

    @staticmethod
    def _merge_values(a: dict, b: dict) -> dict:
        n = a["n"] + b["n"]
        if n == 0:
            return a
        delta = b["mean"] - a["mean"]
        merged = dict(a)
        merged.update(
            n=n,
            mean=a["mean"] + delta * (b["n"] / n),
            m2=a["m2"] + b["m2"] + delta ** 2 * (a["n"] * b["n"] / n),
            min=np.minimum(a["min"], b["min"]),
            max=np.maximum(a["max"], b["max"]),
        )
        return merged

    def merge_accumulators(self, accumulators) -> dict:
        out = self.create_accumulator()
        for acc in accumulators:
            out = self._merge_values(out, acc)
            out["samples"] += acc["samples"]
            out["steps"] += acc["steps"]
            out["longest"] = max(out["longest"], acc["longest"])
            for key, count in acc["labels"].items():
                out["labels"][key] = out["labels"].get(key, 0) + count
        return out

    def extract_output(self, acc: dict) -> dict:
        shape = list(self._spec.stats_shape)

        def shaped(a: np.ndarray) -> list:
            return a.reshape(shape).tolist()

        labels = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else int(k)): v
                  for k, v in acc["labels"].items()}
        return {
            "kind": "stats",
            "count": int(acc["n"]),  # values behind each statistic (per channel / element)
            "mean": shaped(acc["mean"]),
            "std": shaped(np.sqrt(acc["m2"] / max(acc["n"], 1))),
            "min": shaped(acc["min"]),
            "max": shaped(acc["max"]),
            "samples": acc["samples"],
            "steps": acc["steps"],
            "longest": acc["longest"],
            "labels": labels,
        }
