"""The default models, built from the data's shapes (Keras 2 via tf_keras, as tf.Transform's layer needs).

Sequences: a small dilated 1-D CNN that re-zeroes padded steps after every convolution, then
mean and max pooling over the valid steps only. A valid step's activations therefore depend
only on valid inputs (a convolution near the end sees zeros, as it would with less padding),
so neither the amount of padding nor what it holds can change a prediction.

The sequence model takes any padded length: its input is [B, None, *trailing] and the mask
comes from the batch's own time dimension, so one model serves every length bucket and the
serving input padded to max_length alike.

Images (fixed-shape data, never bucketed): a small 2-D CNN; `length` is always the full height there.

Both take {"x": [B, T, *trailing] float32, "length": [B] int64} and return logits [B, num_classes]
(classification) or the predicted target [B, 1] (regression: the same network, one output),
for any B including 0 (see NonEmpty). Only the loss and metrics differ (`compile_model`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import tensorflow as tf
import tf_keras as keras

from trainer import user_model
from trainer.config import DEFAULT_WIDTH, TrainConfig
from trainer.data import DataInfo
from transforms import features

# The sequence CNN: a stem convolution, then residual blocks with a masked max-pool halving the
# steps between them, so the receptive field grows geometrically: blocks are added until it
# covers the longest training sequence, up to MAX_STAGES.
SEQUENCE_KERNEL = 7
MIN_STAGES, MAX_STAGES = 2, 8

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


class MaskedMaxPool(keras.layers.Layer):
    """Halves the steps of [B, T, C] with windows (2k, 2k+1), padding never winning: [B, ceil(T/2), C].

    The windows start at step 0 whatever T is, and a window holding the last valid step and a
    padded one gives that step, as it would if the sample ended the batch; so the result's valid
    steps (ceil(length / 2) of them) depend on valid inputs only.
    """

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        h, mask = inputs
        h = tf.where(mask > 0, h, h.dtype.min)
        return tf.nn.max_pool1d(h, 2, 2, "SAME")


class HalvedLength(keras.layers.Layer):
    """Valid steps after MaskedMaxPool: ceil(length / 2)."""

    def call(self, length: tf.Tensor) -> tf.Tensor:
        return (length + 1) // 2


def sequence_stages(max_length: int) -> int:
    """Residual blocks: enough halvings that the last block's kernel spans the longest sequence."""
    stages = MIN_STAGES
    while stages < MAX_STAGES and SEQUENCE_KERNEL * 2 ** (stages - 1) < max_length:
        stages += 1
    return stages


class StepBatchNorm(keras.layers.BatchNormalization):
    """Batch normalization whose training statistics come from the valid steps only (the `mask`
    [B, T] given to each call); in inference a per-channel affine map, which keeps padded steps
    out of every valid step's value. Passes no Keras mask on: the model masks explicitly."""

    def __init__(self, **kwargs) -> None:
        # The fused kernel ignores masks. Momentum 0.9: the inference statistics settle within
        # tens of steps (Keras' 0.99 needs hundreds; small datasets and short runs have few).
        super().__init__(fused=False, momentum=0.9, **kwargs)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        return None


def _normalized(h: tf.Tensor, mask2d: tf.Tensor) -> tf.Tensor:
    return StepBatchNorm()(h, mask=mask2d)


def _residual_block(h: tf.Tensor, mask: tf.Tensor, width: int) -> tf.Tensor:
    """Two masked conv + batch-norm layers and a skip connection; padded steps end at exactly 0."""
    mask2d = mask[:, :, 0]
    shortcut = h
    for i in range(2):
        h = keras.layers.Conv1D(width, SEQUENCE_KERNEL, padding="same", use_bias=False)(h)
        h = _normalized(h, mask2d)
        if i == 0:
            h = keras.layers.Activation("relu")(keras.layers.Multiply()([h, mask]))
    h = keras.layers.Activation("relu")(keras.layers.Add()([h, shortcut]))
    return keras.layers.Multiply()([h, mask])  # padding back to exactly 0 for the next layer


class InstanceStandardized(keras.layers.Layer):
    """[B, T, C] -> [B, T, C]: each sample's channels standardized over its own valid steps, 0 on padding.

    The pipeline standardizes with the dataset's statistics, which keeps each sample's level and
    scale (often telling); this view adds its shape alone, whatever the level.
    """

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        h, mask = inputs
        count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(h * mask, axis=1, keepdims=True) / count
        var = tf.reduce_sum(tf.square(h - mean) * mask, axis=1, keepdims=True) / count
        return (h - mean) * tf.math.rsqrt(var + 1e-6) * mask


