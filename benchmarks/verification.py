"""Checking every side's output against the baseline's: all examples in NUM_SHARDS shards, the
same records (labels, lengths and values, compared order-independently within float tolerance),
the transformed feature spec, and our manifests' statistics.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct
from typing import Any

import numpy as np

from benchmarks.measurement import Side
from benchmarks.synthetic_data import MAX_LENGTH, NUM_FEATURES, NUM_SHARDS, Dataset
from transforms import features
from transforms.manifest import read_local


def count_records(paths: list[str]) -> int:
    """Counts TFRecords by walking the frames' length fields (no data is read or parsed)."""
    count = 0
    for path in paths:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            position = 0
            while position < size:
                (length,) = struct.unpack("<Q", f.read(8))
                position += 8 + 4 + length + 4
                f.seek(position)
                count += 1
    return count


def shard_paths(output_dir: str) -> list[str]:
    """The train shards of a pipeline or baseline output directory."""
    return sorted(glob.glob(os.path.join(output_dir, "data", "train-*.tfrecord")))


def transformed_feature_spec() -> dict[str, Any]:
    """The records every side writes: what our pipeline's transformed_metadata describes."""
    import tensorflow as tf

    return {features.X: tf.io.FixedLenFeature([MAX_LENGTH, NUM_FEATURES], tf.float32),
            features.LENGTH: tf.io.FixedLenFeature([], tf.int64),
            features.LABEL: tf.io.FixedLenFeature([], tf.int64)}


@dataclasses.dataclass(frozen=True)
class RecordSummary:
    """What an output's train records hold, in a form that does not depend on their order.

    Beam spreads records over shards in no fixed order, so records are compared as sorted
    sequences: if every value of one side is within e of the other side's, the two sorted
    sequences are too, element by element.

    Attributes:
      keys: (label, length) of every record, sorted.
      sums: every record's sum of x (float64), sorted by (label, length, sum), which ties the
        values to their label and length.
      squares: every record's sum of x squared, sorted.
      channel_sums: per channel, the sum of x over all records (about 0 once z-scored).
      channel_squares: per channel, the sum of x squared (the count of valid values once z-scored).
      padding_nonzero: values past a record's length that are not 0.
    """

    keys: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    channel_sums: np.ndarray
    channel_squares: np.ndarray
    padding_nonzero: int


def summarize_records(output_dir: str) -> RecordSummary:
    """Parses every train record of an output with transformed_feature_spec() and summarizes them."""
    import tensorflow as tf

    spec = transformed_feature_spec()
    records = tf.data.TFRecordDataset(shard_paths(output_dir)).batch(512).map(lambda b: tf.io.parse_example(b, spec))
    labels, lengths, sums, squares = [], [], [], []
    channel_sums = channel_squares = np.zeros(NUM_FEATURES)
    padding_nonzero = 0
    for batch in records.as_numpy_iterator():
        x = batch[features.X].astype(np.float64)
        labels.append(batch[features.LABEL])
        lengths.append(batch[features.LENGTH])
        x2 = np.square(x)
        sums.append(x.sum(axis=(1, 2)))
        squares.append(x2.sum(axis=(1, 2)))
        channel_sums = channel_sums + x.sum(axis=(0, 1))
        channel_squares = channel_squares + x2.sum(axis=(0, 1))
        padding_nonzero += np.count_nonzero(x[np.arange(MAX_LENGTH) >= lengths[-1][:, None]])
    label, length, total = (np.concatenate(a) for a in (labels, lengths, sums))
    order = np.lexsort((total, length, label))
    return RecordSummary(keys=np.stack([label, length], axis=1)[order], sums=total[order],
                         squares=np.sort(np.concatenate(squares)), channel_sums=channel_sums,
                         channel_squares=channel_squares, padding_nonzero=padding_nonzero)


@dataclasses.dataclass(frozen=True)
class Verified:
    """What was checked of one side's output against the baseline's.

    Attributes:
      records: records in its train shards (equal to the dataset's examples).
      max_record_diff: the largest difference of a record's sum of x, or sum of x squared,
        from the baseline's (records in RecordSummary's order).
      max_channel_diff: the largest difference of a per-channel sum of x, or of x squared.
      max_abs_mean_diff: the manifest's mean against the baseline's; None without a manifest.
      max_abs_std_diff: the manifest's std against the baseline's; None without a manifest.
    """

    records: int
    max_record_diff: float
    max_channel_diff: float
    max_abs_mean_diff: float | None = None
    max_abs_std_diff: float | None = None


