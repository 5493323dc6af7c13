"""Reading one input file (or a sample range of it) through Beam's FileSystems.

Shared by the scan (headers only), the analyze pass and the transform pass, so all three
refuse exactly the same files and samples. Paths go through `FileSystems`, never `open()`,
so gs://, s3:// and any registered filesystem work like local paths.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_pipeline import errors
from beam_pipeline.finalize.records import FileReport, QuarantineRecord
from beam_pipeline.planning.plan import FileTask, input_bytes
from beam_pipeline.reading import layouts, npy_io, samples
from beam_pipeline.reading.decoded_cache import DecodedCache
from transforms.features import DatasetSpec


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


def plan_task(task: FileTask, opts: layouts.ReadOptions, source) -> layouts.FilePlan:
    """Opens a task's file (and its sibling label file) and plans its layout.

    Args:
      task: the file.
      opts: layout flags.
      source: the file's bytes, a seekable stream, or the file opened already.

    Raises:
      errors.BadInputError: whatever is wrong with the file, never another exception.
    """
    try:
        return _plan_task(task, opts, source)
    except Exception as e:  # noqa: BLE001 - whatever a broken file causes
        raise errors.as_bad_input(e) from None


def _plan_task(task: FileTask, opts: layouts.ReadOptions, source) -> layouts.FilePlan:
    if task.label == "":
        raise errors.BadInputError(errors.MISSING_LABEL, "no label for this file in --labels_csv")
    af = source if isinstance(source, npy_io.ArrayFile) else npy_io.ArrayFile(source)
    sibling = None
    if task.labels_path is not None:
        if not FileSystems.exists(task.labels_path):
            raise errors.BadInputError(errors.MISSING_LABEL, f"no sibling label file {task.labels_path}")
        try:
            sibling = npy_io.ArrayFile(read_bytes(task.labels_path))
        except errors.BadInputError as e:
            raise errors.BadInputError(e.reason, f"sibling label file {task.labels_path}: {e.message}") from None
    file_label = layouts.label_from_text(task.label, opts.label_type) if task.label is not None else None
    return layouts.plan_file(af, opts, file_label=file_label, sibling=sibling)


@dataclasses.dataclass
class TaskRead:
    """What reading a task gave: its report, quarantine records and the valid batches."""

    task: FileTask
    report: FileReport
    quarantine: list[QuarantineRecord]
    batches: list[samples.SampleBatch]
    input_bytes: int   # the bytes of the file this task stands for (see plan.input_bytes)


def _modified(path: str) -> float | None:
    """The file's last-modified time as its filesystem reports it (None: it cannot say)."""
    try:
        return FileSystems.get_filesystem(path).metadata(path).last_updated_in_seconds
    except Exception:  # noqa: BLE001 - a filesystem without metadata(): the size check remains
        return None


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds")


def _open(task: FileTask, digest: bool) -> tuple[bytes, int, str | None]:
    """The task's file, its size and sha256 (if asked for).

    Raises:
      RunFailedError: the file is gone, or its size or modification time is not the one listed
        when the run began (a rewrite of the same size counts):
        the passes would not all have read the same data (statistics from one version,
        records from another). A file unreadable from the start is quarantined instead.
    """
    try:
        data = read_bytes(task.path)
    except errors.BadInputError:
        if not FileSystems.exists(task.path):
            raise errors.RunFailedError(f"input {task.path} disappeared while the job ran: "
                                        "restore it, or run again without it") from None
        raise
    modified = _modified(task.path)
    rewritten = None not in (task.modified, modified) and modified != task.modified
    if len(data) != task.size or rewritten:
        how = (f"{task.size:,} bytes when listed, {len(data):,} now" if len(data) != task.size else
               f"rewritten since it was listed, {_when(task.modified)}: modified at {_when(modified)}")
        raise errors.RunFailedError(f"input {task.path} changed while the job ran ({how}): "
                                    "run again once the inputs stay unchanged")
    return data, len(data), hashlib.sha256(data).hexdigest() if digest else None


def read_task(task: FileTask, opts: layouts.ReadOptions, spec: DatasetSpec, chunk_bytes: int,
              digest: bool = True, cache: DecodedCache | None = None) -> TaskRead:
    """Reads, checks and batches a task's samples; never raises for bad input.

    Raises:
      RunFailedError: the file changed or vanished since it was listed, or memory ran out.

    Args:
      digest: compute the file's sha256 (only the pass that reports files needs it).
      cache: where the values may already be decoded, or may be kept for the next pass.
    """
    plan, size, sha256 = None, task.size, None
    try:
        _check_not_empty(task)
        source, size, sha256 = _open(task, digest)
        plan = plan_task(task, opts, source)
        samples.check_file_against_spec(plan, spec)
        values = cache.values(task, plan) if cache is not None else plan.read_values(task.sample_range)
        selection = samples.select_samples(task.path, plan, values, spec, opts.max_sample_bytes,
                                           chunk_bytes, task.sample_range)
    except errors.RunFailedError:
        raise
    except MemoryError:   # the worker's fault, not the file's: the run stops, naming the file
        raise errors.RunFailedError(f"out of memory reading {task.path} ({task.size / 1e6:.1f} MB): give the "
                                    "workers more memory, or lower --samples_per_task and --batch_mb") from None
    except Exception as e:  # noqa: BLE001 - BadInputError, or anything else a broken file causes
        problem = errors.as_bad_input(e)
        start, stop = task.sample_range or (0, plan.num_samples if plan is not None else 0)
        problem.sample_index = start if task.sample_range else None
        report = FileReport(task.path, task.split, size, sha256, task.sample_range, samples=stop - start,
                            quarantined=stop - start, truncated=0, error=problem.reason)
        file_samples = plan.num_samples if plan is not None else 0
        return TaskRead(task, report, [QuarantineRecord.of(task.path, task.split, problem, stop - start)], [],
                        input_bytes(task, file_samples))
    start, stop = task.sample_range or (0, plan.num_samples)
    report = FileReport(task.path, task.split, size, sha256, task.sample_range, samples=stop - start,
                        quarantined=len(selection.refusals), truncated=selection.truncated, error=None)
    records = [QuarantineRecord.of(task.path, task.split, r, 1) for r in selection.refusals]
    return TaskRead(task, report, records, selection.batches, input_bytes(task, plan.num_samples))
