"""Input pipeline: the preprocessing run's TFRecord shards as batched, parsed tf.data datasets.

Everything about the data comes from the run itself: the parse spec and shapes from
`tft.TFTransformOutput(data_dir)`, the shard list, each shard's padded length, example counts
and class count from `manifest.json`. Nothing is hand-copied, so a new run with other shapes
needs no code change.

Shards are grouped into buckets by their padded length: one bucket for an ordinary run, one
per bound for a run with --length_buckets. Per bucket and input pipeline (one per host),
training reads
  files (reshuffled every pass, repeated) -> interleave(TFRecordDataset(file).batch(block))
  -> shuffle blocks -> rebatch(batch, drop_remainder) -> parse_example with x [L, ...]
and the buckets' batches are drawn at random in proportion to the buckets' sizes (the same
draws in every input pipeline, so the replicas of a step share a shape), then augmented and
prefetched. Why each step:
  - Blocks: each element that crosses a tf.data stage (the parallel interleave's buffers, the
    shuffle buffer) costs bookkeeping that, at ~13 KB records, outweighs moving the bytes.
    Reading and shuffling blocks of consecutive records of one shard (batch / blocks_per_batch
    records) divides those elements by the block size; `rebatch` assembles each batch from
    many blocks, so from many shards, with one copy. Records shuffled one by one halved the
    throughput (docs/training.md has the figures, and how mixed the batches are either way).
  - The repeat is on the file list: the record stream has no epoch boundary, so the shuffle
    buffer never drains and a bucket smaller than a batch still yields full batches.
  - parse_example after batching: one vectorized op per batch, 6-10x cheaper than per record.
  - drop_remainder: every training batch has a static shape [batch, L, ...], one of a finite
    set (one per bucket), which XLA and TPUs need.
Evaluation reads every bucket once, in a fixed order, keeps the partial batches, and
concatenates the buckets.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import posixpath
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from trainer.config import DEFAULT_BLOCKS_PER_BATCH, DEFAULT_CYCLE_LENGTH, DEFAULT_SHUFFLE_BUFFER, MAX_SHUFFLE_BYTES
from trainer.errors import DataError
from transforms import features, outputs
from transforms.features import DatasetSpec
from transforms.manifest import Manifest, ManifestVersionError, loads
from transforms.outputs import EVAL, TRAIN

VALIDATION = "validation"  # held out of the train split for model selection (see with_validation)
MIN_VALIDATION_EXAMPLES = 50

Features = dict[str, tf.Tensor]
AugmentFn = Callable[[Features], Features]


@dataclasses.dataclass(frozen=True)
class Bucket:
    """The shards of one split whose records are padded to one length.

    Attributes:
      length: the padded length L of every record's `x` ([L, *trailing_shape]).
      files: full paths of the shards (those with examples), in the manifest's order.
      examples: examples read from each shard (all its records, or its part under a Holdout).
    """

    length: int
    files: tuple[str, ...]
    examples: tuple[int, ...]

    @property
    def num_examples(self) -> int:
        """Examples in these shards together."""
        return sum(self.examples)


@dataclasses.dataclass(frozen=True)
class Holdout:
    """A part of every shard's records, chosen by position: record i of a shard is held out when
    i % period == period - 1, so a shard of n records holds out n // period of them.

    Attributes:
      period: one record in `period` is held out.
      held_out: True for the held-out part (validation), False for the rest (fitting).
    """

    period: int
    held_out: bool

    def count(self, records: int) -> int:
        """Records of a shard of `records` in this part."""
        held = records // self.period
        return held if self.held_out else records - held

    def keeps(self, index: tf.Tensor) -> tf.Tensor:
        """Whether record `index` of its shard is in this part."""
        return tf.equal(index % self.period == self.period - 1, self.held_out)


@dataclasses.dataclass(frozen=True)
class Split:
    """The shards of one split, by padded length.

    Attributes:
      buckets: ascending by length; one bucket (max_length) for a run without length buckets.
        Shards and buckets without examples are left out.
      compression: TFRecordDataset compression_type: "" or "GZIP".
      holdout: the part of each shard this split reads; None for all records.
    """

    buckets: tuple[Bucket, ...]
    compression: str
    holdout: Holdout | None = None

    def part(self, holdout: Holdout) -> Split:
        """This split's `holdout` part: the same shards, counted by the part; empty ones left out."""
        buckets = []
        for b in self.buckets:
            kept = [(f, holdout.count(n)) for f, n in zip(b.files, b.examples) if holdout.count(n)]
            if kept:
                buckets.append(Bucket(b.length, tuple(f for f, _ in kept), tuple(n for _, n in kept)))
        return Split(tuple(buckets), self.compression, holdout)

    @property
    def files(self) -> tuple[str, ...]:
        """Every shard of the split."""
        return tuple(f for b in self.buckets for f in b.files)

    @property
    def num_examples(self) -> int:
        """Examples in all shards together."""
        return sum(b.num_examples for b in self.buckets)


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """A completed preprocessing run, as the trainer needs it.

    Attributes:
      data_dir: the pipeline's output directory.
      manifest: manifest.json, typed.
      spec: the dataset spec the pipeline used (raw schema, shapes, normalization).
      num_classes: number of class ids (labels are 0..num_classes-1); 0 for regression.
      feature_spec: parse spec of the transformed records, as tf.Transform states it: x is
        [max_length, *trailing] (a bucket's records hold [L, *trailing]; see `bucket_spec`).
      splits: "train" and, if the run had an eval input, "eval".
      tft_output: the saved transform graph, for the serving export.
    """

    data_dir: str
    manifest: Manifest
    spec: DatasetSpec
    num_classes: int
    feature_spec: dict[str, tf.io.FixedLenFeature]
    splits: dict[str, Split]
    tft_output: tft.TFTransformOutput

    @property
    def task(self) -> str:
        """"classification" (labels are class ids) or "regression" (float targets)."""
        return self.manifest.label_type

    @property
    def num_outputs(self) -> int:
        """Outputs of the model's head: one logit per class, or the one predicted target."""
        return self.num_classes if self.task == "classification" else 1

    @property
    def x_shape(self) -> tuple[int, ...]:
        """Shape of one transformed `x` as serving sees it: [max_length, *trailing_shape]."""
        return tuple(self.feature_spec[features.X].shape)

    @property
    def is_image(self) -> bool:
        """Fixed-shape 2-D (H, W) or 3-D (H, W, C) samples: the CNN and flips apply."""
        return self.spec.per_element and len(self.x_shape) in (2, 3)

    def bucket_spec(self, length: int) -> dict[str, tf.io.FixedLenFeature]:
        """Parse spec of records padded to `length`: the transformed spec with x [length, *trailing]."""
        x = self.feature_spec[features.X]
        return {**self.feature_spec, features.X: tf.io.FixedLenFeature([length, *x.shape[1:]], x.dtype)}

    def record_bytes(self, length: int) -> int:
        """Approximate size of one serialized record padded to `length`."""
        return 4 * length * math.prod(self.x_shape[1:]) + outputs.RECORD_OVERHEAD


