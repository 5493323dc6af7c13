"""The training run: data, strategy, model, fit (validated on a part held out of the training
split), serving export, metrics.

`model_dir` receives:
  logs/         TensorBoard summaries (train and validation, per epoch)
  checkpoints/  weights after every epoch (epoch-001.*, ...) and the exported ones (final.*)
  backup/       BackupAndRestore's state while a run is in progress; an interrupted run
                started again with the same flags resumes after the last completed epoch
  serving/      the serving SavedModel (see trainer/export.py)
  metrics.json  outputs.TrainMetrics: the exported weights' figures on the train, validation and
                eval splits, the plan (epochs, steps, batch), the best epoch, run facts
"""

from __future__ import annotations

import dataclasses
import logging
import math
import posixpath
import time
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from cli_support import failures
from trainer import augment, data, export, model, outputs, strategy
from trainer.config import DEFAULT_SEQUENCE_AUGMENT, TrainConfig
from trainer.errors import ConfigError

LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
BACKUP_DIR = "backup"
_PROBE = ".write-probe"   # written and removed at the start: an unwritable model_dir fails at once
FINAL_CHECKPOINT = "final"  # the weights exported: the best epoch's, or the last one's without validation


# Automatic settings (--epochs and --batch_size left out): small datasets get small batches and
# enough epochs for MIN_STEPS optimizer steps; large ones AUTO_BATCH and at least MIN_EPOCHS.
MIN_STEPS = 1500
MIN_EPOCHS = 10
MAX_AUTO_EPOCHS = 300
AUTO_BATCH = 64
MIN_AUTO_BATCH = 8
# Validation passes in a run at most (every epoch up to this many epochs): the best epoch is
# chosen among these.
MAX_VALIDATIONS = 30


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long a run trains, from the settings and the data.

    Attributes:
      batch_size: global batch size.
      epochs: passes over the training split.
      steps_per_epoch: steps of an epoch: every training example once on average.
    """

    batch_size: int
    epochs: int
    steps_per_epoch: int


def auto_batch_size(examples: int, replicas: int) -> int:
    """A batch the training split fills at least 4 times (AUTO_BATCH at most, MIN_AUTO_BATCH at
    least where it fits), a multiple of the replicas."""
    batch = AUTO_BATCH
    while batch > MIN_AUTO_BATCH and 4 * batch > examples:
        batch //= 2
    batch = min(batch, examples)
    return max(replicas, batch // replicas * replicas)


def plan(config: TrainConfig, info: data.DataInfo, replicas: int) -> Plan:
    """Validates the settings against the data and devices and fills in the automatic ones."""
    examples = info.splits[data.TRAIN].num_examples
    batch = config.batch_size if config.batch_size is not None else auto_batch_size(examples, replicas)
    given_epochs = config.epochs if config.epochs is not None else 1
    if min(batch, config.steps_per_execution, config.blocks_per_batch, given_epochs) < 1:
        raise ConfigError("--epochs, --batch_size, --steps_per_execution and --blocks_per_batch must be >= 1")
    if batch % replicas:
        raise ConfigError(f"--batch_size {batch} must be a multiple of the {replicas} replicas")
    if batch > examples:
        raise ConfigError(f"--batch_size {batch} is larger than the {examples} training examples"
                          f"{' (after the validation hold-out)' if data.VALIDATION in info.splits else ''}")
    steps = data.train_steps(info, batch)
    min_steps = model.LINEAR_HEAD_STEPS if model.uses_linear_head(info, config) else MIN_STEPS
    epochs = config.epochs if config.epochs is not None else min(MAX_AUTO_EPOCHS,
                                                                 max(MIN_EPOCHS, math.ceil(min_steps / steps)))
    return Plan(batch, epochs, steps)


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


class BestWeights(keras.callbacks.Callback):
    """Model selection on the validation split: keeps the weights of the epoch with the best
    validation accuracy (ties, and regression, which has no accuracy: the lower validation
    loss) and restores them when training ends.

    The best weights live in memory: a resumed run selects among the epochs it ran itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.best: tuple[float, float] | None = None
        self.best_epoch: int | None = None
        self._weights: list | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if "val_loss" not in logs:  # not a validated epoch (validation_freq)
            return
        score = (logs.get("val_accuracy", 0.0), -logs["val_loss"])
        if self.best is None or score > self.best:
            self.best, self.best_epoch, self._weights = score, epoch + 1, self.model.get_weights()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._weights is not None:
            self.model.set_weights(self._weights)