def _sequence_model(x: tf.Tensor, length: tf.Tensor, x_shape: tuple[int, ...], num_classes: int,
                    width: int) -> tf.Tensor:
    # Trailing dimensions become channels: [T, *trailing] -> [T, prod(trailing)].
    h = keras.layers.Reshape((-1, math.prod(x_shape[1:])))(x)
    mask = ValidStepMask()([length, h])
    h = keras.layers.Multiply()([h, mask])
    h = keras.layers.Concatenate()([h, InstanceStandardized()([h, mask])])
    h = keras.layers.Conv1D(width, SEQUENCE_KERNEL, padding="same", use_bias=False)(h)
    h = keras.layers.Activation("relu")(_normalized(h, mask[:, :, 0]))
    h = keras.layers.Multiply()([h, mask])
    stages = sequence_stages(x_shape[0])
    for _ in range(stages):
        h = MaskedMaxPool()([h, mask])
        length = HalvedLength()(length)
        mask = ValidStepMask()([length, h])
        h = keras.layers.Multiply()([h, mask])
        h = _residual_block(h, mask, width)
    h = MaskedPooling()([h, mask])
    return keras.layers.Dense(num_classes, dtype="float32")(h)  # float32 logits under mixed precision


def _image_model(x: tf.Tensor, x_shape: tuple[int, ...], num_classes: int, width: int) -> tf.Tensor:
    h = keras.layers.Reshape((*x_shape, 1))(x) if len(x_shape) == 2 else x
    for filters in (width // 2, width):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D(2, padding="same")(h)
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.layers.Dense(num_classes, dtype="float32")(h)  # float32 logits under mixed precision


def learning_rate_schedule(peak: float, total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Cosine decay from `peak` to 1% of it over the run: large steps early, small ones to settle."""
    return keras.optimizers.schedules.CosineDecay(peak, max(1, total_steps), alpha=0.01)


def compile_model(net: keras.Model, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
                  steps_per_execution: int = 1, jit_compile: bool = False, task: str = "classification") -> None:
    """The training setup of every model here: Adam; for classification sparse categorical
    cross-entropy on logits and accuracy, for regression mean squared error and mean absolute
    error (in the records' units: standardized when the pipeline standardized the target);
    the train step compiled with XLA when `jit_compile`."""
    if task == "regression":
        loss, metrics = keras.losses.MeanSquaredError(), [keras.metrics.MeanAbsoluteError(name="mae")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    net.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics,
                steps_per_execution=steps_per_execution, jit_compile=jit_compile)


@contextlib.contextmanager
def precision(policy: str | None) -> Iterator[None]:
    """Keras' global dtype policy for the models built inside (e.g. "mixed_bfloat16"); float32 after."""
    if policy is None:
        yield
        return
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def float32_outputs(net: keras.Model) -> keras.Model:
    """`net` with float32 outputs: logits and loss stay float32 under a mixed-precision policy."""
    if net.output.dtype == tf.float32:
        return net
    logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(net.output)
    return keras.Model(net.inputs, logits, name=net.name)


def make_model(info: DataInfo, config: TrainConfig) -> keras.Model:
    """The run's model: the user's (--model) or the default one, with float32 logits."""
    net = user_model.load(config.model)(info) if config.model else build_model(info, config.width)
    return float32_outputs(user_model.checked(net, config.model) if config.model else net)


def build_model(info: DataInfo, width: int = DEFAULT_WIDTH) -> keras.Model:
    """Builds the default model for a preprocessing run's data.

    Args:
      info: the preprocessing run (shapes, task and number of classes, image or sequence).
      width: channels of the hidden layers.

    Returns:
      An uncompiled Keras model from {"x", "length"} to logits [B, num_classes], or to the
      predicted target [B, 1] for regression.
    """
    # Sequences: any padded length (the time dimension is None); images: their fixed shape.
    x_shape = info.x_shape if info.is_image else (None, *info.x_shape[1:])
    inputs = {features.X: keras.Input(shape=x_shape, dtype=tf.float32, name=features.X),
              features.LENGTH: keras.Input(shape=(), dtype=tf.int64, name=features.LENGTH)}
    x, length = NonEmpty()([inputs[features.X], inputs[features.LENGTH]])
    if info.is_image:
        logits = _image_model(x, info.x_shape, info.num_outputs, width)
    else:
        logits = _sequence_model(x, length, info.x_shape, info.num_outputs, width)
    logits = FirstRows(name="logits")([logits, inputs[features.X]])
    # `length` is an input of the image model too, so every model takes the same features.
    return keras.Model(inputs, logits, name="image_cnn" if info.is_image else "masked_sequence_cnn")
