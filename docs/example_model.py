"""A user's own model for the trainer: `python -m trainer --model docs/example_model.py:build ...`.

The trainer calls `build(info)` under its distribution strategy and does everything else itself
(input pipeline, compilation, checkpoints, resumption, metrics, the serving export). The model
takes {"x": [B, T, *trailing] float32, "length": [B] int64} (normalized and zero-padded by the
pipeline; T differs between length buckets and serving pads to max_length) and returns logits
[B, num_classes]. Keras 2 (`tf_keras`), as tf.Transform's serving layer needs.

This one is a GRU that reads the valid steps only: the mask built from `length` keeps the
padding out, so a prediction does not depend on how much padding a sample has or what it holds.
"""

import math

import tensorflow as tf
import tf_keras as keras


def build(info) -> keras.Model:
    """info: trainer.data.DataInfo (x_shape, is_image, num_classes, manifest, ...)."""
    if info.is_image:
        raise ValueError("this example reads sequences; images have the built-in CNN")
    x = keras.Input(shape=(None, *info.x_shape[1:]), dtype=tf.float32, name="x")
    length = keras.Input(shape=(), dtype=tf.int64, name="length")
    steps = keras.layers.Reshape((-1, math.prod(info.x_shape[1:])))(x)  # trailing dimensions -> channels
    valid = tf.sequence_mask(length, tf.shape(steps)[1])
    h = keras.layers.GRU(32)(steps, mask=valid)
    logits = keras.layers.Dense(info.num_classes)(h)
    return keras.Model({"x": x, "length": length}, logits, name="example_gru")
