"""Per-sample checks, truncation and batching of a file's decoded samples.

A file is all-or-nothing at the file level (`layouts.plan_file`), then each sample is
checked here: empty, too large, NaN/Inf, bad label id. Valid samples longer than
`max_length` are truncated and counted. Valid samples are cut into `SampleBatch`es of
roughly `chunk_bytes`, the unit both tf.Transform passes work on.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from beam_pipeline import errors
from beam_pipeline.reading.layouts import FilePlan
from transforms.features import DatasetSpec


@dataclasses.dataclass
class SampleBatch:
    """Samples of one file, flattened along time: the rows of sample i are
    values[offsets[i]:offsets[i + 1]] with offsets the cumulative `lengths`."""

    path: str
    indices: np.ndarray   # int64 [n], sample index within the file
    values: np.ndarray    # [sum(lengths), *trailing_shape], the file's dtype
    lengths: np.ndarray   # int64 [n]
    labels: np.ndarray    # int64 [n], or object array of bytes [n]

    def __len__(self) -> int:
        return len(self.lengths)

    def value_splits(self, step_size: int) -> np.ndarray:
        """int64 [n + 1]: where each sample starts in the flattened values (each time step
        holds step_size values), the row splits of the raw `x` RaggedTensor."""
        splits = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.lengths * step_size, out=splits[1:])
        return splits


@dataclasses.dataclass
class Selection:
    """Result of checking a file's samples: what is kept, what is refused and why."""

    batches: list[SampleBatch]
    refusals: list[errors.BadInputError]   # one per refused sample, with sample_index set
    truncated: int                         # kept samples cut to max_length


def check_file_against_spec(plan: FilePlan, spec: DatasetSpec) -> None:
    """Refuses a file whose dtype, trailing shape or label kind differs from the dataset's."""
    if plan.trailing_shape != spec.trailing_shape:
        raise errors.BadInputError(errors.SHAPE_MISMATCH, f"trailing shape {list(plan.trailing_shape)} "
                                   f"differs from the dataset's {list(spec.trailing_shape)}")
    if plan.dtype.name != spec.source_dtype:
        raise errors.BadInputError(errors.DTYPE_MISMATCH, f"dtype {plan.dtype.name} differs from the "
                                   f"dataset's {spec.source_dtype}")
    if plan.label_kind != spec.label_kind:
        raise errors.BadInputError(errors.BAD_LABEL, f"{plan.label_kind} labels in a dataset of "
                                   f"{spec.label_kind} labels")


