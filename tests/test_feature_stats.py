"""Raw-data statistics (TFDV's protos) and the train/eval drift comparison."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from beam_pipeline.finalize import scratch
from beam_pipeline.reading.samples import SampleBatch
from beam_pipeline.statistics import drift, tfdv_histograms
from beam_pipeline.statistics.feature_stats import (
    StatsAccumulator,
    StatsOptions,
    channel_name,
    feature,
    merge_partials,
    read_stats,
    stats_path,
    write_stats,
)
from transforms.features import DatasetSpec

CHANNELS = 3
SPEC = DatasetSpec((CHANNELS,), "float32", 40)
Histogram = statistics_pb2.Histogram


def make_batches(seed: int, num_batches: int = 4, per_batch: int = 60, shift=0.0, labels=None) -> list[SampleBatch]:
    """float32 samples with a large offset (where float32 sums go wrong), exact zeros in
    channel 0, Student-t tails in channel 2, int labels 0..3."""
    rng = np.random.default_rng(seed)
    batches = []
    for b in range(num_batches):
        lengths = rng.integers(1, 41, per_batch).astype(np.int64)
        values = rng.normal(size=(int(lengths.sum()), CHANNELS))
        values[:, 1] = values[:, 1] * 0.5 + 1e4
        values[:, 2] = rng.standard_t(3, size=len(values)) * 20
        values[rng.random(len(values)) < 0.1, 0] = 0.0
        values = (values + shift).astype(np.float32)
        batch_labels = rng.integers(0, 4, per_batch) if labels is None else labels(rng, per_batch)
        batches.append(SampleBatch(f"f{b}", np.arange(per_batch), values, lengths, batch_labels))
    return batches


def accumulator(batches: list[SampleBatch], spec: DatasetSpec = SPEC,
                options: StatsOptions | None = None) -> StatsAccumulator:
    acc = StatsAccumulator.create(spec, options)
    for b in batches:
        acc.add(b)
    return acc


def stats_of(batches: list[SampleBatch], spec: DatasetSpec = SPEC,
             options: StatsOptions | None = None) -> statistics_pb2.DatasetFeatureStatistics:
    return accumulator(batches, spec, options).to_proto()


def all_values(batches: list[SampleBatch]) -> np.ndarray:
    return np.concatenate([b.values for b in batches]).astype(np.float64)


def quantile_bounds(stats: statistics_pb2.FeatureNameStatistics) -> np.ndarray:
    return tfdv_histograms.boundaries(tfdv_histograms.find(stats.num_stats, Histogram.QUANTILES))


def assert_within_rank_error(boundaries: np.ndarray, exact: np.ndarray, error: float,
                             target: np.ndarray | None = None) -> None:
    """Each boundary's rank in the exact data (an interval where values repeat) must be
    within `error` of its target rank (k/n for n + 1 boundaries unless given)."""
    exact = np.sort(exact)
    target = np.linspace(0, 1, len(boundaries)) if target is None else target
    low = np.searchsorted(exact, boundaries, side="left") / len(exact)
    high = np.searchsorted(exact, boundaries, side="right") / len(exact)
    miss = np.maximum(low - target, 0) + np.maximum(target - high, 0)
    assert miss.max() <= error, f"rank error {miss.max():.4f} > {error} at {boundaries[miss.argmax()]}"


@pytest.fixture(scope="module")
def batches() -> list[SampleBatch]:
    return make_batches(0)


@pytest.fixture(scope="module")
def stats(batches) -> statistics_pb2.DatasetFeatureStatistics:
    return stats_of(batches)


def test_features_are_named_and_typed_as_tfdv_would(stats):
    names = [".".join(f.path.step) for f in stats.features]
    assert names == ["x", "x[0]", "x[1]", "x[2]", "length", "label"]
    types = {".".join(f.path.step): f.type for f in stats.features}
    assert types["x"] == types["x[0]"] == statistics_pb2.FeatureNameStatistics.FLOAT
    assert types["length"] == types["label"] == statistics_pb2.FeatureNameStatistics.INT
    assert feature(stats, "label").HasField("string_stats")
    assert [h.type for h in feature(stats, "x[0]").num_stats.histograms] == [Histogram.STANDARD, Histogram.QUANTILES]


def test_moments_and_zeros_match_numpy_float64(batches, stats):
    values = all_values(batches)
    for c in range(CHANNELS):
        num = feature(stats, channel_name(c)).num_stats
        column = values[:, c]
        np.testing.assert_allclose(num.mean, column.mean(), rtol=1e-12)
        np.testing.assert_allclose(num.std_dev, column.std(), rtol=1e-9)
        assert (num.min, num.max) == (column.min(), column.max())
        assert num.num_zeros == np.count_nonzero(column == 0)
        assert num.common_stats.tot_num_values == len(column)
    assert feature(stats, "x[0]").num_stats.num_zeros > 50   # the test data does hold zeros


def test_lengths_and_presence_match_the_samples(batches, stats):
    lengths = np.concatenate([b.lengths for b in batches]).astype(np.float64)
    assert stats.num_examples == len(lengths)
    num = feature(stats, "length").num_stats
    np.testing.assert_allclose([num.mean, num.std_dev], [lengths.mean(), lengths.std()], rtol=1e-12)
    assert (num.min, num.max) == (lengths.min(), lengths.max())
    common = feature(stats, "x[1]").num_stats.common_stats
    assert (common.num_non_missing, common.min_num_values, common.max_num_values) == (
        len(lengths), lengths.min(), lengths.max())


def test_int_label_counts_are_exact(batches, stats):
    labels = collections.Counter(np.concatenate([b.labels for b in batches]).tolist())
    string_stats = feature(stats, "label").string_stats
    got = {b.label: b.sample_count for b in string_stats.rank_histogram.buckets}
    assert got == {str(k): v for k, v in labels.items()}
    assert string_stats.unique == len(labels)
    assert string_stats.top_values[0].value == str(labels.most_common(1)[0][0])


def test_string_labels_are_described_by_name():
    names = np.array([b"cat", "dög".encode(), b"emu"], dtype=object)
    batches = make_batches(1, labels=lambda rng, n: names[rng.integers(0, 3, n)])
    stats = stats_of(batches, DatasetSpec((CHANNELS,), "float32", 40, label_kind="string"))
    label = feature(stats, "label")
    assert label.type == statistics_pb2.FeatureNameStatistics.STRING
    expected = collections.Counter(b.decode() for batch in batches for b in batch.labels)
    assert {b.label: b.sample_count for b in label.string_stats.rank_histogram.buckets} == expected
    total_bytes = sum(len(b) for batch in batches for b in batch.labels)
    np.testing.assert_allclose(label.string_stats.avg_length, total_bytes / stats.num_examples)


def test_quantiles_are_within_the_sketch_rank_error(batches, stats):
    values = all_values(batches)
    for c in range(CHANNELS):
        num = feature(stats, channel_name(c)).num_stats
        assert_within_rank_error(quantile_bounds(feature(stats, channel_name(c))), values[:, c], 0.01)
        assert_within_rank_error(np.array([num.median]), values[:, c], 0.01, target=np.array([0.5]))


def test_quantiles_stay_accurate_when_the_sketch_samples_rows():
    """Past exact_rows the sketch sees ~1 row in sample_every: the rank error then adds the
    sampling error (here ~2,500 sampled rows: DKW bound at 99.9% is 0.04). The stream's
    second half is shifted, so rows weighted wrongly (the exact head vs the sampled rest)
    would show."""
    batches = make_batches(2, num_batches=10, per_batch=400) + make_batches(3, 10, 400, shift=[2.0, 1.0, 40.0])
    options = StatsOptions(exact_rows=1000, sample_every=40)
    values = all_values(batches)
    assert len(values) > 100_000
    stats = stats_of(batches, options=options)
    sampled = len(values) / options.sample_every
    bound = options.epsilon + np.sqrt(np.log(2 / 0.001) / (2 * sampled))
    for c in range(CHANNELS):
        assert_within_rank_error(quantile_bounds(feature(stats, channel_name(c))), values[:, c], bound)
    # ... and the moments stay exact.
    np.testing.assert_allclose(feature(stats, "x[1]").num_stats.mean, values[:, 1].mean(), rtol=1e-12)


def test_standard_histogram_follows_numpy_within_the_rank_error(batches, stats):
    values = all_values(batches)[:, 0]
    low, high, counts = tfdv_histograms.bins(tfdv_histograms.find(feature(stats, "x[0]").num_stats, Histogram.STANDARD))
    assert len(counts) == StatsOptions().num_histogram_buckets
    assert (low[0], high[-1]) == (values.min(), values.max())
    exact, _ = np.histogram(values, np.concatenate([low[:1], high]))
    np.testing.assert_allclose(counts.sum(), len(values))
    # Each count is a difference of two CDF values, each off by at most the rank error plus
    # one fine quantile bucket (1/1000) from the interpolation.
    assert np.abs(counts - exact).max() <= 2 * (0.01 + 0.001) * len(values)


def test_statistics_do_not_depend_on_batching_merging_or_pickling(tmp_path, batches, stats):
    """Partial accumulators saved as the job's steps save them (finalize/scratch.py), merged as
    finalizing merges them, give the statistics of one accumulator fed everything."""
    out = str(tmp_path)
    for i in range(0, len(batches), 2):   # named so that the file order is not the stream's
        scratch.write_step(out, f"part-{9 - i}", [], partial_stats=("train", accumulator(batches[i:i + 2])))
    merged = merge_partials(scratch.read_partial_stats(out), SPEC)["train"]
    for c in range(CHANNELS):
        got, want = feature(merged, channel_name(c)).num_stats, feature(stats, channel_name(c)).num_stats
        np.testing.assert_allclose([got.mean, got.std_dev], [want.mean, want.std_dev], rtol=1e-12)
        assert (got.min, got.max, got.num_zeros) == (want.min, want.max, want.num_zeros)
        assert_within_rank_error(quantile_bounds(feature(merged, channel_name(c))), all_values(batches)[:, c], 0.01)
    assert feature(merged, "label").string_stats == feature(stats, "label").string_stats


def test_same_stream_gives_the_same_proto(batches, stats):
    assert stats_of(batches).SerializeToString(deterministic=True) == stats.SerializeToString(deterministic=True)


def test_each_split_merges_its_own_shards_and_a_retried_shard_replaces_its_first_attempt(tmp_path):
    """The job's path: the analyze pass saves the training split's accumulator, each eval shard
    its own (a retried shard saves again under the same name); the launcher merges per split.
    Checked against NumPy in float64."""
    out = str(tmp_path)
    train, evaluation = make_batches(4, num_batches=3), make_batches(5, num_batches=3, shift=[3.0, 0.0, 0.0])
    for step, split, part in (("statistics", "train", train), ("shard-eval-00000", "eval", evaluation[:1]),
                              ("shard-eval-00001", "eval", train),              # a failed first attempt ...
                              ("shard-eval-00001", "eval", evaluation[1:])):    # ... replaced by its retry
        scratch.write_step(out, step, [], partial_stats=(split, accumulator(part)))
    merged = merge_partials(scratch.read_partial_stats(out), SPEC)
    assert sorted(merged) == ["eval", "train"]
    for split, split_batches in (("train", train), ("eval", evaluation)):
        values = all_values(split_batches)
        assert merged[split].num_examples == sum(len(b) for b in split_batches)
        for c in range(CHANNELS):
            num = feature(merged[split], channel_name(c)).num_stats
            np.testing.assert_allclose([num.mean, num.std_dev], [values[:, c].mean(), values[:, c].std()], rtol=1e-9)
            assert (num.min, num.max, num.num_zeros) == (values[:, c].min(), values[:, c].max(),
                                                         np.count_nonzero(values[:, c] == 0))
        labels = collections.Counter(np.concatenate([b.labels for b in split_batches]).tolist())
        got = {b.label: b.sample_count for b in feature(merged[split], "label").string_stats.rank_histogram.buckets}
        assert got == {str(k): v for k, v in labels.items()}


def test_binary_file_round_trips_as_load_stats_binary_reads_it(tmp_path, stats):
    path = stats_path(str(tmp_path), "train")
    write_stats(path, "train", stats)
    assert path == str(tmp_path / "stats" / "train.pb")
    # tfdv.load_stats_binary: DatasetFeatureStatisticsList().ParseFromString(whole file).
    loaded = statistics_pb2.DatasetFeatureStatisticsList()
    with open(path, "rb") as f:
        loaded.ParseFromString(f.read())
    assert [d.name for d in loaded.datasets] == ["train"]
    expected = statistics_pb2.DatasetFeatureStatistics()
    expected.CopyFrom(stats)
    expected.name = "train"
    assert loaded.datasets[0] == expected
    assert read_stats(path) == loaded


def test_integer_and_boolean_sources_are_described():
    rng = np.random.default_rng(3)
    lengths = np.full(20, 5, dtype=np.int64)
    for dtype in ("uint8", "bool", "float16"):
        values = rng.integers(0, 3, size=(100, 2)).astype(dtype)
        stats = stats_of([SampleBatch("", np.arange(20), values, lengths, np.zeros(20, dtype=np.int64))],
                         DatasetSpec((2,), dtype, 5))
        num = feature(stats, "x[1]").num_stats
        assert num.mean == pytest.approx(values[:, 1].astype(np.float64).mean(), rel=1e-12)
        assert num.num_zeros == np.count_nonzero(values[:, 1] == 0)
        # Typed as the raw Example carries them: these sources travel as float32.
        assert feature(stats, "x").type == feature(stats, "x[1]").type == statistics_pb2.FeatureNameStatistics.FLOAT
    wide = stats_of([SampleBatch("", np.arange(20), rng.integers(0, 3, size=(100, 2)).astype("int32"), lengths,
                                 np.zeros(20, dtype=np.int64))], DatasetSpec((2,), "int32", 5))
    assert feature(wide, "x").type == feature(wide, "x[1]").type == statistics_pb2.FeatureNameStatistics.INT


def test_x_describes_every_value_as_the_raw_example_holds_them(batches, stats):
    values = all_values(batches).astype(np.float64).reshape(-1)
    lengths = np.concatenate([b.lengths for b in batches])
    num = feature(stats, "x").num_stats
    np.testing.assert_allclose([num.mean, num.std_dev], [values.mean(), values.std()], rtol=1e-9)
    assert (num.min, num.max, num.num_zeros) == (values.min(), values.max(), np.count_nonzero(values == 0))
    common = num.common_stats
    assert (common.tot_num_values, common.min_num_values, common.max_num_values) == (
        len(values), lengths.min() * CHANNELS, lengths.max() * CHANNELS)
    assert_within_rank_error(quantile_bounds(feature(stats, "x")), values, 0.01)
    assert not feature(stats, "x").HasField("validation_derived_source")


def test_channels_are_derived_from_x_and_an_int_label_is_categorical(stats):
    for c in range(CHANNELS):
        source = feature(stats, channel_name(c)).validation_derived_source
        assert [list(p.step) for p in source.source_path] == [["x"]]
        assert source.deriver_name
    (custom,) = feature(stats, "label").custom_stats
    assert (custom.name, custom.str) == ("domain_info", "int_domain { is_categorical: true }")


def test_a_shifted_channel_is_flagged_and_unshifted_ones_are_not(batches, stats):
    shift = np.array([0.0, 0.0, 0.0], dtype=np.float64)
    shift[0] = 0.5   # half a standard deviation of channel 0
    evaluation = stats_of(make_batches(7, shift=shift))
    report = drift.compare(stats, evaluation)
    assert report.drifted == ["x[0]"]
    assert report.get("x[0]").distance > 2 * drift.DEFAULT_JSD_THRESHOLD
    for name in ("x[1]", "x[2]", "length"):
        assert report.get(name).distance < drift.DEFAULT_JSD_THRESHOLD / 2, report.get(name)
    assert report.get("label").metric == drift.L_INFINITY


def test_label_shift_is_flagged_by_l_infinity(stats):
    evaluation = stats_of(make_batches(8, labels=lambda rng, n: rng.choice(4, n, p=[0.55, 0.15, 0.15, 0.15])))
    label = drift.compare(stats, evaluation).get("label")
    assert label.drifted and label.where == "0"
    assert label.distance == pytest.approx(0.30, abs=0.08)


def test_identical_splits_have_zero_distance_and_json_round_trips(stats):
    report = drift.compare(stats, stats, threshold=0.0)
    assert all(f.distance == 0 for f in report.features) and report.drifted == []
    assert drift.DriftReport.from_json(json.loads(json.dumps(report.to_json()))) == report


def test_jensen_shannon_matches_hand_computed_values():
    def quantiles(bounds, counts):
        h = Histogram(type=Histogram.QUANTILES)
        for lo, hi, c in zip(bounds[:-1], bounds[1:], counts):
            h.buckets.add(low_value=lo, high_value=hi, sample_count=c)
        return h

    def jsd(p, q):
        p, q = np.asarray(p, float) / np.sum(p), np.asarray(q, float) / np.sum(q)
        m = (p + q) / 2
        return sum(np.sum(x[x > 0] * np.log2(x[x > 0] / m[x > 0])) for x in (p, q)) / 2

    # Train's bins are cut at its inner quantiles 1 and 2: (-inf, 1], (1, 2], (2, inf).
    train = quantiles([0, 1, 2, 3], [10, 10, 10])
    # Eval uniform on [0, 2]: 1/2, 1/2, 0 of its mass in those bins.
    assert drift.jensen_shannon(train, quantiles([0, 1, 2], [15, 15])) == pytest.approx(jsd([1, 1, 1], [1, 1, 0]))
    # Eval entirely above train's values: everything in the last bin.
    assert drift.jensen_shannon(train, quantiles([5, 6, 7, 8], [1, 1, 1])) == pytest.approx(jsd([1, 1, 1], [0, 0, 1]))
    # Disjoint supports give TFDV's maximum, 1.
    assert drift.jensen_shannon(quantiles([0, 1, 2, 3, 4], [1, 1, 1, 1]), quantiles([0, 0, 0, 0, 0], [1, 1, 1, 1])) \
        == pytest.approx(jsd([1, 1, 1, 1], [1, 0, 0, 0]))


def test_a_pipeline_run_writes_both_splits_statistics_and_flags_the_shifted_channel(tmp_path):
    """Through the CLI: stats/train.pb and stats/eval.pb against NumPy, the drift in the
    manifest, and report.html beside them."""
    from tests.support.helpers import manifest, run_ok, write_ragged

    rng = np.random.default_rng(11)
    train = [rng.normal(size=(t, 3)).astype(np.float32) for t in rng.integers(5, 40, 300)]
    evaluation = [rng.normal(size=(t, 3)).astype(np.float32) for t in rng.integers(5, 40, 200)]
    for sample in evaluation:
        sample[:, 1] += 1.0   # channel 1 shifted by one standard deviation, 0 and 2 not
    write_ragged(str(tmp_path / "train.npz"), train, rng.integers(0, 3, len(train)))
    write_ragged(str(tmp_path / "eval.npz"), evaluation, rng.integers(0, 3, len(evaluation)))
    out = tmp_path / "out"
    run_ok("--input", str(tmp_path / "train.npz"), "--eval_input", str(tmp_path / "eval.npz"), "--output_dir", str(out))
    for split, samples in (("train", train), ("eval", evaluation)):
        stats = read_stats(stats_path(str(out), split)).datasets[0]
        assert stats.name == split and stats.num_examples == len(samples)
        values = np.concatenate(samples).astype(np.float64)
        for c in range(3):
            num = feature(stats, channel_name(c)).num_stats
            np.testing.assert_allclose([num.mean, num.std_dev], [values[:, c].mean(), values[:, c].std()], rtol=1e-9)
            assert (num.min, num.max) == (values[:, c].min(), values[:, c].max())
        assert feature(stats, "length").num_stats.max == max(len(s) for s in samples)
    flagged = manifest(str(out))["drift"]["drifted"]
    assert flagged == ["x[1]"], flagged
    assert (out / "report.html").stat().st_size > 0
