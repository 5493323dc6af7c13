"""The transform of the write pass: the saved tf.Transform graph, or its arithmetic in NumPy.

The graph (transforms/preprocessing.py) normalizes float64 values with the training
statistics, casts to float32 and pads, batch by batch, on TensorFlow's thread pool: ~1.2
CPU s per GB of raw values. The same arithmetic in NumPy, on the ragged values without
padding them (the encoder pads while it copies), costs a third of that. It gives the same
bits: a float32 -> float64 cast, a subtraction and a multiplication are exactly rounded in
both, on the same float64 statistics (the analyze pass's, the very numbers frozen into the
graph). Each worker checks that on the first samples it transforms, against the graph
itself, and falls back to the graph if a single bit differs; string labels (a vocabulary
lookup), regression targets and unlabeled data always take the graph.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import numpy as np

from beam_pipeline.finalize import scratch
from beam_pipeline.finalize.records import ValueStats
from beam_pipeline.reading.samples import SampleBatch, gather_rows
from transforms import features
from transforms.features import DatasetSpec

# Samples of a worker's first batch transformed both ways and compared.
PROBE_SAMPLES = 64
# Values normalized per slice (512 KB of float64).
_CHUNK_VALUES = 1 << 16

# Loading and tracing the transform graph takes seconds: once per worker process, shared by
# every WriteShardFn instance (a memo, not state: each entry is a pure function of its key).
_GRAPHS: dict[tuple[str, DatasetSpec], Callable] = {}
_GRAPHS_LOCK = threading.Lock()


def load_graph(transform_dir: str, spec: DatasetSpec) -> Callable:
    """The saved transform graph as a function of (flat values, row splits, lengths, labels)."""
    with _GRAPHS_LOCK:
        if (transform_dir, spec) not in _GRAPHS:
            _GRAPHS[(transform_dir, spec)] = _trace_graph(transform_dir, spec)
        return _GRAPHS[(transform_dir, spec)]


def _trace_graph(transform_dir: str, spec: DatasetSpec) -> Callable:
    import tensorflow as tf
    import tensorflow_transform as tft

    layer = tft.TFTransformOutput(transform_dir).transform_features_layer()

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None], tf.as_dtype(spec.raw_x_dtype)),   # all values, flattened
        tf.TensorSpec([None], tf.int64),                        # row splits of the values
        tf.TensorSpec([None], tf.int64),                        # lengths
        tf.TensorSpec([None], tf.as_dtype(spec.raw_label_dtype)),
    ])
    def transform(values, row_splits, lengths, labels):
        x = tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)
        return layer({features.X: x, features.LENGTH: lengths, features.LABEL: labels})

    return transform


@dataclasses.dataclass(frozen=True)
class Transformed:
    """A batch after the transform, unpadded: record i's valid steps are
    values[offsets[i]:offsets[i + 1]] with offsets the cumulative `lengths`."""

    values: np.ndarray    # float32 [sum(lengths), *trailing_shape]
    lengths: np.ndarray   # int64 [n]
    labels: np.ndarray    # int64 [n] class ids (UNKNOWN_LABEL_ID for a label training never had);
                          # float32 targets for regression, 0 for unlabeled data

    def __len__(self) -> int:
        return len(self.lengths)

    def select(self, rows: np.ndarray) -> Transformed:
        """The records where the boolean mask `rows` is set (a copy of their values)."""
        starts = np.cumsum(self.lengths) - self.lengths
        return Transformed(gather_rows(self.values, starts[rows], self.lengths[rows]), self.lengths[rows],
                           self.labels[rows])


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """The transform graph's arithmetic in NumPy (see transforms/preprocessing.py).

    Attributes:
      center, inverse: float64 [stats_width]: values become (x - center) * inverse; None
        with --normalize none.
      largest_label: integer labels above it (or negative) become UNKNOWN_LABEL_ID.
    """

    spec: DatasetSpec
    center: np.ndarray | None
    inverse: np.ndarray | None
    largest_label: int

    @classmethod
    def of(cls, spec: DatasetSpec, stats: ValueStats) -> Normalizer | None:
        """The normalizer of the training statistics; None unless labels are integer class
        ids (the graph looks strings up in its vocabulary, and handles regression targets and
        the unlabeled placeholder itself)."""
        if spec.label_kind != "int":
            return None
        largest = max((int(k) for k in stats.labels), default=-1)
        if spec.normalize == "none":
            return cls(spec, None, None, largest)
        lo, hi = (np.asarray(v, np.float64).reshape(-1) for v in (stats.min, stats.max))
        # The graph's scale is sqrt(max(var, 0)): the manifest's std, bit for bit (both sqrt
        # are exactly rounded).
        center, scale = ((np.asarray(stats.mean, np.float64).reshape(-1), np.asarray(stats.std, np.float64).reshape(-1))
                         if spec.normalize == "zscore" else (lo, hi - lo))
        varies = hi > lo
        inverse = np.where(varies, 1.0 / np.where(varies, scale, 1.0), 0.0)
        return cls(spec, center, inverse, largest)

    def __call__(self, batch: SampleBatch) -> Transformed:
        raw = batch.values.astype(self.spec.raw_x_dtype, copy=False)   # as the graph receives them
        if self.center is None:
            values = raw.astype(np.float64).astype(np.float32)
        else:
            rows = raw.reshape(-1, self.spec.stats_width)
            values = np.empty(rows.shape, np.float32)
            # In slices whose float64 temporary stays in the CPU cache: 0.67 -> 0.46 CPU s per GB.
            step = max(1, _CHUNK_VALUES // self.spec.stats_width)
            centered = np.empty((min(step, len(rows)), self.spec.stats_width), np.float64)
            for start in range(0, len(rows), step):
                part = rows[start:start + step]
                np.subtract(part, self.center, out=centered[:len(part)], dtype=np.float64)
                # The float64 product, rounded once to float32, as the graph's cast does.
                np.multiply(centered[:len(part)], self.inverse, out=values[start:start + step], casting="same_kind")
        labels = batch.labels.astype(np.int64)
        known = (labels >= 0) & (labels <= self.largest_label)
        return Transformed(values.reshape(batch.values.shape), batch.lengths,
                           np.where(known, labels, features.UNKNOWN_LABEL_ID))


def graph_transform(graph: Callable, spec: DatasetSpec, batch: SampleBatch) -> Transformed:
    """A batch through the saved transform graph (load_graph), unpadded."""
    labels = batch.labels.tolist() if spec.label_kind == "string" else batch.labels
    out = graph(batch.values.reshape(-1).astype(spec.raw_x_dtype, copy=False),
                batch.value_splits(spec.step_size), batch.lengths, labels)
    padded, lengths = out[features.X].numpy(), out[features.LENGTH].numpy()
    steps = padded.reshape(-1, *spec.trailing_shape)
    values = gather_rows(steps, np.arange(len(lengths), dtype=np.int64) * spec.max_length, lengths)
    return Transformed(values, lengths, out[features.LABEL].numpy())


class BatchTransform:
    """Transforms SampleBatches for the write pass: in NumPy once a probe showed it gives
    the graph's bits, else with the graph.

    Args:
      graph: the saved transform graph (load_graph).
      spec: the dataset spec.
      numpy: the same transform in NumPy, or None to use the graph only.
    """

    def __init__(self, graph: Callable, spec: DatasetSpec, numpy: Normalizer | None):
        self._graph = graph
        self._spec = spec
        self._numpy = numpy
        self._checked = False

    @classmethod
    def load(cls, transform_dir: str, output_dir: str, spec: DatasetSpec) -> BatchTransform:
        """The run's transform: its graph, and the NumPy one from the analyze pass's statistics."""
        stats = [r for r in scratch.read_step(output_dir, scratch.STATISTICS_STEP) if isinstance(r, ValueStats)]
        return cls(load_graph(transform_dir, spec), spec, Normalizer.of(spec, stats[0]) if stats else None)

    @property
    def uses_numpy(self) -> bool:
        """Whether batches are transformed in NumPy (known once the first batch is)."""
        return self._numpy is not None

    def __call__(self, batch: SampleBatch) -> Transformed:
        if self._numpy is not None and not self._checked:
            self._checked = True
            probe = _head(batch, PROBE_SAMPLES)
            if not _same(self._numpy(probe), graph_transform(self._graph, self._spec, probe)):
                logging.warning("the NumPy transform differs from the transform graph on %s; using the graph",
                                batch.path or "a batch")
                self._numpy = None
        if self._numpy is not None:
            return self._numpy(batch)
        return graph_transform(self._graph, self._spec, batch)


def _head(batch: SampleBatch, samples: int) -> SampleBatch:
    """The batch's first samples."""
    steps = int(batch.lengths[:samples].sum())
    return SampleBatch(batch.path, batch.indices[:samples], batch.values[:steps], batch.lengths[:samples],
                       batch.labels[:samples])


def _same(a: Transformed, b: Transformed) -> bool:
    """Bit for bit (so -0.0 differs from 0.0, as it would in the records)."""
    return (a.values.dtype == b.values.dtype and a.values.shape == b.values.shape
            and a.values.tobytes() == b.values.tobytes()
            and np.array_equal(a.lengths, b.lengths) and np.array_equal(a.labels, b.labels))
