"""stats/schema.pbtxt: the schema TFX's SchemaGen would infer from the training split.

TFDV cannot share this stack (it pins another TensorFlow), so `infer_schema` implements
TFDV 1.16's inference (anomalies/schema.cc: CreateColumn; feature_util.cc:
InitPresenceAndShape) for the statistics this pipeline writes, and the compatibility check
(tests/support/tfdv_round_trip.py) compares it with real TFDV's `infer_schema` output:
  type      INT -> INT, FLOAT -> FLOAT, STRING / BYTES -> BYTES.
  presence  min_count 1 (0 when no example has it); min_fraction 1 when none lacks it.
  shape     [n] when every example has exactly n values, else value_count {min: 1}
            (or {min: n, max: n}; none when an example may have no value).
  derived   a feature with a validation_derived_source becomes VALIDATION_DERIVED.
  domain    TFDV's order: a `domain_info` custom statistic (its text is the domain); none
            for BYTES; bool_domain for INT in [0, 1] or STRING of true/false tokens;
            int_domain for STRING holding only integers; a string_domain of the values of
            a STRING feature with at most `max_string_domain_size` of them.

`for_validation` then adds what SchemaGen leaves to the user, and what validation here and
in TFDV needs: derived features lose their presence constraint (TFDV's proto says such a
feature "may be present in DatasetFeatureStatistics, but not in input data", but its
inference requires it, so TFDV's statistics of raw Examples, which never have it, would
report it dropped), and every comparison of the drift report becomes a drift comparator
with the report's threshold (for a numeric feature, on its `@train_bins`: drift_bins.py).
"""

from __future__ import annotations

import re

from apache_beam.io.filesystems import FileSystems
from google.protobuf import text_format
from google.protobuf.message import Message
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from beam_pipeline.statistics import drift
from beam_pipeline.statistics.feature_stats import DOMAIN_INFO, feature_name
from transforms.manifest import DriftReport, FeatureDrift
from transforms.outputs import STATS_DIR

Stats = statistics_pb2.FeatureNameStatistics
MAX_STRING_DOMAIN_SIZE = 100   # tfdv.infer_schema's default
_TYPES = {Stats.INT: schema_pb2.INT, Stats.FLOAT: schema_pb2.FLOAT, Stats.STRING: schema_pb2.BYTES,
          Stats.BYTES: schema_pb2.BYTES}
# TFDV's bool_domain_util.cc: GetTrueValues / GetFalseValues.
_TRUE = frozenset({"TRUE", "true", "SET", "set", "1", ""})
_FALSE = frozenset({"FALSE", "false", "CLEAR", "clear", "0"})
_INT64 = re.compile(r"\s*[+-]?\d+\s*")


def common_stats(stats: Stats) -> statistics_pb2.CommonStatistics:
    return stats.string_stats.common_stats if stats.HasField("string_stats") else stats.num_stats.common_stats


def string_values(stats: Stats) -> list[str]:
    """The values a feature's rank histogram lists, sorted (TFDV's GetStringValues)."""
    return sorted({b.label for b in stats.string_stats.rank_histogram.buckets})


def infer_schema(stats: statistics_pb2.DatasetFeatureStatistics,
                 max_string_domain_size: int = MAX_STRING_DOMAIN_SIZE) -> schema_pb2.Schema:
    """What tfdv.infer_schema(stats) gives for this pipeline's statistics."""
    schema = schema_pb2.Schema()
    for stats_feature in stats.features:
        feature = schema.feature.add(name=feature_name(stats_feature), type=_TYPES[stats_feature.type])
        _presence_and_shape(common_stats(stats_feature), feature)
        if stats_feature.HasField("validation_derived_source"):
            feature.lifecycle_stage = schema_pb2.VALIDATION_DERIVED
            feature.validation_derived_source.CopyFrom(stats_feature.validation_derived_source)
        _domain(stats_feature, feature, schema, max_string_domain_size)
    return schema