def _split(data_dir: str, name: str, manifest: Manifest, fixed_shape: bool) -> Split:
    shards, compression, max_length = manifest.splits[name].shards, manifest.compression, manifest.max_length
    if not shards:
        raise DataError(f"{data_dir}: the manifest lists no {name} shards")
    present = set(tf.io.gfile.glob(posixpath.join(data_dir, outputs.DATA_DIR,
                                                  f"{name}-*{outputs.shard_suffix(compression)}")))
    missing = [s.file for s in shards if posixpath.join(data_dir, s.file) not in present]
    if missing:
        raise DataError(f"{data_dir}: {len(missing)} {name} shards in the manifest are missing, e.g. {missing[0]}")
    lengths = sorted({manifest.shard_length(s) for s in shards})
    if lengths[0] < 1 or lengths[-1] > max_length or (fixed_shape and lengths != [max_length]):
        raise DataError(f"{data_dir}: {name} shards padded to {lengths}; expected lengths in 1..{max_length}"
                        f"{' (fixed-shape data has one length)' if fixed_shape else ''}")
    buckets = []
    for length in lengths:
        # Empty shards are left out: a training pipeline given only empty files would wait forever.
        members = [s for s in shards if manifest.shard_length(s) == length and s.examples]
        if members:
            buckets.append(Bucket(length, tuple(posixpath.join(data_dir, s.file) for s in members),
                                  tuple(s.examples for s in members)))
    return Split(tuple(buckets), "GZIP" if compression == "gzip" else "")


