"""stats/schema.pbtxt and stats/anomalies.pbtxt: schema inference, validation, the drift bins.

Expected values come from the data (lengths, labels, shifts made here) and from TFDV's
documented rules, not from the code under test; tests/test_tfdv_compat.py checks the same
files against real TFDV where its virtualenv exists.
"""

from __future__ import annotations

import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from beam_pipeline.reading.samples import SampleBatch
from beam_pipeline.statistics import anomalies, drift, drift_bins, schema
from beam_pipeline.statistics.feature_stats import feature
from tests.test_feature_stats import make_batches, stats_of
from transforms.features import DatasetSpec

Info = anomalies_pb2.AnomalyInfo


def with_bins(train: statistics_pb2.DatasetFeatureStatistics, split: statistics_pb2.DatasetFeatureStatistics):
    drift_bins.add_bin_features(train, split)
    return split


@pytest.fixture(scope="module")
def train() -> statistics_pb2.DatasetFeatureStatistics:
    stats = stats_of(make_batches(0))
    return with_bins(stats, stats)


def validated(train, evaluation) -> tuple[schema_pb2.Schema, anomalies_pb2.Anomalies]:
    evaluation = with_bins(train, evaluation)
    report = drift.compare(train, evaluation)
    inferred = schema.for_validation(schema.infer_schema(train), report)
    return inferred, anomalies.validate(evaluation, inferred, report)


def by_name(s: schema_pb2.Schema) -> dict[str, schema_pb2.Feature]:
    return {f.name: f for f in s.feature}


def test_inferred_types_presence_and_valency_follow_the_data(train):
    inferred = by_name(schema.infer_schema(train))
    assert inferred["x"].type == inferred["x[0]"].type == schema_pb2.FLOAT
    assert inferred["length"].type == inferred["label"].type == schema_pb2.INT
    for name in ("x", "length", "label"):
        assert (inferred[name].presence.min_count, inferred[name].presence.min_fraction) == (1, 1.0)
    # Lengths vary (1..40 steps): no shape for x, at least one value; one value for the rest.
    assert not inferred["x"].HasField("shape") and inferred["x"].value_count.min == 1
    assert [d.size for d in inferred["length"].shape.dim] == [1]
    assert inferred["label"].int_domain.is_categorical


def test_fixed_length_samples_get_a_shape():
    lengths = np.full(30, 4, dtype=np.int64)
    values = np.random.default_rng(1).normal(size=(120, 3)).astype(np.float32)
    stats = stats_of([SampleBatch("f", np.arange(30), values, lengths, np.zeros(30, dtype=np.int64))])
    inferred = by_name(schema.infer_schema(stats))
    assert [d.size for d in inferred["x"].shape.dim] == [12]      # 4 steps of 3 channels
    assert [d.size for d in inferred["x[2]"].shape.dim] == [4]


def test_channels_and_bins_are_derived_and_not_required_for_validation(train):
    inferred = schema.infer_schema(train)
    derived = [f.name for f in inferred.feature if f.lifecycle_stage == schema_pb2.VALIDATION_DERIVED]
    assert derived == ["x[0]", "x[1]", "x[2]", "x[0]@train_bins", "x[1]@train_bins", "x[2]@train_bins",
                       "length@train_bins"]
    assert all(by_name(inferred)[name].presence.min_count == 1 for name in derived)   # as TFDV infers
    relaxed = by_name(schema.for_validation(inferred, None))
    assert all(not relaxed[name].HasField("presence") for name in derived)
    assert relaxed["x"].presence.min_count == 1


@pytest.mark.parametrize("labels, domain, values", [
    (["cat", "dog", "cat", "emu"], "string", ["cat", "dog", "emu"]),
    (["true", "false"], "bool", ("true", "false")),
    (["3", "12", "-4"], "int", None),
])
def test_string_labels_get_tfdv_s_domains(labels, domain, values):
    spec = DatasetSpec((2,), "float32", 5, label_kind="string")
    n = len(labels)
    batch = SampleBatch("f", np.arange(n), np.ones((n * 2, 2), np.float32), np.full(n, 2, np.int64),
                        np.array([s.encode() for s in labels], dtype=object))
    inferred = schema.infer_schema(stats_of([batch], spec))
    label = by_name(inferred)["label"]
    assert label.type == schema_pb2.BYTES
    assert label.WhichOneof("domain_info") == {"string": "domain", "bool": "bool_domain", "int": "int_domain"}[domain]
    if domain == "string":
        (string_domain,) = inferred.string_domain
        assert (label.domain, list(string_domain.value)) == ("label", values)
    if domain == "bool":
        assert (label.bool_domain.true_value, label.bool_domain.false_value) == values


def test_lengths_all_one_are_a_bool_domain_as_tfdv_infers():
    batch = SampleBatch("f", np.arange(10), np.ones((10, 3), np.float32), np.ones(10, np.int64),
                        np.zeros(10, dtype=np.int64))
    assert by_name(schema.infer_schema(stats_of([batch])))["length"].HasField("bool_domain")