# Float tolerance of the record comparison: every side normalizes in float64 and rounds to
# float32, so a value differs from the baseline's by at most an ulp (where the float64
# statistics differ in their last bits); a record sums 3,200 of them.
RECORD_TOLERANCE = {"rtol": 1e-6, "atol": 1e-3}


def _max_diff(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    return float(np.max(np.abs(np.subtract(a, b)), initial=0.0))


def compare_records(summary: RecordSummary, base: RecordSummary) -> tuple[float, float]:
    """Asserts that a side's records hold the baseline's values; returns the largest record and channel
    differences."""
    assert summary.padding_nonzero == base.padding_nonzero == 0, (summary.padding_nonzero, base.padding_nonzero)
    np.testing.assert_array_equal(summary.keys, base.keys)
    for ours, theirs in ((summary.sums, base.sums), (summary.squares, base.squares),
                         (summary.channel_sums, base.channel_sums), (summary.channel_squares, base.channel_squares)):
        np.testing.assert_allclose(ours, theirs, **RECORD_TOLERANCE)
    return (max(_max_diff(summary.sums, base.sums), _max_diff(summary.squares, base.squares)),
            max(_max_diff(summary.channel_sums, base.channel_sums),
                _max_diff(summary.channel_squares, base.channel_squares)))


def compare_manifest(output_dir: str, base: dict[str, Any]) -> tuple[float, float]:
    """Asserts that our pipeline's manifest reports the baseline's counts and statistics; returns the largest
    mean and std differences."""
    manifest = read_local(output_dir)
    assert manifest.splits["train"].examples_written == base["examples"]
    assert manifest.max_length == base["max_length"] == MAX_LENGTH
    stats = manifest.statistics.x
    assert stats.count == base["count"], (stats.count, base["count"])
    np.testing.assert_allclose(stats.mean, base["mean"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats.std, base["std"], rtol=1e-9, atol=1e-9)
    return _max_diff(stats.mean, base["mean"]), _max_diff(stats.std, base["std"])


def verify_outputs(sides: list[Side], output_dirs: dict[str, str], dataset: Dataset) -> dict[str, Verified]:
    """Asserts that every side wrote the baseline's records: every example, in NUM_SHARDS shards, with the
    baseline's values; that tf.Transform's metadata describes those records; and that our manifests hold the
    baseline's statistics.

    Returns:
      What was checked, per side other than the baseline.
    """
    import tensorflow_transform as tft

    for side in sides:
        paths = shard_paths(output_dirs[side.key])
        assert len(paths) == NUM_SHARDS, (side.key, paths)
        records = count_records(paths)
        assert records == dataset.examples, (side.key, records, dataset.examples)
    base_dir = output_dirs["baseline"]
    with open(os.path.join(base_dir, "stats.json")) as f:
        base_stats = json.load(f)
    assert base_stats["examples"] == dataset.examples
    base = summarize_records(base_dir)
    checked = {}
    for side in sides:
        if side.key == "baseline":
            continue
        output_dir = output_dirs[side.key]
        assert tft.TFTransformOutput(output_dir).transformed_feature_spec() == transformed_feature_spec(), side.key
        record_diff, channel_diff = compare_records(summarize_records(output_dir), base)
        manifest_diffs = compare_manifest(output_dir, base_stats) if side.writes_manifest else (None, None)
        checked[side.key] = Verified(dataset.examples, record_diff, channel_diff, *manifest_diffs)
    return checked


def print_verified(checked: dict[str, Verified], records: int) -> None:
    """One line per side: what its output was checked against."""
    print(f"verified: {records} records in {NUM_SHARDS} shards on every side")
    for key, v in checked.items():
        manifest = ("" if v.max_abs_mean_diff is None else
                    f"; manifest statistics agree (max |mean diff| {v.max_abs_mean_diff:.1e}, "
                    f"max |std diff| {v.max_abs_std_diff:.1e})")
        print(f"  {key}: records hold the baseline's values (max |record sum diff| {v.max_record_diff:.1e}, "
              f"max |channel sum diff| {v.max_channel_diff:.1e}){manifest}", flush=True)
