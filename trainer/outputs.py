"""A training run's model directory: the contract between the trainer and its readers (the
workflow's validate and publish steps, benchmarks). Light: no TensorFlow.

    serving/        the SavedModel: raw tf.train.Examples in, through the tf.Transform layer
    metrics.json    `TrainMetrics`: final metrics and run facts
    checkpoints/, backup/, logs/   resumption and TensorBoard
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from transforms import typed_json

SERVING_DIR = "serving"
METRICS_FILE = "metrics.json"

# The figure a task's model is judged by (the workflow's validation): accuracy, higher is
# better; mean absolute error, lower is better.
HEADLINE = {"classification": "accuracy", "regression": "mae"}


@dataclasses.dataclass(frozen=True)
class TrainMetrics:
    """metrics.json. Split figures are Keras's names: loss and accuracy for classification;
    loss (mean squared error plus the model's weight penalties), mse and mae for regression, in
    the records' units (standardized when the pipeline standardized the target); of the
    exported weights, in inference mode."""

    train: dict[str, float]
    validation: dict[str, float] | None   # held out of the training split; None when too small
    eval: dict[str, float] | None         # None when the run had no eval split
    task: str                             # "classification" or "regression"
    num_classes: int | None
    model: str                            # the Keras model's name
    serving_dir: str
    epochs: int                           # planned
    epochs_run: int                       # by this process (a resumed run ran fewer)
    first_epoch: int | None               # 1-based; > 1 when resumed
    best_epoch: int | None                # the exported one, when selected on validation
    steps_per_epoch: int
    global_batch_size: int
    length_buckets: list[int]             # padded lengths of the training split's buckets
    examples: dict[str, int]              # per split
    strategy: str
    num_replicas: int
    jit_compile: bool
    mixed_precision: str | None
    data_dir: str
    train_seconds: float
    epoch_seconds: list[float]
    input_examples_per_sec: float | None = None   # only with --throughput_batches

    def headline(self, split: str = "eval") -> float | None:
        """The task's headline figure on `split` (see HEADLINE), None when it has none."""
        name = HEADLINE[self.task]
        figures = getattr(self, split)
        return None if figures is None or name not in figures else float(figures[name])

    def to_json(self) -> dict[str, Any]:
        return typed_json.encode_fields(self)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainMetrics:
        return typed_json.decode(cls, data)


def loads(text: str) -> TrainMetrics:
    return TrainMetrics.from_json(json.loads(text))
