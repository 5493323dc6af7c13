"""The run's scratch space, OUTPUT/.work/: what the job's steps leave for the finalize step.

This module is the directory's one owner. Every step that reports (the analyze pass, each
output shard) writes under its own name, so a retried step replaces its earlier attempt's
files instead of adding to them; finalize reads them all back, then removes the directory.

    .work/steps/NAME.jsonl   the step's typed records (finalize/records.py), one JSON line each
    .work/steps/NAME.stats   the step's partial statistics of a split: a pickled (split,
                             StatsAccumulator). Pickle is safe here: these files are the job's
                             own accumulators, never user input.
    .work/tft/               tf.Transform's temporary directory
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_pipeline.finalize import records
from cli_support import failures
from transforms.outputs import WORK_DIR

_STEPS = "steps"
# The analyze pass's step: the training statistics (a ValueStats record).
STATISTICS_STEP = "statistics"
_RECORDS = ".jsonl"
_STATS = ".stats"


def tft_temp_dir(output_dir: str) -> str:
    return FileSystems.join(output_dir, WORK_DIR, "tft")


def _step_path(output_dir: str, name: str, suffix: str) -> str:
    return FileSystems.join(output_dir, WORK_DIR, _STEPS, name + suffix)


def write_step(output_dir: str, name: str, found: Iterable[Any], partial_stats: tuple[str, Any] | None = None) -> None:
    """Saves what step `name` found (records, and a split's partial statistics, compacted).

    Raises:
      RunFailedError: a file cannot be written (a full disk, no permission), naming it.
    """
    _write(_step_path(output_dir, name, _RECORDS), "".join(records.encode(r) + "\n" for r in found).encode("utf-8"))
    if partial_stats is not None:
        split, acc = partial_stats
        acc.compact()
        _write(_step_path(output_dir, name, _STATS), pickle.dumps((split, acc)))


def _write(path: str, data: bytes) -> None:
    with failures.writing(path, "--output_dir"), FileSystems.create(path) as f:
        f.write(data)


def _matches(output_dir: str, suffix: str) -> list[str]:
    [result] = FileSystems.match([_step_path(output_dir, "*", suffix)])
    return sorted(m.path for m in result.metadata_list)


def _read_records(path: str) -> list[Any]:
    with FileSystems.open(path) as f:
        return [records.decode(line) for line in f.read().decode("utf-8").splitlines() if line.strip()]


def read_records(output_dir: str) -> list[Any]:
    """Every record the steps wrote."""
    return [record for path in _matches(output_dir, _RECORDS) for record in _read_records(path)]


def read_step(output_dir: str, name: str) -> list[Any]:
    """The records step `name` wrote (none if it wrote no file)."""
    path = _step_path(output_dir, name, _RECORDS)
    return _read_records(path) if FileSystems.exists(path) else []


def read_partial_stats(output_dir: str) -> Iterator[tuple[str, Any]]:
    """(split, accumulator) of every step that summarized one, in a fixed order (by step name)."""
    for path in _matches(output_dir, _STATS):
        with FileSystems.open(path) as f:
            yield pickle.loads(f.read())  # noqa: S301 - written by this job's workers


def remove(output_dir: str) -> None:
    path = FileSystems.join(output_dir, WORK_DIR)
    if FileSystems.exists(path):
        FileSystems.delete([path])
