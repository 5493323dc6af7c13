"""Planning, on the launcher before the job starts: which worker reads what, and which shard it writes.

The scan (scan.py) tells how many samples each file holds. From that, large files are cut
into sample ranges (one large file must not keep a single worker busy while the others
idle), and the pieces are spread over the output shards, balancing samples. The plan is
deterministic for the same input, and it is the only contract between launcher and
workers: `FileTask`s and `ShardTask`s.
"""

from __future__ import annotations

import dataclasses
import math

from transforms import outputs
from transforms.features import DatasetSpec

# Aim for shards of ~150 MB (the 100-200 MB that suits TFRecord readers and GCS alike).
TARGET_SHARD_BYTES = 150 << 20


@dataclasses.dataclass(frozen=True)
class FileTask:
    """One unit of reading work: a file, or a range of its samples.

    Attributes:
      path: the input file.
      split: "train" or "eval".
      size: the file's size in bytes.
      modified: its last-modified time when listed (seconds, as its filesystem reports it):
        with the size, how a read tells that the file was rewritten since.
      label: a one-sample file's label text (from --labels_csv or --labels_from_dir).
      labels_path: the sibling file holding this file's labels (--labels_sibling).
      sample_range: [start, stop) of the samples this task covers; None for all.
    """

    path: str
    split: str
    size: int
    label: str | None = None
    modified: float | None = None
    labels_path: str | None = None
    sample_range: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """The files (or sample ranges) that make one output shard."""

    split: str
    index: int
    count: int
    tasks: tuple[FileTask, ...]

    def file_name(self, compression: str, length: int | None = None) -> str:
        """The shard's file name; with length buckets, that of its bucket padded to `length`."""
        return outputs.shard_name(self.split, self.index, self.count, compression, length)


# A file task and the number of samples it covers.
Unit = tuple[FileTask, int]


def input_bytes(task: FileTask, file_samples: int) -> int:
    """The bytes of its file a task stands for (its share of the samples): what progress counts."""
    if task.sample_range is None or file_samples <= 0:
        return task.size
    start, stop = task.sample_range
    return task.size * (stop - start) // file_samples


def _cut(task: FileTask, num_samples: int, pieces: int) -> list[Unit]:
    """Cuts a task (a whole file, or a range) into `pieces` sample ranges of near-equal size."""
    if pieces <= 1 or num_samples <= 1:
        return [(task, num_samples)]
    start = task.sample_range[0] if task.sample_range else 0
    bounds = [start + (num_samples * i) // pieces for i in range(pieces + 1)]
    return [(dataclasses.replace(task, sample_range=(a, b)), b - a) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _cut_all(units: list[Unit], max_samples: int) -> list[Unit]:
    """Cuts every unit holding more than max_samples samples into ranges."""
    return [piece for task, n in units for piece in _cut(task, n, math.ceil(n / max_samples))]


def auto_num_shards(num_samples: int, spec: DatasetSpec, num_units: int) -> int:
    """Shards of ~TARGET_SHARD_BYTES, at least one, and no more than there are work units."""
    estimate = num_samples * (4 * spec.max_length * spec.step_size + outputs.RECORD_OVERHEAD)
    return max(1, min(num_units, math.ceil(estimate / TARGET_SHARD_BYTES)))


def _assign(split: str, units: list[Unit], num_shards: int) -> list[ShardTask]:
    """Spreads units over shards, largest first onto the least loaded shard."""
    loads = [0] * num_shards
    assigned: list[list[FileTask]] = [[] for _ in range(num_shards)]
    for task, n in sorted(units, key=lambda u: (-u[1], u[0].path, u[0].sample_range or (0, 0))):
        target = loads.index(min(loads))
        loads[target] += n
        assigned[target].append(task)
    return [ShardTask(split, i, num_shards, tuple(t)) for i, t in enumerate(assigned)]


# Training tasks read together by the analyze pass, in plan order.
ReadGroup = tuple[FileTask, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The job's work: the training tasks the analyze pass reads, in groups, and the shards."""

    analysis: tuple[ReadGroup, ...]
    shards: tuple[ShardTask, ...]


def _groups(tasks: list[FileTask], group_bytes: int) -> tuple[ReadGroup, ...]:
    """Consecutive tasks gathered until their files reach group_bytes.

    The analyze pass cuts each group's samples into batches: small files share batches
    (thousands of tiny files cost few graph calls), and since the groups are fixed here,
    the batches tf.Transform sees are the same whatever the runner, its workers and its
    bundles; so are the statistics, to the last bit (see analyze.py).
    """
    groups, group, size = [], [], 0
    for task in tasks:
        group.append(task)
        size += task.size
        if size >= group_bytes:
            groups.append(tuple(group))
            group, size = [], 0
    return tuple(groups + ([tuple(group)] if group else []))


def make_plan(files: dict[str, list[Unit]], spec: DatasetSpec, *, num_shards: int,
              samples_per_task: int, group_bytes: int) -> Plan:
    """Plans both passes.

    Args:
      files: per split, every file with its sample count (0 for a file the scan could not
        read: it still gets a task, whose reader reports why it is refused).
      spec: the dataset spec (sizes the shards).
      num_shards: shards per split; 0 picks shards of ~TARGET_SHARD_BYTES.
      samples_per_task: files with more samples are read as several ranges.
      group_bytes: the analyze pass reads smaller files in groups of about this many bytes.

    When an explicit num_shards exceeds a split's work units, its units are cut further for
    writing (each range re-reads its file, the price of honoring the flag); the analyze pass
    keeps the coarser units.
    """
    shards: list[ShardTask] = []
    units: dict[str, list[Unit]] = {}
    for split, split_files in files.items():
        units[split] = _cut_all(split_files, samples_per_task)
        total = sum(n for _, n in units[split])
        count = num_shards or auto_num_shards(total, spec, len(units[split]))
        pieces = units[split]
        if len(pieces) < count:
            pieces = _cut_all(pieces, max(1, math.ceil(total / count)))
        shards += _assign(split, pieces, count)
    return Plan(_groups([task for task, _ in units.get(outputs.TRAIN, [])], group_bytes), tuple(shards))
