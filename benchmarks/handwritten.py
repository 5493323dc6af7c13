"""The hand-written baseline: one process, two passes of NumPy over ragged .npz files.

`python -m benchmarks.handwritten --input 'data/train-*.npz' --output_dir base/ --num_shards 8`

What a competent user writes instead of Beam + tf.Transform, doing the same job:
  pass 1: np.load each file; float64 per-channel count, mean and M2 over the valid values
          (merged across files with Chan's formula), and the longest sample.
  pass 2: np.load each file again; normalize in float64 exactly as the transform graph does
          ((x - mean) / std, a constant channel becomes 0), cast to float32, zero-pad every
          sample to the longest length, and write tf.train.Examples (`x` float32
          [max_length, F], `length` int64, `label` int64) whose bytes are built record by
          record in Python (no protobuf API), spread over shards of equal record counts. The
          encoder is the per-record one our pipeline used until it framed whole batches in
          NumPy, kept here unchanged so the yardstick does not move between rounds.

Output: OUTPUT_DIR/data/train-SSSSS-of-NNNNN.tfrecord, parsable with the transformed feature
spec of our pipeline, and OUTPUT_DIR/stats.json (examples, max_length, count, mean, std).
Input: the ragged layout only (`x` [sum T_i, F], `lengths` [N], `y` [N] integer labels), no
validation (no NaN checks, no quarantine, no checksums): the benchmark's data is clean. It
loads no TensorFlow and starts no other process.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import struct
import sys
import time
from collections.abc import Iterable

import google_crc32c
import numpy as np

from beam_pipeline.passes.tfrecord import len_field, varint
from transforms import features

_CRC_MASK_DELTA = 0xA282EAD8


@functools.lru_cache(maxsize=1 << 16)
def _int64_entry(key: bytes, value: int) -> bytes:
    # Features.feature map entry {key, Feature{int64_list: Int64List{value: [value]}}}
    feature = len_field(3 << 3 | 2, len_field(1 << 3 | 2, varint(value)))
    return len_field(1 << 3 | 2, len_field(1 << 3 | 2, key) + len_field(2 << 3 | 2, feature))


class ExampleEncoder:
    """Encodes (float tensor, int64 scalars) rows as serialized tf.train.Examples, record by record."""

    def __init__(self, float_key: str, int_keys: Iterable[str]):
        self._float_key = float_key.encode()
        self._int_keys = [k.encode() for k in int_keys]
        self._order = sorted([self._float_key, *self._int_keys])
        self._heads: dict[int, bytes] = {}

    def _float_head(self, width: int) -> bytes:
        """The map entry's bytes before a row's float32 payload (the same for every row)."""
        if width not in self._heads:
            payload_len = 4 * width
            float_list_head = varint(1 << 3 | 2) + varint(payload_len)
            feature_len = len(float_list_head) + payload_len
            feature_head = varint(2 << 3 | 2) + varint(feature_len)   # Feature.float_list
            key_part = len_field(1 << 3 | 2, self._float_key)
            value_len = len(feature_head) + feature_len
            entry_len = len(key_part) + len(varint(2 << 3 | 2)) + len(varint(value_len)) + value_len
            head = (varint(1 << 3 | 2) + varint(entry_len) + key_part
                    + varint(2 << 3 | 2) + varint(value_len) + feature_head + float_list_head)
            self._heads[width] = head
        return self._heads[width]

    def encode(self, floats: np.ndarray, ints: dict[str, np.ndarray]) -> list[bytes]:
        """One serialized Example per row of floats [batch, ...] and ints (name -> [batch] int64)."""
        batch = len(floats)
        rows = np.ascontiguousarray(floats, dtype="<f4").reshape(batch, -1)
        head = self._float_head(rows.shape[1])
        row_bytes = rows.shape[1] * 4
        payload = memoryview(rows).cast("B")
        columns = [(k.encode(), np.asarray(v).tolist()) for k, v in ints.items()]
        position = {key: i for i, key in enumerate(self._order)}
        float_at = position[self._float_key]
        ordered = sorted(columns, key=lambda c: position[c[0]])
        prefix = varint(1 << 3 | 2)
        out = []
        for i in range(batch):
            # Length/label entries repeat a lot: cached, so a record costs one join.
            parts = [_int64_entry(key, values[i]) for key, values in ordered]
            parts[float_at:float_at] = [head, payload[i * row_bytes:(i + 1) * row_bytes]]
            features = b"".join(parts)
            out.append(prefix + varint(len(features)) + features)
        return out


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF)


def frame_records(records: Iterable[bytes]) -> bytes:
    """TFRecord framing: length, masked CRC32C of the length, data, masked CRC32C of the data."""
    parts = []
    for record in records:
        length = struct.pack("<Q", len(record))
        parts += [length, _masked_crc(length), record, _masked_crc(record)]
    return b"".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """The script's flags."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.handwritten", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", action="append", required=True, metavar="GLOB",
                   help="ragged .npz files (x, lengths, y); repeatable")
    p.add_argument("--output_dir", required=True, help="where data/ and stats.json go")
    p.add_argument("--num_shards", type=int, default=8, help="TFRecord shards to write")
    return p


