"""Statistics of one split's raw data in TFDV's format: a DatasetFeatureStatistics proto.

What the samples look like before normalization (after quarantine and truncation to
`max_length`, i.e. exactly what tf.Transform sees), in the form TFDV's own statistics of
the raw tf.train.Examples take, so that a schema inferred from them validates both:
  x       every valid value of the sample, flattened (the raw Example's feature): FLOAT, or
          INT where the raw Example carries int64 (`DatasetSpec.raw_x_dtype`).
  x[c]    one feature per channel of the last axis (a single `x[0]` for 1-D samples):
          every valid value of that channel. Marked with a `validation_derived_source`
          (deriver CHANNEL_DERIVER, source `x`): TFDV's mark of a feature computed from
          another one for validation, which the data itself does not hold. With
          --per_element too: a few features, not one per element (the per-element mean and
          std stay in manifest.json; the report summarizes them).
  length  valid time steps of each sample (INT).
  label   the class of each sample, as TFDV describes a categorical feature: STRING (the
          raw names) or INT, with top values and a rank histogram. An INT label carries
          TFDV's `domain_info` custom statistic (`int_domain { is_categorical: true }`), so
          that schema inference gives it a categorical int domain, not a string domain
          that does not match its type.
Numeric features carry what TFDV's BasicStatsGenerator fills: count, mean, std_dev, min,
max, num_zeros, median, a STANDARD (equi-width) and a QUANTILES histogram.

Mean, std, min, max and zeros are exact (float64 `Moments`; those of `x` merged from its
channels'). Quantiles and histograms come from tfx_bsl's QuantilesSketch (rank error
`epsilon`) fed whole batches. Feeding it every value costs ~25 s per GB of float32, as
long as a whole pipeline run, so each accumulator feeds its first `exact_rows` rows, then a
seeded random 1 in `sample_every` rows with that weight: small data is sketched in full,
the sketch's share of 1 GB is under 1 s (benchmarks/feature_stats.py; figures in
docs/report.md). `x`'s quantiles are those of its channels' mixture (`pooled_stats`).

`StatsAccumulator` is picklable and mergeable in any order. The job's steps each build one
(the analyze pass for the training split, each eval output shard for its own) and leave it in
the run's scratch space with their records (finalize/scratch.py); finalizing the run merges
them per split (`merge_partials`) and writes each split's statistics (`write_stats`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from tensorflow_metadata.proto.v0 import derived_feature_pb2, path_pb2, statistics_pb2
from tfx_bsl import sketches

from beam_pipeline.reading.samples import SampleBatch
from beam_pipeline.statistics import tfdv_histograms
from beam_pipeline.statistics.moments import Moments
from transforms import features
from transforms.features import DatasetSpec
from transforms.outputs import STATS_DIR, STATS_SUFFIX

FeatureType = statistics_pb2.FeatureNameStatistics
# Values summarized at a time: Moments.of converts to float64 and makes several passes; on
# chunks this size they stay in cache (2.0 instead of 3.2 s/GB on 8 MB batches, measured).
_CHUNK_VALUES = 1 << 18
# The deriver named in the per-channel features' validation_derived_source.
CHANNEL_DERIVER = "npy_tft.channel_of_last_axis"
# TFDV's custom statistic whose text (one Feature.domain_info field) schema inference adopts.
DOMAIN_INFO = "domain_info"
CATEGORICAL_INT_DOMAIN = "int_domain { is_categorical: true }"


@dataclasses.dataclass(frozen=True)
class StatsOptions:
    """How statistics are summarized (TFDV's StatsOptions defaults where it has one).

    Attributes:
      epsilon: rank error of the quantiles sketch.
      num_histogram_buckets: buckets of the STANDARD histograms (TFDV: 10; more here, the
        report plots them and drift is measured on them).
      num_quantiles_histogram_buckets: buckets of the QUANTILES histograms.
      num_values_histogram_buckets: buckets of the values-per-example histogram of `x`.
      num_top_values: label values listed in top_values.
      num_rank_histogram_buckets: label values counted (Misra-Gries buckets; exact counts
        while a split has fewer classes).
      num_kmv_buckets: buckets of the distinct-label sketch (exact below that many).
      exact_rows: rows each accumulator feeds to the sketch in full (>= 1: any non-empty
        stream then reaches the sketch).
      sample_every: beyond them, about one row in this many is fed, with this weight.
    """

    epsilon: float = 0.01
    num_histogram_buckets: int = 30
    num_quantiles_histogram_buckets: int = 10
    num_values_histogram_buckets: int = 10
    num_top_values: int = 20
    num_rank_histogram_buckets: int = 1000
    num_kmv_buckets: int = 1024
    exact_rows: int = 1 << 14
    sample_every: int = 32

    def __post_init__(self) -> None:
        if self.exact_rows < 1 or self.sample_every < 1:
            raise ValueError(f"exact_rows and sample_every must be >= 1, got {self.exact_rows}, {self.sample_every}")


def new_sketch(width: int, options: StatsOptions) -> sketches.QuantilesSketch:
    return sketches.QuantilesSketch(options.epsilon, 1 << 32, width)


def sketch_rows(sketch: sketches.QuantilesSketch, rows: np.ndarray, seen: int, options: StatsOptions) -> None:
    """Feeds [rows, width] values to a sketch whose stream had `seen` rows before: rows up to
    exact_rows go in with weight 1, later ones with probability 1 / sample_every and that
    weight (unbiased; seeded by `seen`, so a stream always gives the same sketch). Random
    rather than every k-th row: a fixed stride aliases with fixed-length samples whose
    length is a multiple of it, and would see only some of their time steps."""
    head = min(max(options.exact_rows - seen, 0), len(rows))
    if head:
        _feed(sketch, rows[:head], 1.0)
    if head < len(rows):
        picked = np.random.default_rng(seen).random(len(rows) - head) < 1 / options.sample_every
        _feed(sketch, rows[head:][picked], float(options.sample_every))


def _feed(sketch: sketches.QuantilesSketch, rows: np.ndarray, weight: float) -> None:
    flat = np.ascontiguousarray(rows).reshape(-1)   # row-major: the column (stream) varies fastest
    if flat.dtype in (np.bool_, np.float16):   # types the sketch cannot cast to float64
        flat = flat.astype(np.float32)
    sketch.AddValues(pa.array(flat), pa.array(np.full(len(rows), weight)))


@dataclasses.dataclass
class ColumnSummary:
    """Exact moments and zero counts of `width` columns, and a quantiles sketch of them
    (one stream per column). `add` and `merge_from` update it in place."""

    moments: Moments
    zeros: np.ndarray                  # int64 [width]
    sketch: sketches.QuantilesSketch   # picklable (tfx_bsl defines __getstate__)

    @classmethod
    def empty(cls, width: int, options: StatsOptions) -> ColumnSummary:
        return cls(Moments.empty(width), np.zeros(width, dtype=np.int64), new_sketch(width, options))

    def add(self, rows: np.ndarray, options: StatsOptions, moments: Moments | None = None) -> None:
        """Adds [rows, width] values; `moments`: theirs, when the caller has them already."""
        sketch_rows(self.sketch, rows, self.moments.count, options)
        step = max(1, _CHUNK_VALUES // max(rows.shape[1], 1))
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            if moments is None:
                self.moments = self.moments.merge(Moments.of(chunk))
            self.zeros += np.count_nonzero(chunk == 0, axis=0)
        if moments is not None:
            self.moments = self.moments.merge(moments)

    def merge_from(self, other: ColumnSummary) -> None:
        self.sketch.Merge(other.sketch)
        self.moments = self.moments.merge(other.moments)
        self.zeros = self.zeros + other.zeros

    def numeric_stats(self, options: StatsOptions) -> list[statistics_pb2.NumericStatistics]:
        """One NumericStatistics per column, as TFDV fills them (without common_stats)."""
        if self.moments.count == 0:
            return [statistics_pb2.NumericStatistics() for _ in range(len(self.moments.mean))]
        return _numeric_stats(self.moments, self.zeros, *self.quantiles(_fine_quantiles(options)), options)

    def pooled_stats(self, options: StatsOptions) -> statistics_pb2.NumericStatistics:
        """The NumericStatistics of all columns' values as one column. The columns' moments
        merge exactly (each is a part of the pooled values); the quantiles are those of the
        columns' mixture, whose CDF is the sum of theirs (interpolated as TFDV does), so they
        keep the columns' rank error."""
        m = self.moments
        if m.count == 0:
            return statistics_pb2.NumericStatistics()
        parts = [Moments(m.count, m.mean[i:i + 1], m.m2[i:i + 1], m.min[i:i + 1], m.max[i:i + 1])
                 for i in range(len(m.mean))]
        num = _fine_quantiles(options)
        q, cum = _mixture_quantiles(*self.quantiles(num), num)
        (stats,) = _numeric_stats(Moments.merge_all(parts, 1), self.zeros.sum(keepdims=True), q[None], cum[None],
                                  options)
        return stats

    def quantiles(self, num_buckets: int) -> tuple[np.ndarray, np.ndarray]:
        """[width, num_buckets + 1] quantile boundaries and cumulative counts. The ends are
        the exact min and max, and counts are scaled to the exact row count (sampled rows
        carry weight sample_every, which overshoots by up to sample_every - 1)."""
        q, w = self.sketch.GetQuantilesAndCumulativeWeights(num_buckets)
        width = len(self.moments.mean)
        q = q.flatten().to_numpy(zero_copy_only=False).reshape(width, -1).copy()
        w = w.flatten().to_numpy(zero_copy_only=False).reshape(width, -1)
        q[:, 0], q[:, -1] = self.moments.min, self.moments.max
        return q, w * (self.moments.count / w[:, -1:])


def _fine_quantiles(options: StatsOptions) -> int:
    """Quantile buckets both histograms are derived from, as TFDV asks its sketch."""
    return tfdv_histograms.QUANTILES_FACTOR * options.num_quantiles_histogram_buckets


# Points at which the mixture CDF of many columns is evaluated, at most (columns x this many
# interpolations: cheap, once per split).
_MAX_MIXTURE_POINTS = 1 << 14


def _mixture_quantiles(quantiles: np.ndarray, cumulative: np.ndarray, num_buckets: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """`num_buckets` + 1 quantile boundaries and cumulative counts of all columns together,
    from each column's [width, k] quantiles: the summed CDF at the columns' boundaries,
    inverted by linear interpolation."""
    points = np.unique(quantiles)
    if len(points) > _MAX_MIXTURE_POINTS:
        points = points[np.linspace(0, len(points) - 1, _MAX_MIXTURE_POINTS).astype(np.int64)]
    total = sum(tfdv_histograms.cdf(q, c.astype(np.float64), points) for q, c in zip(quantiles, cumulative))
    ranks = np.linspace(0.0, float(cumulative[:, -1].sum()), num_buckets + 1)
    bounds = np.interp(ranks, total, points)
    bounds[0], bounds[-1] = quantiles[:, 0].min(), quantiles[:, -1].max()
    return bounds, ranks


def _numeric_stats(m: Moments, zeros: np.ndarray, quantiles: np.ndarray, cumulative: np.ndarray,
                   options: StatsOptions) -> list[statistics_pb2.NumericStatistics]:
    """One NumericStatistics per column of `m`, from its [width, k] fine quantiles."""
    out = []
    for i in range(len(m.mean)):
        q, cum = quantiles[i], cumulative[i]
        out.append(statistics_pb2.NumericStatistics(
            mean=m.mean[i], std_dev=m.std[i], min=m.min[i], max=m.max[i], num_zeros=int(zeros[i]),
            median=tfdv_histograms.median(q),
            histograms=[
                tfdv_histograms.standard_histogram(q, cum, m.min[i], m.max[i], options.num_histogram_buckets),
                tfdv_histograms.quantiles_histogram(q, cum, options.num_quantiles_histogram_buckets)]))
    return out



@dataclasses.dataclass
class LabelSummary:
    """Label counts (Misra-Gries: exact below `num_rank_histogram_buckets` classes),
    distinct labels (KMV: exact below `num_kmv_buckets`) and the total bytes of string labels."""

    top: sketches.MisraGriesSketch
    distinct: sketches.KmvSketch
    total_bytes: int = 0

    @classmethod
    def empty(cls, options: StatsOptions) -> LabelSummary:
        return cls(sketches.MisraGriesSketch(options.num_rank_histogram_buckets),
                   sketches.KmvSketch(options.num_kmv_buckets))

    def add(self, labels: np.ndarray) -> None:
        if labels.dtype == object:
            values = pa.array(labels, type=pa.large_binary())
            self.total_bytes += int(pc.sum(pc.binary_length(values)).as_py() or 0)
        else:
            values = pa.array(labels)
        self.top.AddValues(values)
        self.distinct.AddValues(values)

    def merge_from(self, other: LabelSummary) -> None:
        self.top.Merge(other.top)
        self.distinct.Merge(other.distinct)
        self.total_bytes += other.total_bytes

    def counts(self) -> list[tuple[str, float]]:
        """(label, count), most frequent first (ties in lexicographic order, as TFDV)."""
        rows = self.top.Estimate().to_pylist()
        return [(r["values"].decode("utf-8", "replace"), r["counts"]) for r in rows]

    def string_stats(self, samples: int, options: StatsOptions) -> statistics_pb2.StringStatistics:
        counts = self.counts()
        stats = statistics_pb2.StringStatistics(unique=self.distinct.Estimate())
        if self.total_bytes:
            stats.avg_length = self.total_bytes / max(samples, 1)
        for label, count in counts[:options.num_top_values]:
            stats.top_values.add(value=label, frequency=count)
        for rank, (label, count) in enumerate(counts):
            stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=label, sample_count=count)
        return stats


def _common(samples: int, values: int, min_values: int, max_values: int) -> statistics_pb2.CommonStatistics:
    """Presence and valency of a feature every sample has."""
    return statistics_pb2.CommonStatistics(
        num_non_missing=samples, num_missing=0, min_num_values=min_values, max_num_values=max_values,
        avg_num_values=values / samples if samples else 0.0, tot_num_values=values)


def channel_name(channel: int) -> str:
    """The feature name of channel `channel` of `x`."""
    return f"{features.X}[{channel}]"


@dataclasses.dataclass
class StatsAccumulator:
    """Everything the statistics of a split need, mergeable in any order.

    Attributes:
      spec: the dataset (channels, label kind).
      options: how to summarize.
      x: the values, one column per channel.
      lengths: the samples' lengths, one column (its moments count the samples).
      labels: the samples' labels: class counts, or a numeric column for regression targets.
    """

    spec: DatasetSpec
    options: StatsOptions
    x: ColumnSummary
    lengths: ColumnSummary
    labels: LabelSummary | ColumnSummary

    @classmethod
    def create(cls, spec: DatasetSpec, options: StatsOptions | None = None) -> StatsAccumulator:
        options = options or StatsOptions()
        labels = (ColumnSummary.empty(1, options) if spec.label_type == "regression"
                  else LabelSummary.empty(options))
        return cls(spec, options, ColumnSummary.empty(spec.num_channels, options),
                   ColumnSummary.empty(1, options), labels)

    def add(self, batch: SampleBatch) -> None:
        """Adds a batch's samples."""
        self.add_arrays(batch.values, batch.lengths, batch.labels)

    def add_arrays(self, values: np.ndarray, lengths: np.ndarray, labels: np.ndarray,
                   x_moments: Moments | None = None) -> None:
        """Adds samples given as their values (any shape, channels last), lengths and labels;
        `x_moments`: the per-channel moments of the values, when the caller has them already."""
        self.x.add(values.reshape(-1, self.spec.num_channels), self.options, x_moments)
        self.lengths.add(lengths.reshape(-1, 1), self.options)
        if isinstance(self.labels, ColumnSummary):
            self.labels.add(labels.reshape(-1, 1), self.options)
        else:
            self.labels.add(labels)

    def merge_from(self, other: StatsAccumulator) -> None:
        self.x.merge_from(other.x)
        self.lengths.merge_from(other.lengths)
        self.labels.merge_from(other.labels)

    def compact(self) -> None:
        """Shrinks the sketches before the accumulator is pickled (1 GB of data: 15.9 -> 2.9 MB)."""
        self.x.sketch.Compact()
        self.lengths.sketch.Compact()
        if isinstance(self.labels, ColumnSummary):
            self.labels.sketch.Compact()

    @property
    def samples(self) -> int:
        return self.lengths.moments.count

    def to_proto(self) -> statistics_pb2.DatasetFeatureStatistics:
        """The split's DatasetFeatureStatistics (its name is set when written)."""
        n, options = self.samples, self.options
        result = statistics_pb2.DatasetFeatureStatistics(num_examples=n)
        x_type = FeatureType.FLOAT if self.spec.raw_x_dtype == "float32" else FeatureType.INT
        x_stats = self.x.pooled_stats(options)
        self._x_common(x_stats, self.spec.step_size, self.x.moments.count * self.spec.num_channels)
        result.features.add(type=x_type, num_stats=x_stats).path.step.append(features.X)
        per_step = self.spec.step_size // self.spec.num_channels   # values of one channel per time step
        for c, num_stats in enumerate(self.x.numeric_stats(options)):
            self._x_common(num_stats, per_step, self.x.moments.count)
            channel = result.features.add(type=x_type, num_stats=num_stats)
            channel.path.step.append(channel_name(c))
            channel.validation_derived_source.CopyFrom(derived_feature_pb2.DerivedFeatureSource(
                deriver_name=CHANNEL_DERIVER, description=f"channel {c} of the last axis of {features.X}",
                source_path=[path_pb2.Path(step=[features.X])]))
        (length_stats,) = self.lengths.numeric_stats(options)
        length_stats.common_stats.CopyFrom(_common(n, n, 1, 1))
        result.features.add(type=FeatureType.INT, num_stats=length_stats).path.step.append(features.LENGTH)
        self._add_label(result)
        return result

    def _add_label(self, result: statistics_pb2.DatasetFeatureStatistics) -> None:
        """The label: numeric for regression targets, categorical for classes (and the placeholder)."""
        n, options = self.samples, self.options
        if isinstance(self.labels, ColumnSummary):
            (num_stats,) = self.labels.numeric_stats(options)
            num_stats.common_stats.CopyFrom(_common(n, n, 1, 1))
            result.features.add(type=FeatureType.FLOAT, num_stats=num_stats).path.step.append(features.LABEL)
            return
        label_stats = self.labels.string_stats(n, options)
        label_stats.common_stats.CopyFrom(_common(n, n, 1, 1))
        label = result.features.add(string_stats=label_stats)
        label.path.step.append(features.LABEL)
        if self.spec.label_kind == "string":
            label.type = FeatureType.STRING
        else:
            label.type = FeatureType.INT
            label.custom_stats.add(name=DOMAIN_INFO, str=CATEGORICAL_INT_DOMAIN)

    def _x_common(self, num_stats: statistics_pb2.NumericStatistics, per_step: int, values: int) -> None:
        """Presence and valency of `x` or one of its channels: `per_step` of its `values` per time step."""
        n, lengths = self.samples, self.lengths.moments
        shortest, longest = (int(lengths.min[0]) * per_step, int(lengths.max[0]) * per_step) if n else (0, 0)
        num_stats.common_stats.CopyFrom(_common(n, values, shortest, longest))
        if n:
            num_stats.common_stats.num_values_histogram.CopyFrom(self._values_per_sample(per_step))

    def _values_per_sample(self, per_step: int) -> statistics_pb2.Histogram:
        """TFDV's num_values_histogram of a channel: quantiles of its values per sample."""
        buckets = self.options.num_values_histogram_buckets
        q, cum = self.lengths.quantiles(buckets)
        return tfdv_histograms.quantiles_histogram(q[0] * per_step, cum[0], buckets)


def stats_path(output_dir: str, split: str) -> str:
    """Where a split's statistics live: OUTPUT/stats/SPLIT.pb."""
    return FileSystems.join(output_dir, STATS_DIR, split + STATS_SUFFIX)


def write_stats(path: str, split: str, stats: statistics_pb2.DatasetFeatureStatistics) -> None:
    """Writes a DatasetFeatureStatisticsList holding `stats` named `split`, serialized as one
    message with no framing: what `tfdv.load_stats_binary(path)` parses."""
    stats_list = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats_list.datasets.add()
    dataset.CopyFrom(stats)
    dataset.name = split
    with FileSystems.create(path) as f:
        f.write(stats_list.SerializeToString())


def read_stats(path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Reads a file as `tfdv.load_stats_binary` does (ParseFromString of the whole file)."""
    with FileSystems.open(path) as f:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())


def feature_name(stats: statistics_pb2.FeatureNameStatistics) -> str:
    """A feature's name: its path joined with '.', as TFDV's FeaturePath prints it."""
    return ".".join(stats.path.step)


def feature(stats: statistics_pb2.DatasetFeatureStatistics, name: str) -> statistics_pb2.FeatureNameStatistics | None:
    """A feature of a dataset by name, or None."""
    return next((f for f in stats.features if feature_name(f) == name), None)


def merge_partials(partials: Iterable[tuple[str, StatsAccumulator]], spec: DatasetSpec,
                   options: StatsOptions | None = None) -> dict[str, statistics_pb2.DatasetFeatureStatistics]:
    """Each split's statistics, from (split, partial accumulator) pairs (one per shard)."""
    merged: dict[str, StatsAccumulator] = {}
    for split, acc in partials:
        merged.setdefault(split, StatsAccumulator.create(spec, options)).merge_from(acc)
    return {split: acc.to_proto() for split, acc in merged.items()}
