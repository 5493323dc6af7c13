"""Direct Example encoding: byte-identical to the protobuf API, readable by TensorFlow."""

import numpy as np
import tensorflow as tf

from beam_pipeline.passes.tfrecord import ExampleEncoder, frame_records


def _proto(x, length, label) -> bytes:
    feature = {
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=x.reshape(-1))),
        "length": tf.train.Feature(int64_list=tf.train.Int64List(value=[length])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def test_encoding_is_byte_identical_to_protobuf():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 40, 3)).astype(np.float32)   # 480 floats: multi-byte length varints
    lengths = np.array([1, 127, 128, 40])
    labels = np.array([0, 300, -1, 2**40])
    got = ExampleEncoder("x", ["length", "label"]).encode(x, {"length": lengths, "label": labels})
    assert got == [_proto(x[i], lengths[i], labels[i]) for i in range(4)]


def test_framed_records_read_back_with_tfrecorddataset(tmp_path):
    records = ExampleEncoder("x", ["length", "label"]).encode(
        np.ones((3, 2), np.float32), {"length": np.array([1, 2, 3]), "label": np.array([0, 1, 0])})
    path = tmp_path / "a.tfrecord"
    path.write_bytes(frame_records(records))
    spec = {"x": tf.io.FixedLenFeature([2], tf.float32), "length": tf.io.FixedLenFeature([], tf.int64),
            "label": tf.io.FixedLenFeature([], tf.int64)}
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(str(path))]
    assert [int(p["length"]) for p in parsed] == [1, 2, 3]
