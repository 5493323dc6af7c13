"""manifest.json: what went in, what came out, the statistics used; then _SUCCESS.

Built by the driver from the reports the pipeline wrote, after the pipeline finished.
Counts are reconciled here: for every split, examples read = written + quarantined.
"""

from __future__ import annotations

import collections
import datetime
import json
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_pipeline import reader
from beam_pipeline.pipeline import REPORTS_PREFIX
from transforms import features
from transforms.features import DatasetSpec
from transforms.outputs import QUARANTINE_DIR, QUARANTINE_FILE, WORK_DIR

FORMAT_VERSION = 1


def read_json_lines(pattern: str) -> list[dict[str, Any]]:
    """Reads every JSON line of the files matching a pattern."""
    rows = []
    for result in FileSystems.match([pattern]):
        for meta in result.metadata_list:
            text = reader.read_bytes(meta.path).decode("utf-8")
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def write_text(path: str, text: str) -> None:
    """Writes a small text file through FileSystems."""
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def _split_summary(split: str, tasks: list[reader.FileTask], file_reports: list[dict],
                   shard_reports: list[dict]) -> dict[str, Any]:
    paths = {t.path for t in tasks}
    failed = {r["path"] for r in file_reports if r["error"] is not None}
    summary = {
        "files_matched": len(paths),
        "files_read": len(paths - failed),
        "files_quarantined": len(failed),
        "examples_read": sum(r["samples"] for r in file_reports),
        "examples_written": sum(r["written"] for r in file_reports),
        "examples_quarantined": sum(r["quarantined"] for r in file_reports),
        "examples_truncated": sum(r["truncated"] for r in file_reports),
        "shards": sorted(({"file": r["file"], "examples": r["examples"]} for r in shard_reports),
                         key=lambda s: s["file"]),
    }
    reported = {r["path"] for r in file_reports}
    if reported != paths:
        raise RuntimeError(f"{split}: files without a report: {sorted(paths - reported)[:5]}")
    if summary["examples_read"] != summary["examples_written"] + summary["examples_quarantined"]:
        raise RuntimeError(f"{split}: counts do not reconcile: {summary}")
    if sum(s["examples"] for s in summary["shards"]) != summary["examples_written"]:
        raise RuntimeError(f"{split}: shard counts do not add up to examples written")
    return summary


def build_manifest(output_dir: str, spec: DatasetSpec, splits: dict[str, list[reader.FileTask]],
                   argv: list[str], label_vocabulary: list[str] | None, compression: str) -> dict[str, Any]:
    """Assembles the manifest from the pipeline's reports.

    Raises:
      RuntimeError: if any count fails to reconcile (a bug, never bad input).
    """
    reports = read_json_lines(FileSystems.join(output_dir, WORK_DIR, REPORTS_PREFIX + "*"))
    by_kind = collections.defaultdict(list)
    for r in reports:
        by_kind[r["kind"]].append(r)
    stats = by_kind["stats"][0]
    quarantine = read_json_lines(FileSystems.join(output_dir, QUARANTINE_DIR, QUARANTINE_FILE))
    split_summaries = {
        split: _split_summary(split, tasks, [r for r in by_kind["file"] if r["split"] == split],
                              [r for r in by_kind["shard"] if r["split"] == split])
        for split, tasks in splits.items()
    }
    inputs = {}
    for r in sorted(by_kind["file"], key=lambda r: r["path"]):
        inputs.setdefault(r["path"], {"path": r["path"], "split": r["split"], "bytes": r["bytes"],
                                      "sha256": r["sha256"]})
    if spec.label_kind == "string":
        num_classes = len(label_vocabulary or [])
    else:
        num_classes = max((int(k) for k in stats["labels"]), default=-1) + 1
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
                **{k: stats[k] for k in ("mean", "std", "min", "max", "count")},
            },
            "train_label_counts": stats["labels"],
            "train_longest_sample": stats["longest"],
        },
        "splits": split_summaries,
        "quarantine": {
            "file": f"{QUARANTINE_DIR}/{QUARANTINE_FILE}",
            "records": len(quarantine),
            "reasons": dict(collections.Counter(q["reason"] for q in quarantine)),
        },
        "inputs": list(inputs.values()),
    }
