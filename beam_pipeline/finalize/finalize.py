"""Finalizing a run, once every shard is written: a straight sequence of steps.

    1. the quarantine file (sorted)            4. report.html
    2. each split's statistics, the drift,     5. the scratch space removed
       the schema and eval's anomalies         6. _SUCCESS, unless there was too much bad input
    3. manifest.json

Everything it needs travels in a `RunInfo` (picklable) and the output directory itself: it is
the job's last step (pipeline.FinalizeFn), run on whichever worker the runner picks.
"""

from __future__ import annotations

import dataclasses

from apache_beam.io.filesystems import FileSystems

from beam_pipeline.errors import RunFailedError
from beam_pipeline.finalize import manifest_builder, scratch
from beam_pipeline.finalize.records import QuarantineRecord
from beam_pipeline.planning.plan import FileTask
from beam_pipeline.report import page
from beam_pipeline.statistics import anomalies, drift, drift_bins, feature_stats, schema
from transforms import features, outputs
from transforms.features import DatasetSpec
from transforms.manifest import DriftReport, Manifest


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What finalizing a run needs besides its output directory's contents.

    Attributes:
      output_dir: the run's --output_dir.
      spec: the dataset spec the job ran with.
      matched: every input file, per split.
      argv: the command line, recorded in the manifest.
      compression: of the shards ("none" or "gzip").
      max_bad_fraction: the most of a split's samples or files that may be quarantined.
    """

    output_dir: str
    spec: DatasetSpec
    matched: dict[str, list[FileTask]]
    argv: list[str]
    compression: str
    max_bad_fraction: float


def _write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def _write_quarantine(output_dir: str, found: list) -> None:
    quarantine = sorted((r for r in found if isinstance(r, QuarantineRecord)),
                        key=lambda q: (q.split, q.file, q.sample_index is not None, q.sample_index or 0, q.reason))
    _write_text(FileSystems.join(output_dir, outputs.QUARANTINE_DIR, outputs.QUARANTINE_FILE),
                "".join(q.to_json() + "\n" for q in quarantine))


def _write_statistics(output_dir: str, spec: DatasetSpec) -> DriftReport | None:
    """Writes stats/SPLIT.pb for every split, the schema inferred from train and, with an
    eval split, eval's anomalies against it; returns the train/eval drift (None without eval)."""
    stats = feature_stats.merge_partials(scratch.read_partial_stats(output_dir), spec)
    if outputs.TRAIN in stats:
        for split_stats in stats.values():
            drift_bins.add_bin_features(stats[outputs.TRAIN], split_stats)
    for split, split_stats in stats.items():
        feature_stats.write_stats(feature_stats.stats_path(output_dir, split), split, split_stats)
    if outputs.TRAIN not in stats:
        return None
    report = drift.compare(stats[outputs.TRAIN], stats[outputs.EVAL]) if outputs.EVAL in stats else None
    inferred = schema.for_validation(schema.infer_schema(stats[outputs.TRAIN]), report)
    schema.write_text_proto(schema.stats_file(output_dir, outputs.SCHEMA), inferred)
    if report is not None:
        schema.write_text_proto(schema.stats_file(output_dir, outputs.ANOMALIES),
                                anomalies.validate(stats[outputs.EVAL], inferred, report))
    return report


def _label_vocabulary(output_dir: str, spec: DatasetSpec) -> list[str] | None:
    if spec.label_kind != "string":
        return None
    import tensorflow_transform as tft

    words = tft.TFTransformOutput(output_dir).vocabulary_by_name(features.LABEL_VOCABULARY)
    return [w.decode("utf-8", "replace") for w in words]


class TooMuchBadInputError(RunFailedError):
    """More of a split was quarantined than --max_bad_fraction allows: the run's manifest and
    quarantine file stay, to show what was wrong; _SUCCESS is not written."""


def too_much_bad_input(m: Manifest, limit: float) -> str | None:
    """Why the run's output must not be used (more bad input than `limit`), or None."""
    for split, s in m.splits.items():
        sample_fraction = s.examples_quarantined / max(1, s.examples_read)
        file_fraction = s.files_quarantined / max(1, s.files_matched)
        if max(sample_fraction, file_fraction) > limit:
            return (f"{split}: {s.examples_quarantined}/{s.examples_read} examples and "
                    f"{s.files_quarantined}/{s.files_matched} files quarantined, more than "
                    f"--max_bad_fraction={limit}; see {m.quarantine.file} (no {outputs.SUCCESS} written)")
    return None


def finalize_run(run: RunInfo, timings: dict[str, float | None] | None) -> Manifest:
    """Writes everything but the shards and the transform, and marks the run complete unless
    it had too much bad input (then the manifest is written, _SUCCESS is not: the job's last
    step runs this, and a retry cannot change the input; a waiting launcher reports why).

    Args:
      timings: seconds per phase, for the manifest (None where nobody measured them).

    Returns:
      The manifest.
    """
    out = run.output_dir
    found = scratch.read_records(out)
    _write_quarantine(out, found)
    drift_report = _write_statistics(out, run.spec)
    m = manifest_builder.build_manifest(run.spec, run.matched, run.argv, run.compression, found,
                                        _label_vocabulary(out, run.spec), drift_report, timings)
    _write_text(FileSystems.join(out, outputs.MANIFEST), m.dumps())
    page.write_report(out)
    scratch.remove(out)
    if too_much_bad_input(m, run.max_bad_fraction) is None:
        _write_text(FileSystems.join(out, outputs.SUCCESS), "")
    return m
