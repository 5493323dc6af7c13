"""The default classifiers, built from the data's shapes (Keras 2 via tf_keras, as tf.Transform's layer needs).

Sequences: a small dilated 1-D CNN that re-zeroes padded steps after every convolution, then
mean and max pooling over the valid steps only. A valid step's activations therefore depend
only on valid inputs (a convolution near the end sees zeros, as it would with less padding),
so neither the amount of padding nor what it holds can change a prediction.

The sequence model takes any padded length: its input is [B, None, *trailing] and the mask
comes from the batch's own time dimension, so one model serves every length bucket and the
serving input padded to max_length alike.

Images (fixed-shape data, never bucketed): a small 2-D CNN; `length` is always the full height there.

Both take {"x": [B, T, *trailing] float32, "length": [B] int64} and return logits [B, num_classes],
for any B including 0 (see NonEmpty).
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

from trainer.config import DEFAULT_WIDTH
from trainer.data import DataInfo
from transforms import features

# Dilations of the sequence CNN's kernel-3 convolutions: a receptive field of 15 steps.
SEQUENCE_DILATIONS = (1, 2, 4)


class ValidStepMask(keras.layers.Layer):
    """([B] lengths, [B, T, C] steps) -> [B, T, 1] float mask: 1.0 on valid steps, 0.0 on padding.

    T is the batch's own padded length, read at run time: it differs between length buckets.
    """

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        length, h = inputs
        return tf.sequence_mask(length, tf.shape(h)[1], dtype=self.compute_dtype)[:, :, None]


class NonEmpty(keras.layers.Layer):
    """Pads every dimension of size 0 to one zero entry, so no layer sees an empty tensor.

    tf.distribute hands a replica an empty batch when evaluation data ends in the middle of a
    step (length buckets make that common: each bucket ends with a partial batch), with 0 for
    the unknown time dimension too; a serving request can be empty. oneDNN's CPU convolution
    (TensorFlow 2.21) returns a wrongly shaped result for an empty input. The added example has
    length 0; `FirstRows` drops its output.
    """

    def call(self, inputs: list[tf.Tensor]) -> list[tf.Tensor]:
        def pad(t: tf.Tensor) -> tf.Tensor:
            added = tf.cast(tf.equal(tf.shape(t), 0), tf.int32)
            padded = tf.pad(t, tf.stack([tf.zeros_like(added), added], axis=1))
            return tf.ensure_shape(padded, [d or None for d in t.shape.as_list()])  # keep the known dimensions

        return [pad(t) for t in inputs]


class FirstRows(keras.layers.Layer):
    """(outputs [B', ...], an input [B, ...]) -> outputs[:B]."""

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        outputs, reference = inputs
        return outputs[:tf.shape(reference)[0]]


class MaskedPooling(keras.layers.Layer):
    """Mean and max over the valid steps of [B, T, C] -> [B, 2C]."""

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        h, mask = inputs
        count = tf.reduce_sum(mask, axis=1)
        mean = tf.reduce_sum(h * mask, axis=1) / tf.maximum(count, 1.0)
        # Padding gets the lowest value so it never wins the max; a sample without valid
        # steps pools to 0 instead of that value.
        peak = tf.reduce_max(tf.where(mask > 0, h, h.dtype.min), axis=1) * tf.cast(count > 0, h.dtype)
        return tf.concat([mean, peak], axis=-1)


def _sequence_model(x: tf.Tensor, length: tf.Tensor, x_shape: tuple[int, ...], num_classes: int,
                    width: int) -> tf.Tensor:
    # Trailing dimensions become channels: [T, *trailing] -> [T, prod(trailing)].
    h = keras.layers.Reshape((-1, math.prod(x_shape[1:])))(x)
    mask = ValidStepMask()([length, h])
    h = keras.layers.Multiply()([h, mask])
    for dilation in SEQUENCE_DILATIONS:
        h = keras.layers.Conv1D(width, 3, padding="same", dilation_rate=dilation, activation="relu")(h)
        h = keras.layers.Multiply()([h, mask])  # padding back to exactly 0 for the next layer
    h = MaskedPooling()([h, mask])
    h = keras.layers.Dense(width, activation="relu")(h)
    return keras.layers.Dense(num_classes)(h)


def _image_model(x: tf.Tensor, x_shape: tuple[int, ...], num_classes: int, width: int) -> tf.Tensor:
    h = keras.layers.Reshape((*x_shape, 1))(x) if len(x_shape) == 2 else x
    for filters in (width // 2, width):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D(2, padding="same")(h)
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.layers.Dense(num_classes)(h)


def compile_classifier(net: keras.Model, learning_rate: float, steps_per_execution: int = 1) -> None:
    """The training setup of every classifier here: Adam, sparse categorical cross-entropy on
    logits, accuracy."""
    net.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                steps_per_execution=steps_per_execution)


def build_model(info: DataInfo, width: int = DEFAULT_WIDTH) -> keras.Model:
    """Builds the default classifier for a preprocessing run's data.

    Args:
      info: the preprocessing run (shapes, number of classes, image or sequence).
      width: channels of the hidden layers.

    Returns:
      An uncompiled Keras model from {"x", "length"} to logits [B, num_classes].
    """
    # Sequences: any padded length (the time dimension is None); images: their fixed shape.
    x_shape = info.x_shape if info.is_image else (None, *info.x_shape[1:])
    inputs = {features.X: keras.Input(shape=x_shape, dtype=tf.float32, name=features.X),
              features.LENGTH: keras.Input(shape=(), dtype=tf.int64, name=features.LENGTH)}
    x, length = NonEmpty()([inputs[features.X], inputs[features.LENGTH]])
    if info.is_image:
        logits = _image_model(x, info.x_shape, info.num_classes, width)
    else:
        logits = _sequence_model(x, length, info.x_shape, info.num_classes, width)
    logits = FirstRows(name="logits")([logits, inputs[features.X]])
    # `length` is an input of the image model too, so every model takes the same features.
    return keras.Model(inputs, logits, name="image_cnn" if info.is_image else "masked_sequence_cnn")
