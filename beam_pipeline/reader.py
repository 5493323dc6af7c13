"""Reading one input file (or a sample range of it) through Beam's FileSystems.

Shared by the scan (headers only), the analyze pass and the transform pass, so all three
refuse exactly the same files and samples. Paths go through `FileSystems`, never `open()`,
so gs://, s3:// and any registered filesystem work like local paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_pipeline import errors, layouts, npy_io, samples
from transforms.features import DatasetSpec


@dataclasses.dataclass(frozen=True)
class FileTask:
    """One unit of reading work: a file, or a range of its samples.

    Attributes:
      path: the input file.
      split: "train" or "eval".
      size: the file's size in bytes.
      label: a one-sample file's label text (from --labels_csv or --labels_from_dir).
      labels_path: the sibling file holding this file's labels (--labels_sibling).
      sample_range: [start, stop) of the samples this task covers; None for all.
    """

    path: str
    split: str
    size: int
    label: str | None = None
    labels_path: str | None = None
    sample_range: tuple[int, int] | None = None


def split_task(task: FileTask, num_samples: int, pieces: int) -> list[tuple[FileTask, int]]:
    """Cuts a task (a whole file, or a range) into `pieces` sample ranges of near-equal size.

    Returns (task, sample count) pairs; the task itself when one piece suffices.
    """
    if pieces <= 1 or num_samples <= 1:
        return [(task, num_samples)]
    start = task.sample_range[0] if task.sample_range else 0
    bounds = [start + (num_samples * i) // pieces for i in range(pieces + 1)]
    return [(dataclasses.replace(task, sample_range=(a, b)), b - a) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def split_large_files(units: list[tuple[FileTask, int]], max_samples: int) -> list[tuple[FileTask, int]]:
    """Cuts files holding more than max_samples samples into ranges, so one large file is
    read and transformed by several workers instead of one."""
    return [piece for task, n in units for piece in split_task(task, n, -(-n // max_samples))]


def read_bytes(path: str) -> bytes:
    """Reads a whole file through Beam's FileSystems."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return f.read()
    except Exception as e:  # noqa: BLE001 - any filesystem's error means "cannot read"
        raise errors.BadInputError(errors.UNREADABLE, f"cannot read: {e}") from None


def _check_not_empty(task: FileTask) -> None:
    # Zero bytes per the filesystem: nothing to read, and nothing is opened, so a FIFO or
    # device node that a glob happened to match cannot hang the run.
    if task.size == 0:
        raise errors.BadInputError(errors.EMPTY_FILE, "the file is empty")


def plan_headers(task: FileTask, opts: layouts.ReadOptions) -> layouts.FilePlan:
    """Plans a file from a random-access stream: only headers and index arrays are fetched."""
    _check_not_empty(task)
    try:
        stream = FileSystems.open(task.path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:  # noqa: BLE001
        raise errors.BadInputError(errors.UNREADABLE, f"cannot open: {e}") from None
    with stream:
        return plan_task(task, opts, stream)


def unexpected(e: Exception) -> errors.BadInputError:
    """Any other failure while parsing a file still quarantines it: a file can be broken in
    more ways than any list of checks foresees, and one must never stop the run."""
    return errors.BadInputError(errors.CORRUPT, f"cannot parse the file ({type(e).__name__}: {e})")


def plan_task(task: FileTask, opts: layouts.ReadOptions, source) -> layouts.FilePlan:
    """Opens a task's file (and its sibling label file) and plans its layout.

    Args:
      task: the file.
      opts: layout flags.
      source: the file's bytes or a seekable stream.

    Raises:
      errors.BadInputError: whatever is wrong with the file, never another exception.
    """
    try:
        return _plan_task(task, opts, source)
    except errors.BadInputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise unexpected(e) from None


def _plan_task(task: FileTask, opts: layouts.ReadOptions, source) -> layouts.FilePlan:
    if task.label == "":
        raise errors.BadInputError(errors.MISSING_LABEL, "no label for this file in --labels_csv")
    af = npy_io.ArrayFile(source, task.path)
    sibling = None
    if task.labels_path is not None:
        if not FileSystems.exists(task.labels_path):
            raise errors.BadInputError(errors.MISSING_LABEL, f"no sibling label file {task.labels_path}")
        try:
            sibling = npy_io.ArrayFile(read_bytes(task.labels_path), task.labels_path)
        except errors.BadInputError as e:
            raise errors.BadInputError(e.reason, f"sibling label file {task.labels_path}: {e.message}") from None
    file_label = layouts.label_from_text(task.label) if task.label is not None else None
    return layouts.plan_file(af, opts, file_label=file_label, sibling=sibling)


def quarantine_record(task: FileTask, problem: errors.BadInputError, samples_lost: int) -> dict[str, Any]:
    """A machine-readable quarantine record (one JSON line in out/quarantine/)."""
    return {
        "file": task.path,
        "split": task.split,
        "sample_index": problem.sample_index,
        "reason": problem.reason,
        "message": problem.message,
        "samples": samples_lost,
    }


@dataclasses.dataclass
class TaskRead:
    """What reading a task gave: a report, quarantine records and the valid batches."""

    task: FileTask
    report: dict[str, Any]
    quarantine: list[dict[str, Any]]
    batches: list[samples.SampleBatch]


def read_task(task: FileTask, opts: layouts.ReadOptions, spec: DatasetSpec,
              chunk_bytes: int, digest: bool = True) -> TaskRead:
    """Reads, checks and batches a task's samples; never raises for bad input."""
    report: dict[str, Any] = {"path": task.path, "split": task.split, "bytes": task.size,
                              "sha256": None, "range": task.sample_range, "samples": 0,
                              "quarantined": 0, "truncated": 0, "error": None}
    plan = None
    try:
        _check_not_empty(task)
        data = read_bytes(task.path)
        report["bytes"] = len(data)
        if digest:   # only the pass that reports files needs it
            report["sha256"] = hashlib.sha256(data).hexdigest()
        plan = plan_task(task, opts, data)
        samples.check_file_against_spec(plan, spec)
        values = plan.read_values(task.sample_range)
        selection = samples.select_samples(task.path, plan, values, spec, opts.max_sample_bytes,
                                           chunk_bytes, task.sample_range)
    except Exception as e:  # noqa: BLE001 - BadInputError, or anything else a broken file causes
        if not isinstance(e, errors.BadInputError):
            e = unexpected(e)
        start, stop = task.sample_range or (0, plan.num_samples if plan is not None else 0)
        report.update(samples=stop - start, quarantined=stop - start, error=e.reason)
        e.sample_index = task.sample_range[0] if task.sample_range else None
        return TaskRead(task, report, [quarantine_record(task, e, stop - start)], [])
    start, stop = task.sample_range or (0, plan.num_samples)
    report.update(samples=stop - start, quarantined=len(selection.refusals), truncated=selection.truncated)
    records = [quarantine_record(task, r, 1) for r in selection.refusals]
    return TaskRead(task, report, records, selection.batches)
