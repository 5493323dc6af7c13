"""stats/anomalies.pbtxt: what TFX's ExampleValidator would report for eval against the schema.

An `Anomalies` proto (tensorflow_metadata) in TFDV's form: the schema as `baseline`, one
`anomaly_info` per feature with an anomaly (keyed by its path, severity ERROR, one reason
per finding, TFDV's wording; several reasons read "Multiple errors"), and a `drift_skew_info`
with the measurement of every feature that has a drift comparator.

The checks are those this pipeline's eval statistics can fail (both splits come from one
run, so types, presence and label values cannot differ: an eval label the training split
never had is quarantined before the statistics):
  - a feature the schema requires that the statistics lack ("Column dropped"; derived
    features are never required, see schema.for_validation), or one it does not know;
  - a fixed shape the eval values do not have (e.g. fixed-length training samples, eval
    samples of another length): "Feature shape dropped";
  - drift: the distances of `drift.compare`, on the features that carry its comparators
    (a numeric feature's `@train_bins`, the label), so the anomalies flag exactly what
    the report's drift flags, where TFDV's comparators flag them too.
"""

from __future__ import annotations

import math

from tensorflow_metadata.proto.v0 import anomalies_pb2, path_pb2, schema_pb2, statistics_pb2

from beam_pipeline.statistics import drift
from beam_pipeline.statistics.feature_stats import feature_name
from beam_pipeline.statistics.schema import common_stats, comparator_feature
from transforms.manifest import DriftReport, FeatureDrift

Reason = anomalies_pb2.AnomalyInfo.Reason
Measurement = anomalies_pb2.DriftSkewInfo.Measurement
_SHAPE_DESCRIPTION = ("The feature has a shape, but it's not always present (if the feature is nested, then it "
                      "should always be present at each nested level) or its value lengths vary.")
_DEPRECATED = frozenset({schema_pb2.PLANNED, schema_pb2.ALPHA, schema_pb2.DEPRECATED, schema_pb2.DEBUG_ONLY,
                         schema_pb2.DISABLED})


def _required(feature: schema_pb2.Feature) -> bool:
    """TFDV's IsExistenceRequired, without environments (the schema declares none)."""
    return feature.lifecycle_stage not in _DEPRECATED and (
        feature.presence.min_count > 0 or feature.presence.min_fraction > 0)


def _shape_reason(feature: schema_pb2.Feature, common: statistics_pb2.CommonStatistics) -> Reason | None:
    """TFDV's UpdateFeatureShape for a top-level feature."""
    if not feature.HasField("shape"):
        return None
    fixed = common.min_num_values if common.min_num_values == common.max_num_values != 0 else -1
    if fixed > 0 and common.num_missing == 0 and fixed == math.prod(d.size for d in feature.shape.dim):
        return None
    description = (_SHAPE_DESCRIPTION if fixed <= 0 or common.num_missing else
                   f"The feature has fixed value length {fixed} but it's not compatible with the specified shape.")
    return Reason(type=anomalies_pb2.AnomalyInfo.INVALID_FEATURE_SHAPE, short_description="Feature shape dropped",
                  description=description)


def _six_digits(value: float) -> str:
    """absl::SixDigits, as TFDV prints distances."""
    return f"{value:.6g}"


def _drift_reason(d: FeatureDrift) -> Reason:
    if d.metric == drift.L_INFINITY:
        return Reason(type=anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
                      short_description="High Linfty distance between current and previous",
                      description=f"The Linfty distance between current and previous is {_six_digits(d.distance)} "
                                  f"(up to six significant digits), above the threshold {_six_digits(d.threshold)}. "
                                  f"The feature value with maximum difference is: {d.where}")
    return Reason(type=anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
                  short_description="High approximate Jensen-Shannon divergence between current and previous",
                  description=f"The approximate Jensen-Shannon divergence between current and previous is "
                              f"{_six_digits(d.distance)} (up to six significant digits), above the threshold "
                              f"{_six_digits(d.threshold)}.")


def _measurement(d: FeatureDrift) -> Measurement:
    kind = Measurement.L_INFTY if d.metric == drift.L_INFINITY else Measurement.JENSEN_SHANNON_DIVERGENCE
    return Measurement(type=kind, value=d.distance, threshold=d.threshold)


def _reasons(schema: schema_pb2.Schema, stats: statistics_pb2.DatasetFeatureStatistics,
             drift_report: DriftReport | None) -> dict[str, list[Reason]]:
    present = {feature_name(f): f for f in stats.features}
    known = {f.name for f in schema.feature}
    drifted = {comparator_feature(d): d for d in drift_report.features if d.drifted} if drift_report else {}
    found: dict[str, list[Reason]] = {}
    for feature in schema.feature:
        stats_feature = present.get(feature.name)
        if stats_feature is None:
            if _required(feature):
                found.setdefault(feature.name, []).append(Reason(
                    type=anomalies_pb2.AnomalyInfo.SCHEMA_MISSING_COLUMN, short_description="Column dropped",
                    description="Column is completely missing"))
            continue
        shape = _shape_reason(feature, common_stats(stats_feature))
        if shape is not None:
            found.setdefault(feature.name, []).append(shape)
        if feature.name in drifted and feature.HasField("drift_comparator"):
            found.setdefault(feature.name, []).append(_drift_reason(drifted[feature.name]))
    for name in present.keys() - known:
        found.setdefault(name, []).append(Reason(
            type=anomalies_pb2.AnomalyInfo.SCHEMA_NEW_COLUMN, short_description="New column",
            description="New column (column in data but not in schema)"))
    return found


def validate(stats: statistics_pb2.DatasetFeatureStatistics, schema: schema_pb2.Schema,
             drift_report: DriftReport | None) -> anomalies_pb2.Anomalies:
    """The anomalies of a split's statistics against `schema` (drift: `drift_report`, eval
    against train, measured on the features with a drift comparator)."""
    result = anomalies_pb2.Anomalies(anomaly_name_format=anomalies_pb2.Anomalies.SERIALIZED_PATH)
    result.baseline.CopyFrom(schema)
    for name, reasons in sorted(_reasons(schema, stats, drift_report).items()):
        info = result.anomaly_info[name]
        info.path.step.append(name)
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.reason.extend(reasons)
        single = len(reasons) == 1
        info.short_description = reasons[0].short_description if single else "Multiple errors"
        info.description = " ".join(r.description for r in reasons)
    compared = {f.name for f in schema.feature if f.HasField("drift_comparator")}
    for d in drift_report.features if drift_report else ():
        if comparator_feature(d) in compared:
            result.drift_skew_info.add(path=path_pb2.Path(step=[comparator_feature(d)]),
                                       drift_measurements=[_measurement(d)])
    return result


def summary(anomalies: anomalies_pb2.Anomalies) -> list[tuple[str, str, str]]:
    """(feature, short description, description) of every anomaly, by feature name."""
    return [(name, info.short_description, info.description) for name, info in sorted(anomalies.anomaly_info.items())]
