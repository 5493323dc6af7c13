"""The trainer's input pipeline, on real pipeline runs (gzip, several shards),
without and with length buckets."""

import json
import math
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from beam_pipeline.sample_data import write_dataset
from tests.support.helpers import as_version_1, read_split, run_ok
from trainer import data
from trainer.errors import DataError

BATCH = 24
BOUNDS = (20, 35)   # length buckets below max_length (50)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The sample data (8 channels, lengths 10..50, 3 classes): 200 training and 100 eval samples."""
    root = tmp_path_factory.mktemp("trainer_data")
    write_dataset(str(root / "npz"), train_files=4, test_files=2, per_file=50, seed=1)
    return root


def _preprocess(root, name: str, *flags: str) -> data.DataInfo:
    """The pipeline's output for the sample data, gzip-compressed in 2 shards per split (and bucket)."""
    run_ok("--input", str(root / "npz" / "train-*.npz"), "--eval_input", str(root / "npz" / "test-*.npz"),
           "--output_dir", str(root / name), "--compression", "gzip", "--num_shards", "2", *flags)
    return data.load(str(root / name))


@pytest.fixture(scope="module")
def info(root) -> data.DataInfo:
    return _preprocess(root, "out")


@pytest.fixture(scope="module")
def bucketed(root) -> data.DataInfo:
    """The same samples in length buckets: each stored padded to the smallest of 20, 35, 50 that holds it."""
    return _preprocess(root, "bucketed", "--length_buckets", ",".join(map(str, BOUNDS)))


def _eval_pass(info, **kwargs) -> dict[str, np.ndarray]:
    """Every eval batch, x padded to max_length (a bucket's batches are shorter)."""
    parts = []
    for f, y in data.make_dataset(info, data.EVAL, BATCH, training=False, **kwargs):
        x = f["x"].numpy()
        x = np.pad(x, [(0, 0), (0, info.x_shape[0] - x.shape[1]), (0, 0)])
        parts.append((x, f["length"].numpy(), y.numpy()))
    return {k: np.concatenate([p[i] for p in parts]) for i, k in enumerate(("x", "length", "label"))}


