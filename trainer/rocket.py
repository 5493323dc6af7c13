"""MiniRocket's random-convolution features (Dempster et al., 2021) as a tf_keras layer.

84 fixed kernels of length 9 (weights -1, and 2 at three of the nine positions), each at a set of
dilations spread exponentially up to the longest sequence; for each (kernel, dilation) a few
biases, quantiles of that convolution's output on training examples; each feature is the
proportion of positive values (PPV) of the convolution minus one bias over a sample's steps.
Multichannel input: each (kernel, dilation) convolves the sum of a fixed random subset of the
channels. Half the (kernel, dilation) pairs, alternating, pool over every valid step, the other
half over the steps whose kernel lies entirely inside the sample (MiniRocket's "padding" and
"no padding" variants).

The padding guarantee: the convolution is 'same' over zero-filled padding, so a valid step's
output is what it would be with any other amount (or content) of padding, and the PPV counts
valid steps only.

The biases and the features' standardization (mean and std on training examples) are
non-trainable weights set once by `adapt` before training: they save, restore and export with
the model. The layer has no trainable weights and passes no gradient: a linear head learns on
its output.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

KERNEL_LENGTH = 9
# The 84 kernels: the positions weighted 2 (the others -1), all 3-subsets of the 9, as MiniRocket.
KERNEL_POSITIONS = np.array(list(itertools.combinations(range(KERNEL_LENGTH), 3)), dtype=np.int32)
NUM_KERNELS = len(KERNEL_POSITIONS)
DEFAULT_NUM_FEATURES = 10_000  # MiniRocket's default: 84 * 119 = 9,996 features
MAX_DILATIONS = 32
# Examples whose convolution outputs the biases are drawn from (one random example per
# (kernel, dilation), as MiniRocket).
BIAS_EXAMPLES = 64
_GOLDEN = (np.sqrt(5) + 1) / 2


def fit_dilations(max_length: int, num_features: int = DEFAULT_NUM_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """MiniRocket's dilations for sequences up to `max_length` and the features of each (per kernel).

    Up to MAX_DILATIONS exponentially spaced dilations, the largest spanning the sequence with
    the kernel; repeated ones (small dilations, after rounding down) get more features.
    """
    per_kernel = num_features // NUM_KERNELS
    count = min(per_kernel, MAX_DILATIONS)
    max_exponent = np.log2(max(max_length - 1, 1) / (KERNEL_LENGTH - 1))
    dilations, repeats = np.unique(np.logspace(0, max(max_exponent, 0.0), count, base=2).astype(np.int32),
                                   return_counts=True)
    features = (repeats * (per_kernel / count)).astype(np.int32)
    for i in range(per_kernel - int(features.sum())):
        features[i % len(features)] += 1
    return dilations, features


def quantiles(n: int) -> np.ndarray:
    """MiniRocket's bias quantiles: the low-discrepancy sequence (i * golden ratio) mod 1."""
    return ((np.arange(1, n + 1) * _GOLDEN) % 1).astype(np.float32)


def _kernels(channels: int, num_dilations: int, rng: np.random.Generator) -> np.ndarray:
    """[dilations, 9, channels, 84] convolution filters: each (dilation, kernel) sums a random
    subset of 1 to min(channels, 9) channels (log-uniform size, as MiniRocket)."""
    weights = np.full((KERNEL_LENGTH, NUM_KERNELS), -1.0, np.float32)
    weights[KERNEL_POSITIONS.T, np.arange(NUM_KERNELS)] = 2.0
    chosen = np.zeros((num_dilations, channels, NUM_KERNELS), np.float32)
    sizes = (2 ** rng.uniform(0, np.log2(min(channels, 9) + 1), (num_dilations, NUM_KERNELS))).astype(int)
    for j, k in np.ndindex(num_dilations, NUM_KERNELS):
        chosen[j, rng.choice(channels, sizes[j, k], replace=False), k] = 1.0
    return weights[None, :, None, :] * chosen[:, None, :, :]


