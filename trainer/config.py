"""A training run's settings, their choices and defaults.

Imports no TensorFlow, so the CLI answers --help and flag errors without loading it.
"""

from __future__ import annotations

import dataclasses

STRATEGIES = ("auto", "default", "mirrored", "tpu")
SEQUENCE_AUGMENTATIONS = ("noise", "shift")
IMAGE_AUGMENTATIONS = ("flip_lr", "flip_ud")
AUGMENTATIONS = SEQUENCE_AUGMENTATIONS + IMAGE_AUGMENTATIONS
# None: the default sequence model's MiniRocket features scored 0.76 and 0.82 on
# PickupGestureWiimoteZ with random rotations (`shift`), 0.84 and 0.88 without (seeds 0, 1);
# ACSF1 0.93 either way.
DEFAULT_SEQUENCE_AUGMENT: tuple[str, ...] = ()
DEFAULT_NOISE_STDDEV = 0.1
DEFAULT_WIDTH = 64
MIXED_PRECISION = ("mixed_bfloat16", "mixed_float16")
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SHUFFLE_BUFFER = 10_000
DEFAULT_CYCLE_LENGTH = 16
# Blocks (of consecutive records of one shard) a batch is assembled from: batch 128 reads and
# shuffles blocks of 8 records (see trainer/data.py and docs/training.md).
DEFAULT_BLOCKS_PER_BATCH = 16
# A shuffle buffer holds serialized records; cap its memory whatever --shuffle_buffer says, so
# long sequences (MBs per record) cannot exhaust the host.
MAX_SHUFFLE_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run (the CLI's flags; see `python -m trainer --help`)."""

    data_dir: str
    model_dir: str
    epochs: int | None = None  # None: enough epochs for MIN_STEPS optimizer steps (see train.plan)
    batch_size: int | None = None  # None: one the training split can fill (see train.plan)
    learning_rate: float = 1e-3
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    model: str | None = None  # MODULE:FUNCTION or PATH.py:FUNCTION building the user's model
    jit_compile: bool = False
    mixed_precision: str | None = None
    steps_per_execution: int = 1
    strategy: str = "auto"
    tpu: str | None = None
    augment: tuple[str, ...] | None = None  # None: DEFAULT_SEQUENCE_AUGMENT for sequences, none for images
    noise_stddev: float = DEFAULT_NOISE_STDDEV
    width: int = DEFAULT_WIDTH
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    blocks_per_batch: int = DEFAULT_BLOCKS_PER_BATCH
    cycle_length: int = DEFAULT_CYCLE_LENGTH
    throughput_batches: int = 0  # 0: no input-throughput measurement
    seed: int = 0
    progress: int = 2
