"""The default models, built from the data's shapes (Keras 2 via tf_keras, as tf.Transform's layer needs).

Sequences (`minirocket_linear`): MiniRocket's random-convolution features (trainer/rocket.py)
and each channel's mean and max over the valid steps, into a regularized linear head. The
convolutions run over zero-filled padding and every pooling counts valid steps only, so
neither the amount of padding nor what it holds can change a prediction.

The sequence model takes any padded length: its input is [B, None, *trailing] and the mask
comes from the batch's own time dimension, so one model serves every length bucket and the
serving input padded to max_length alike. Its MiniRocket stage has fixed weights that `adapt`
fits to training examples once, before training.

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

from trainer import rocket, user_model
from trainer.config import DEFAULT_WIDTH, TrainConfig
from trainer.data import DataInfo
from transforms import features

# The sequence model's linear head on MiniRocket's features (see trainer/rocket.py); its
# regularization and step count measured on ACSF1, PickupGestureWiimoteZ and JapaneseVowels
# (docs/training.md): without them the head overfits 50 to 270 examples' 10,000 features.
HEAD_DROPOUT = 0.5
HEAD_L2 = 0.1
# Optimizer steps the default sequence model needs (the plan's minimum for it): its head reaches
# its accuracy in 300 steps, and every step computes the features anew.
LINEAR_HEAD_STEPS = 300
# Training examples `adapt` fits the MiniRocket stage's biases and standardization on.
ADAPT_EXAMPLES = 256
ROCKET_LAYER = "minirocket"

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


def _sequence_model(x: tf.Tensor, length: tf.Tensor, x_shape: tuple[int, ...], num_outputs: int,
                    seed: int) -> tf.Tensor:
    # Trailing dimensions become channels: [T, *trailing] -> [T, prod(trailing)].
    channels = math.prod(x_shape[1:])
    h = keras.layers.Reshape((-1, channels))(x)
    mask = ValidStepMask()([length, h])
    h = keras.layers.Multiply()([h, mask])
    # MiniRocket's features ignore each sample's level (its kernels sum to 0): the channels'
    # mean and max over the valid steps keep it.
    convolved = rocket.MiniRocketFeatures(x_shape[0], channels, seed=seed, name=ROCKET_LAYER)([h, length])
    features = keras.layers.Concatenate()([convolved, MaskedPooling()([h, mask])])
    features = keras.layers.Dropout(HEAD_DROPOUT)(features)
    # float32 logits under mixed precision; starting at 0 (all classes equally likely) is what
    # the head was measured with.
    return keras.layers.Dense(num_outputs, kernel_initializer="zeros",
                              kernel_regularizer=keras.regularizers.L2(HEAD_L2), dtype="float32")(features)


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
    the train step compiled with XLA when `jit_compile`. Keras's `loss` adds the model's weight
    penalties, so the figures are also reported as metrics of their own (`mse`)."""
    if task == "regression":
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.MeanSquaredError(name="mse"), keras.metrics.MeanAbsoluteError(name="mae")]
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
    net = user_model.load(config.model)(info) if config.model else build_model(info, config.width, config.seed)
    return float32_outputs(user_model.checked(net, config.model) if config.model else net)


def build_model(info: DataInfo, width: int = DEFAULT_WIDTH, seed: int = 0) -> keras.Model:
    """Builds the default model for a preprocessing run's data.

    Args:
      info: the preprocessing run (shapes, task and number of classes, image or sequence).
      width: channels of the image model's hidden layers (the sequence model has none).
      seed: the sequence model's random channel subsets (and the examples its biases come from).

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
        logits = _sequence_model(x, length, info.x_shape, info.num_outputs, seed)
    logits = FirstRows(name="logits")([logits, inputs[features.X]])
    # `length` is an input of the image model too, so every model takes the same features.
    return keras.Model(inputs, logits, name="image_cnn" if info.is_image else "minirocket_linear")


def uses_linear_head(info: DataInfo, config: TrainConfig) -> bool:
    """Whether the run trains the default sequence model: a linear head on fixed features."""
    return config.model is None and not info.is_image


def adapt(net: keras.Model, batches: tf.data.Dataset, examples: int = ADAPT_EXAMPLES) -> None:
    """Fits the model's MiniRocket stage, if it has one, to training batches before training.

    Args:
      net: the built model.
      batches: training batches ({"x", "length"}, label), not augmented: the features of the
        first `examples` examples (at least one batch) set the stage's biases and standardization.
    """
    stages = [layer for layer in net.layers if isinstance(layer, rocket.MiniRocketFeatures)]
    if not stages:
        return
    sample, count = [], 0
    for x, _ in batches:
        sample.append((x[features.X].numpy(), x[features.LENGTH].numpy()))
        count += len(sample[-1][1])
        if count >= examples:
            break
    for stage in stages:
        stage.adapt([(steps.reshape(*steps.shape[:2], stage.channels), length) for steps, length in sample])
