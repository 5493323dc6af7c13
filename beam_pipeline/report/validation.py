"""The report's section on stats/schema.pbtxt and stats/anomalies.pbtxt.

What TFX's SchemaGen and ExampleValidator would show: eval's anomalies against the schema
inferred from train (drift included), then the schema itself, one row per feature.
"""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from beam_pipeline.report.html import esc, more, not_recorded, table
from beam_pipeline.statistics import schema as schemas
from beam_pipeline.statistics.anomalies import summary as anomaly_summary
from transforms.outputs import ANOMALIES, SCHEMA

MAX_ROWS = 256
MAX_DOMAIN_VALUES = 10


def read(output_dir: str) -> tuple[schema_pb2.Schema | None, anomalies_pb2.Anomalies | None]:
    """The run's schema and anomalies (None for a file the run did not write)."""
    def load(name: str, message):
        path = schemas.stats_file(output_dir, name)
        return schemas.read_text_proto(path, message) if FileSystems.exists(path) else None

    return load(SCHEMA, schema_pb2.Schema()), load(ANOMALIES, anomalies_pb2.Anomalies())


def check_line(anomalies: anomalies_pb2.Anomalies | None) -> str:
    """One line for the report's checks."""
    if anomalies is None:
        return "anomalies (eval against the train schema): not recorded"
    names = sorted(anomalies.anomaly_info)
    return (f"anomalies (eval against the train schema, stats/{ANOMALIES}): "
            + (f"{len(names)}: " + esc(", ".join(names[:20])) if names else "none"))


def _presence(feature: schema_pb2.Feature) -> str:
    if not feature.HasField("presence"):
        return "not required"
    return f"min_count {feature.presence.min_count}, min_fraction {feature.presence.min_fraction:g}"


def _values(feature: schema_pb2.Feature) -> str:
    if feature.HasField("shape"):
        return "shape [" + ", ".join(str(d.size) for d in feature.shape.dim) + "]"
    if feature.HasField("value_count"):
        count = feature.value_count
        return f"{count.min}..{count.max}" if count.HasField("max") else f">= {count.min}"
    return "-"


def _domain(feature: schema_pb2.Feature, string_domains: dict[str, list[str]]) -> str:
    kind = feature.WhichOneof("domain_info")
    if kind == "domain":
        values = string_domains.get(feature.domain, [])
        shown = ", ".join(values[:MAX_DOMAIN_VALUES]) + (", ..." if len(values) > MAX_DOMAIN_VALUES else "")
        return f"strings ({len(values)}): {shown}"
    if kind == "int_domain":
        return "categorical int" if feature.int_domain.is_categorical else "int"
    if kind == "bool_domain":
        return "bool"
    return "-"


def _comparator(feature: schema_pb2.Feature) -> str:
    comparator = feature.drift_comparator
    if comparator.infinity_norm.HasField("threshold"):
        return f"L-infinity <= {comparator.infinity_norm.threshold:g}"
    if comparator.jensen_shannon_divergence.HasField("threshold"):
        return f"JSD <= {comparator.jensen_shannon_divergence.threshold:g}"
    return "-"


def _schema_rows(schema: schema_pb2.Schema) -> list[list[str]]:
    string_domains = {d.name: list(d.value) for d in schema.string_domain}
    rows = []
    for f in schema.feature[:MAX_ROWS]:
        source = ", ".join(".".join(p.step) for p in f.validation_derived_source.source_path)
        rows.append([f.name, schema_pb2.FeatureType.Name(f.type), _presence(f), _values(f),
                     _domain(f, string_domains), source or "-", _comparator(f)])
    return rows


def section(schema: schema_pb2.Schema | None, anomalies: anomalies_pb2.Anomalies | None) -> str:
    """The section's HTML."""
    parts = ["<h2>Schema and anomalies</h2>"]
    if anomalies is None:
        parts.append(not_recorded(f"Anomalies (stats/{ANOMALIES})"))
    elif not anomalies.anomaly_info:
        parts.append("<p class='ok'>No anomalies: eval matches the schema inferred from train, drift included.</p>")
    else:
        rows = [list(row) for row in anomaly_summary(anomalies)]
        parts.append(table(["feature", "anomaly", "description"], rows))
    if schema is None:
        return "".join(parts) + not_recorded(f"Schema (stats/{SCHEMA})")
    parts.append(f"<h3>Schema inferred from train (stats/{SCHEMA})</h3>"
                 "<p class='muted'>Derived features (a source is named) are computed for validation and "
                 "never required of raw Examples; numeric drift is compared on each feature's "
                 "<code>@train_bins</code> (docs/report.md).</p>")
    parts.append(table(["feature", "type", "presence", "values per example", "domain", "derived from",
                        "drift comparator"], _schema_rows(schema)))
    parts.append(more(len(schema.feature), MAX_ROWS, f"features (see stats/{SCHEMA})"))
    return "".join(parts)

