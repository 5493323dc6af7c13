"""Before the pipeline: find the input files and learn the dataset's shape from headers.

The scan reads headers and the small index arrays only (lengths, labels), in a thread
pool, and decides what the dataset is: the trailing shape and dtype most samples share,
the label kind, and (for --max_length auto) the longest training sample. tf.Transform
needs these before tracing the preprocessing_fn, as the padded shape must be static.
Files that disagree are not dropped here: the pipeline quarantines them with a reason.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import io
import os
import posixpath

from apache_beam.io.filesystems import FileSystems

from beam_pipeline import errors, progress
from beam_pipeline.errors import UsageError
from beam_pipeline.planning.plan import FileTask
from beam_pipeline.reading import layouts, reader
from cli_support import paths
from transforms.features import DatasetSpec

_SCAN_THREADS = 16
# Extensions stripped to find a file's stem (for sibling label files).
_EXTENSIONS = (".npy.gz", ".npz", ".npy")


@dataclasses.dataclass
class FileScan:
    """What the scan learned about one file (plan is None when it could not be read)."""

    task: FileTask
    plan: layouts.FilePlan | None
    error: errors.BadInputError | None


def _stem(path: str) -> str:
    for ext in _EXTENSIONS:
        if path.endswith(ext):
            return path[: -len(ext)]
    return posixpath.splitext(path)[0]


def _read_labels_csv(path: str) -> dict[str, str]:
    """Reads a CSV of `path,label` rows (header optional); relative paths are taken from
    the CSV's own directory."""
    text = reader.read_bytes(path).decode("utf-8")
    base = posixpath.dirname(path)
    labels = {}
    for row in csv.reader(io.StringIO(text)):
        if not row or row[0].strip().lower() == "path" or len(row) < 2:
            continue
        file_path = row[0].strip()
        if not paths.is_remote(file_path) and not posixpath.isabs(file_path):
            file_path = posixpath.normpath(posixpath.join(base, file_path))
        labels[file_path] = row[1].strip()
    return labels


def match_files(patterns: list[str], split: str, *, labels_csv: str | None = None,
                labels_from_dir: bool = False, labels_sibling: str | None = None) -> list[FileTask]:
    """Expands globs into tasks, attaching each file's label source.

    Raises:
      UsageError: when the globs match no file, or name a directory.
    """
    found = {}
    for pattern in patterns:
        _refuse_directory(pattern, "--input" if split == "train" else "--eval_input")
        for result in FileSystems.match([pattern]):
            for meta in result.metadata_list:
                found[meta.path] = meta
    if labels_sibling:
        found = {p: s for p, s in found.items() if not p.endswith(labels_sibling)}
    if not found:
        raise UsageError(f"no input files match {', '.join(patterns)} ({split} split)")
    csv_labels = _read_labels_csv(labels_csv) if labels_csv else {}
    tasks = []
    for path in sorted(found):
        label = None
        if labels_csv:
            label = csv_labels.get(posixpath.normpath(path), csv_labels.get(path))
            if label is None:
                label = ""  # an empty label is reported as missing by the pipeline
        elif labels_from_dir:
            label = posixpath.basename(posixpath.dirname(path))
        sibling = _stem(path) + labels_sibling if labels_sibling else None
        meta = found[path]
        tasks.append(FileTask(path, split, meta.size_in_bytes, label=label, labels_path=sibling,
                              modified=meta.last_updated_in_seconds))
    return tasks


def _refuse_directory(pattern: str, flag: str) -> None:
    """A directory given where a glob belongs would otherwise be read as a file and refused."""
    directory = pattern.rstrip("/")
    if any(c in directory for c in "*?[") or not directory:
        return
    if paths.is_remote(directory):
        is_directory = bool(FileSystems.match([directory + "/*"])[0].metadata_list)
    else:
        is_directory = os.path.isdir(directory)
    if is_directory:
        raise UsageError(f"{flag} {pattern} is a directory: did you mean '{directory}/*.npz' "
                         f"(or '{directory}/*.npy', '{directory}/**')?")


def _scan_one(task: FileTask, opts: layouts.ReadOptions) -> FileScan:
    try:
        found = FileScan(task, reader.plan_headers(task, opts), None)
    except errors.BadInputError as e:
        found = FileScan(task, None, e)
    progress.TRACKER.input_done("scan", task.size, found.plan.num_samples if found.plan is not None else 0)
    return found


def scan_files(tasks: list[FileTask], opts: layouts.ReadOptions) -> list[FileScan]:
    """Plans every file (headers and index arrays only), in parallel threads."""
    progress.TRACKER.begin("scan")
    with concurrent.futures.ThreadPoolExecutor(_SCAN_THREADS) as pool:
        return list(pool.map(lambda t: _scan_one(t, opts), tasks))


def infer_spec(train: list[FileScan], evaluation: list[FileScan], *, max_length: str,
               normalize: str, per_element: bool) -> DatasetSpec:
    """Decides the dataset spec from the training files' scans.

    The trailing shape, dtype and label kind are those of the majority of training
    samples; files that disagree will be quarantined by the pipeline.

    Raises:
      UsageError: when no training file is readable, or the flags do not fit the data.
    """
    good = [s for s in train if s.plan is not None]
    if not good:
        refused = sorted((s for s in train if s.error), key=lambda s: s.task.path)
        reasons = collections.Counter(s.error.reason for s in refused)
        first = f"; the first, {refused[0].task.path}: {refused[0].error}" if refused else ""
        raise UsageError(f"no readable training file among {len(train)} ({dict(reasons)}){first}")
    votes = collections.Counter()
    for s in good:
        votes[(s.plan.trailing_shape, s.plan.dtype.name, s.plan.label_kind)] += s.plan.num_samples
    (trailing, dtype, label_kind), _ = votes.most_common(1)[0]

    def agrees(s: FileScan) -> bool:
        p = s.plan
        return p is not None and (p.trailing_shape, p.dtype.name, p.label_kind) == (trailing, dtype, label_kind)

    train_lengths = [int(s.plan.lengths.max()) for s in good if agrees(s) and s.plan.num_samples]
    longest = max(train_lengths, default=1)
    if max_length == "auto":
        length = longest
    else:
        try:
            length = int(max_length)
        except ValueError:
            raise UsageError(f"--max_length must be 'auto' or a positive integer, got {max_length!r}") from None
        if length < 1:
            raise UsageError(f"--max_length must be >= 1, got {length}")
    if per_element:
        shortest = min(int(s.plan.lengths.min()) for s in train + evaluation if agrees(s))
        if shortest < length:
            raise UsageError(f"--per_element needs fixed-shape samples, but lengths vary "
                             f"({shortest}..{longest}); drop --per_element or set --max_length {shortest}")
    return DatasetSpec(trailing_shape=tuple(trailing), source_dtype=dtype, max_length=length,
                       label_kind=label_kind, normalize=normalize, per_element=per_element)