def _segment_any(row_flags: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each segment [start, end) of rows, whether any row flag is set."""
    counts = np.concatenate([[0], np.cumsum(row_flags, dtype=np.int64)])
    return counts[ends] - counts[starts] > 0


def gather_rows(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rows [starts[i], starts[i] + lengths[i]) of every i, concatenated (one fancy index)."""
    total = int(lengths.sum())
    new_starts = np.cumsum(lengths) - lengths
    rows = np.repeat(starts - new_starts, lengths) + np.arange(total, dtype=np.int64)
    return values[rows]


def _problems(plan: FilePlan, values: np.ndarray, lengths: np.ndarray, labels: np.ndarray, offsets: np.ndarray,
              row_bytes: int, max_sample_bytes: int) -> list[tuple[np.ndarray, str, str]]:
    """(mask over the samples, reason, message) of each check, in the order refusals are named."""
    problems: list[tuple[np.ndarray, str, str]] = [
        (lengths == 0, errors.EMPTY_SAMPLE, "the sample has zero time steps"),
        (lengths * row_bytes > max_sample_bytes, errors.TOO_LARGE,
         f"the sample exceeds --max_sample_bytes={max_sample_bytes}"),
    ]
    # The whole-array check first: 15x cheaper than the per-row one, which only bad data pays.
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad_rows = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        problems.append((_segment_any(bad_rows, offsets[:-1], offsets[1:]), errors.NON_FINITE,
                         "the sample holds NaN or Inf"))
    if plan.label_kind == "int":
        problems.append((labels < 0, errors.BAD_LABEL, "negative class id"))
    if plan.label_kind == "float":
        problems.append((~np.isfinite(labels), errors.BAD_LABEL, "the regression target is NaN or Inf"))
    return problems


def _refuse(problems: list[tuple[np.ndarray, str, str]], index: np.ndarray
            ) -> tuple[np.ndarray, list[errors.BadInputError]]:
    """Which samples are refused, and one error per refused sample (its first problem)."""
    refused = np.zeros(len(index), dtype=bool)
    refusals = []
    for mask, reason, message in problems:
        new = mask & ~refused
        refusals.extend(errors.BadInputError(reason, message, int(i)) for i in index[new])
        refused |= mask
    return refused, refusals


def select_samples(path: str, plan: FilePlan, values: np.ndarray, spec: DatasetSpec,
                   max_sample_bytes: int, chunk_bytes: int,
                   sample_range: tuple[int, int] | None = None) -> Selection:
    """Checks each sample, truncates long ones, and batches the valid ones.

    Args:
      path: the file, for the batches' provenance.
      plan: the file's layout, lengths and labels.
      values: the rows of the samples in `sample_range`, [sum(lengths[start:stop]), *trailing]
        (what `plan.read_values(sample_range)` returns).
      spec: the dataset spec (max_length).
      max_sample_bytes: samples with more data than this are refused.
      chunk_bytes: target size of one batch's values.
      sample_range: [start, stop) of the samples to consider; all when None.
    """
    start, stop = sample_range or (0, plan.num_samples)
    lengths, labels = plan.lengths[start:stop], plan.labels[start:stop]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    row_bytes = max(1, int(np.prod(spec.trailing_shape, dtype=np.int64))) * values.dtype.itemsize
    index = np.arange(start, stop, dtype=np.int64)
    refused, refusals = _refuse(_problems(plan, values, lengths, labels, offsets, row_bytes, max_sample_bytes), index)
    keep = ~refused
    kept_lengths = np.minimum(lengths[keep], spec.max_length)
    truncated = int(np.count_nonzero(lengths[keep] > spec.max_length))
    if truncated == 0 and keep.all():
        # The common case: everything valid, take contiguous views instead of copies.
        kept_values = values
    else:
        kept_values = gather_rows(values, offsets[:-1][keep], kept_lengths)
    batches = _cut_batches(SampleBatch(path, index[keep], kept_values, kept_lengths, labels[keep]),
                           row_bytes, chunk_bytes)
    return Selection(batches, refusals, truncated)


def _cut_batches(samples: SampleBatch, row_bytes: int, chunk_bytes: int) -> list[SampleBatch]:
    """Cuts samples into consecutive batches of about chunk_bytes of values (at least one
    sample each): views of `samples`, no copies."""
    bounds = samples.value_splits(1)
    sample_bytes = bounds[1:] * row_bytes   # bytes up to the end of each sample
    batches, first = [], 0
    while first < len(samples):
        budget = (sample_bytes[first - 1] if first else 0) + chunk_bytes
        last = max(first + 1, int(np.searchsorted(sample_bytes, budget, side="right")))
        batches.append(SampleBatch(samples.path, samples.indices[first:last],
                                   samples.values[bounds[first]:bounds[last]],
                                   samples.lengths[first:last], samples.labels[first:last]))
        first = last
    return batches


class Pool:
    """Collects items until their bytes reach a budget, then hands them over together.

    TensorFlow runs its graph once per batch: pooling the small batches of many tiny files
    turns thousands of graph calls into a few.
    """

    def __init__(self, budget_bytes: int):
        self._budget = budget_bytes
        self._items: list = []
        self._bytes = 0

    def add(self, item, nbytes: int) -> list:
        """Adds an item; returns the pooled items once the budget is reached, else []."""
        self._items.append(item)
        self._bytes += nbytes
        return self.take() if self._bytes >= self._budget else []

    def take(self) -> list:
        """Returns and forgets everything pooled so far."""
        items, self._items, self._bytes = self._items, [], 0
        return items


def concat_batches(batches: list[SampleBatch]) -> SampleBatch:
    """One batch holding the samples of several (possibly from different files, then the
    path is left empty: only per-file bookkeeping needs it)."""
    if len(batches) == 1:
        return batches[0]
    paths = {b.path for b in batches}
    return SampleBatch(paths.pop() if len(paths) == 1 else "",
                       np.concatenate([b.indices for b in batches]),
                       np.concatenate([b.values for b in batches]),
                       np.concatenate([b.lengths for b in batches]),
                       np.concatenate([b.labels for b in batches]))
