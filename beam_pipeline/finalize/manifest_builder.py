"""The manifest of a finished run, built from what the job's steps recorded: a pure function.

Counts are reconciled here: for every split, examples read = written + quarantined, and the
shards hold every example written. A mismatch is a bug (never bad input) and raises.
"""

from __future__ import annotations

import collections
import datetime
from typing import Any

from beam_pipeline.finalize.records import FileReport, QuarantineRecord, ShardReport, ValueStats
from beam_pipeline.planning import length_buckets
from beam_pipeline.planning.plan import FileTask
from transforms import outputs
from transforms.features import DatasetSpec
from transforms.manifest import (
    BucketCount,
    DriftReport,
    FeatureInfo,
    InputFile,
    LengthBuckets,
    Manifest,
    Padding,
    QuarantineSummary,
    Shard,
    SplitSummary,
    Statistics,
    TargetStatistics,
    ValueStatistics,
)


def _split_summary(split: str, tasks: list[FileTask], files: list[FileReport],
                   shards: list[ShardReport]) -> SplitSummary:
    paths = {t.path for t in tasks}
    failed = {r.path for r in files if r.error is not None}
    reported = {r.path for r in files}
    if reported != paths:
        raise RuntimeError(f"{split}: files without a report: {sorted(paths - reported)[:5]}")
    summary = SplitSummary(
        files_matched=len(paths),
        files_read=len(paths - failed),
        files_quarantined=len(failed),
        examples_read=sum(r.samples for r in files),
        examples_written=sum(r.written for r in files),
        examples_quarantined=sum(r.quarantined for r in files),
        examples_truncated=sum(r.truncated for r in files),
        shards=tuple(sorted((Shard(r.file, r.examples, r.length) for r in shards), key=lambda s: s.file)))
    if summary.examples_read != summary.examples_written + summary.examples_quarantined:
        raise RuntimeError(f"{split}: counts do not reconcile: {summary}")
    if sum(s.examples for s in summary.shards) != summary.examples_written:
        raise RuntimeError(f"{split}: shard counts do not add up to examples written")
    return summary


def _written_lengths(shards: list[ShardReport]) -> length_buckets.LengthCounts:
    counts: collections.Counter = collections.Counter()
    for shard in shards:
        counts.update({length: count for length, count in shard.lengths})
    return length_buckets.LengthCounts.from_counts(counts)


def _buckets_summary(spec: DatasetSpec, splits: dict[str, SplitSummary],
                     shards: list[ShardReport]) -> LengthBuckets | None:
    """The bucket bounds, and per split each bucket's examples, shard files and the fraction
    of its stored steps that is padding."""
    if not spec.length_buckets:
        return None
    per_split = {}
    for split, summary in splits.items():
        written = _written_lengths([r for r in shards if r.split == split])
        bucket = length_buckets.assign(written.lengths, spec.length_buckets)
        counts = []
        for i, bound in enumerate(spec.length_buckets):
            samples = int(written.counts[bucket == i].sum())
            valid = int((written.lengths * written.counts)[bucket == i].sum())
            counts.append(BucketCount(bound, sum(s.examples for s in summary.shards if s.length == bound),
                                      sum(1 for s in summary.shards if s.length == bound),
                                      round(1 - valid / (samples * bound), 6) if samples else 0.0))
        per_split[split] = tuple(counts)
    return LengthBuckets(tuple(spec.length_buckets), per_split)


def _padding(spec: DatasetSpec, shards: list[ShardReport], splits: list[str]) -> dict[str, Padding]:
    """Per split: valid and stored values, the padding fraction, and what the fraction would
    be with 1, 2, 4 and 8 buckets chosen from the training lengths (to see what buckets buy)."""
    lengths = {split: _written_lengths([r for r in shards if r.split == split]) for split in splits}
    train = lengths[outputs.TRAIN]
    what_if = {n: length_buckets.optimal_bounds(train, spec.max_length, n) for n in length_buckets.WHAT_IF}
    return {split: Padding(**length_buckets.padding_figures(counts, spec.step_size, spec.bucket_bounds, what_if))
            for split, counts in lengths.items()}


def _statistics(spec: DatasetSpec, stats: ValueStats) -> Statistics:
    x = ValueStatistics(axis="element" if spec.per_element else "channel", normalize=spec.normalize,
                        mean=stats.mean, std=stats.std, min=stats.min, max=stats.max, count=stats.count)
    target = None
    if stats.target is not None:
        mean, std, lo, hi = stats.target
        target = TargetStatistics(mean=mean, std=std, min=lo, max=hi, standardized=spec.standardize_target)
    return Statistics(x=x, train_label_counts=stats.labels, train_longest_sample=stats.longest, target=target)


def build_manifest(spec: DatasetSpec, matched: dict[str, list[FileTask]], argv: list[str], compression: str,
                   found: list[Any], label_vocabulary: list[str] | None, drift: DriftReport | None,
                   timings: dict[str, float | None] | None) -> Manifest:
    """The manifest of the run, from the records its steps wrote (`found`).

    Raises:
      RuntimeError: if any count fails to reconcile (a bug, never bad input).
    """
    files = [r for r in found if isinstance(r, FileReport)]
    shards = [r for r in found if isinstance(r, ShardReport)]
    [stats] = [r for r in found if isinstance(r, ValueStats)]
    quarantine = [r for r in found if isinstance(r, QuarantineRecord)]
    splits = {split: _split_summary(split, tasks, [r for r in files if r.split == split],
                                    [r for r in shards if r.split == split])
              for split, tasks in matched.items()}
    inputs: dict[str, InputFile] = {}
    for r in sorted(files, key=lambda r: r.path):
        inputs.setdefault(r.path, InputFile(r.path, r.split, r.bytes, r.sha256))
    if spec.label_type != "classification":
        num_classes = 0
    elif spec.label_kind == "string":
        num_classes = len(label_vocabulary or [])
    else:
        num_classes = max((int(k) for k in stats.labels), default=-1) + 1
    return Manifest(
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        command=list(argv),
        spec=spec,
        compression=compression,
        max_length=spec.max_length,
        num_classes=num_classes,
        label_vocabulary=label_vocabulary,
        features={name: FeatureInfo.of(f) for name, f in spec.transformed_features().items()},
        statistics=_statistics(spec, stats),
        splits=splits,
        length_buckets=_buckets_summary(spec, splits, shards),
        padding=_padding(spec, shards, list(matched)),
        quarantine=QuarantineSummary(file=f"{outputs.QUARANTINE_DIR}/{outputs.QUARANTINE_FILE}",
                                     records=len(quarantine),
                                     reasons=dict(collections.Counter(q.reason for q in quarantine))),
        inputs=tuple(inputs.values()),
        drift=drift,
        # Seconds per phase (None: not seen by the launcher, on runners whose workers are elsewhere).
        timings={k: (round(v, 2) if v is not None else None) for k, v in timings.items()} if timings else None,
        label_type=spec.label_type,
    )
