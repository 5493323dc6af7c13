"""TFDV's histograms from a quantiles sketch's output, vectorized.

TFDV (statistics/generators/basic_stats_generator.py, utils/quantiles_util.py) asks the
sketch for 100 x `num_quantiles_histogram_buckets` quantiles with their cumulative weights,
then derives both histograms from that one answer:
  - QUANTILES: every 100th boundary, each bucket holding the weight between its bounds;
  - STANDARD (equi-width over [min, max]): the weight falling in each bucket when values
    are spread uniformly within each fine quantile bucket (linear interpolation of the CDF).
TFDV does this with Python loops over buckets; here it is one `searchsorted` per histogram.
"""

from __future__ import annotations

import numpy as np
from tensorflow_metadata.proto.v0 import statistics_pb2

# TFDV's _NUM_QUANTILES_FACTOR_FOR_STD_HISTOGRAM: fine quantiles per quantiles-histogram bucket.
QUANTILES_FACTOR = 100

Histogram = statistics_pb2.Histogram


def _proto(kind: int, low: np.ndarray, high: np.ndarray, counts: np.ndarray) -> Histogram:
    histogram = Histogram(type=kind)
    for lo, hi, c in zip(low.tolist(), high.tolist(), counts.tolist()):
        histogram.buckets.add(low_value=lo, high_value=hi, sample_count=c)
    return histogram


def median(quantiles: np.ndarray) -> float:
    """TFDV's find_median: the middle boundary, or the mean of the two middle ones."""
    mid = len(quantiles) // 2
    return float(quantiles[mid] if len(quantiles) % 2 else (quantiles[mid - 1] + quantiles[mid]) / 2)


def quantiles_histogram(quantiles: np.ndarray, cumulative: np.ndarray, num_buckets: int) -> Histogram:
    """TFDV's QUANTILES histogram of `num_buckets` from the fine quantiles (rebin_quantiles,
    then _get_bin_weights: weight of buckets sharing an upper bound is spread evenly over
    them, and the weight at the minimum over the leading buckets equal to the first)."""
    step = (len(quantiles) - 1) // num_buckets
    bounds, cum = quantiles[::step], cumulative[::step].astype(np.float64)
    low, high, counts = bounds[:-1], bounds[1:], np.diff(cum)
    _, group, sizes = np.unique(high, return_inverse=True, return_counts=True)
    counts = (np.bincount(group, weights=counts) / sizes)[group]
    leading = int(np.argmax((low != low[0]) | (high != high[0]))) or len(low)
    counts[:leading] += cum[0] / leading
    return _proto(Histogram.QUANTILES, low, high, counts)


def cdf(quantiles: np.ndarray, cumulative: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Weight of values <= each point, interpolating linearly between distinct quantiles
    (values spread uniformly within a quantile bucket, repeated quantiles as point masses)."""
    j = np.searchsorted(quantiles, points, side="right") - 1
    last = len(quantiles) - 1
    inner = np.clip(j, 0, last - 1)
    q0, q1 = quantiles[inner], quantiles[inner + 1]
    c0, c1 = cumulative[inner], cumulative[inner + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(q1 > q0, (points - q0) / (q1 - q0), 1.0)
    inside = c0 + np.clip(frac, 0.0, 1.0) * (c1 - c0)
    return np.where(j < 0, 0.0, np.where(j >= last, cumulative[-1], inside))


def standard_histogram(quantiles: np.ndarray, cumulative: np.ndarray, minimum: float, maximum: float,
                       num_buckets: int) -> Histogram:
    """TFDV's STANDARD histogram: `num_buckets` equal-width buckets over [minimum, maximum]
    (one bucket when they are equal); the weight at the minimum goes to the first bucket."""
    if minimum == maximum:
        return _proto(Histogram.STANDARD, np.array([minimum]), np.array([maximum]), cumulative[-1:])
    edges = np.linspace(minimum, maximum, num_buckets + 1)
    at_edges = cdf(quantiles, cumulative.astype(np.float64), edges)
    at_edges[0] = 0.0
    return _proto(Histogram.STANDARD, edges[:-1], edges[1:], np.diff(at_edges))


def bins(histogram: Histogram) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A histogram's (low, high, count) arrays."""
    rows = np.array([(b.low_value, b.high_value, b.sample_count) for b in histogram.buckets],
                    dtype=np.float64).reshape(-1, 3)
    return rows[:, 0], rows[:, 1], rows[:, 2]


def boundaries(histogram: Histogram) -> np.ndarray:
    """A histogram's bucket boundaries: the first bucket's low, then every bucket's high."""
    low, high, _ = bins(histogram)
    return np.concatenate([low[:1], high])


def counts_between(quantiles: Histogram, edges: np.ndarray) -> np.ndarray:
    """A QUANTILES histogram's counts in (-inf, e0], (e0, e1], ..., (e_last, inf), its CDF
    interpolated linearly between boundaries as `cdf` does. The count at or below each
    boundary starts at 0 at the minimum (TFDV puts the minimum's count in the first bucket)."""
    _, _, counts = bins(quantiles)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    at_edges = cdf(boundaries(quantiles), cumulative, edges)
    return np.diff(at_edges, prepend=0.0, append=cumulative[-1])


def find(numeric: statistics_pb2.NumericStatistics, kind: int) -> Histogram | None:
    """The histogram of a kind (Histogram.STANDARD or QUANTILES), or None."""
    return next((h for h in numeric.histograms if h.type == kind), None)
