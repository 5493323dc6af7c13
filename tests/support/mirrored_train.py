"""Trains under MirroredStrategy over two logical CPUs, in a process of its own: the logical
devices must be configured before TensorFlow initializes them (tests/test_trainer.py).

`python -m tests.support.mirrored_train DATA MODEL BUCKETED_DATA BUCKETED_MODEL` prints one line
`RESULT {json}`: the per-replica shapes of a batch, the padded length of each replica's batch
over 30 steps of the bucketed data, and both runs' metrics.
"""

from __future__ import annotations

import json
import os
import sys

import tensorflow as tf


def main(data_dir: str, model_dir: str, bucketed_dir: str, bucketed_model_dir: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from trainer import data, strategy, train  # after the devices are set
    from trainer.config import TrainConfig

    dist = strategy.make_strategy("mirrored")
    features, _ = next(iter(data.distribute(dist, data.load(data_dir), "train", 24, training=True)))
    shapes = [list(t.shape) for t in dist.experimental_local_results(features["x"])]
    config = dict(epochs=10, batch_size=24, strategy="mirrored", progress=0, throughput_batches=5)
    metrics = train.train(TrainConfig(data_dir, model_dir, **config))
    # Length buckets: the padded length of each replica's batch, step by step.
    steps = iter(data.distribute(dist, data.load(bucketed_dir), "train", 24, training=True))
    lengths = [[t.shape[1] for t in dist.experimental_local_results(next(steps)[0]["x"])] for _ in range(30)]
    bucketed = train.train(TrainConfig(bucketed_dir, bucketed_model_dir, **config))
    print("RESULT " + json.dumps({"shapes": shapes, "metrics": metrics.to_json(), "lengths": lengths,
                                       "bucketed": bucketed.to_json()}),
          flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
    os._exit(0)  # the tf.Transform teardown segfault must not decide the exit code
