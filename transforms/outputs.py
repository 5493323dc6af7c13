"""A preprocessing run's output directory: the contract between the pipeline and its readers.

The pipeline writes this layout and the trainer (and any other reader) finds its way with
it; both import the names from here, so producer and consumer cannot drift apart. No heavy
imports: the pipeline's CLI checks the output directory before TensorFlow loads.

    _SUCCESS                  written last, only when everything else is complete
    manifest.json             inputs, counts, shards, statistics (typed: transforms/manifest.py)
    transform_fn/, transformed_metadata/   tf.Transform's own layout
    data/SPLIT-[LBBBBB-]IIIII-of-NNNNN.tfrecord[.gz]   the shards (LBBBBB: a length bucket)
    quarantine/quarantine.jsonl            refused files and samples
    stats/SPLIT.pb            raw-data statistics of each split (TFDV's DatasetFeatureStatisticsList, binary)
    stats/schema.pbtxt        the schema inferred from the train split (tensorflow_metadata Schema, text)
    stats/anomalies.pbtxt     eval against that schema, drift included (tensorflow_metadata Anomalies, text)
    report.html               one self-contained page summarizing the run (beam_pipeline/report/page.py)
    .work/                    scratch space while a run is in progress
"""

from __future__ import annotations

SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"
DATA_DIR = "data"
QUARANTINE_DIR = "quarantine"
QUARANTINE_FILE = "quarantine.jsonl"
TRANSFORM_FN_DIR = "transform_fn"
TRANSFORMED_METADATA_DIR = "transformed_metadata"
WORK_DIR = ".work"
STATS_DIR = "stats"
STATS_SUFFIX = ".pb"
SCHEMA = "schema.pbtxt"
ANOMALIES = "anomalies.pbtxt"
REPORT = "report.html"

# Everything a run may leave in the output directory: cleared before a run, so stale shards
# of an earlier run can never mix with new ones. Nothing else in the directory is touched.
ENTRIES = (DATA_DIR, TRANSFORM_FN_DIR, TRANSFORMED_METADATA_DIR, QUARANTINE_DIR, STATS_DIR, REPORT, WORK_DIR, MANIFEST,
           SUCCESS)

TRAIN = "train"
EVAL = "eval"
SPLITS = (TRAIN, EVAL)

COMPRESSIONS = ("none", "gzip")
# Bytes a record adds to its float payload (Example keys, tags, lengths, the int64 features
# and TFRecord framing), roughly: enough to size shards and shuffle buffers.
RECORD_OVERHEAD = 64


def shard_suffix(compression: str) -> str:
    """The shards' file extension for a manifest's `compression` ("none" or "gzip")."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    return ".tfrecord.gz" if compression == "gzip" else ".tfrecord"


def shard_name(split: str, index: int, count: int, compression: str, length: int | None = None) -> str:
    """A shard's file name inside DATA_DIR: train-00003-of-00008.tfrecord, or with length
    buckets train-L00128-00003-of-00008.tfrecord for the bucket of samples padded to 128."""
    bucket = f"L{length:05d}-" if length is not None else ""
    return f"{split}-{bucket}{index:05d}-of-{count:05d}{shard_suffix(compression)}"
