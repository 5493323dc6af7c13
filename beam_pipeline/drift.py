"""Train/eval comparison of two splits' statistics, computed as TFDV's comparators do.

Numeric features (each channel of `x`, `length`): Jensen-Shannon divergence (log base 2,
capped at 1) between the STANDARD histograms, which is TFDV's `jensen_shannon_divergence`
comparator (anomalies/metrics.cc): point and infinite buckets are set aside, the two
histograms are re-bucketed on the union of their boundaries assuming values spread
uniformly within a bucket, point masses and infinite counts come back as extra buckets,
and both are normalized. Categorical `label`: L-infinity distance between the two
normalized class frequencies (TFDV's `infinity_norm` comparator), and the class where it
is reached.

A feature is flagged when its distance exceeds the threshold of its metric. The defaults
were measured (docs/report.md): JSD stays below ~0.005 between two samples of one
distribution at the sample data's size, and reaches ~0.02 for a mean shift of a third of a
standard deviation; so 0.02 flags shifts of about that size and more.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from tensorflow_metadata.proto.v0 import statistics_pb2

from beam_pipeline import histograms
from beam_pipeline.feature_stats import feature_name

JSD = "jensen_shannon_divergence"
L_INFINITY = "l_infinity"
DEFAULT_JSD_THRESHOLD = 0.02
DEFAULT_L_INFINITY_THRESHOLD = 0.1


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """How far one feature's eval distribution is from its train distribution.

    Attributes:
      feature: the feature's name (e.g. "x[3]", "length", "label").
      metric: JSD or L_INFINITY.
      distance: the metric's value, in [0, 1].
      threshold: the value above which the feature is flagged.
      drifted: distance > threshold.
      where: for L_INFINITY, the label whose frequency differs most; else None.
    """

    feature: str
    metric: str
    distance: float
    threshold: float
    drifted: bool
    where: str | None = None


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """The comparison of every feature both splits describe."""

    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> list[str]:
        """Names of the flagged features."""
        return [f.feature for f in self.features if f.drifted]

    def get(self, feature: str) -> FeatureDrift | None:
        return next((f for f in self.features if f.feature == feature), None)

    def to_json(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "features": [dataclasses.asdict(f) for f in self.features]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftReport:
        return cls(tuple(FeatureDrift(**f) for f in data["features"]))


def _strip(histogram: statistics_pb2.Histogram) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, float]:
    """(low, high, count) of the finite, non-point buckets; point masses {value: count};
    the count in infinite buckets (TFDV's StripPointAndInfiniteBuckets)."""
    low, high, count = histograms.buckets(histogram)
    finite = np.isfinite(low) & np.isfinite(high)
    point = finite & (low == high)
    keep = finite & ~point
    points: dict[float, float] = {}
    for v, c in zip(low[point].tolist(), count[point].tolist()):
        points[v] = points.get(v, 0.0) + c
    return low[keep], high[keep], count[keep], points, float(count[~finite].sum())


def _rebucket(low: np.ndarray, high: np.ndarray, count: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Counts on the buckets between consecutive `bounds` (a superset of the histogram's
    boundaries), each bucket's count spread by width (TFDV's RebucketHistogram)."""
    mid = (bounds[:-1] + bounds[1:]) / 2
    if not len(low):
        return np.zeros(len(mid))
    i = np.clip(np.searchsorted(low, mid, side="right") - 1, 0, len(low) - 1)
    inside = (mid >= low[i]) & (mid <= high[i])
    return np.where(inside, count[i] * np.diff(bounds) / (high[i] - low[i]), 0.0)


def _aligned(a: statistics_pb2.Histogram, b: statistics_pb2.Histogram) -> tuple[np.ndarray, np.ndarray]:
    """The two histograms' counts on common buckets (TFDV's AlignHistograms)."""
    la, ha, ca, points_a, ia = _strip(a)
    lb, hb, cb, points_b, ib = _strip(b)
    bounds = np.union1d(np.concatenate([la, ha]), np.concatenate([lb, hb]))
    parts_a = [_rebucket(la, ha, ca, bounds)] if len(bounds) > 1 else []
    parts_b = [_rebucket(lb, hb, cb, bounds)] if len(bounds) > 1 else []
    for v in sorted(points_a.keys() | points_b.keys()):
        parts_a.append([points_a.get(v, 0.0)])
        parts_b.append([points_b.get(v, 0.0)])
    for inf_a, inf_b in ((ia, 0.0), (0.0, ib)):
        if inf_a or inf_b:
            parts_a.append([inf_a])
            parts_b.append([inf_b])
    return np.concatenate(parts_a or [[0.0]]), np.concatenate(parts_b or [[0.0]])


def _jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in bits of two count vectors, normalized here, capped at 1 as TFDV does."""
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("Unable to normalize an empty histogram")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        nz = (x > 0) & (m > 0)
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return min((kl(p) + kl(q)) / 2, 1.0)


