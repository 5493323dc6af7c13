"""The tf.Transform preprocessing_fn: full-dataset statistics, normalization, padding.

Pure TensorFlow + tf.Transform; no Beam. The same graph is applied by the pipeline (to write
the TFRecords) and by the serving signature (to raw requests), so training and serving
cannot disagree.

The statistics are one tf.Transform analyzer, `tft.experimental.ptransform_analyzer`, whose
computation the pipeline provides (a Beam PTransform, passed in, so this module imports no
Beam): exact float64 moments of the valid values, merged in NumPy, about 4x cheaper than
tf.Transform's own min/max/mean/var analyzers, and in one pass. tf.Transform runs it over
the whole training split inside AnalyzeDataset and freezes its outputs into the graph.

Policy, in the order the graph applies it:
  1. Samples longer than `max_length` steps are truncated (the pipeline counts them).
  2. Statistics are computed over the valid values only, in float64: padding never exists
     yet when the analyzers see the data.
  3. Values are normalized with those statistics, then zero-padded to `max_length`, so the
     padding value after normalization is exactly 0.
  4. A constant feature (max == min over the training data, i.e. std 0) normalizes to 0
     everywhere, never NaN or Inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from transforms import features

TensorDict = dict[str, tf.Tensor | tf.SparseTensor]


# What the statistics analyzer returns, in this order: float64 [K] each, then the largest
# integer label (int64 scalar; -1 when labels are strings or the split is empty), then, for
# regression targets only, their mean and variance (float64 scalars; 0 for an empty split).
STATISTICS = ("mean", "var", "min", "max")
_LARGEST_LABEL = "largest_label"
TARGET_STATISTICS = ("target_mean", "target_var")


def analyzer_outputs(spec: features.DatasetSpec) -> tuple[str, ...]:
    """The names of the statistics analyzer's outputs for `spec`, in order."""
    target = TARGET_STATISTICS if spec.label_type == "regression" else ()
    return (*STATISTICS, _LARGEST_LABEL, *target)


def _statistics(values: tf.Tensor, inputs: TensorDict, spec: features.DatasetSpec,
                summarize: Any) -> dict[str, tf.Tensor]:
    """Full-dataset statistics of [rows, K] values (per channel or per element), computed
    by the pipeline's `summarize` PTransform inside tf.Transform's analysis."""
    width = values.shape[-1]
    targets = len(analyzer_outputs(spec)) - len(STATISTICS) - 1
    outputs = tft.experimental.ptransform_analyzer(
        inputs=[values, inputs[features.LENGTH], inputs[features.LABEL]],
        ptransform=summarize,
        output_dtypes=[tf.float64] * len(STATISTICS) + [tf.int64] + [tf.float64] * targets,
        output_shapes=[[width]] * len(STATISTICS) + [[]] + [[]] * targets,
        name="statistics")
    return dict(zip(analyzer_outputs(spec), outputs))


def _normalize(values: tf.Tensor, spec: features.DatasetSpec, stats: dict[str, tf.Tensor]) -> tf.Tensor:
    """Normalizes float64 values of shape [rows, K] with full-dataset statistics over rows."""
    if spec.normalize == "none":
        return values
    lo, hi = stats["min"], stats["max"]
    varies = hi > lo
    if spec.normalize == "zscore":
        center, scale = stats["mean"], tf.sqrt(tf.maximum(stats["var"], 0.0))
    else:  # minmax
        center, scale = lo, hi - lo
    # Guarding on max > min (exact) rather than std > 0 (subject to rounding) is what makes
    # a constant feature come out as exactly 0. One multiply per value, by a per-channel
    # constant, is also much cheaper than a divide and a select.
    inverse = tf.where(varies, 1.0 / tf.where(varies, scale, tf.ones_like(scale)), tf.zeros_like(scale))
    return (values - center) * inverse


def _target(label: tf.Tensor, spec: features.DatasetSpec, stats: dict[str, tf.Tensor]) -> tf.Tensor:
    """A regression target, standardized with the training statistics when asked (a
    constant target, std 0, becomes 0 rather than NaN)."""
    if not spec.standardize_target:
        return label
    std = tf.sqrt(tf.maximum(stats["target_var"], 0.0))
    inverse = tf.where(std > 0, 1.0 / tf.where(std > 0, std, 1.0), 0.0)
    return tf.cast((tf.cast(label, tf.float64) - stats["target_mean"]) * inverse, tf.float32)


