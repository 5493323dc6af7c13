"""Length buckets: padding each sample to the smallest of a few bounds instead of to max_length.

On long-tailed sequence data most of a fixed-length output is padding. With bounds
b_1 < ... < b_N = max_length, a sample of length T goes to the smallest bound >= T and is
padded to it; each bucket's shards hold one static shape. The bounds are chosen from the
training length histogram to minimize the stored (padded) size: an exact dynamic program
over the distinct lengths (optimal bounds always sit on a length that occurs, plus
max_length). Used by the launcher (choosing bounds, the manifest's padding figures) and by
the workers (assigning samples).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# `auto` adds buckets while each new one saves at least this fraction of the stored size...
AUTO_MIN_SAVING = 0.05
# ... and stops at this many.
MAX_BUCKETS = 16
# The manifest says what the padding would be with this many buckets.
WHAT_IF = (1, 2, 4, 8)


@dataclasses.dataclass(frozen=True)
class LengthCounts:
    """How many samples have each length: distinct lengths, ascending, and their counts."""

    lengths: np.ndarray   # int64 [m]
    counts: np.ndarray    # int64 [m]

    @classmethod
    def of(cls, lengths: np.ndarray) -> LengthCounts:
        values, counts = np.unique(np.asarray(lengths, dtype=np.int64), return_counts=True)
        return cls(values, counts.astype(np.int64))

    @classmethod
    def from_counts(cls, counts: dict[int, int]) -> LengthCounts:
        keys = sorted(k for k, v in counts.items() if v)
        return cls(np.array(keys, dtype=np.int64), np.array([counts[k] for k in keys], dtype=np.int64))

    @property
    def steps(self) -> int:
        """Valid time steps of all samples."""
        return int((self.lengths * self.counts).sum())

    def stored_steps(self, bounds: tuple[int, ...]) -> int:
        """Time steps stored when each sample is padded to its bucket's bound."""
        if not len(self.lengths):
            return 0
        return int((np.asarray(bounds)[assign(self.lengths, bounds)] * self.counts).sum())


def assign(lengths: np.ndarray, bounds: tuple[int, ...]) -> np.ndarray:
    """Index of each sample's bucket: the smallest bound >= its length (the last for longer)."""
    index = np.searchsorted(np.asarray(bounds), lengths, side="left")
    return np.minimum(index, len(bounds) - 1)


def _candidates(hist: LengthCounts, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Possible bounds (ascending, the last max_length) and the samples each would be the
    smallest bound for. Beyond _MAX_CANDIDATES distinct lengths, neighbours are merged into
    the largest of them (their samples could not use a smaller bound anyway)."""
    keep = hist.lengths < max_length
    lengths = np.append(hist.lengths[keep], max_length)
    counts = np.append(hist.counts[keep], hist.counts[~keep].sum())
    if len(lengths) > _MAX_CANDIDATES:
        groups = np.arange(len(lengths)) * _MAX_CANDIDATES // len(lengths)
        last = np.flatnonzero(np.diff(groups, append=_MAX_CANDIDATES))
        lengths, counts = lengths[last], np.add.reduceat(counts, np.flatnonzero(np.diff(groups, prepend=-1)))
    return lengths, counts


# The dynamic program holds a [candidates, candidates] table per step.
_MAX_CANDIDATES = 1024


def optimal_bounds(hist: LengthCounts, max_length: int, n: int) -> tuple[int, ...]:
    """The at most n bounds (the largest max_length) that minimize the stored steps of `hist`.

    Dynamic program over the candidate bounds L_0 < ... < L_{m-1} (see _candidates):
    cost[j] is the least stored size of the samples up to L_j in k buckets whose largest
    bound is L_j; one more bucket (L_i, L_j] adds L_j * (samples in it). O(n m^2) in NumPy.
    """
    lengths, counts = _candidates(hist, max_length)
    m = len(lengths)
    cumulative = np.cumsum(counts)
    cost = lengths * cumulative                       # one bucket
    parents = []
    upper = np.triu(np.ones((m, m), dtype=bool), k=1)   # i < j
    for _ in range(1, min(n, m)):
        options = np.where(upper, cost[:, None] + lengths[None, :] * (cumulative[None, :] - cumulative[:, None]),
                           np.iinfo(np.int64).max)
        parent = options.argmin(axis=0)
        better = options[parent, np.arange(m)] < cost
        cost = np.where(better, options[parent, np.arange(m)], cost)
        parents.append(np.where(better, parent, -1))   # -1: one bucket fewer was as good
    bounds, j = [m - 1], m - 1
    for parent in reversed(parents):
        if parent[j] >= 0:
            j = int(parent[j])
            bounds.append(j)
    return tuple(int(lengths[i]) for i in sorted(bounds))


def auto_bounds(hist: LengthCounts, max_length: int) -> tuple[int, ...]:
    """Adds buckets while each new one saves at least AUTO_MIN_SAVING of the stored size
    (measured: 5 buckets on a heavy-tailed length distribution, 3 on a uniform one)."""
    bounds = (max_length,)
    for n in range(2, MAX_BUCKETS + 1):
        candidate = optimal_bounds(hist, max_length, n)
        stored = hist.stored_steps(bounds)
        if stored - hist.stored_steps(candidate) < AUTO_MIN_SAVING * stored:
            break
        bounds = candidate
    return bounds


def explicit_bounds(values: list[int], max_length: int) -> tuple[int, ...]:
    """The given bounds below max_length, plus max_length: the largest bound is always max_length."""
    return tuple(sorted({v for v in values if 0 < v < max_length} | {max_length}))


def padding_figures(hist: LengthCounts, step_size: int, bounds: tuple[int, ...],
                    what_if: dict[int, tuple[int, ...]]) -> dict:
    """Valid and stored values and the padding fraction; and the fraction with other bounds."""

    def fraction(stored: int) -> float:
        return round(1 - hist.steps / stored, 6) if stored else 0.0

    stored = hist.stored_steps(bounds)
    return {
        "valid_values": hist.steps * step_size,
        "stored_values": stored * step_size,
        "padding_fraction": fraction(stored),
        "padding_fraction_with_buckets": {str(n): fraction(hist.stored_steps(b)) for n, b in what_if.items()},
    }