def _presence_and_shape(common: statistics_pb2.CommonStatistics, feature: schema_pb2.Feature) -> None:
    present = common.num_non_missing
    feature.presence.min_count = 1 if present >= 1 else 0
    if present <= 0:
        return
    if common.num_missing == 0:
        feature.presence.min_fraction = 1.0
        if common.min_num_values == common.max_num_values > 0:
            feature.shape.dim.add(size=common.min_num_values)
            return
    if common.min_num_values > 0:
        fixed = common.min_num_values == common.max_num_values
        feature.value_count.min = common.min_num_values if fixed else 1
        if fixed:
            feature.value_count.max = common.max_num_values


def _domain(stats: Stats, feature: schema_pb2.Feature, schema: schema_pb2.Schema, max_size: int) -> None:
    custom = [c.str for c in stats.custom_stats if c.name == DOMAIN_INFO]
    if custom:
        text_format.Merge(custom[0], feature)
    elif stats.type == Stats.BYTES:
        return
    elif stats.type == Stats.INT and stats.HasField("num_stats"):
        if stats.num_stats.min >= 0 and stats.num_stats.max == 1:
            feature.bool_domain.SetInParent()
    elif stats.type == Stats.STRING:
        _string_domain(string_values(stats), feature, schema, max_size)


def _string_domain(values: list[str], feature: schema_pb2.Feature, schema: schema_pb2.Schema, max_size: int) -> None:
    true, false = [v for v in values if v in _TRUE], [v for v in values if v in _FALSE]
    if 0 < len(values) <= 2 and len(true) <= 1 and len(false) <= 1 and len(true) + len(false) == len(values):
        feature.bool_domain.SetInParent()
        if true:
            feature.bool_domain.true_value = true[0]
        if false:
            feature.bool_domain.false_value = false[0]
    elif values and all(_INT64.fullmatch(v) and -2 ** 63 <= int(v) < 2 ** 63 for v in values):
        feature.int_domain.SetInParent()
    elif 0 < len(values) <= max_size:
        domain = schema.string_domain.add(name=feature.name, value=values)
        feature.domain = domain.name


def for_validation(schema: schema_pb2.Schema, drift_report: DriftReport | None) -> schema_pb2.Schema:
    """A copy of an inferred schema with derived features not required in the data and the
    drift comparators of `drift_report`'s comparisons, with its thresholds: infinity_norm on
    a categorical feature, jensen_shannon_divergence on a numeric feature's `@train_bins`."""
    result = schema_pb2.Schema()
    result.CopyFrom(schema)
    by_name = {f.name: f for f in result.feature}
    for feature in result.feature:
        if feature.HasField("validation_derived_source"):
            feature.ClearField("presence")
    for d in drift_report.features if drift_report else ():
        target = by_name.get(comparator_feature(d))
        if target is None:
            continue
        if d.metric == drift.L_INFINITY:
            target.drift_comparator.infinity_norm.threshold = d.threshold
        else:
            target.drift_comparator.jensen_shannon_divergence.threshold = d.threshold
    return result


def comparator_feature(d: FeatureDrift) -> str:
    """The feature whose drift comparator measures `d`."""
    return d.feature if d.metric == drift.L_INFINITY else drift.bins_name(d.feature)


def stats_file(output_dir: str, name: str) -> str:
    """OUTPUT/stats/NAME (outputs.SCHEMA, outputs.ANOMALIES)."""
    return FileSystems.join(output_dir, STATS_DIR, name)


def write_text_proto(path: str, message: Message) -> None:
    """Writes a proto in text format (what tfdv.load_schema_text / load_anomalies_text read)."""
    with FileSystems.create(path) as f:
        f.write(text_format.MessageToString(message).encode("utf-8"))


def read_text_proto(path: str, message: Message) -> Message:
    """Parses a text-format file into `message` and returns it."""
    with FileSystems.open(path) as f:
        return text_format.Parse(f.read().decode("utf-8"), message)
