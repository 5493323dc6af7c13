"""The training run: data, strategy, model, fit with evaluation each epoch, serving export, metrics.

`model_dir` receives:
  logs/         TensorBoard summaries (train and validation, per epoch)
  checkpoints/  weights after every epoch (epoch-001.*, ...)
  backup/       BackupAndRestore's state while a run is in progress; an interrupted run
                started again with the same flags resumes after the last completed epoch
  serving/      the serving SavedModel (see trainer/export.py)
  metrics.json  final train/eval loss and accuracy, input pipeline examples/s, run facts
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from cli_support import failures
from trainer import augment, data, export, model, outputs, strategy
from trainer.config import TrainConfig
from trainer.errors import ConfigError

LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
BACKUP_DIR = "backup"
_PROBE = ".write-probe"   # written and removed at the start: an unwritable model_dir fails at once


def _check(config: TrainConfig, info: data.DataInfo, replicas: int) -> int:
    """Validates the settings against the data and devices; returns steps per epoch."""
    if min(config.epochs, config.batch_size, config.steps_per_execution, config.blocks_per_batch) < 1:
        raise ConfigError("--epochs, --batch_size, --steps_per_execution and --blocks_per_batch must be >= 1")
    if config.batch_size % replicas:
        raise ConfigError(f"--batch_size {config.batch_size} must be a multiple of the {replicas} replicas")
    steps = data.train_steps(info, config.batch_size)
    if steps < 1:
        sizes = [b.num_examples for b in info.splits[data.TRAIN].buckets]
        what = f"the {sizes[0]} training examples" if len(sizes) == 1 else f"every length bucket's examples {sizes}"
        raise ConfigError(f"--batch_size {config.batch_size} is larger than {what} "
                          "(batches drop the remainder and never mix buckets)")
    return steps


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch, its evaluation included: the first one also traces and compiles."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(round(time.perf_counter() - self._start, 3))


def _callbacks(model_dir: str) -> list[keras.callbacks.Callback]:
    return [
        # First, so an epoch's state is backed up before any later callback can stop the run.
        keras.callbacks.BackupAndRestore(posixpath.join(model_dir, BACKUP_DIR)),
        keras.callbacks.ModelCheckpoint(posixpath.join(model_dir, CHECKPOINTS_DIR, "epoch-{epoch:03d}"),
                                        save_weights_only=True),
        keras.callbacks.TensorBoard(posixpath.join(model_dir, LOGS_DIR), profile_batch=0),
    ]


def _final_metrics(net: keras.Model, history: keras.callbacks.History, splits: Sequence[str],
                   evaluation: Callable[[str], tuple[Any, int]]) -> dict[str, dict[str, float]]:
    """Loss and accuracy per split: the last epoch's, or a fresh evaluation if no epoch ran.

    No epoch runs when a resumed run finds every epoch already done.
    """
    logs = history.history
    result = {}
    for split in splits:
        prefix = "val_" if split == data.EVAL else ""
        if logs.get(prefix + "loss"):
            result[split] = {"loss": logs[prefix + "loss"][-1], "accuracy": logs[prefix + "accuracy"][-1]}
        else:
            dataset, steps = evaluation(split)
            result[split] = net.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return {split: {k: float(v) for k, v in m.items()} for split, m in result.items()}


def train(config: TrainConfig, extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict[str, Any]:
    """Trains on the run's train split, evaluates on its eval split, exports, writes metrics.json.

    Args:
      config: the run's settings.
      extra_callbacks: Keras callbacks run after the built-in ones (backup, checkpoints, logs).

    Returns:
      The metrics written to model_dir/metrics.json.

    Raises:
      DataError: data_dir is not a complete preprocessing run.
      ConfigError: the settings do not fit the data or devices.
    """
    dist = strategy.make_strategy(config.strategy, config.tpu)  # before any op: TPU init needs a fresh runtime
    info = data.load(config.data_dir)
    augment_fn = augment.make_augment_fn(info, config.augment, config.noise_stddev)
    replicas = dist.num_replicas_in_sync
    steps = _check(config, info, replicas)
    keras.utils.set_random_seed(config.seed)
    model_dir = config.model_dir.rstrip("/") or "/"
    with failures.writing(model_dir, "--model_dir"):   # refused now, not after the first epoch
        tf.io.gfile.makedirs(model_dir)
        with tf.io.gfile.GFile(posixpath.join(model_dir, _PROBE), "w") as f:
            f.write("")
        tf.io.gfile.remove(posixpath.join(model_dir, _PROBE))

    reading = data.Reading(config.shuffle_buffer, config.blocks_per_batch, config.cycle_length, config.seed)
    examples_per_sec = data.measure_throughput(
        data.make_dataset(info, data.TRAIN, config.batch_size, training=True, augment=augment_fn, reading=reading),
        config.throughput_batches, buckets=len(info.splits[data.TRAIN].buckets))
    train_ds = data.distribute(dist, info, data.TRAIN, config.batch_size, training=True, augment=augment_fn,
                               reading=reading)

    def evaluation(split: str) -> tuple[tf.distribute.DistributedDataset, int]:
        # Keras needs the step count of a distributed dataset; each bucket ends with a partial batch.
        steps = data.eval_steps(info, split, config.batch_size, replicas)
        return data.distribute(dist, info, split, config.batch_size, training=False, reading=reading), steps

    eval_ds, eval_steps = evaluation(data.EVAL) if data.EVAL in info.splits else (None, None)
    if eval_ds is None:
        logging.warning("%s has no eval split: training without evaluation", info.data_dir)

    with dist.scope():
        net = model.build_model(info, config.width)
        model.compile_classifier(net, config.learning_rate, config.steps_per_execution)
    timer = EpochTimer()
    start = time.perf_counter()
    history = net.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps, validation_data=eval_ds,
                      validation_steps=eval_steps, callbacks=[*_callbacks(model_dir), timer, *extra_callbacks],
                      verbose=config.progress)
    train_seconds = time.perf_counter() - start

    serving_dir = export.export_serving(net, info, posixpath.join(model_dir, outputs.SERVING_DIR))
    metrics = {
        **_final_metrics(net, history, [s for s in (data.TRAIN, data.EVAL) if s in info.splits],
                         evaluation),
        "input_examples_per_sec": round(examples_per_sec, 1),
        "epochs": config.epochs,
        "epochs_run": len(history.epoch),
        "first_epoch": history.epoch[0] + 1 if history.epoch else None,
        "steps_per_epoch": steps,
        "length_buckets": [b.length for b in info.splits[data.TRAIN].buckets],
        "global_batch_size": config.batch_size,
        "strategy": strategy.resolve_name(config.strategy, config.tpu),
        "num_replicas": replicas,
        "train_seconds": round(train_seconds, 2),
        "epoch_seconds": timer.seconds,
        "model": net.name,
        "num_classes": info.num_classes,
        "data_dir": info.data_dir,
        "serving_dir": serving_dir,
    }
    with tf.io.gfile.GFile(posixpath.join(model_dir, outputs.METRICS_FILE), "w") as f:
        f.write(json.dumps(metrics, indent=2) + "\n")
    return metrics
