"""The trainer's input pipeline and augmentation, on a real pipeline run (gzip, several shards)."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from beam_pipeline.sample_data import write_dataset
from tests.support.helpers import read_split, run_ok
from trainer import augment, data
from trainer.errors import ConfigError, DataError

BATCH = 24


@pytest.fixture(scope="module")
def info(tmp_path_factory) -> data.DataInfo:
    """The sample data (8 channels, lengths 10..50, 3 classes), gzip-compressed in 2 shards per split."""
    root = tmp_path_factory.mktemp("trainer_data")
    write_dataset(str(root / "npz"), train_files=4, test_files=2, per_file=50, seed=1)
    out = root / "out"
    run_ok("--input", str(root / "npz" / "train-*.npz"), "--eval_input", str(root / "npz" / "test-*.npz"),
           "--output_dir", str(out), "--compression", "gzip", "--num_shards", "2")
    return data.load(str(out))


def _eval_pass(info, **kwargs) -> dict[str, np.ndarray]:
    parts = [(f["x"].numpy(), f["length"].numpy(), y.numpy())
             for f, y in data.make_dataset(info, data.EVAL, BATCH, training=False, **kwargs)]
    return {k: np.concatenate([p[i] for p in parts]) for i, k in enumerate(("x", "length", "label"))}


def test_load_reads_everything_from_the_run(info):
    assert info.x_shape == (info.manifest["max_length"], 8) and info.num_classes == 3
    assert not info.is_image
    for split, summary in info.manifest["splits"].items():
        s = info.splits[split]
        assert len(s.files) == 2 and s.compression == "GZIP"
        assert s.num_examples == summary["examples_written"] == (200 if split == "train" else 100)


def test_training_batches_have_a_fully_static_shape(info):
    ds = data.make_dataset(info, data.TRAIN, BATCH, training=True)
    features, label = ds.element_spec
    assert features["x"] == tf.TensorSpec([BATCH, *info.x_shape], tf.float32)
    assert features["length"] == tf.TensorSpec([BATCH], tf.int64)
    assert label == tf.TensorSpec([BATCH], tf.int64)
    # It repeats: more batches than one epoch holds, every one full.
    sizes = [int(y.shape[0]) for _, y in ds.take(3 * 200 // BATCH)]
    assert sizes == [BATCH] * (3 * 200 // BATCH)


def test_eval_is_one_deterministic_pass_that_keeps_every_example(info):
    first, second = _eval_pass(info), _eval_pass(info)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
    # Exactly the records on disk (100 = 4 full batches of 24 and a partial one of 4).
    on_disk = read_split(info.data_dir, "eval")
    order = lambda d: np.lexsort((d["x"].reshape(len(d["x"]), -1)[:, 0], d["length"]))  # noqa: E731
    got, want = order(first), order(on_disk)
    for k in first:
        np.testing.assert_array_equal(first[k][got], on_disk[k][want])
    # The parsed values obey the contract: zero padding after `length` steps.
    steps = np.arange(info.x_shape[0])[None, :]
    assert np.all(first["x"][steps >= first["length"][:, None]] == 0)
    assert np.all(np.abs(first["x"][steps < first["length"][:, None]]).sum(-1) > 0)


@pytest.mark.parametrize("pipelines", [2, 3])
def test_input_pipelines_partition_the_data(info, pipelines):
    # 2 pipelines: one shard file each. 3 pipelines (more than the 2 files): every pipeline
    # reads both files and keeps every third record. Either way each record is read once.
    parts = [_eval_pass(info, input_context=tf.distribute.InputContext(pipelines, i, pipelines))
             for i in range(pipelines)]
    keys = [{(int(n), x.tobytes()) for x, n in zip(p["x"], p["length"])} for p in parts]
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == 100


def test_distribute_under_the_default_strategy_gives_global_batches(info):
    ds = data.distribute(tf.distribute.get_strategy(), info, data.TRAIN, BATCH, training=True)
    features, label = next(iter(ds))
    assert features["x"].shape == (BATCH, *info.x_shape) and label.shape == (BATCH,)


def test_throughput_is_measured(info):
    ds = data.make_dataset(info, data.TRAIN, BATCH, training=True)
    assert data.measure_throughput(ds, batches=10) > 0


def test_an_incomplete_run_is_refused(info, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(info.data_dir, copy)
    (copy / "_SUCCESS").unlink()
    with pytest.raises(DataError, match="_SUCCESS"):
        data.load(str(copy))


def test_a_missing_shard_is_refused(info, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(info.data_dir, copy)
    (copy / info.manifest["splits"]["train"]["shards"][1]["file"]).unlink()
    with pytest.raises(DataError, match="missing"):
        data.load(str(copy))


# --- augmentation -------------------------------------------------------------------------

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
