"""tf.train.Example encoding and TFRecord framing of a whole batch at once, in NumPy.

Every record of a batch has the same layout: the same keys, a float feature of the same
size, int64 scalars. Only the int64 values (and, through their varint sizes, a few length
fields) differ between records. So the bytes around the float payload are computed for
the whole batch with array operations, and each record costs one copy of its valid values
and one CRC32C call (both in C), instead of a Python loop building and joining pieces
(measured on 2,000 records of [200, 16]: 0.85 -> 0.46 CPU s per GB of raw values, and
the float32 padded batch is never built).

The bytes equal `Example.SerializeToString(deterministic=True)` (map entries in sorted
key order) framed as `TFRecordWriter` frames them, which the tests check against
TensorFlow itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import google_crc32c
import numpy as np

_CRC_MASK_DELTA = np.uint32(0xA282EAD8)
_TAG_LEN = 1 << 3 | 2       # field 1, length-delimited (Example.features, Features.feature entry, key, list)
_TAG_VALUE = 2 << 3 | 2     # field 2, length-delimited (map entry value; Feature.float_list)
_TAG_INT64_LIST = 3 << 3 | 2
_MAX_VARINT = 10
# Values from which a varint takes one more byte: 2**7, 2**14, ..., 2**63.
_VARINT_STEPS = np.array([1 << (7 * k) for k in range(1, _MAX_VARINT)], dtype=np.uint64)


def varint(value: int) -> bytes:
    """Protobuf varint; negative int64 values take 10 bytes (two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def len_field(field_tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, length, payload."""
    return varint(field_tag) + varint(len(payload)) + payload


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """int64 [n]: bytes of each int64 value's varint (1..10)."""
    unsigned = values.astype(np.int64).view(np.uint64)
    return 1 + (unsigned[:, None] >= _VARINT_STEPS).sum(axis=1)


def _varint_rows(values: np.ndarray, width: int) -> np.ndarray:
    """uint8 [n, width]: each int64 value's varint, zeros after it."""
    rest = values.astype(np.int64).view(np.uint64).copy()
    out = np.zeros((len(rest), width), np.uint8)
    for k in range(width):
        more = rest >= 0x80
        out[:, k] = (rest & 0x7F).astype(np.uint8) | (more.astype(np.uint8) << 7)
        rest >>= np.uint64(7)
    return out


def _masked(crcs: np.ndarray) -> np.ndarray:
    """TFRecord's masked CRC32C of uint32 CRCs, as little-endian bytes [n, 4]."""
    crcs = crcs.astype(np.uint32)
    masked = ((crcs >> np.uint32(15)) | (crcs << np.uint32(17))) + _CRC_MASK_DELTA   # wraps mod 2**32
    return masked.astype("<u4").view(np.uint8).reshape(-1, 4)


def _int64_entry_head(key: bytes, size: int) -> bytes:
    """A map entry {key, Feature{int64_list{[v]}}} up to the varint of v, which takes `size` bytes."""
    int64_list = varint(_TAG_LEN) + varint(size)                 # Int64List.value, packed: [v]
    feature = varint(_TAG_INT64_LIST) + varint(len(int64_list) + size)
    value = feature + int64_list
    entry = len_field(_TAG_LEN, key) + varint(_TAG_VALUE) + varint(len(value) + size) + value
    return varint(_TAG_LEN) + varint(len(entry) + size) + entry


def _float_entry_head(key: bytes, payload_bytes: int) -> bytes:
    """A map entry {key, Feature{float_list{packed floats}}} up to its float32 payload."""
    float_list = varint(_TAG_LEN) + varint(payload_bytes)          # FloatList.value, packed
    feature = varint(_TAG_VALUE) + varint(len(float_list) + payload_bytes)
    value = feature + float_list
    entry = len_field(_TAG_LEN, key) + varint(_TAG_VALUE) + varint(len(value) + payload_bytes) + value
    return varint(_TAG_LEN) + varint(len(entry) + payload_bytes) + entry


class _Bytes:
    """Per-record byte strings of varying widths, laid out one after another within each record."""

    def __init__(self, n: int):
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []   # (uint8 [n or 1, w], int64 widths [n])
        self.widths = np.zeros(n, np.int64)

    def add(self, rows: np.ndarray, widths: np.ndarray) -> None:
        self.parts.append((rows, widths))
        self.widths += widths

    def scatter(self, out: np.ndarray, starts: np.ndarray) -> None:
        """Writes each record's strings at its start in `out`."""
        for rows, widths in self.parts:
            cols = np.arange(rows.shape[1])
            valid = cols < widths[:, None]
            out[(starts[:, None] + cols)[valid]] = np.broadcast_to(rows, valid.shape)[valid]
            starts = starts + widths


def _constant(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.frombuffer(data, np.uint8)[None, :], np.full(n, len(data), np.int64)


class ExampleFramer:
    """Encodes batches of (float tensor, scalars) rows as framed TFRecords of tf.train.Examples.

    Args:
      float_key: name of the float feature.
      int_keys: names of the scalar features: int64, except those in `float_scalars`.
      float_scalars: names among `int_keys` stored as one float32 (regression targets).
    """

    def __init__(self, float_key: str, int_keys: Iterable[str], float_scalars: Iterable[str] = ()):
        self._float_key = float_key.encode()
        self._float_scalars = {k.encode() for k in float_scalars}
        self._int_keys = [k.encode() for k in int_keys]
        self._order = sorted([self._float_key, *self._int_keys])
        # Each int64 entry's bytes before its value, for every varint size of the value.
        self._int_heads = {key: [_int64_entry_head(key, size) for size in range(1, _MAX_VARINT + 1)]
                           for key in self._int_keys}

    def _int_entry(self, key: bytes, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (head, value) byte strings of an int64 entry, per record."""
        sizes = _varint_sizes(values)
        heads = self._int_heads[key]
        table = np.zeros((_MAX_VARINT, max(len(h) for h in heads)), np.uint8)
        for i, head in enumerate(heads):
            table[i, :len(head)] = np.frombuffer(head, np.uint8)
        head_widths = np.array([len(h) for h in heads], np.int64)[sizes - 1]
        return [(table[sizes - 1], head_widths), (_varint_rows(values, int(sizes.max())), sizes)]

    def frame(self, values: np.ndarray, lengths: np.ndarray, steps: int, ints: dict[str, np.ndarray]) -> np.ndarray:
        """Encodes and frames a batch of records.

        Args:
          values: [sum(lengths), ...] float32: the records' valid steps, one record after another.
          lengths: [n] valid steps of each record; its float feature holds them followed by
            zeros up to `steps` steps.
          steps: steps of every record's float feature (>= each length).
          ints: feature name -> [n] int64 values (float32 for `float_scalars`).

        Returns:
          uint8 [total bytes]: the framed records, in order, ready to append to a TFRecord file.
        """
        n = len(lengths)
        if n == 0:
            return np.zeros(0, np.uint8)
        flat = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
        step_bytes = int(np.prod(values.shape[1:], dtype=np.int64)) * 4
        payload = steps * step_bytes
        before, after = _Bytes(n), _Bytes(n)   # each record's bytes before and after its payload
        side = before
        for key in self._order:
            if key == self._float_key:
                side.add(*_constant(_float_entry_head(key, payload), n))
                side = after
            elif key in self._float_scalars:   # a fixed-size entry: its head, then the float32's 4 bytes
                side.add(*_constant(_float_entry_head(key, 4), n))
                side.add(np.asarray(ints[key.decode()], "<f4").view(np.uint8).reshape(n, 4), np.full(n, 4, np.int64))
            else:
                for part in self._int_entry(key, np.asarray(ints[key.decode()])):
                    side.add(*part)
        features = before.widths + payload + after.widths
        feature_sizes = _varint_sizes(features)
        record = 1 + feature_sizes + features                       # Example{features: ...}
        head = _Bytes(n)
        head.add(record.astype("<u8").view(np.uint8).reshape(n, 8), np.full(n, 8, np.int64))
        unique, index = np.unique(record, return_inverse=True)
        length_crcs = np.array([google_crc32c.value(struct.pack("<Q", int(u))) for u in unique], np.uint32)
        head.add(_masked(length_crcs)[index.reshape(-1)], np.full(n, 4, np.int64))
        head.add(*_constant(varint(_TAG_LEN), n))
        head.add(_varint_rows(features, int(feature_sizes.max())), feature_sizes)
        ends = np.cumsum(record + 16)
        starts = ends - record - 16
        out = np.empty(int(ends[-1]), np.uint8)
        head.scatter(out, starts)
        payload_at = starts + head.widths + before.widths
        before.scatter(out, starts + head.widths)
        after.scatter(out, payload_at + payload)
        crcs = self._copy_payloads(out, flat.view(np.uint8), lengths * step_bytes, payload_at, payload,
                                   starts + 12, ends - 4)
        out[(ends - 4)[:, None] + np.arange(4)] = _masked(crcs)
        return out

    @staticmethod
    def _copy_payloads(out: np.ndarray, source: np.ndarray, valid: np.ndarray, payload_at: np.ndarray,
                       payload: int, record_starts: np.ndarray, record_ends: np.ndarray) -> np.ndarray:
        """Copies each record's valid bytes, zero-fills its padding and returns the CRC32C of
        each record (from the Example's first byte to its last): one pass per record."""
        target, src = memoryview(out), memoryview(source)
        zeros = memoryview(bytes(payload))
        crc = google_crc32c.value
        crcs = np.empty(len(valid), np.uint32)
        read = 0
        for i, (size, at, first, last) in enumerate(zip(valid.tolist(), payload_at.tolist(),
                                                         record_starts.tolist(), record_ends.tolist())):
            target[at:at + size] = src[read:read + size]
            target[at + size:at + payload] = zeros[:payload - size]
            read += size
            crcs[i] = crc(out[first:last])   # google_crc32c takes ndarrays, not memoryviews
        return crcs