def _callbacks(model_dir: str) -> list[keras.callbacks.Callback]:
    return [
        # First, so an epoch's state is backed up before any later callback can stop the run.
        keras.callbacks.BackupAndRestore(posixpath.join(model_dir, BACKUP_DIR)),
        keras.callbacks.ModelCheckpoint(posixpath.join(model_dir, CHECKPOINTS_DIR, "epoch-{epoch:03d}"),
                                        save_weights_only=True),
        keras.callbacks.TensorBoard(posixpath.join(model_dir, LOGS_DIR), profile_batch=0),
    ]


@dataclasses.dataclass(frozen=True)
class Run:
    """What a training run works with: the strategy, the data, the plan and how to read it."""

    config: TrainConfig
    dist: tf.distribute.Strategy
    info: data.DataInfo
    plan: Plan
    reading: data.Reading
    augment: data.AugmentFn | None

    def training_data(self) -> tf.distribute.DistributedDataset:
        return data.distribute(self.dist, self.info, data.TRAIN, self.plan.batch_size, training=True,
                               augment=self.augment, reading=self.reading)

    def evaluation(self, split: str) -> tuple[tf.distribute.DistributedDataset, int]:
        """One pass over `split` and its step count (Keras needs it for a distributed dataset)."""
        steps = data.eval_steps(self.info, split, self.plan.batch_size, self.dist.num_replicas_in_sync)
        return data.distribute(self.dist, self.info, split, self.plan.batch_size, training=False,
                               reading=self.reading), steps

    def throughput(self) -> float:
        """The training input pipeline's examples/s on its own (--throughput_batches)."""
        dataset = data.make_dataset(self.info, data.TRAIN, self.plan.batch_size, training=True,
                                    augment=self.augment, reading=self.reading)
        return data.measure_throughput(dataset, self.config.throughput_batches,
                                       buckets=len(self.info.splits[data.TRAIN].buckets))


def _prepare(config: TrainConfig) -> Run:
    dist = strategy.make_strategy(config.strategy, config.tpu)  # before any op: TPU init needs a fresh runtime
    info = data.with_validation(data.load(config.data_dir), config.validation_fraction)
    if data.VALIDATION not in info.splits and config.validation_fraction > 0:
        logging.info("%s: fewer than %d validation examples at --validation_fraction %s: training on every "
                     "training example, keeping the last epoch's weights", info.data_dir,
                     data.MIN_VALIDATION_EXAMPLES, config.validation_fraction)
    names = config.augment
    if names is None:
        names = () if info.is_image else DEFAULT_SEQUENCE_AUGMENT
    augment_fn = augment.make_augment_fn(info, names, config.noise_stddev)
    run_plan = plan(config, info, dist.num_replicas_in_sync)
    if data.EVAL not in info.splits:
        logging.warning("%s has no eval split: no evaluation on held-out data", info.data_dir)
    reading = data.Reading(config.shuffle_buffer, config.blocks_per_batch, config.cycle_length, config.seed)
    return Run(config, dist, info, run_plan, reading, augment_fn)


