"""The tf.Transform preprocessing_fn: full-dataset statistics, normalization, padding.

Pure TensorFlow + tf.Transform analyzers; no Beam. The same graph is applied by the pipeline
(to write the TFRecords) and by the serving signature (to raw requests), so training and
serving cannot disagree.

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

import tensorflow as tf
import tensorflow_transform as tft

from transforms import features

TensorDict = dict[str, tf.Tensor | tf.SparseTensor]


def _normalize(values: tf.Tensor, spec: features.DatasetSpec) -> tf.Tensor:
    """Normalizes float64 values of shape [rows, K] with full-dataset statistics over rows.

    K is the number of channels (statistics per channel of the last axis) or the number of
    elements of a sample (per-element statistics).
    """
    if spec.normalize == "none":
        return values
    lo = tft.min(values, reduce_instance_dims=False)
    hi = tft.max(values, reduce_instance_dims=False)
    varies = hi > lo
    if spec.normalize == "zscore":
        center = tft.mean(values, reduce_instance_dims=False)
        scale = tf.sqrt(tf.maximum(tft.var(values, reduce_instance_dims=False), 0.0))
    else:  # minmax
        center, scale = lo, hi - lo
    # Guarding on max > min (exact) rather than std > 0 (subject to rounding) is what makes
    # a constant feature come out as exactly 0. One multiply per value, by a per-channel
    # constant, is also much cheaper than a divide and a select.
    inverse = tf.where(varies, 1.0 / tf.where(varies, scale, tf.ones_like(scale)), tf.zeros_like(scale))
    return (values - center) * inverse


def _label_ids(label: tf.Tensor, spec: features.DatasetSpec) -> tf.Tensor:
    """Class ids: strings through a vocabulary of the training split; integers as they are.

    Either way, a label the training split never had (a string outside the vocabulary, an
    integer above the largest training id) becomes UNKNOWN_LABEL_ID, which the pipeline
    quarantines: the model has no output for it.
    """
    if spec.label_kind == "string":
        return tft.compute_and_apply_vocabulary(
            label,
            default_value=features.UNKNOWN_LABEL_ID,
            vocab_filename=features.LABEL_VOCABULARY,
        )
    label = tf.cast(label, tf.int64)
    known = (label >= 0) & (label <= tft.max(label))
    return tf.where(known, label, tf.constant(features.UNKNOWN_LABEL_ID, tf.int64))


def make_preprocessing_fn(spec: features.DatasetSpec) -> Callable[[TensorDict], TensorDict]:
    """Builds the preprocessing_fn for a dataset.

    Args:
      spec: the dataset's shapes, dtype, padding and normalization choices.

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
            dense = tf.cast(rows.to_tensor(shape=[None, padded_width]), tf.float64)
            normalized = tf.cast(_normalize(dense, spec), tf.float32)
        else:
            values = tf.reshape(tf.cast(rows.flat_values, tf.float64), [-1, spec.num_channels])
            scaled = tf.reshape(tf.cast(_normalize(values, spec), tf.float32), [-1])
            normalized = rows.with_flat_values(scaled).to_tensor(
                default_value=0.0, shape=[None, padded_width])
        length = tf.minimum(rows.row_lengths() // step, spec.max_length)
        return {
            features.X: tf.reshape(normalized, [-1, *spec.padded_shape]),
            features.LENGTH: tf.cast(length, tf.int64),
            features.LABEL: _label_ids(inputs[features.LABEL], spec),
        }

    return preprocessing_fn