def jensen_shannon(a: statistics_pb2.Histogram, b: statistics_pb2.Histogram) -> float:
    """TFDV's Jensen-Shannon divergence of two histograms."""
    return _jensen_shannon(*_aligned(a, b))


def l_infinity(a: statistics_pb2.RankHistogram, b: statistics_pb2.RankHistogram) -> tuple[float, str]:
    """TFDV's L-infinity distance of two categorical distributions (each normalized by its
    own total) and the label where it is reached."""
    counts_a = {x.label: x.sample_count for x in a.buckets}
    counts_b = {x.label: x.sample_count for x in b.buckets}
    total_a, total_b = sum(counts_a.values()) or 1.0, sum(counts_b.values()) or 1.0
    diffs = {k: abs(counts_a.get(k, 0.0) / total_a - counts_b.get(k, 0.0) / total_b)
             for k in sorted(counts_a.keys() | counts_b.keys())}
    label = max(diffs, key=diffs.get, default="")
    return diffs.get(label, 0.0), label


def _compare_feature(name: str, a: statistics_pb2.FeatureNameStatistics, b: statistics_pb2.FeatureNameStatistics,
                     jsd_threshold: float, l_inf_threshold: float) -> FeatureDrift | None:
    if a.HasField("string_stats") and b.HasField("string_stats"):
        distance, label = l_infinity(a.string_stats.rank_histogram, b.string_stats.rank_histogram)
        return FeatureDrift(name, L_INFINITY, distance, l_inf_threshold, distance > l_inf_threshold, label)
    ha = histograms.find(a.num_stats, statistics_pb2.Histogram.STANDARD)
    hb = histograms.find(b.num_stats, statistics_pb2.Histogram.STANDARD)
    if ha is None or hb is None or not ha.buckets or not hb.buckets:
        return None
    distance = jensen_shannon(ha, hb)
    return FeatureDrift(name, JSD, distance, jsd_threshold, distance > jsd_threshold)


def compare(train: statistics_pb2.DatasetFeatureStatistics, evaluation: statistics_pb2.DatasetFeatureStatistics,
            threshold: float = DEFAULT_JSD_THRESHOLD,
            label_threshold: float = DEFAULT_L_INFINITY_THRESHOLD) -> DriftReport:
    """Compares every feature both splits describe (in train's order).

    Args:
      train, evaluation: the two splits' statistics.
      threshold: JSD above which a numeric feature is flagged.
      label_threshold: L-infinity distance above which a categorical feature is flagged.
    """
    eval_features = {feature_name(f): f for f in evaluation.features}
    result = []
    for a in train.features:
        name = feature_name(a)
        if name in eval_features:
            drift = _compare_feature(name, a, eval_features[name], threshold, label_threshold)
            if drift is not None:
                result.append(drift)
    return DriftReport(tuple(result))