def _fit(run: Run, model_dir: str, extra_callbacks: Sequence[keras.callbacks.Callback]
         ) -> tuple[keras.Model, keras.callbacks.History, EpochTimer, BestWeights | None]:
    """Builds, compiles and fits the model; selects the best epoch on the validation split if any."""
    config, plan_ = run.config, run.plan
    # Only the validation split is evaluated during training (the eval split once, at the end):
    # on small data an evaluation pass per epoch costs as much as the epoch itself.
    val_ds, val_steps = run.evaluation(data.VALIDATION) if data.VALIDATION in run.info.splits else (None, None)
    with run.dist.scope():
        net = model.make_model(run.info, config)
        model.adapt(net, data.make_dataset(run.info, data.TRAIN, plan_.batch_size, training=True,
                                           reading=run.reading))
        model.compile_model(net, model.learning_rate_schedule(config.learning_rate,
                                                              plan_.epochs * plan_.steps_per_epoch),
                            config.steps_per_execution, jit_compile=config.jit_compile, task=run.info.task)
    timer = EpochTimer()
    best = BestWeights() if val_ds is not None else None
    history = net.fit(run.training_data(), epochs=plan_.epochs, steps_per_epoch=plan_.steps_per_epoch,
                      validation_data=val_ds, validation_steps=val_steps,
                      validation_freq=max(1, plan_.epochs // MAX_VALIDATIONS),
                      callbacks=[*_callbacks(model_dir), timer, *([best] if best else []), *extra_callbacks],
                      verbose=config.progress)
    return net, history, timer, best


def _evaluate(run: Run, net: keras.Model) -> dict[str, dict[str, float] | None]:
    """Loss and accuracy of the final (selected) weights on every split (None: a split the run
    lacks), in inference mode."""
    result: dict[str, dict[str, float] | None] = {}
    for split in (data.TRAIN, data.VALIDATION, data.EVAL):
        result[split] = None
        if split in run.info.splits:
            dataset, steps = run.evaluation(split)
            result[split] = {k: float(v) for k, v in
                             net.evaluate(dataset, steps=steps, verbose=0, return_dict=True).items()}
    return result


def train(config: TrainConfig, extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> outputs.TrainMetrics:
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
    run = _prepare(config)
    keras.utils.set_random_seed(config.seed)
    model_dir = config.model_dir.rstrip("/") or "/"
    with failures.writing(model_dir, "--model_dir"):   # refused now, not after the first epoch
        tf.io.gfile.makedirs(model_dir)
        with tf.io.gfile.GFile(posixpath.join(model_dir, _PROBE), "w") as f:
            f.write("")
        tf.io.gfile.remove(posixpath.join(model_dir, _PROBE))
    examples_per_sec = run.throughput() if config.throughput_batches else None
    start = time.perf_counter()
    with model.precision(config.mixed_precision):
        net, history, timer, best = _fit(run, model_dir, extra_callbacks)
    train_seconds = time.perf_counter() - start
    net.save_weights(posixpath.join(model_dir, CHECKPOINTS_DIR, FINAL_CHECKPOINT))
    serving_dir = export.export_serving(net, run.info, posixpath.join(model_dir, outputs.SERVING_DIR))
    metrics = outputs.TrainMetrics(
        **_evaluate(run, net), **_run_facts(run, history, best),
        input_examples_per_sec=None if examples_per_sec is None else round(examples_per_sec, 1),
        train_seconds=round(train_seconds, 2), epoch_seconds=timer.seconds, model=net.name, serving_dir=serving_dir)
    with tf.io.gfile.GFile(posixpath.join(model_dir, outputs.METRICS_FILE), "w") as f:
        f.write(metrics.dumps())
    return metrics


def _run_facts(run: Run, history: keras.callbacks.History, best: BestWeights | None) -> dict[str, Any]:
    """TrainMetrics' facts of the run besides its figures: plan, epochs, data, devices."""
    config = run.config
    return {
        "epochs": run.plan.epochs,
        "epochs_run": len(history.epoch),
        "first_epoch": history.epoch[0] + 1 if history.epoch else None,
        "best_epoch": best.best_epoch if best else None,
        "steps_per_epoch": run.plan.steps_per_epoch,
        "length_buckets": [b.length for b in run.info.splits[data.TRAIN].buckets],
        "global_batch_size": run.plan.batch_size,
        "examples": {split: s.num_examples for split, s in run.info.splits.items()},
        "strategy": strategy.resolve_name(config.strategy, config.tpu),
        "num_replicas": run.dist.num_replicas_in_sync,
        "jit_compile": config.jit_compile,
        "mixed_precision": config.mixed_precision,
        "task": run.info.task,
        "num_classes": run.info.num_classes,
        "data_dir": run.info.data_dir,
    }
