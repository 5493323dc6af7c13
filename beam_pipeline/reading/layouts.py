"""The five file layouts: from an opened NumPy file to samples, labels and lengths.

1. dense     `x` [N, T, ...] (or [N]) and `y` [N] in one file;
2. ragged    `x` [sum(T_i), ...] with `lengths` [N] and `y` [N];
3. per_key   `x_000000`, `x_000001`, ... each [T_i, ...], with `y` [N];
4. per_file  one sample per file, its label from a CSV or the parent directory's name;
5. any of 1-3 with the labels in a sibling file (`--labels_sibling`) instead of `y`.

`plan_file` reads headers and the small arrays (lengths, labels) only, which is all the
scan needs; `FilePlan.read_values` then reads the sample data.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from beam_pipeline import errors
from beam_pipeline.reading import npy_io

LAYOUTS = ("auto", "dense", "ragged", "per_key", "per_file")
# Numeric kinds accepted as sample values: bool, signed/unsigned ints, floats.
_VALUE_KINDS = frozenset("biuf")
# Index arrays (labels, lengths) are read whole; this bounds what a lying header can cost.
_MAX_INDEX_ENTRIES = 100_000_000


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How to find samples and labels in a file (the CLI's layout flags).

    Attributes:
      layout: one of LAYOUTS; "auto" detects it per file from the keys present.
      x_key: name of the sample array (and prefix of per-key arrays).
      y_key: name of the label array.
      lengths_key: name of the row-lengths array of the ragged layout.
      max_sample_bytes: a sample whose data exceeds this is refused (before reading it).
      max_file_bytes: a file whose decoded arrays exceed this is refused from its headers.
      label_type: "classification" (class ids), "regression" (numeric targets, as float32)
        or "none" (unlabeled: no label array needed; every label is a placeholder 0).
    """

    layout: str = "auto"
    x_key: str = "x"
    y_key: str = "y"
    lengths_key: str = "lengths"
    max_sample_bytes: int = 64 << 20
    max_file_bytes: int = 4 << 30
    label_type: str = "classification"


@dataclasses.dataclass
class FilePlan:
    """One file's layout and index arrays, checked; the sample data is not read yet."""

    layout: str
    dtype: np.dtype
    trailing_shape: tuple[int, ...]
    lengths: np.ndarray          # int64 [N], time steps of each sample
    labels: np.ndarray           # int64 [N], float32 [N] or object array of bytes [N]
    label_kind: str              # "int", "string", "float" or "none" (see DatasetSpec)
    _arrays: list[npy_io.NpyArray]

    @property
    def num_samples(self) -> int:
        return len(self.lengths)

    def read_values(self, sample_range: tuple[int, int] | None = None) -> np.ndarray:
        """Reads the data of samples [start, stop) (all by default), as one array
        [sum(lengths[start:stop]), *trailing_shape]; only those samples are held in memory."""
        start, stop = sample_range or (0, self.num_samples)
        shape = (-1, *self.trailing_shape)
        if self.layout == "per_key":
            parts = [a.read().reshape(shape) for a in self._arrays[start:stop]]
            return np.concatenate(parts) if parts else np.zeros((0, *self.trailing_shape), self.dtype)
        x = self._arrays[0]
        if self.layout == "per_file":
            return x.read().reshape(shape)
        if self.layout == "ragged":
            offsets = np.concatenate([[0], np.cumsum(self.lengths)])
            start, stop = int(offsets[start]), int(offsets[stop])
        return x.read_rows(start, stop).reshape(shape)


def _check_values_dtype(array: npy_io.NpyArray) -> None:
    if array.dtype.kind not in _VALUE_KINDS or (array.dtype.kind == "u" and array.dtype.itemsize > 4):
        raise errors.BadInputError(errors.BAD_DTYPE, f"{array.where}: dtype {array.dtype} is not a supported "
                                   "numeric type (float16/32/64, int8..int64, uint8..uint32, bool)")


def _check_declared_size(arrays: list[npy_io.NpyArray], opts: ReadOptions) -> None:
    """Refuses, from the headers alone, a file whose arrays would exceed --max_file_bytes.

    This is the memory-bomb guard: a tiny file claiming shape (10**12,) is refused here,
    before anything is allocated for it.
    """
    declared = sum(a.nbytes for a in arrays)
    if declared > opts.max_file_bytes:
        raise errors.BadInputError(errors.TOO_LARGE, f"headers declare {declared} bytes of samples, more than "
                                   f"--max_file_bytes={opts.max_file_bytes}")


def _read_index(array: npy_io.NpyArray) -> np.ndarray:
    """Reads a 1-D index array (labels, lengths), refusing absurd sizes before reading."""
    if len(array.shape) == 2 and array.shape[1] == 1:
        pass  # a column vector [N, 1] is accepted as [N]
    elif len(array.shape) != 1:
        raise errors.BadInputError(errors.LABEL_COUNT if array.where else errors.CORRUPT,
                                   f"{array.where}: expected a 1-D array, got shape {array.shape}")
    if array.shape[0] > _MAX_INDEX_ENTRIES:
        raise errors.BadInputError(errors.TOO_LARGE, f"{array.where}: {array.shape[0]} entries")
    return array.read().reshape(-1)


