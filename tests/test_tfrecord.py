"""Batch Example encoding and framing: byte-identical to TensorFlow's own serialization and
TFRecordWriter, for every layout the pipeline writes."""

import numpy as np
import pytest
import tensorflow as tf

from beam_pipeline.passes.tfrecord import ExampleFramer


def _padded(values: np.ndarray, lengths: np.ndarray, steps: int) -> np.ndarray:
    """[n, steps, ...] float32: each record's valid steps, then zeros."""
    out = np.zeros((len(lengths), steps, *values.shape[1:]), np.float32)
    for i, (start, length) in enumerate(zip(np.cumsum(lengths) - lengths, lengths)):
        out[i, :length] = values[start:start + length]
    return out


def _tensorflow_bytes(tmp_path, float_key: str, padded: np.ndarray, ints: dict[str, np.ndarray]) -> bytes:
    """The records as TensorFlow writes them: protobuf serialization, TFRecordWriter framing."""
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(len(padded)):
            feature = {float_key: tf.train.Feature(float_list=tf.train.FloatList(value=padded[i].reshape(-1)))}
            for key, column in ints.items():
                feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(column[i])]))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString(deterministic=True))
    with open(path, "rb") as f:
        return f.read()


CASES = {
    # multi-byte varints everywhere: lengths 1/127/128, a negative label (10 bytes), a huge one
    "ragged, padded, wide varints": ((40, 3), [1, 127, 128, 40], 130, {"length": [1, 127, 128, 40],
                                                                       "label": [0, 300, -1, 2**40]}),
    "1-D samples": ((), [3, 1, 5], 6, {"length": [3, 1, 5], "label": [2, 0, 1]}),
    "full rows (per_element, dense)": ((2, 3), [4, 4], 4, {"length": [4, 4], "label": [1, 1]}),
    "a length bucket (steps below max_length)": ((4,), [2, 3, 1], 3, {"length": [2, 3, 1], "label": [0, 1, 2]}),
    # a payload over 16 KB: 3-byte varints in the entry and Example lengths
    "large payload": ((16,), [300, 17], 300, {"length": [300, 17], "label": [9, 3]}),
    "one record": ((2,), [1], 1, {"length": [1], "label": [5]}),
}


@pytest.mark.parametrize("case", CASES)
def test_frames_equal_tensorflow_serialization_and_framing(case, tmp_path):
    trailing, lengths, steps, ints = CASES[case]
    lengths = np.array(lengths, np.int64)
    values = np.random.default_rng(0).normal(size=(int(lengths.sum()), *trailing)).astype(np.float32)
    ints = {k: np.array(v, np.int64) for k, v in ints.items()}
    got = ExampleFramer("x", ["length", "label"]).frame(values, lengths, steps, ints)
    assert got.tobytes() == _tensorflow_bytes(tmp_path, "x", _padded(values, lengths, steps), ints)


def test_key_order_with_the_float_feature_first(tmp_path):
    # "a" sorts before the int keys: their entries come after the float payload.
    lengths = np.array([2, 1])
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    ints = {"length": lengths, "zlabel": np.array([7, 128])}
    got = ExampleFramer("a", ["length", "zlabel"]).frame(values, lengths, 2, ints)
    assert got.tobytes() == _tensorflow_bytes(tmp_path, "a", _padded(values, lengths, 2), ints)


def test_an_empty_batch_frames_nothing():
    got = ExampleFramer("x", ["length"]).frame(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), 4,
                                               {"length": np.zeros(0, np.int64)})
    assert got.size == 0


def test_frames_read_back_with_tfrecorddataset(tmp_path):
    lengths = np.array([1, 2, 3])
    values = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    path = tmp_path / "a.tfrecord"
    path.write_bytes(ExampleFramer("x", ["length", "label"]).frame(
        values, lengths, 3, {"length": lengths, "label": np.array([0, 1, 0])}).tobytes())
    spec = {"x": tf.io.FixedLenFeature([3, 2], tf.float32), "length": tf.io.FixedLenFeature([], tf.int64),
            "label": tf.io.FixedLenFeature([], tf.int64)}
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(str(path))]
    assert [int(p["length"]) for p in parsed] == [1, 2, 3]
    np.testing.assert_array_equal(parsed[1]["x"].numpy(), [[2, 3], [4, 5], [0, 0]])


def test_float_targets_equal_tensorflow_serialization(tmp_path):
    lengths = np.array([2, 1, 3], np.int64)
    values = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)
    targets = np.array([0.1, -3e38, 1e-42], np.float32)   # rounding, a large value, a subnormal
    got = ExampleFramer("x", ["length", "label"], float_scalars=["label"]).frame(
        values, lengths, 3, {"length": lengths, "label": targets})
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for row, length, target in zip(_padded(values, lengths, 3), lengths, targets):
            feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=row.reshape(-1))),
                       "length": tf.train.Feature(int64_list=tf.train.Int64List(value=[length])),
                       "label": tf.train.Feature(float_list=tf.train.FloatList(value=[target]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
                deterministic=True))
    with open(path, "rb") as f:
        assert got.tobytes() == f.read()