def _load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(path) as f:
        return f["x"], f["lengths"].astype(np.int64), f["y"].astype(np.int64)


def compute_statistics(paths: list[str]) -> dict:
    """Pass 1: float64 per-channel statistics of the valid values, sample count, longest sample.

    Args:
      paths: the input files.

    Returns:
      {"examples", "max_length", "count", "mean", "std"} (mean and std as float64 arrays).
    """
    n, mean, m2 = 0, None, None
    examples, longest = 0, 0
    for path in paths:
        x, lengths, _ = _load(path)
        examples += len(lengths)
        longest = max(longest, int(lengths.max(initial=0)))
        values = x.astype(np.float64)
        part_mean = values.mean(axis=0)
        centered = values - part_mean
        part_m2 = np.einsum("ij,ij->j", centered, centered)
        if mean is None:
            n, mean, m2 = len(values), part_mean, part_m2
            continue
        # Chan's parallel merge: per-file partial results stay exact enough in float64
        # without a second pass over the values.
        total = n + len(values)
        delta = part_mean - mean
        mean = mean + delta * (len(values) / total)
        m2 = m2 + part_m2 + delta ** 2 * (n * len(values) / total)
        n = total
    return {"examples": examples, "max_length": longest, "count": n, "mean": mean, "std": np.sqrt(m2 / max(n, 1))}


def transform_file(x: np.ndarray, lengths: np.ndarray, stats: dict) -> np.ndarray:
    """Normalizes a file's values and zero-pads every sample: [N, max_length, F] float32.

    The arithmetic is the transform graph's (float64, divide by std, a constant channel
    gives 0), so both outputs hold the same float32 values.
    """
    max_length = stats["max_length"]
    std = stats["std"]
    varies = std > 0
    normalized = (x.astype(np.float64) - stats["mean"]) / np.where(varies, std, 1.0)
    if not varies.all():
        normalized[:, ~varies] = 0.0
    padded = np.zeros((len(lengths), max_length, x.shape[1]), dtype=np.float32)
    # One fancy-index assignment places every valid row: row t of sample i goes to
    # flat row i * max_length + t.
    starts = np.cumsum(lengths) - lengths
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64) * max_length - starts, lengths)
    rows += np.arange(len(x), dtype=np.int64)
    padded.reshape(-1, x.shape[1])[rows] = normalized
    return padded


class ShardWriter:
    """Appends records to `num_shards` files of equal record counts (the total is known)."""

    def __init__(self, data_dir: str, total: int, num_shards: int):
        self._paths = [os.path.join(data_dir, f"train-{i:05d}-of-{num_shards:05d}.tfrecord")
                       for i in range(num_shards)]
        self._bounds = [total * i // num_shards for i in range(num_shards + 1)]
        self._index = 0
        self._written = 0
        self._file = open(self._paths[0], "wb")

    def write(self, records: list[bytes]) -> None:
        """Writes records, moving to the next shard at each boundary."""
        first = 0
        while first < len(records):
            while self._written >= self._bounds[self._index + 1]:
                self._next_shard()
            take = min(len(records) - first, self._bounds[self._index + 1] - self._written)
            self._file.write(frame_records(records[first:first + take]))
            first += take
            self._written += take

    def _next_shard(self) -> None:
        self._file.close()
        self._index += 1
        self._file = open(self._paths[self._index], "wb")

    def close(self) -> None:
        """Closes the last shard and creates the shards that got no record, if any."""
        self._file.close()
        for path in self._paths[self._index + 1:]:
            open(path, "wb").close()


def run(paths: list[str], output_dir: str, num_shards: int) -> dict:
    """Both passes; returns the statistics written to stats.json."""
    stats = compute_statistics(paths)
    data_dir = os.path.join(output_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    encoder = ExampleEncoder(features.X, [features.LENGTH, features.LABEL])
    writer = ShardWriter(data_dir, stats["examples"], num_shards)
    for path in paths:
        x, lengths, y = _load(path)
        padded = transform_file(x, lengths, stats)
        writer.write(encoder.encode(padded, {features.LENGTH: lengths, features.LABEL: y}))
    writer.close()
    out = {**stats, "mean": stats["mean"].tolist(), "std": stats["std"].tolist()}
    with open(os.path.join(output_dir, "stats.json"), "w") as f:
        json.dump(out, f, indent=2)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    args = build_parser().parse_args(argv)
    paths = sorted({p for pattern in args.input for p in glob.glob(pattern)})
    if not paths:
        sys.exit(f"error: no file matches {args.input}")
    if args.num_shards < 1:
        sys.exit("error: --num_shards must be >= 1")
    start = time.perf_counter()
    stats = run(paths, args.output_dir, args.num_shards)
    print(f"{stats['examples']} examples from {len(paths)} files into {args.num_shards} shards "
          f"in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