def labels_from_array(raw: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Converts a label array to int64 ids or bytes strings, and says which kind it is."""
    kind = raw.dtype.kind
    if kind in "iub":
        return raw.astype(np.int64), "int"
    if kind == "f":
        ints = np.rint(raw)
        if not np.all(np.isfinite(raw)) or not np.array_equal(ints, raw):
            raise errors.BadInputError(errors.BAD_LABEL, f"{where}: float labels that are not whole numbers")
        return ints.astype(np.int64), "int"
    if kind in "US":
        encoded = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in raw.tolist()]
        return np.array(encoded, dtype=object), "string"
    raise errors.BadInputError(errors.BAD_LABEL, f"{where}: labels of dtype {raw.dtype} are neither ints nor strings")


def targets_from_array(raw: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Converts a regression target array (ints or floats) to float32; non-finite targets
    are refused per sample later (samples.py), not here for the whole file."""
    if raw.dtype.kind not in "iubf":
        raise errors.BadInputError(errors.BAD_LABEL, f"{where}: regression targets of dtype {raw.dtype} "
                                   f"are not numbers")
    return raw.astype(np.float32), "float"


def label_from_text(text: str, label_type: str = "classification") -> tuple[np.ndarray, str]:
    """A one-sample file's label (from a CSV or a directory name): an int if it parses as one;
    a float32 for a regression target."""
    if label_type == "regression":
        try:
            return np.array([float(text)], dtype=np.float32), "float"
        except ValueError:
            raise errors.BadInputError(errors.BAD_LABEL, f"regression target {text!r} is not a number") from None
    try:
        return np.array([int(text)], dtype=np.int64), "int"
    except ValueError:
        return np.array([text.encode("utf-8")], dtype=object), "string"


def _detect(af: npy_io.ArrayFile, opts: ReadOptions, has_file_label: bool) -> str:
    if opts.layout != "auto":
        return opts.layout
    keys = set(af.keys)
    if keys == {npy_io.SINGLE_ARRAY_KEY}:
        return "per_file" if has_file_label else "dense"
    if has_file_label and opts.y_key not in keys:
        return "per_file"
    if opts.x_key in keys:
        return "ragged" if opts.lengths_key in keys else "dense"
    if any(re.fullmatch(re.escape(opts.x_key) + r"_\d+", k) for k in keys):
        return "per_key"
    raise errors.BadInputError(errors.MISSING_KEY, f"no array {opts.x_key!r} (has {sorted(keys)}); "
                               "see --x_key and --layout")


def _x_key(af: npy_io.ArrayFile, opts: ReadOptions) -> str:
    return npy_io.SINGLE_ARRAY_KEY if af.keys == [npy_io.SINGLE_ARRAY_KEY] else opts.x_key


def _per_key_arrays(af: npy_io.ArrayFile, opts: ReadOptions) -> list[npy_io.NpyArray]:
    pattern = re.compile(re.escape(opts.x_key) + r"_(\d+)")
    numbered = sorted((int(m.group(1)), k) for k in af.keys if (m := pattern.fullmatch(k)))
    if not numbered:
        raise errors.BadInputError(errors.MISSING_KEY, f"no arrays named {opts.x_key}_<index>")
    return [af.open(k) for _, k in numbered]


@dataclasses.dataclass(frozen=True)
class _Samples:
    """Where a layout found the samples: their arrays, dtype, trailing shape and lengths."""

    arrays: list[npy_io.NpyArray]
    dtype: np.dtype
    trailing_shape: tuple[int, ...]
    lengths: np.ndarray


def _per_key_samples(af: npy_io.ArrayFile, opts: ReadOptions) -> _Samples:
    arrays = _per_key_arrays(af, opts)
    for a in arrays:
        _check_values_dtype(a)
    shapes = [a.shape if a.shape else (1,) for a in arrays]
    trailing = {s[1:] for s in shapes}
    dtypes = {a.dtype for a in arrays}
    if len(trailing) > 1 or len(dtypes) > 1:
        raise errors.BadInputError(errors.SHAPE_MISMATCH if len(trailing) > 1 else errors.DTYPE_MISMATCH,
                                   f"per-key samples disagree: shapes {sorted(trailing)}, "
                                   f"dtypes {sorted(map(str, dtypes))}")
    _check_declared_size(arrays, opts)
    return _Samples(arrays, arrays[0].dtype, shapes[0][1:], np.array([s[0] for s in shapes], dtype=np.int64))


def _dense_samples(x: npy_io.NpyArray, af: npy_io.ArrayFile, opts: ReadOptions) -> _Samples:
    shape = x.shape if len(x.shape) != 1 else (x.shape[0], 1)
    if not shape:
        raise errors.BadInputError(errors.SHAPE_MISMATCH, "x is a scalar; expected [N, T, ...]")
    if shape[0] > _MAX_INDEX_ENTRIES:
        raise errors.BadInputError(errors.TOO_LARGE, f"{shape[0]} samples in one file")
    return _Samples([x], x.dtype, shape[2:], np.full(shape[0], shape[1], dtype=np.int64))


def _per_file_samples(x: npy_io.NpyArray, af: npy_io.ArrayFile, opts: ReadOptions) -> _Samples:
    shape = x.shape or (1,)
    return _Samples([x], x.dtype, shape[1:], np.array([shape[0]], dtype=np.int64))


def _ragged_samples(x: npy_io.NpyArray, af: npy_io.ArrayFile, opts: ReadOptions) -> _Samples:
    if opts.lengths_key not in af.keys:
        raise errors.BadInputError(errors.MISSING_KEY, f"ragged layout without {opts.lengths_key!r}")
    raw_lengths = _read_index(af.open(opts.lengths_key))
    if raw_lengths.dtype.kind not in "iu":
        raise errors.BadInputError(errors.BAD_LENGTHS, f"lengths of dtype {raw_lengths.dtype}")
    lengths = raw_lengths.astype(np.int64)
    rows = x.shape[0] if x.shape else 0
    if np.any(lengths < 0):
        where = np.flatnonzero(lengths < 0)[:5].tolist()
        raise errors.BadInputError(errors.BAD_LENGTHS, f"negative lengths at samples {where}")
    if int(lengths.sum()) != rows:
        raise errors.BadInputError(errors.BAD_LENGTHS, f"lengths sum to {int(lengths.sum())} but x has {rows} rows")
    return _Samples([x], x.dtype, x.shape[1:], lengths)


# Layouts whose samples live in one array `x`, and how each finds them.
_SINGLE_ARRAY_LAYOUTS = {"dense": _dense_samples, "per_file": _per_file_samples, "ragged": _ragged_samples}


def _find_samples(layout: str, af: npy_io.ArrayFile, opts: ReadOptions) -> _Samples:
    if layout == "per_key":
        return _per_key_samples(af, opts)
    if layout not in _SINGLE_ARRAY_LAYOUTS:
        raise errors.BadInputError(errors.LAYOUT, f"unknown layout {layout!r}")
    x = af.open(_x_key(af, opts))
    _check_values_dtype(x)
    _check_declared_size([x], opts)
    return _SINGLE_ARRAY_LAYOUTS[layout](x, af, opts)


def _file_labels(af: npy_io.ArrayFile, opts: ReadOptions, sibling: npy_io.ArrayFile | None) -> tuple[np.ndarray, str]:
    """The label array of a file (or of its sibling label file), as ids or strings."""
    holder = sibling if sibling is not None else af
    single = sibling is not None and sibling.keys == [npy_io.SINGLE_ARRAY_KEY]
    y_key = npy_io.SINGLE_ARRAY_KEY if single else opts.y_key
    if y_key not in holder.keys:
        where = "the sibling label file" if sibling is not None else "the file"
        raise errors.BadInputError(errors.MISSING_KEY, f"{where} has no label array {opts.y_key!r}")
    y = holder.open(y_key)
    y.where = y.where or "labels"
    convert = targets_from_array if opts.label_type == "regression" else labels_from_array
    return convert(_read_index(y), "labels")


def plan_file(af: npy_io.ArrayFile, opts: ReadOptions,
              file_label: tuple[np.ndarray, str] | None = None,
              sibling: npy_io.ArrayFile | None = None) -> FilePlan:
    """Works out a file's layout, shapes, lengths and labels, reading no sample data.

    Args:
      af: the opened file.
      opts: layout flags.
      file_label: (labels [1], kind) for a one-sample file, from a CSV or directory name.
      sibling: the opened sibling label file, for the separate-labels layout.

    Raises:
      errors.BadInputError: for anything that makes the whole file unusable.
    """
    layout = _detect(af, opts, file_label is not None)
    found = _find_samples(layout, af, opts)
    if opts.label_type == "none":
        labels, label_kind = np.zeros(len(found.lengths), dtype=np.int64), "none"
    elif file_label is not None and layout == "per_file":
        labels, label_kind = file_label
    else:
        labels, label_kind = _file_labels(af, opts, sibling)
    if len(labels) != len(found.lengths):
        raise errors.BadInputError(errors.LABEL_COUNT, f"{len(labels)} labels for {len(found.lengths)} samples")
    if len(found.lengths) == 0:
        raise errors.BadInputError(errors.EMPTY_FILE, "the file holds zero samples")
    return FilePlan(layout, found.dtype, tuple(int(d) for d in found.trailing_shape), found.lengths, labels,
                    label_kind, found.arrays)
