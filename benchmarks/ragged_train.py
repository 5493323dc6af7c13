"""The ragged side of the bucket benchmark (benchmarks/buckets.py), in a process of its own.

`python -m benchmarks.ragged_train BUCKETED RAGGED EPOCHS BATCH WIDTH` trains the trainer's
model on RAGGED's variable-length records, batched by tf.data's bucket_by_sequence_length on
BUCKETED's length-bucket bounds, and prints one JSON line: the input pipeline's examples/s
(measured as the trainer measures it), the seconds per epoch and the last eval accuracy.
"""

from __future__ import annotations

import json
import os
import sys

import tensorflow as tf
import tf_keras as keras

from trainer import data, model, train
from trainer.config import TrainConfig

_SPEC = {"x": tf.io.RaggedFeature(tf.float32), "length": tf.io.FixedLenFeature([], tf.int64),
         "label": tf.io.FixedLenFeature([], tf.int64)}


def dataset(ragged_dir: str, split: str, training: bool, bounds: list[int], batch: int) -> tf.data.Dataset:
    """A split's records, parsed one by one and batched by length on `bounds`."""
    files = sorted(tf.io.gfile.glob(os.path.join(ragged_dir, "data", split + "-*.tfrecord")))
    ds = tf.data.TFRecordDataset(files)
    if training:
        ds = ds.shuffle(10_000, seed=0, reshuffle_each_iteration=True).repeat()
    ds = ds.map(lambda r: tf.io.parse_single_example(r, _SPEC), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda e: ({"x": tf.reshape(e["x"], [-1, 1]), "length": e["length"]}, e["label"]))
    # Its boundaries are exclusive upper bounds; ours hold lengths <= bound.
    ds = ds.bucket_by_sequence_length(lambda f, y: tf.cast(f["length"], tf.int32), [b + 1 for b in bounds[:-1]],
                                      [batch] * len(bounds), drop_remainder=training, pad_to_bucket_boundary=False)
    return ds.prefetch(tf.data.AUTOTUNE)


def measure(bucketed: str, ragged_dir: str, epochs: int, batch: int, width: int) -> dict[str, float | list[float]]:
    info = data.load(bucketed)
    bounds = list(info.manifest.length_buckets.bounds)
    train_n = info.manifest.splits["train"].examples_written
    rate = data.measure_throughput(dataset(ragged_dir, "train", True, bounds, batch), 50, buckets=len(bounds))
    keras.utils.set_random_seed(0)
    net = model.build_model(info, width)
    model.compile_model(net, TrainConfig("", "").learning_rate)   # as the trainer compiles it
    timer = train.EpochTimer()
    hist = net.fit(dataset(ragged_dir, "train", True, bounds, batch), epochs=epochs, steps_per_epoch=train_n // batch,
                   validation_data=dataset(ragged_dir, "eval", False, bounds, batch), callbacks=[timer], verbose=0)
    return {"input_examples_per_sec": rate, "epoch_seconds": timer.seconds,
            "eval_accuracy": hist.history["val_accuracy"][-1]}


if __name__ == "__main__":
    bucketed_dir, ragged, *numbers = sys.argv[1:]
    print(json.dumps(measure(bucketed_dir, ragged, *(int(n) for n in numbers))), flush=True)
    os._exit(0)   # as the CLIs do: skip the interpreter teardown that can crash after TensorFlow ran
