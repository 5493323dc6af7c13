"""Publishing a finished run: manifest.json (what went in, what came out, the statistics used),
then _SUCCESS.

Built on the launcher from the reports the pipeline's steps wrote, after the job finished.
Counts are reconciled here: for every split, examples read = written + quarantined.
"""

from __future__ import annotations

import collections
import datetime
import json
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_pipeline.errors import RunFailedError
from beam_pipeline.finalize import records
from beam_pipeline.finalize.records import FileReport, QuarantineRecord, ShardReport, ValueStats
from beam_pipeline.planning import length_buckets
from beam_pipeline.planning.plan import FileTask
from beam_pipeline.report import page
from beam_pipeline.statistics import drift, feature_stats
from transforms import features, outputs
from transforms.features import DatasetSpec

FORMAT_VERSION = 1


def write_text(path: str, text: str) -> None:
    """Writes a small text file through FileSystems."""
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def _split_summary(split: str, tasks: list[FileTask], files: list[FileReport],
                   shards: list[ShardReport]) -> dict[str, Any]:
    paths = {t.path for t in tasks}
    failed = {r.path for r in files if r.error is not None}
    summary = {
        "files_matched": len(paths),
        "files_read": len(paths - failed),
        "files_quarantined": len(failed),
        "examples_read": sum(r.samples for r in files),
        "examples_written": sum(r.written for r in files),
        "examples_quarantined": sum(r.quarantined for r in files),
        "examples_truncated": sum(r.truncated for r in files),
        "shards": sorted(({"file": r.file, "examples": r.examples, "length": r.length} for r in shards),
                         key=lambda s: s["file"]),
    }
    reported = {r.path for r in files}
    if reported != paths:
        raise RuntimeError(f"{split}: files without a report: {sorted(paths - reported)[:5]}")
    if summary["examples_read"] != summary["examples_written"] + summary["examples_quarantined"]:
        raise RuntimeError(f"{split}: counts do not reconcile: {summary}")
    if sum(s["examples"] for s in summary["shards"]) != summary["examples_written"]:
        raise RuntimeError(f"{split}: shard counts do not add up to examples written")
    return summary


def _label_vocabulary(output_dir: str, spec: DatasetSpec) -> list[str] | None:
    if spec.label_kind != "string":
        return None
    import tensorflow_transform as tft

    words = tft.TFTransformOutput(output_dir).vocabulary_by_name(features.LABEL_VOCABULARY)
    return [w.decode("utf-8", "replace") for w in words]


def build_manifest(output_dir: str, spec: DatasetSpec, matched: dict[str, list[FileTask]],
                   argv: list[str], compression: str, steps: list[Any]) -> dict[str, Any]:
    """Assembles the manifest from the pipeline's reports (`steps`).

    Raises:
      RuntimeError: if any count fails to reconcile (a bug, never bad input).
    """
    files = [r for r in steps if isinstance(r, FileReport)]
    shards = [r for r in steps if isinstance(r, ShardReport)]
    [stats] = [r for r in steps if isinstance(r, ValueStats)]
    quarantine = [r for r in steps if isinstance(r, QuarantineRecord)]
    split_summaries = {
        split: _split_summary(split, tasks, [r for r in files if r.split == split],
                              [r for r in shards if r.split == split])
        for split, tasks in matched.items()
    }
    inputs = {}
    for r in sorted(files, key=lambda r: r.path):
        inputs.setdefault(r.path, {"path": r.path, "split": r.split, "bytes": r.bytes, "sha256": r.sha256})
    histograms = {split: _written_lengths([r for r in shards if r.split == split]) for split in matched}
    label_vocabulary = _label_vocabulary(output_dir, spec)
    if spec.label_kind == "string":
        num_classes = len(label_vocabulary or [])
    else:
        num_classes = max((int(k) for k in stats.labels), default=-1) + 1
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": argv,
        "spec": spec.to_json(),
        "compression": compression,   # of the TFRecord shards: "none" or "gzip"
        "max_length": spec.max_length,
        "num_classes": num_classes,
        "label_vocabulary": label_vocabulary,
        "features": {name: f.to_json() for name, f in spec.transformed_features().items()},
        "statistics": {
            features.X: {
                "axis": "element" if spec.per_element else "channel",
                "normalize": spec.normalize,
                "mean": stats.mean, "std": stats.std, "min": stats.min, "max": stats.max, "count": stats.count,
            },
            "train_label_counts": stats.labels,
            "train_longest_sample": stats.longest,
        },
        "splits": split_summaries,
        "length_buckets": _buckets_summary(spec, split_summaries),
        "padding": _padding(spec, histograms),
        "quarantine": {
            "file": f"{outputs.QUARANTINE_DIR}/{outputs.QUARANTINE_FILE}",
            "records": len(quarantine),
            "reasons": dict(collections.Counter(q.reason for q in quarantine)),
        },
        "inputs": list(inputs.values()),
    }


