"""Training augmentations: what each changes and keeps, on batches of a real pipeline run."""

import numpy as np
import pytest
import tensorflow as tf

from beam_pipeline.sample_data import write_dataset
from tests.support.helpers import run_ok
from trainer import augment, data
from trainer.errors import ConfigError

BATCH = 24


@pytest.fixture(scope="module")
def info(tmp_path_factory) -> data.DataInfo:
    """The sample data (8 channels, lengths 10..50, 3 classes), preprocessed."""
    root = tmp_path_factory.mktemp("augment")
    write_dataset(str(root / "npz"), train_files=2, test_files=1, per_file=50, seed=1)
    run_ok("--input", str(root / "npz" / "train-*.npz"), "--eval_input", str(root / "npz" / "test-*.npz"),
           "--output_dir", str(root / "out"))
    return data.load(str(root / "out"))


def _batch(info):
    features, _ = next(iter(data.make_dataset(info, data.TRAIN, BATCH, training=True)))
    return features["x"].numpy(), features["length"].numpy()


def test_noise_touches_valid_steps_only(info):
    x, length = _batch(info)
    noisy = augment.add_noise(tf.constant(x), tf.constant(length), stddev=0.5).numpy()
    valid = np.arange(x.shape[1])[None, :] < length[:, None]
    assert np.all(noisy[~valid] == 0)
    assert np.all(noisy[valid] != x[valid])
    assert 0.4 < np.std(noisy[valid] - x[valid]) < 0.6


def test_time_shift_rotates_within_the_valid_length(info):
    x, length = _batch(info)
    shifted = augment.time_shift(tf.constant(x), tf.constant(length)).numpy()
    rotated = 0
    for xi, si, n in zip(x, shifted, length):
        assert np.all(si[n:] == 0)  # padding stays zero
        offsets = [k for k in range(n) if np.array_equal(si[:n], np.roll(xi[:n], k, axis=0))]
        assert offsets, "the valid steps must be a rotation of the original"
        rotated += offsets[0] != 0
    assert rotated > BATCH // 2  # offsets are random, not all zero


def test_the_augmented_pipeline_keeps_shapes_and_lengths(info):
    fn = augment.make_augment_fn(info, ["noise", "shift"])
    plain = data.make_dataset(info, data.EVAL, BATCH, training=False)
    features, _ = next(iter(plain))
    augmented = fn(features)
    assert augmented["x"].shape == features["x"].shape
    np.testing.assert_array_equal(augmented["length"], features["length"])
    spec = data.make_dataset(info, data.TRAIN, BATCH, training=True, augment=fn).element_spec
    assert spec[0]["x"].shape.is_fully_defined()


def test_random_flip_mirrors_some_examples():
    x = tf.reshape(tf.range(16 * 4 * 5, dtype=tf.float32), [16, 4, 5])
    flipped = augment.random_flip(x, axis=2).numpy()
    mirrored = [np.array_equal(f, xi[:, ::-1]) for f, xi in zip(flipped, x.numpy())]
    same = [np.array_equal(f, xi) for f, xi in zip(flipped, x.numpy())]
    assert all(m or s for m, s in zip(mirrored, same))
    assert 0 < sum(mirrored) < 16


def test_augmentations_that_do_not_fit_the_data_are_refused(info):
    assert augment.make_augment_fn(info, []) is None
    with pytest.raises(ConfigError, match="flip_lr"):
        augment.make_augment_fn(info, ["flip_lr"])