def _in_storage_order(records: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Records sorted by (length, x): the same records in the same order, whatever order they came in."""
    order = np.lexsort((*records["x"].reshape(len(records["x"]), -1)[:, :4].T[::-1], records["length"]))
    return {k: v[order] for k, v in records.items()}


def test_load_reads_everything_from_the_run(info):
    assert info.x_shape == (info.manifest.max_length, 8) and info.num_classes == 3
    assert not info.is_image
    for split, summary in info.manifest.splits.items():
        s = info.splits[split]
        assert len(s.files) == 2 and s.compression == "GZIP"
        assert s.num_examples == summary.examples_written == (200 if split == "train" else 100)


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
    got, want = _in_storage_order(first), _in_storage_order(read_split(info.data_dir, "eval"))
    for k in first:
        np.testing.assert_array_equal(got[k], want[k])
    # The parsed values obey the contract: zero padding after `length` steps.
    steps = np.arange(info.x_shape[0])[None, :]
    assert np.all(first["x"][steps >= first["length"][:, None]] == 0)
    assert np.all(np.abs(first["x"][steps < first["length"][:, None]]).sum(-1) > 0)


@pytest.mark.parametrize("run", ["info", "bucketed"])
@pytest.mark.parametrize("pipelines", [2, 3])
def test_input_pipelines_partition_the_data(run, pipelines, request):
    # 2 pipelines: one shard file (of each bucket) each. 3 pipelines (more than the 2 files):
    # every pipeline reads both files and keeps every third block. Either way each record is read once.
    info = request.getfixturevalue(run)
    parts = [_eval_pass(info, input_context=tf.distribute.InputContext(pipelines, i, pipelines))
             for i in range(pipelines)]
    keys = [{(int(n), x.tobytes()) for x, n in zip(p["x"], p["length"])} for p in parts]
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == 100


def test_distribute_under_the_default_strategy_gives_global_batches(info):
    ds = data.distribute(tf.distribute.get_strategy(), info, data.TRAIN, BATCH, training=True)
    features, label = next(iter(ds))
    assert features["x"].shape == (BATCH, *info.x_shape) and label.shape == (BATCH,)


def test_throughput_counts_the_timed_batches_only():
    # Batches of 24 that take 20 ms each (a sleep): at most 1,200 examples/s.
    # Two buckets (padded lengths 5 and 7): the warm-up lasts until both delivered a batch, and
    # their first batches take 1 s each (filling their shuffle buffers); they must not count.
    # Timing one of them with the 10 batches would cap the rate at 240 examples/s (24 * 10 / 1 s).
    def slow(seconds):
        time.sleep(float(seconds))
        return np.int64(0)

    delays = tf.constant([1.0, 0.02, 1.0] + [0.02] * 10)
    lengths = tf.constant([5, 5, 7] + [5, 7] * 5)
    ds = tf.data.Dataset.from_tensor_slices((delays, lengths)).map(
        lambda d, n: ({"x": tf.zeros([BATCH, n, 1])},
                      tf.zeros([BATCH], tf.int64) + tf.numpy_function(slow, [d], tf.int64, stateful=True)))
    assert 2 * 240 < data.measure_throughput(ds, batches=10, buckets=2) <= 1200


def test_an_incomplete_run_is_refused(info, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(info.data_dir, copy)
    (copy / "_SUCCESS").unlink()
    with pytest.raises(DataError, match="_SUCCESS"):
        data.load(str(copy))


def test_a_missing_shard_is_refused(info, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(info.data_dir, copy)
    (copy / info.manifest.splits["train"].shards[1].file).unlink()
    with pytest.raises(DataError, match="missing"):
        data.load(str(copy))


def test_training_shuffles_blocks_of_consecutive_records_and_mixes_the_shards(info):
    # 2 shards of 100 records; batch 24 = 3 blocks of 8 consecutive records of one shard.
    where = {}
    for shard, path in enumerate(info.splits[data.TRAIN].files):
        for position, record in enumerate(tf.data.TFRecordDataset(path, compression_type="GZIP")):
            parsed = tf.io.parse_single_example(record, info.feature_spec)
            where[(int(parsed["length"]), parsed["x"].numpy().tobytes())] = (shard, position)
    ds = data.make_dataset(info, data.TRAIN, BATCH, training=True, reading=data.Reading(blocks_per_batch=3))
    batches = [[where[(int(n), x.tobytes())] for x, n in zip(f["x"].numpy(), f["length"].numpy())]
               for f, _ in ds.take(40)]
    neighbours = [(a, b) for batch in batches for a, b in zip(batch, batch[1:])]
    consecutive = np.mean([a[0] == b[0] and b[1] == a[1] + 1 for a, b in neighbours])
    assert consecutive >= 0.75   # ~7 of 8 within a block; a per-record shuffle gives ~0.01
    mixed = np.mean([len({shard for shard, _ in batch}) == 2 for batch in batches])
    assert mixed >= 0.4          # 3 blocks from 2 shards: 3/4 of the batches hold both, on average


def test_shuffle_buffers_are_split_over_the_buckets_by_size(bucketed):
    split = bucketed.splits[data.TRAIN]
    sizes = [b.num_examples for b in split.buckets]
    blocks = data._shuffle_buffers(bucketed, split, data.Reading(shuffle_buffer=100), block=2)
    assert blocks == [max(1, int(100 * n / sum(sizes)) // 2) for n in sizes]
    # The byte cap holds whatever the flag asks: records of 50 x 8 floats are ~1.7 KB.
    capped = data._shuffle_buffers(bucketed, split, data.Reading(shuffle_buffer=10**9), block=1)
    assert capped == sizes  # at most each bucket's size
    assert sum(n * bucketed.record_bytes(b.length) for n, b in zip(capped, split.buckets)) <= data.MAX_SHUFFLE_BYTES


# --- length buckets -----------------------------------------------------------------------

def test_a_bucketed_run_is_read_as_one_bucket_per_padded_length(bucketed, info):
    assert bucketed.x_shape == info.x_shape == (50, 8)   # what serving and the transform say
    declared = bucketed.manifest.length_buckets
    assert declared.bounds == (*BOUNDS, 50)
    for split, s in bucketed.splits.items():
        want = [(b.length, b.examples) for b in declared.splits[split] if b.examples]
        assert [(b.length, b.num_examples) for b in s.buckets] == want
        assert s.num_examples == info.splits[split].num_examples
        assert all(len(b.files) == 2 for b in s.buckets)
    assert [(b.length, b.num_examples) for b in info.splits[data.TRAIN].buckets] == [(50, 200)]


def test_bucketed_training_batches_come_from_one_bucket_with_a_static_shape(bucketed):
    tf.random.set_seed(0)
    ds = data.make_dataset(bucketed, data.TRAIN, BATCH, training=True)
    features, label = ds.element_spec
    assert features["x"] == tf.TensorSpec([BATCH, None, 8], tf.float32) and label.shape == [BATCH]
    buckets = bucketed.splits[data.TRAIN].buckets
    lower = {b.length: previous for b, previous in zip(buckets, (0, *[b.length for b in buckets]))}
    drawn = dict.fromkeys(lower, 0)
    for f, _ in ds.take(300):
        x, length = f["x"].numpy(), f["length"].numpy()
        bound = x.shape[1]
        drawn[bound] += 1
        assert x.shape == (BATCH, bound, 8)
        # Only this bucket's samples, zero-padded after their length.
        assert np.all((length > lower[bound]) & (length <= bound))
        assert np.all(x[np.arange(bound)[None, :] >= length[:, None]] == 0)
    # Buckets are drawn in proportion to their sizes (within 4 standard deviations).
    total = sum(b.num_examples for b in buckets)
    for b in buckets:
        p = b.num_examples / total
        assert abs(drawn[b.length] - 300 * p) <= 4 * math.sqrt(300 * p * (1 - p)), (drawn, b)


def test_the_replicas_of_a_step_get_batches_of_one_bucket_on_every_host(bucketed):
    # distribute_datasets_from_function hands a pipeline's consecutive batches to its replicas, one
    # step at a time. 1 host with 2 replicas, and 2 hosts with 2 replicas each (4 in sync):
    def shapes(context, steps=60):
        ds = data.make_dataset(bucketed, data.TRAIN, 6, training=True, input_context=context)
        return [f["x"].shape[1] for f, _ in ds.take(steps * 2)]

    one_host = shapes(tf.distribute.InputContext(1, 0, 2))
    assert one_host[0::2] == one_host[1::2] and len(set(one_host)) == 3
    hosts = [shapes(tf.distribute.InputContext(2, i, 4)) for i in range(2)]
    assert hosts[0] == hosts[1] and hosts[0][0::2] == hosts[0][1::2]


def test_bucketed_eval_sees_every_example_once_as_the_unbucketed_run_does(bucketed, info):
    batches = [(f["x"].shape, int(y.shape[0])) for f, y in data.make_dataset(bucketed, data.EVAL, BATCH,
                                                                                 training=False)]
    # Bucket by bucket, each ending with its own partial batch.
    want = []
    for b in bucketed.splits[data.EVAL].buckets:
        want += [((min(BATCH, b.num_examples - i), b.length, 8), min(BATCH, b.num_examples - i))
                 for i in range(0, b.num_examples, BATCH)]
    assert batches == want
    assert len(batches) == data.eval_steps(bucketed, data.EVAL, BATCH, replicas=1)
    # The same records as the unbucketed run, once each, values equal to the bit.
    got, expected = _in_storage_order(_eval_pass(bucketed)), _in_storage_order(_eval_pass(info))
    for k in got:
        np.testing.assert_array_equal(got[k], expected[k])


def test_steps_count_each_buckets_batches(bucketed):
    sizes = {split: [b.num_examples for b in s.buckets] for split, s in bucketed.splits.items()}
    # An epoch: every training example once on average, each bucket's remainder included.
    assert data.train_steps(bucketed, BATCH) == math.ceil(200 / BATCH) > sum(n // BATCH for n in sizes["train"])
    assert data.eval_steps(bucketed, data.EVAL, BATCH, replicas=1) == sum(math.ceil(n / BATCH) for n in sizes["eval"])
    # 2 replicas of 12: each bucket ends with a partial per-replica batch; a step takes two batches.
    per_replica = sum(math.ceil(n / 12) for n in sizes["eval"])
    assert data.eval_steps(bucketed, data.EVAL, BATCH, replicas=2) == math.ceil(per_replica / 2)


def _edit_manifest(info, tmp_path, edit) -> str:
    copy = tmp_path / "out"
    shutil.copytree(info.data_dir, copy)
    manifest = edit(json.loads((copy / "manifest.json").read_text()))
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return str(copy)


def test_a_version_1_manifest_without_shard_lengths_is_read_as_max_length(info, tmp_path):
    old = data.load(_edit_manifest(info, tmp_path, as_version_1))
    assert [(b.length, b.num_examples) for b in old.splits[data.TRAIN].buckets] == [(50, 200)]


def test_empty_shards_are_left_out(bucketed, tmp_path):
    # An empty shard, e.g. a bucket's file for a worker that had no sample of that length.
    empty = "data/train-L00020-00002-of-00003.tfrecord.gz"

    def add_empty_shard(manifest):
        manifest["splits"]["train"]["shards"].append({"file": empty, "examples": 0, "length": 20})
        return manifest

    copy = _edit_manifest(bucketed, tmp_path, add_empty_shard)
    with tf.io.TFRecordWriter(f"{copy}/{empty}", options="GZIP"):
        pass
    files = data.load(copy).splits[data.TRAIN].buckets[0].files
    assert len(files) == 2 and not any(f.endswith(empty) for f in files)


def test_shard_lengths_beyond_max_length_are_refused(bucketed, tmp_path):
    def stretch(manifest):
        manifest["splits"]["train"]["shards"][0]["length"] = 51
        return manifest

    with pytest.raises(DataError, match="padded to"):
        data.load(_edit_manifest(bucketed, tmp_path, stretch))


# --- augmentation -------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["info", "bucketed"])
def test_the_validation_hold_out_partitions_every_shard(run, request):
    whole = request.getfixturevalue(run)
    info = data.with_validation(whole, 0.1, min_examples=1)
    # Each shard holds out records 9, 19, ...: n // 10 of its n records, counted exactly.
    for split, held in ((data.VALIDATION, True), (data.TRAIN, False)):
        part = data.Holdout(10, held)
        assert info.splits[split].holdout == part
        assert [b.examples for b in info.splits[split].buckets] == [
            tuple(part.count(n) for n in b.examples) for b in whole.splits[data.TRAIN].buckets]
    # The two parts, read as evaluation reads, are the training records: each once, none in both.
    parts = {}
    for split in (data.TRAIN, data.VALIDATION):
        batches = list(data.make_dataset(info, split, BATCH, training=False))
        parts[split] = {f["x"][i].numpy().tobytes() for f, _ in batches for i in range(len(f["x"]))}
        assert sum(len(y) for _, y in batches) == len(parts[split]) == info.splits[split].num_examples
    assert not parts[data.TRAIN] & parts[data.VALIDATION]
    assert len(parts[data.VALIDATION]) == sum(n // 10 for b in whole.splits[data.TRAIN].buckets for n in b.examples)
    if run == "info":  # (read_split parses records padded to max_length only)
        assert parts[data.TRAIN] | parts[data.VALIDATION] == {x.tobytes() for x in read_split(whole.data_dir,
                                                                                                data.TRAIN)["x"]}
    # Training batches never hold a validation record.
    train_batch = next(iter(data.make_dataset(info, data.TRAIN, BATCH, training=True)))[0]["x"].numpy()
    assert not {x.tobytes() for x in train_batch} & parts[data.VALIDATION]
    assert data.with_validation(whole, 0) is whole
    assert data.with_validation(whole, 0.1) is whole  # 20 held out: fewer than a validation needs