def _label_ids(label: tf.Tensor, spec: features.DatasetSpec, largest_label: tf.Tensor) -> tf.Tensor:
    """Class ids: strings through a vocabulary of the training split; integers as they are
    (the unlabeled placeholder passes through as 0).

    Either way, a label the training split never had (a string outside the vocabulary, an
    integer above the largest training id) becomes UNKNOWN_LABEL_ID, which the pipeline
    quarantines: the model has no output for it.
    """
    if spec.label_kind == "none":  # unlabeled: the reader's placeholder 0
        return tf.zeros_like(label)
    if spec.label_kind == "string":
        return tft.compute_and_apply_vocabulary(
            label,
            default_value=features.UNKNOWN_LABEL_ID,
            vocab_filename=features.LABEL_VOCABULARY,
        )
    label = tf.cast(label, tf.int64)
    known = (label >= 0) & (label <= largest_label)
    return tf.where(known, label, tf.constant(features.UNKNOWN_LABEL_ID, tf.int64))


def make_preprocessing_fn(spec: features.DatasetSpec, summarize: Any) -> Callable[[TensorDict], TensorDict]:
    """Builds the preprocessing_fn for a dataset.

    Args:
      spec: the dataset's shapes, dtype, padding and normalization choices.
      summarize: a Beam PTransform from batches of (values [rows, K], lengths [n], labels [n])
        as NumPy arrays to one each of mean, var, min, max (float64 [K]) and the largest
        integer label (int64), and for regression the targets' mean and variance (float64);
        see `analyzer_outputs`. K is the number of channels, or of elements per sample with
        per-element statistics. See beam_pipeline/passes/analyze.py.

    Returns:
      A function from raw tensors (`spec.raw_feature_spec()`) to fixed-shape transformed
      tensors (`spec.transformed_features()`).
    """
    step = spec.step_size
    padded_width = spec.max_length * step

    def preprocessing_fn(inputs: TensorDict) -> TensorDict:
        # One row per sample holding its values flattened row-major: [batch, (T * step)].
        rows = inputs[features.X]
        # `length` must describe the values: a serving request where they disagree fails
        # loudly instead of being padded as something it is not.
        tf.debugging.assert_equal(rows.row_lengths(), inputs[features.LENGTH] * step,
                                  message="`length` * prod(trailing_shape) must equal the number of values")
        # Samples longer than max_length: the pipeline truncates (and counts) them before
        # they get here, so the statistics see exactly the values written; at serving time
        # to_tensor(shape=...) below cuts them.
        if spec.per_element:
            # Fixed-shape data only (checked by the pipeline): every row is full, so the
            # dense view holds real values only.
            dense = rows.to_tensor(shape=[None, padded_width])
            stats = _statistics(dense, inputs, spec, summarize)
            normalized = tf.cast(_normalize(tf.cast(dense, tf.float64), spec, stats), tf.float32)
        else:
            # The analyzer takes the raw values (float32 or int64): it computes in float64
            # itself, and a cast here would double the bytes it is fed.
            values = tf.reshape(rows.flat_values, [-1, spec.num_channels])
            stats = _statistics(values, inputs, spec, summarize)
            scaled = tf.reshape(tf.cast(_normalize(tf.cast(values, tf.float64), spec, stats), tf.float32), [-1])
            normalized = rows.with_flat_values(scaled).to_tensor(
                default_value=0.0, shape=[None, padded_width])
        length = tf.minimum(rows.row_lengths() // step, spec.max_length)
        return {
            features.X: tf.reshape(normalized, [-1, *spec.padded_shape]),
            features.LENGTH: tf.cast(length, tf.int64),
            features.LABEL: (_target(inputs[features.LABEL], spec, stats) if spec.label_kind == "float"
                             else _label_ids(inputs[features.LABEL], spec, stats[_LARGEST_LABEL])),
        }

    return preprocessing_fn
