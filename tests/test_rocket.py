"""The MiniRocket stage of the default sequence model (trainer/rocket.py): MiniRocket's features,
biases fitted to data, independent of padding, the same under XLA."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer import rocket

MAX_LENGTH, CHANNELS = 40, 3
# 840 features: 10 per kernel over the dilations 1 to 4 (the largest spanning 40 steps).
NUM_FEATURES = 840


def _samples(rng: np.random.Generator, lengths: list[int], channels: int = CHANNELS) -> list[np.ndarray]:
    return [np.cumsum(rng.normal(size=(n, channels)), axis=0).astype(np.float32) for n in lengths]


def _padded(samples: list[np.ndarray], steps: int, fill: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    x = np.broadcast_to(np.asarray(fill, np.float32), (len(samples), steps, samples[0].shape[1])).copy()
    for i, s in enumerate(samples):
        x[i, :len(s)] = s
    return x, np.array([len(s) for s in samples], np.int64)


@pytest.fixture(scope="module")
def adapted() -> tuple[rocket.MiniRocketFeatures, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    samples = _samples(rng, [40, 33, 17, 9, 40, 25])
    layer = rocket.MiniRocketFeatures(MAX_LENGTH, CHANNELS, num_features=NUM_FEATURES)
    layer.adapt([_padded(samples[:3], MAX_LENGTH, 0.0), _padded(samples[3:], 40, 0.0)])
    return layer, samples


def test_dilations_span_the_longest_sequence_as_minirocket():
    dilations, per_dilation = rocket.fit_dilations(1460)
    # The largest dilation's kernel spans the sequence: 8 * 182 steps of 1,459.
    assert (dilations[0], dilations[-1]) == (1, 1459 // (rocket.KERNEL_LENGTH - 1))
    assert per_dilation.sum() == 10_000 // 84 and len(dilations) <= rocket.MAX_DILATIONS
    layer = rocket.MiniRocketFeatures(MAX_LENGTH, CHANNELS, num_features=NUM_FEATURES)
    assert layer.dilations.tolist() == [1, 2, 3, 4] and layer.size == NUM_FEATURES


def test_the_biases_are_quantiles_of_the_convolutions_on_training_data(adapted):
    """Fitted on one example, each full-sequence feature is the fraction of its convolution above
    the bias: 1 - its quantile (MiniRocket's), to one step."""
    layer, samples = adapted
    one = rocket.MiniRocketFeatures(MAX_LENGTH, CHANNELS, num_features=NUM_FEATURES)
    x, length = _padded(samples[:1], MAX_LENGTH, 0.0)
    one.adapt([(x, length)])
    ppv = one.ppv(x, length).numpy()[0]
    full = np.concatenate([np.repeat(np.arange(rocket.NUM_KERNELS) % 2 == j % 2, n)
                           for j, n in enumerate(one.per_dilation)])  # [kernel][bias] order per dilation
    expected = 1 - rocket.quantiles(one.size)
    assert np.abs(ppv[full] - expected[full]).max() <= 1 / MAX_LENGTH + 1e-6
    assert np.ptp(one.biases.numpy()) > 0 and not np.allclose(one.biases.numpy(), layer.biases.numpy())
    # Standardized on the data they were fitted on: mean 0, std 1 (0 for the few constant ones).
    features = layer(list(_padded(samples, MAX_LENGTH, 0.0))).numpy()
    assert np.abs(features.mean(axis=0)).max() < 1e-4
    assert np.isin(np.round(features.std(axis=0), 3), [0.0, 1.0]).all() and (features.std(axis=0) > 0.5).mean() > 0.9


def test_a_feature_is_minirocket_ppv_of_a_dilated_kernel(adapted):
    """One feature recomputed by hand: kernel (-1, 2 at its three positions) at its dilation over
    the zero-padded channel sum, minus its bias, positive fraction of the valid steps."""
    layer, samples = adapted
    x, length = _padded(samples[:2], MAX_LENGTH, 0.0)
    ppv = layer.ppv(x, length).numpy()
    j, k = 1, 6  # dilation 2; kernel 6 with (1 + 6) odd: over the steps the kernel lies inside
    start = rocket.NUM_KERNELS * int(layer.per_dilation[0]) + k * int(layer.per_dilation[1])
    weights = np.full(9, -1.0)
    weights[rocket.KERNEL_POSITIONS[k]] = 2.0
    channels = layer.filters[j, 0, :, k] != 0
    for i, s in enumerate(samples[:2]):
        series = np.pad(s[:, channels].sum(axis=1), 8)
        conv = np.array([weights @ series[t:t + 17:2] for t in range(len(s))])[8:len(s) - 8]
        expected = [(conv > b).mean() for b in layer.biases.numpy()[start:start + int(layer.per_dilation[1])]]
        np.testing.assert_allclose(ppv[i, start:start + len(expected)], expected, atol=1e-6)


@pytest.mark.parametrize("fill", [0.0, 1e6, np.nan])
def test_features_depend_on_neither_the_amount_nor_the_content_of_padding(adapted, fill):
    layer, samples = adapted
    alone = np.concatenate([layer(list(_padded([s], len(s), 0.0))).numpy() for s in samples])
    for steps in (MAX_LENGTH, MAX_LENGTH + 23):
        padded = layer(list(_padded(samples, steps, fill))).numpy()
        np.testing.assert_allclose(padded, alone, atol=1e-6)


def test_xla_computes_the_same_features(adapted):
    layer, samples = adapted
    x, length = _padded(samples, MAX_LENGTH, 0.0)
    compiled = tf.function(lambda x, n: layer([x, n]), jit_compile=True)
    np.testing.assert_allclose(compiled(x, length).numpy(), layer([x, length]).numpy(), atol=1e-5)