def test_clean_eval_has_no_anomaly_and_every_comparison_is_measured(train):
    inferred, found = validated(train, stats_of(make_batches(7)))
    assert dict(found.anomaly_info) == {}
    measured = sorted(".".join(d.path.step) for d in found.drift_skew_info)
    assert measured == sorted(["x[0]@train_bins", "x[1]@train_bins", "x[2]@train_bins", "length@train_bins", "label"])
    comparators = {f.name: f.drift_comparator for f in inferred.feature if f.HasField("drift_comparator")}
    assert comparators["x[1]@train_bins"].jensen_shannon_divergence.threshold == drift.DEFAULT_JSD_THRESHOLD
    assert comparators["label"].infinity_norm.threshold == drift.DEFAULT_L_INFINITY_THRESHOLD


def test_a_shifted_channel_is_the_only_anomaly(train):
    _, found = validated(train, stats_of(make_batches(7, shift=np.array([0.5, 0.0, 0.0]))))
    assert list(found.anomaly_info) == ["x[0]@train_bins"]
    info = found.anomaly_info["x[0]@train_bins"]
    assert [r.type for r in info.reason] == [Info.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH]
    assert info.severity == Info.ERROR and "above the threshold 0.02" in info.description


def test_a_shifted_label_distribution_is_flagged_on_the_label(train):
    _, found = validated(train, stats_of(make_batches(7, labels=lambda rng, n: np.zeros(n, dtype=np.int64))))
    assert list(found.anomaly_info) == ["label"]
    assert found.anomaly_info["label"].reason[0].type == Info.COMPARATOR_L_INFTY_HIGH


def test_eval_of_another_fixed_length_drops_the_shape():
    def fixed(length: int) -> statistics_pb2.DatasetFeatureStatistics:
        values = np.random.default_rng(length).normal(size=(20 * length, 3)).astype(np.float32)
        return stats_of([SampleBatch("f", np.arange(20), values, np.full(20, length, np.int64),
                                     np.zeros(20, dtype=np.int64))])
    train = fixed(4)
    _, found = validated(with_bins(train, train), fixed(6))
    assert Info.INVALID_FEATURE_SHAPE in [r.type for r in found.anomaly_info["x"].reason]
    assert "fixed value length 18" in found.anomaly_info["x"].description


def test_missing_and_unknown_features_are_reported(train):
    inferred = schema.for_validation(schema.infer_schema(train), None)
    evaluation = statistics_pb2.DatasetFeatureStatistics()
    evaluation.CopyFrom(train)
    kept = [f for f in evaluation.features if ".".join(f.path.step) != "length"]
    kept[0].path.step[0] = "y"                                     # x renamed: x dropped, y new
    del evaluation.features[:]
    evaluation.features.extend(kept)
    found = anomalies.validate(evaluation, inferred, None)
    assert {name: [r.type for r in info.reason] for name, info in found.anomaly_info.items()} == {
        "length": [Info.SCHEMA_MISSING_COLUMN], "x": [Info.SCHEMA_MISSING_COLUMN], "y": [Info.SCHEMA_NEW_COLUMN]}


def bin_counts(stats: statistics_pb2.DatasetFeatureStatistics, name: str) -> dict[str, float]:
    return {b.label: b.sample_count for b in feature(stats, name).string_stats.rank_histogram.buckets}


def test_bin_features_carry_the_report_s_distance(train):
    """TFDV's JSD of two categorical features (its metrics.cc, written out here) over the
    @train_bins counts equals the report's distance; eval's counts are those of its values."""
    batches = make_batches(7, shift=np.array([0.0, 0.0, 0.3]))
    evaluation = with_bins(train, stats_of(batches))
    report = drift.compare(train, evaluation)
    for c in range(3):
        name = f"x[{c}]"
        counts = [bin_counts(s, drift.bins_name(name)) for s in (train, evaluation)]
        keys = sorted(counts[0].keys() | counts[1].keys(), key=int)
        p, q = (np.array([m.get(k, 0.0) for k in keys]) / sum(m.values()) for m in counts)
        m = (p + q) / 2
        jsd = sum(0.5 * a * np.log2(a / b) for dist in (p, q) for a, b in zip(dist, m) if a > 0)
        assert jsd == pytest.approx(report.get(name).distance, rel=1e-9, abs=1e-12)
    # Eval's counts per bin: its exact values between train's quantile edges, within the sketch's rank error.
    edges = np.unique([b.low_value for b in feature(train, "x[2]").num_stats.histograms[1].buckets][1:])
    values = np.concatenate([b.values[:, 2] for b in batches])
    exact = np.histogram(values, np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    got = bin_counts(evaluation, "x[2]@train_bins")
    np.testing.assert_allclose([got.get(str(i), 0.0) for i in range(len(exact))], exact, atol=0.02 * exact.sum())