def load(data_dir: str) -> DataInfo:
    """Opens a completed preprocessing run.

    Args:
      data_dir: the pipeline's --output_dir (local path or any TF filesystem, e.g. gs://).

    Returns:
      What the input pipeline, the model and the serving export need to know.

    Raises:
      DataError: the run is incomplete (no _SUCCESS) or its files disagree with its manifest.
    """
    data_dir = data_dir.rstrip("/") or "/"
    if not tf.io.gfile.exists(posixpath.join(data_dir, outputs.SUCCESS)):
        raise DataError(f"{data_dir} has no {outputs.SUCCESS}: the preprocessing run did not complete "
                        "(still running, failed, or this is not its --output_dir); rerun the pipeline")
    with tf.io.gfile.GFile(posixpath.join(data_dir, outputs.MANIFEST)) as f:
        try:
            manifest = loads(f.read())
        except ManifestVersionError as e:
            raise DataError(f"{data_dir}: {e}") from None
    if manifest.label_type == "none":
        raise DataError(f"{data_dir} holds unlabeled data (--label_type none): there is nothing to fit; "
                        "preprocess with --label_type classification or regression to train")
    tft_output = tft.TFTransformOutput(data_dir)
    feature_spec = tft_output.transformed_feature_spec()
    for name, declared in manifest.features.items():
        parsed = feature_spec.get(name)
        if parsed is None or tuple(parsed.shape) != declared.shape or parsed.dtype.name != declared.dtype:
            raise DataError(f"{data_dir}: feature {name!r} of the transform ({parsed}) disagrees with "
                            f"the manifest ({declared})")
    spec = manifest.spec
    splits = {name: _split(data_dir, name, manifest, spec.per_element) for name in manifest.splits
              if name in (TRAIN, EVAL)}
    if TRAIN not in splits:
        raise DataError(f"{data_dir}: the manifest has no {TRAIN} split")
    if manifest.label_type == "classification" and manifest.num_classes < 2:
        raise DataError(f"{data_dir}: {manifest.num_classes} class(es) in the training data; need 2 or more")
    return DataInfo(data_dir, manifest, spec, manifest.num_classes, feature_spec, splits, tft_output)


