"""On-the-fly augmentation of parsed training batches (off unless asked for).

Every op works on a whole batch with static shapes and keeps the record's contract: padding
stays exactly zero and `length` stays the true number of valid steps.
  - noise: gaussian noise on the valid steps (the data is normalized, so stddev is in std units).
  - shift: rotate each sequence by a random offset within its own valid length.
  - flip_lr / flip_ud: mirror each image with probability 1/2 (fixed-shape data only).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from trainer.config import DEFAULT_NOISE_STDDEV, IMAGE_AUGMENTATIONS, SEQUENCE_AUGMENTATIONS
from trainer.data import AugmentFn, DataInfo, Features
from trainer.errors import ConfigError
from transforms import features


def valid_mask(length: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """1.0 on valid steps, 0.0 on padding, broadcastable against `x` [B, T, ...]."""
    mask = tf.sequence_mask(length, tf.shape(x)[1], dtype=x.dtype)
    return tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([x.shape.rank - 2], tf.int32)], 0))


def add_noise(x: tf.Tensor, length: tf.Tensor, stddev: float) -> tf.Tensor:
    """Gaussian noise on the valid steps only."""
    return x + tf.random.normal(tf.shape(x), stddev=stddev, dtype=x.dtype) * valid_mask(length, x)


def time_shift(x: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """Rotates each sequence's valid steps by a random offset in [0, length).

    A rotation (rather than a shift that fills with zeros) keeps every valid value, so
    `length` stays true and the padding stays untouched.
    """
    n = tf.maximum(length, 1)[:, None]  # [B, 1]; length 0 (no valid step) rotates nothing
    offset = tf.cast(tf.random.uniform(tf.shape(n)) * tf.cast(n, tf.float32), tf.int64)
    offset = tf.minimum(offset, n - 1)  # float rounding could reach n for very long sequences
    steps = tf.range(tf.shape(x, out_type=tf.int64)[1])[None, :]  # [1, T]
    source = tf.math.floormod(steps - offset, n)  # [B, T]: step t takes valid step (t - offset) mod n
    return tf.gather(x, source, batch_dims=1) * valid_mask(length, x)


def random_flip(x: tf.Tensor, axis: int) -> tf.Tensor:
    """Reverses each example of the batch along `axis` with probability 1/2."""
    flip = tf.random.uniform([tf.shape(x)[0]]) < 0.5
    flip = tf.reshape(flip, [-1] + [1] * (x.shape.rank - 1))
    return tf.where(flip, tf.reverse(x, [axis]), x)


def make_augment_fn(info: DataInfo, names: Sequence[str],
                    noise_stddev: float = DEFAULT_NOISE_STDDEV) -> AugmentFn | None:
    """Builds the batch augmentation for a dataset.

    Args:
      info: the preprocessing run (decides sequence vs image).
      names: augmentations to apply, in order; empty for none.
      noise_stddev: stddev of the "noise" augmentation.

    Returns:
      A function from a features batch to an augmented one, or None when `names` is empty.

    Raises:
      ConfigError: an augmentation that does not fit the data (flips on sequences, noise or
        shift on images) or an unknown name.
    """
    allowed = IMAGE_AUGMENTATIONS if info.is_image else SEQUENCE_AUGMENTATIONS
    kind = "images" if info.is_image else "sequences"
    wrong = [n for n in names if n not in allowed]
    if wrong:
        raise ConfigError(f"augmentation {wrong} does not apply to {kind}; choose from {list(allowed)}")
    if not names:
        return None

    def augment(batch: Features) -> Features:
        x, length = batch[features.X], batch[features.LENGTH]
        for name in names:
            if name == "noise":
                x = add_noise(x, length, noise_stddev)
            elif name == "shift":
                x = time_shift(x, length)
            else:  # flips: image axes are [B, H, W(, C)]
                x = random_flip(x, axis=2 if name == "flip_lr" else 1)
        return {**batch, features.X: x}

    return augment