class MiniRocketFeatures(keras.layers.Layer):
    """([B, T, C] float, [B] lengths) -> [B, features] standardized PPV features of the valid steps.

    Args:
      max_length: the longest sequence (the dilations' span).
      channels: C.
      num_features: about this many features (a multiple of 84).
      seed: the channel subsets and the examples the biases come from.
    """

    def __init__(self, max_length: int, channels: int, num_features: int = DEFAULT_NUM_FEATURES,
                 seed: int = 0, **kwargs) -> None:
        # float32 whatever the precision policy: the features compare values against biases.
        super().__init__(dtype="float32", **kwargs)
        self.max_length, self.channels, self.num_features, self.seed = max_length, channels, num_features, seed
        self.dilations, self.per_dilation = fit_dilations(max_length, num_features)
        self.filters = _kernels(channels, len(self.dilations), np.random.default_rng(seed))
        self.size = NUM_KERNELS * int(self.per_dilation.sum())

    def build(self, input_shape: Sequence[tf.TensorShape]) -> None:
        def constant(name: str, value: float) -> tf.Variable:
            return self.add_weight(name=name, shape=(self.size,), initializer=keras.initializers.Constant(value),
                                   trainable=False)

        self.biases, self.mean, self.std = constant("biases", 0.0), constant("mean", 0.0), constant("std", 1.0)
        super().build(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_length": self.max_length, "channels": self.channels,
                "num_features": self.num_features, "seed": self.seed}

    def convolve(self, x: tf.Tensor, j: int) -> tf.Tensor:
        """[B, T, C] (zero on padding) -> [B, T, 84]: every kernel at the j-th dilation, 'same'."""
        return tf.nn.conv1d(x, self.filters[j], stride=1, padding="SAME", dilations=int(self.dilations[j]))

    def _bias_slices(self) -> list[slice]:
        ends = np.cumsum(NUM_KERNELS * self.per_dilation)
        return [slice(int(e - NUM_KERNELS * n), int(e)) for e, n in zip(ends, self.per_dilation)]

    def ppv(self, x: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
        """[B, T, C], [B] -> [B, features]: the unstandardized proportions of positive values."""
        x = tf.stop_gradient(tf.cast(x, tf.float32))
        steps = tf.range(tf.shape(x)[1])[None, :, None]
        length = tf.cast(length, tf.int32)[:, None, None]
        valid = steps < length
        x = tf.where(valid, x, 0.0)  # 'same' convolution over zeros: independent of the padding
        parity = np.arange(NUM_KERNELS) % 2
        features = []
        for j, (dilation, bias_slice) in enumerate(zip(self.dilations, self._bias_slices())):
            margin = (KERNEL_LENGTH // 2) * int(dilation)
            inside = (steps >= margin) & (steps < length - margin)
            counted = tf.where(tf.constant(parity != j % 2)[None, None, :], inside, valid)  # [B, T, 84]
            # Uncounted steps get -inf: never above a bias.
            c = tf.where(counted, self.convolve(x, j), -np.inf)
            total = tf.maximum(tf.reduce_sum(tf.cast(counted, tf.float32), axis=1), 1.0)  # [B, 84]
            biases = tf.reshape(self.biases[bias_slice], (NUM_KERNELS, -1))
            # One comparison per bias: a [B, T, 84, biases] tensor would not fit long serving batches.
            positive = [tf.reduce_sum(tf.cast(c > biases[:, q], tf.float32), axis=1)
                        for q in range(int(self.per_dilation[j]))]
            ppv = tf.stack(positive, axis=-1) / total[:, :, None]  # [B, 84, biases]
            features.append(tf.reshape(ppv, (-1, bias_slice.stop - bias_slice.start)))
        return tf.concat(features, axis=-1)

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        x, length = inputs
        return (self.ppv(x, length) - self.mean) / self.std

    def adapt(self, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Sets the biases and the standardization from training examples.

        Args:
          batches: ([B, T, C] steps, [B] lengths) pairs, padded or not: a random example (of the
            first BIAS_EXAMPLES) per (kernel, dilation) gives the quantiles of that
            convolution's output over its valid steps; every example, the features' mean and std.
        """
        if not self.built:
            self.build([tf.TensorShape([None, None, self.channels]), tf.TensorShape([None])])
        rng = np.random.default_rng(self.seed)
        examples = [(x[i], int(n[i])) for x, n in batches for i in range(len(n)) if n[i] > 0][:BIAS_EXAMPLES]
        q = quantiles(self.size)
        biases = np.zeros(self.size, np.float32)
        for j, bias_slice in enumerate(self._bias_slices()):
            picks = rng.integers(len(examples), size=NUM_KERNELS)
            outputs = {int(i): self.convolve(examples[i][0][None, :examples[i][1]].astype(np.float32), j)[0].numpy()
                       for i in np.unique(picks)}
            levels = q[bias_slice].reshape(NUM_KERNELS, -1)
            biases[bias_slice] = np.concatenate([np.quantile(outputs[int(i)][:, k], levels[k])
                                                 for k, i in enumerate(picks)])
        self.biases.assign(biases)
        features = np.concatenate([self.ppv(x, n).numpy() for x, n in batches])
        std = features.std(axis=0)
        self.mean.assign(features.mean(axis=0))
        self.std.assign(np.where(std > 0, std, 1.0))  # a constant feature stays 0, as sklearn's scaler