@dataclasses.dataclass(frozen=True)
class Reading:
    """How an input pipeline reads its shards (the trainer's input-pipeline flags).

    Attributes:
      shuffle_buffer: records in the training shuffle buffers of all buckets together (split
        over the buckets by their sizes, capped by MAX_SHUFFLE_BYTES and the split size).
      blocks_per_batch: blocks a batch is assembled from, each of consecutive records of one
        shard; blocks_per_batch >= batch size reads and shuffles single records (slowest).
      cycle_length: shards of a bucket read concurrently.
      seed: of the sequence of buckets training batches are drawn from (the same in every
        input pipeline, so all replicas of a step get batches of one shape).
    """

    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    blocks_per_batch: int = DEFAULT_BLOCKS_PER_BATCH
    cycle_length: int = DEFAULT_CYCLE_LENGTH
    seed: int = 0

    def block(self, batch_size: int) -> int:
        """Records per block for batches of `batch_size`."""
        return max(1, batch_size // self.blocks_per_batch)


def _shuffle_buffers(info: DataInfo, split: Split, reading: Reading, block: int) -> list[int]:
    """Blocks in each bucket's shuffle buffer.

    The buffer records are split over the buckets by their sizes: buckets are drawn in that
    proportion, so each buffer spans the same stretch of the stream. All buffers together
    hold at most MAX_SHUFFLE_BYTES.
    """
    total = split.num_examples
    records = [min(b.num_examples, reading.shuffle_buffer * b.num_examples / total) for b in split.buckets]
    held = sum(r * info.record_bytes(b.length) for r, b in zip(records, split.buckets))
    scale = min(1.0, MAX_SHUFFLE_BYTES / held)
    return [max(1, int(r * scale) // block) for r in records]


def _bucket_dataset(info: DataInfo, bucket: Bucket, split: Split, batch_size: int, *, training: bool,
                    shuffle_blocks: int, reading: Reading,
                    input_context: tf.distribute.InputContext | None) -> tf.data.Dataset:
    """One bucket's parsed batches (see the module docstring for the chain)."""
    pipelines = input_context.num_input_pipelines if input_context else 1
    index = input_context.input_pipeline_id if input_context else 0
    files = tf.data.Dataset.from_tensor_slices(list(bucket.files))
    # Each host reads its own shards when there are enough; otherwise every host reads all
    # shards and keeps every n-th block (correct, but each host reads everything).
    shard_files = pipelines > 1 and len(bucket.files) >= pipelines
    if shard_files:
        files = files.shard(pipelines, index)
    num_files = math.ceil(len(bucket.files) / pipelines) if shard_files else len(bucket.files)
    if training:
        files = files.shuffle(num_files).repeat()  # a new file order on every pass
    block = reading.block(batch_size)

    def records(file: tf.Tensor) -> tf.data.Dataset:
        ds = tf.data.TFRecordDataset(file, compression_type=split.compression)
        if split.holdout is not None:  # positions within the shard: the same part on every pass
            ds = ds.enumerate().filter(lambda i, _: split.holdout.keeps(i)).map(lambda _, r: r)
        return ds.batch(block)

    ds = files.interleave(records,
                          cycle_length=min(reading.cycle_length, num_files), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=not training)
    if pipelines > 1 and not shard_files:
        ds = ds.shard(pipelines, index)
    if training:
        ds = ds.shuffle(shuffle_blocks)
    ds = ds.rebatch(batch_size, drop_remainder=training)
    spec = info.bucket_spec(bucket.length)

    def parse(serialized: tf.Tensor) -> tuple[Features, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, spec)
        return {features.X: parsed[features.X], features.LENGTH: parsed[features.LENGTH]}, parsed[features.LABEL]

    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)


def _bucket_choices(buckets: tuple[Bucket, ...], replicas: int, seed: int) -> tf.data.Dataset:
    """Which bucket each training batch comes from: drawn in proportion to the buckets' sizes.

    Draw i is a function of (seed, i) only, so every input pipeline (one per host) draws the
    same sequence; each draw is repeated for the pipeline's `replicas`, which take consecutive
    batches in one step. So all replicas of a step, on every host, get batches of one shape:
    TPUs run one program on all of them.
    """
    logits = tf.math.log([[float(b.num_examples) for b in buckets]])

    def draw(step: tf.Tensor) -> tf.Tensor:
        bucket = tf.random.stateless_categorical(logits, 1, seed=tf.stack([tf.constant(seed, tf.int64), step]))
        return tf.fill([replicas], bucket[0, 0])

    return tf.data.Dataset.counter().map(draw).unbatch()


def make_dataset(info: DataInfo, split: str, batch_size: int, *, training: bool,
                 augment: AugmentFn | None = None,
                 input_context: tf.distribute.InputContext | None = None,
                 reading: Reading = Reading()) -> tf.data.Dataset:
    """Builds one input pipeline over a split.

    Args:
      info: the preprocessing run.
      split: "train" or "eval".
      batch_size: examples per batch of this pipeline (per replica under a strategy).
      training: repeat forever, shuffle, drop each bucket's remainder, read in any order and
        draw the buckets at random by size; otherwise one deterministic pass over each bucket
        in turn that keeps every example.
      augment: applied to each training batch's features after parsing.
      input_context: this pipeline's place among several, and its replicas (from
        distribute_datasets_from_function).
      reading: shuffle buffer, blocks per batch, cycle length and the seed of the bucket draws.

    Returns:
      A dataset of ({"x": [B, L, *trailing] float32, "length": [B] int64}, label [B] int64),
      L a bucket's length (max_length without buckets). Training batches have a static
      shape; the element spec has L = None when there are several buckets.
    """
    s = info.splits[split]
    buffers = _shuffle_buffers(info, s, reading, reading.block(batch_size)) if training else [0] * len(s.buckets)
    datasets = [_bucket_dataset(info, b, s, batch_size, training=training, shuffle_blocks=n,
                                reading=reading, input_context=input_context) for b, n in zip(s.buckets, buffers)]
    if len(datasets) == 1:
        ds = datasets[0]
    elif training:
        replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines if input_context else 1
        ds = tf.data.Dataset.choose_from_datasets(datasets, _bucket_choices(s.buckets, replicas, reading.seed))
    else:
        ds = functools.reduce(tf.data.Dataset.concatenate, datasets)
    if training and augment is not None:
        ds = ds.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.prefetch(tf.data.AUTOTUNE)


def train_steps(info: DataInfo, global_batch_size: int) -> int:
    """Steps in a training epoch: enough batches to see every training example once on average.

    The training stream has no epoch boundary (each bucket's shards repeat), so a bucket's
    remainder is not lost: it starts the bucket's next batch.
    """
    return math.ceil(info.splits[TRAIN].num_examples / global_batch_size)


def with_validation(info: DataInfo, fraction: float, min_examples: int = MIN_VALIDATION_EXAMPLES) -> DataInfo:
    """`info` with `fraction` of every training shard's records held out as the VALIDATION split.

    One record in round(1 / fraction) of each shard, by position, so the same records on every
    pass and in every input pipeline; the train split keeps the rest. `info` itself when
    fraction is 0 or it would hold out fewer than `min_examples` records: selecting an epoch on
    a handful of examples follows their noise (measured: docs/training.md), and they are worth
    more as training data.
    """
    if fraction <= 0:
        return info
    period = max(2, round(1 / fraction))
    train = info.splits[TRAIN]
    validation = train.part(Holdout(period, held_out=True))
    if validation.num_examples < max(1, min_examples):
        return info
    splits = {**info.splits, TRAIN: train.part(Holdout(period, held_out=False)), VALIDATION: validation}
    return dataclasses.replace(info, splits=splits)


def eval_steps(info: DataInfo, split: str, global_batch_size: int, replicas: int) -> int:
    """Steps of one evaluation pass: each bucket ends with its own partial per-replica batch."""
    per_replica = global_batch_size // replicas
    batches = sum(math.ceil(b.num_examples / per_replica) for b in info.splits[split].buckets)
    return math.ceil(batches / replicas)


def distribute(strategy: tf.distribute.Strategy, info: DataInfo, split: str, global_batch_size: int,
               **kwargs: Any) -> tf.distribute.DistributedDataset:
    """`make_dataset` for every input pipeline of a strategy, with per-replica batches.

    Args:
      strategy: the distribution strategy the model is built under.
      info: the preprocessing run.
      split: "train" or "eval".
      global_batch_size: examples per step over all replicas.
      **kwargs: passed to `make_dataset` (training, augment, reading).

    Returns:
      The distributed dataset, for Model.fit / Model.evaluate under `strategy`.
    """
    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch = context.get_per_replica_batch_size(global_batch_size)
        return make_dataset(info, split, batch, input_context=context, **kwargs)

    return strategy.distribute_datasets_from_function(dataset_fn)


def measure_throughput(dataset: tf.data.Dataset, batches: int, buckets: int = 1) -> float:
    """Examples per second the pipeline delivers on its own (no model), after a warm-up.

    The warm-up pays for opening shards and filling the shuffle buffers, which a long
    training run amortizes. Each bucket has its own buffer, filled when the bucket is first
    drawn, so the warm-up lasts until a batch of every bucket (every padded length) arrived.

    Args:
      dataset: a dataset of (features, label) batches, repeating (a training dataset).
      batches: batches to time.
      buckets: the number of length buckets the batches come from.

    Returns:
      Examples per second.
    """
    iterator = iter(dataset)
    lengths = set()
    while len(lengths) < buckets:
        inputs, _ = next(iterator)
        lengths.add(inputs[features.X].shape[1])
    examples = 0
    start = time.perf_counter()
    for _ in range(batches):
        _, label = next(iterator)
        examples += int(label.shape[0])
    return examples / max(time.perf_counter() - start, 1e-9)
