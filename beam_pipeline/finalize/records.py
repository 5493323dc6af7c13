"""What the pipeline's steps report to the finalize step, as typed records.

The steps write their records as JSON lines into the run's scratch space (finalize/scratch.py);
once every shard is written, finalize reads them back to build the manifest and the quarantine
file. Each record kind is a dataclass here, and `encode` / `decode` are the only places
that know the JSON form, so producer and consumer share one schema. Steps write their own
files (no sink transforms: each costs the in-process runner several stages).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from beam_pipeline.errors import BadInputError


@dataclasses.dataclass(frozen=True)
class FileReport:
    """What reading one file task (a file, or a sample range of it) gave.

    Attributes:
      path: the input file.
      split: "train" or "eval".
      bytes: the file's size.
      sha256: hex digest of the file's bytes (None where the pass did not compute it).
      sample_range: [start, stop) of the task's samples; None for the whole file.
      samples: samples the task covers (read, or lost with the file).
      quarantined: samples refused (all of them when the file is refused).
      truncated: samples cut to max_length.
      error: the reason code when the whole file (or range) was refused, else None.
      written: examples written to the output.
    """

    path: str
    split: str
    bytes: int
    sha256: str | None
    sample_range: tuple[int, int] | None
    samples: int
    quarantined: int
    truncated: int
    error: str | None
    written: int = 0


@dataclasses.dataclass(frozen=True)
class ShardReport:
    """One written shard file.

    Attributes:
      split: "train" or "eval".
      file: its path inside the output directory.
      examples: records in it.
      length: the time steps every record is padded to (its bucket's bound, or max_length).
      lengths: [length, count] pairs: how many of its records have each valid length.
    """

    split: str
    file: str
    examples: int
    length: int
    lengths: list[list[int]]


@dataclasses.dataclass(frozen=True)
class QuarantineRecord:
    """One refused file or sample: a line of quarantine/quarantine.jsonl (documented in README)."""

    file: str
    split: str
    sample_index: int | None
    reason: str
    message: str
    samples: int

    @classmethod
    def of(cls, path: str, split: str, problem: BadInputError, samples_lost: int) -> QuarantineRecord:
        return cls(path, split, problem.sample_index, problem.reason, problem.message, samples_lost)

    def to_json(self) -> str:
        """The record's line in quarantine.jsonl (one kind per file: no tag)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class ValueStats:
    """Statistics of the training split's valid values, shaped like DatasetSpec.stats_shape.

    Attributes:
      count: values behind each statistic (per channel, or per element).
      mean, std, min, max: nested lists shaped like the statistics.
      samples: training samples summarized.
      steps: their valid time steps.
      longest: the longest sample's steps (after truncation).
      labels: examples per label, keyed by the label's text (class id, or the string);
        empty for regression targets and unlabeled data.
      target: regression targets' [mean, std, min, max] over the training split (float64);
        None for other label types.
    """

    count: int
    mean: list
    std: list
    min: list
    max: list
    samples: int
    steps: int
    longest: int
    labels: dict[str, int]
    target: list[float] | None = None


# A reports file mixes kinds: each line carries its kind's tag.
_KINDS: dict[str, type] = {"file": FileReport, "shard": ShardReport, "stats": ValueStats,
                           "quarantine": QuarantineRecord}
_KIND_OF = {cls: kind for kind, cls in _KINDS.items()}


def encode(report: Any) -> str:
    """A report as one JSON line, tagged with its kind."""
    return json.dumps({"kind": _KIND_OF[type(report)], **dataclasses.asdict(report)}, sort_keys=True)


def decode(line: str) -> Any:
    """The report a line of `encode` holds."""
    data = json.loads(line)
    cls = _KINDS[data.pop("kind")]
    if cls is FileReport and data["sample_range"] is not None:
        data["sample_range"] = tuple(data["sample_range"])
    return cls(**data)
