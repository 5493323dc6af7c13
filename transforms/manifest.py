"""manifest.json: what a preprocessing run read, wrote and computed, as one typed schema.

The pipeline's finalize step builds a `Manifest` and writes it; the trainer, the report, the
workflow and the benchmarks read it back with `read` (or `Manifest.from_json`) and use
attributes, never string keys. No heavy imports: readers without Beam or TensorFlow load it.

Versions: 1 had no shard `length`, `length_buckets`, `padding`, `drift` nor `timings` (those
load as None, and a shard without a length holds records padded to `max_length`); 2 added
them; `label_type` and `statistics.target` came later in version 2 (absent: classification,
no target). A manifest of a newer version than this code knows is refused with a clear error
rather than half-read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from transforms import typed_json
from transforms.features import DatasetSpec, Feature
from transforms.outputs import MANIFEST

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class ManifestVersionError(ValueError):
    """A manifest written by a newer (or unknown) version of the pipeline."""


@dataclasses.dataclass(frozen=True)
class Shard:
    """One TFRecord file: its path inside the output directory, its records, and the time
    steps every record is padded to (None in version 1: `max_length`)."""

    file: str
    examples: int
    length: int | None = None


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """One feature of the transformed records, as the transform declares it."""

    dtype: str
    shape: tuple[int, ...]
    description: str

    @classmethod
    def of(cls, feature: Feature) -> FeatureInfo:
        return cls(feature.dtype, tuple(feature.shape), feature.description)


@dataclasses.dataclass(frozen=True)
class SplitSummary:
    """One split's counts: examples read = written + quarantined."""

    files_matched: int
    files_read: int
    files_quarantined: int
    examples_read: int
    examples_written: int
    examples_quarantined: int
    examples_truncated: int
    shards: tuple[Shard, ...]


@dataclasses.dataclass(frozen=True)
class ValueStatistics:
    """The training statistics of `x` the transform uses (per channel or per element)."""

    axis: str            # "channel" or "element"
    normalize: str
    mean: list
    std: list
    min: list
    max: list
    count: int


@dataclasses.dataclass(frozen=True)
class TargetStatistics:
    """The training split's regression targets, in their original units; with
    `standardized`, the records hold (target - mean) / std (std 0: the records hold 0)."""

    mean: float
    std: float
    min: float
    max: float
    standardized: bool


@dataclasses.dataclass(frozen=True)
class Statistics:
    x: ValueStatistics
    train_label_counts: dict[str, int]
    train_longest_sample: int
    target: TargetStatistics | None = None


@dataclasses.dataclass(frozen=True)
class BucketCount:
    """One length bucket in one split: its bound, examples, shard files and the fraction of
    its stored steps that is padding (None in manifests written before it was recorded)."""

    length: int
    examples: int
    shards: int
    padding_fraction: float | None = None


@dataclasses.dataclass(frozen=True)
class LengthBuckets:
    bounds: tuple[int, ...]
    splits: dict[str, tuple[BucketCount, ...]]


@dataclasses.dataclass(frozen=True)
class Padding:
    """Valid and stored values of a split, the padding fraction, and the fraction 1, 2, 4 or 8
    buckets chosen from the training lengths would give (keys "1", "2", ...)."""

    valid_values: int
    stored_values: int
    padding_fraction: float
    padding_fraction_with_buckets: dict[str, float]


@dataclasses.dataclass(frozen=True)
class QuarantineSummary:
    file: str
    records: int
    reasons: dict[str, int]


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str
    split: str
    bytes: int
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """How far one feature's eval distribution is from its train distribution.

    Attributes:
      feature: the feature's name (e.g. "x[3]", "length", "label").
      metric: "jensen_shannon_divergence" or "l_infinity".
      distance: the metric's value, in [0, 1].
      threshold: the value above which the feature is flagged.
      drifted: distance > threshold.
      where: for l_infinity, the label whose frequency differs most; else None.
    """

    feature: str
    metric: str
    distance: float
    threshold: float
    drifted: bool
    where: str | None = None


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """The train/eval comparison of every feature both splits describe."""

    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> list[str]:
        """Names of the flagged features."""
        return [f.feature for f in self.features if f.drifted]

    def get(self, feature: str) -> FeatureDrift | None:
        return next((f for f in self.features if f.feature == feature), None)

    def to_json(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "features": [dataclasses.asdict(f) for f in self.features]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftReport:
        return cls(tuple(FeatureDrift(**f) for f in data["features"]))


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The whole manifest.json (README's output table describes each field)."""

    created: str
    command: list[str]
    spec: DatasetSpec
    compression: str                  # of the TFRecord shards: "none" or "gzip"
    max_length: int
    num_classes: int
    label_vocabulary: list[str] | None
    features: dict[str, FeatureInfo]
    statistics: Statistics
    splits: dict[str, SplitSummary]
    quarantine: QuarantineSummary
    inputs: tuple[InputFile, ...]
    length_buckets: LengthBuckets | None = None
    padding: dict[str, Padding] | None = None
    drift: DriftReport | None = None
    # Seconds per phase (None: not seen by the launcher, on runners whose workers are elsewhere).
    timings: dict[str, float | None] | None = None
    # "classification", "regression" or "none" (unlabeled); see DatasetSpec.label_type.
    label_type: str = "classification"
    format_version: int = FORMAT_VERSION

    def shard_length(self, shard: Shard) -> int:
        """The time steps a shard's records are padded to (version 1: always max_length)."""
        return shard.length if shard.length is not None else self.max_length

    def to_json(self) -> dict[str, Any]:
        return {"format_version": self.format_version, **typed_json.encode_fields(self)}   # the version first

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Raises ManifestVersionError for a version this code cannot read."""
        version = data.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ManifestVersionError(
                f"manifest format_version {version!r} is not one this code reads {READABLE_VERSIONS}: "
                "it was written by a newer version of the pipeline; upgrade this package to read it")
        return typed_json.decode(cls, data)


def loads(text: str) -> Manifest:
    return Manifest.from_json(json.loads(text))


def read_local(output_dir: str) -> Manifest:
    """The manifest of an output directory on this machine (readers of remote outputs open
    the file with their own filesystem layer and call `loads`)."""
    with open(os.path.join(output_dir, MANIFEST), encoding="utf-8") as f:
        return loads(f.read())
