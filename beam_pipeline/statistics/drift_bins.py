"""The drift measure in a form TFDV's comparators compute: `F@train_bins` features.

drift.py measures a numeric feature's drift as the Jensen-Shannon divergence of train's and
eval's counts in train's quantile bins. TFDV's own JSD comparator on a numeric feature
re-buckets both splits' histograms on the union of their bounds, uniform within a bucket;
on clean sample data that reads 0.007-0.026 where this measure reads under 0.002, so a
shared threshold would flag clean channels. For a categorical feature TFDV's JSD is the
formula of drift.py on the two splits' value counts. So each split's statistics get, per
compared feature F, a derived categorical feature `F@train_bins`: the bin index (train's
bins, "0" below its first inner quantile) of each value, with its counts (eval's read off
its own quantiles, as drift.py does). TFDV's JSD between the two splits' `F@train_bins` is
then drift.py's distance, and a comparator on it flags what the report flags.

Like the channels, these features are marked derived (`validation_derived_source`): raw
Examples never have them. Train's depend on train alone; eval's on train's bins.
"""

from __future__ import annotations

import numpy as np
from tensorflow_metadata.proto.v0 import derived_feature_pb2, path_pb2, statistics_pb2

from beam_pipeline.statistics import drift, tfdv_histograms
from beam_pipeline.statistics.feature_stats import CATEGORICAL_INT_DOMAIN, DOMAIN_INFO, feature_name
from transforms import features


def _quantiles(stats: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.Histogram | None:
    if not stats.HasField("num_stats") or stats.validation_derived_source.deriver_name == drift.BINS_DERIVER:
        return None
    histogram = tfdv_histograms.find(stats.num_stats, statistics_pb2.Histogram.QUANTILES)
    return histogram if histogram is not None and histogram.buckets else None


def _bins_feature(source: statistics_pb2.FeatureNameStatistics, counts: np.ndarray
                  ) -> statistics_pb2.FeatureNameStatistics:
    name = feature_name(source)
    result = statistics_pb2.FeatureNameStatistics(type=statistics_pb2.FeatureNameStatistics.INT)
    result.path.step.append(drift.bins_name(name))
    strings = result.string_stats
    strings.common_stats.CopyFrom(source.num_stats.common_stats)
    # TFDV refuses a zero count in a JSD of value counts; an empty bin is an absent value.
    present = [(str(i), float(c)) for i, c in enumerate(counts) if c > 0]
    strings.unique = len(present)
    for rank, (label, count) in enumerate(present):
        strings.top_values.add(value=label, frequency=count)
        strings.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=label, sample_count=count)
    result.custom_stats.add(name=DOMAIN_INFO, str=CATEGORICAL_INT_DOMAIN)
    result.validation_derived_source.CopyFrom(derived_feature_pb2.DerivedFeatureSource(
        deriver_name=drift.BINS_DERIVER, description=f"bin of each value of {name} among train's quantile bins",
        source_path=[path_pb2.Path(step=list(source.path.step))]))
    return result


def add_bin_features(train: statistics_pb2.DatasetFeatureStatistics,
                     split: statistics_pb2.DatasetFeatureStatistics) -> None:
    """Adds to `split` (train itself too) an `F@train_bins` feature per numeric feature F
    that drift.compare measures."""
    by_name = {feature_name(f): f for f in split.features}
    added = []
    for train_feature in train.features:
        name = feature_name(train_feature)
        train_histogram, own = _quantiles(train_feature), by_name.get(name)
        own_histogram = _quantiles(own) if own is not None else None
        if name == features.X or train_histogram is None or own_histogram is None:
            continue
        _, counts = drift.quantile_bin_counts(train_histogram, own_histogram)
        added.append(_bins_feature(own, counts))
    split.features.extend(added)