def _written_lengths(shards: list[ShardReport]) -> length_buckets.LengthCounts:
    counts: collections.Counter = collections.Counter()
    for shard in shards:
        counts.update({length: count for length, count in shard.lengths})
    return length_buckets.LengthCounts.from_counts(counts)


def _buckets_summary(spec: DatasetSpec, splits: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The bucket bounds, and per split each bucket's examples and shard files."""
    if not spec.length_buckets:
        return None
    per_split = {}
    for split, summary in splits.items():
        per_split[split] = [{"length": bound,
                             "examples": sum(s["examples"] for s in summary["shards"] if s["length"] == bound),
                             "shards": sum(1 for s in summary["shards"] if s["length"] == bound)}
                            for bound in spec.length_buckets]
    return {"bounds": list(spec.length_buckets), "splits": per_split}


def _padding(spec: DatasetSpec, histograms: dict[str, length_buckets.LengthCounts]) -> dict[str, Any]:
    """Per split: valid and stored values, the padding fraction, and what the fraction would
    be with 1, 2, 4 and 8 buckets chosen from the training lengths (to see what buckets buy)."""
    train = histograms[outputs.TRAIN]
    what_if = {n: length_buckets.optimal_bounds(train, spec.max_length, n) for n in length_buckets.WHAT_IF}
    return {split: length_buckets.padding_figures(hist, spec.step_size, spec.bucket_bounds, what_if)
            for split, hist in histograms.items()}


def _write_statistics(output_dir: str, spec: DatasetSpec) -> dict[str, Any] | None:
    """Writes stats/SPLIT.pb for every split; returns the train/eval drift (None without eval)."""
    stats = feature_stats.merge_partials(output_dir, spec)
    for split, split_stats in stats.items():
        feature_stats.write_stats(feature_stats.stats_path(output_dir, split), split, split_stats)
    if outputs.EVAL not in stats or outputs.TRAIN not in stats:
        return None
    return drift.compare(stats[outputs.TRAIN], stats[outputs.EVAL]).to_json()


def _check_bad_fraction(m: dict[str, Any], limit: float) -> None:
    for split, s in m["splits"].items():
        sample_fraction = s["examples_quarantined"] / max(1, s["examples_read"])
        file_fraction = s["files_quarantined"] / max(1, s["files_matched"])
        if max(sample_fraction, file_fraction) > limit:
            raise RunFailedError(
                f"{split}: {s['examples_quarantined']}/{s['examples_read']} examples and "
                f"{s['files_quarantined']}/{s['files_matched']} files quarantined, more than "
                f"--max_bad_fraction={limit}; see {m['quarantine']['file']} (no {outputs.SUCCESS} written)")


def publish(output_dir: str, spec: DatasetSpec, matched: dict[str, list[FileTask]], argv: list[str],
            compression: str, max_bad_fraction: float, timings: dict[str, float | None]) -> dict[str, Any]:
    """Writes the quarantine file (sorted), the statistics of every split (stats/), the
    manifest and report.html, removes the work directory, and marks the run complete with
    _SUCCESS unless more input was bad than `max_bad_fraction` allows.

    Args:
      timings: seconds per phase, written into the manifest.

    Returns:
      The manifest.

    Raises:
      RunFailedError: too much bad input (the manifest is written, _SUCCESS is not).
    """
    steps = records.read_reports(output_dir)
    quarantine = sorted((r for r in steps if isinstance(r, QuarantineRecord)),
                        key=lambda q: (q.split, q.file, q.sample_index is not None, q.sample_index or 0, q.reason))
    write_text(FileSystems.join(output_dir, outputs.QUARANTINE_DIR, outputs.QUARANTINE_FILE),
               "".join(q.to_json() + "\n" for q in quarantine))
    m = build_manifest(output_dir, spec, matched, argv, compression, steps)
    m["drift"] = _write_statistics(output_dir, spec)
    # Seconds per phase (None: not seen by the launcher, on runners whose workers are elsewhere).
    m["timings"] = {k: (round(v, 2) if v is not None else None) for k, v in timings.items()}
    write_text(FileSystems.join(output_dir, outputs.MANIFEST), json.dumps(m, indent=2) + "\n")
    page.write_report(output_dir)
    FileSystems.delete([FileSystems.join(output_dir, outputs.WORK_DIR)])
    _check_bad_fraction(m, max_bad_fraction)
    write_text(FileSystems.join(output_dir, outputs.SUCCESS), "")
    return m
