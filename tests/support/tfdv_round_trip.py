"""The round trip a TFDV user makes with a pipeline output, run with real TFDV 1.16.1.

Runs in TFDV's own virtualenv (.ci/tfdv_venv builds it; it pins TensorFlow 2.16, so it
cannot share the project's), never in the project's: it imports nothing from this
repository. tests/test_tfdv_compat.py runs it on pipeline outputs of generated data.

    PYTHON_OF_TFDV tests/support/tfdv_round_trip.py --output_dir OUT \
        --train_inputs 'data/train-*.npz' [--expect_drift x[1] ...]

Checks, printing one line each and a JSON summary last; exit 1 when one fails:
  1. tfdv.infer_schema(stats/train.pb) is stats/schema.pbtxt once the two additions that
     file documents are made to it (derived features not required, drift comparators);
  2. tfdv.validate_statistics(stats/eval.pb, schema.pbtxt, previous_statistics=train.pb)
     flags exactly --expect_drift (drift) and nothing else, stats/anomalies.pbtxt flags the
     same features, and TFDV's drift measurements are those anomalies.pbtxt records;
  3. eval against the schema TFDV inferred (no comparators): no anomaly;
  4. TFDV's own statistics of raw tf.train.Examples of the training inputs (the serving
     input: `x` flattened, `length`, `label`), written here from the ragged .npz files
     (x [sum(T), F], lengths [N], y [N]), validate against schema.pbtxt with no anomaly.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2


def write_raw_examples(pattern: str, path: str) -> int:
    """Raw Examples of ragged .npz files, as the transform graph and serving parse them."""
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for name in sorted(glob.glob(pattern)):
            arrays = np.load(name)
            x, lengths, y = arrays["x"], arrays["lengths"], arrays["y"]
            starts = np.concatenate([[0], np.cumsum(lengths)])
            for i in range(len(y)):
                feature = {
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[starts[i]:starts[i + 1]].reshape(-1))),
                    "length": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(lengths[i])])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[i])]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
                count += 1
    return count


def as_documented(inferred: schema_pb2.Schema, ours: schema_pb2.Schema) -> schema_pb2.Schema:
    """TFDV's inferred schema with the additions schema.pbtxt documents: derived features
    not required, and our drift comparators."""
    result = schema_pb2.Schema()
    result.CopyFrom(inferred)
    comparators = {f.name: f.drift_comparator for f in ours.feature if f.HasField("drift_comparator")}
    for feature in result.feature:
        if feature.HasField("validation_derived_source"):
            feature.ClearField("presence")
        if feature.name in comparators:
            feature.drift_comparator.CopyFrom(comparators[feature.name])
    return result


def flagged(anomalies) -> dict[str, list[str]]:
    return {name: sorted(schema_pb2.Schema.DESCRIPTOR.file.pool.FindEnumTypeByName(
        "tensorflow.metadata.v0.AnomalyInfo.Type").values_by_number[r.type].name for r in info.reason)
        for name, info in anomalies.anomaly_info.items()}


def measurements(anomalies) -> dict[str, float]:
    return {".".join(d.path.step): round(m.value, 6) for d in anomalies.drift_skew_info for m in d.drift_measurements}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--train_inputs", required=True, help="glob of the ragged .npz training inputs")
    parser.add_argument("--expect_drift", nargs="*", default=[], help="features eval must be flagged for")
    args = parser.parse_args()
    stats_dir = os.path.join(args.output_dir, "stats")
    train = tfdv.load_stats_binary(os.path.join(stats_dir, "train.pb"))
    evaluation = tfdv.load_stats_binary(os.path.join(stats_dir, "eval.pb"))
    ours = tfdv.load_schema_text(os.path.join(stats_dir, "schema.pbtxt"))
    our_anomalies = tfdv.load_anomalies_text(os.path.join(stats_dir, "anomalies.pbtxt"))
    inferred = tfdv.infer_schema(train)
    results: dict[str, object] = {}

    def check(name: str, ok: bool, detail: object) -> None:
        results[name] = {"ok": bool(ok), "detail": detail}
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {json.dumps(detail)}", flush=True)

    documented = as_documented(inferred, ours)
    differing = [f.name for f, g in zip(documented.feature, ours.feature) if f != g]
    check("schema_matches_tfdv_infer_schema", documented == ours,
          differing or [f.name for f in ours.feature] if documented != ours else "equal")

    expected = {name: ["COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"] for name in args.expect_drift}
    tfdv_anomalies = tfdv.validate_statistics(evaluation, ours, previous_statistics=train)
    check("eval_against_schema_pbtxt", flagged(tfdv_anomalies) == expected,
          {"tfdv": flagged(tfdv_anomalies), "tfdv_drift": measurements(tfdv_anomalies),
           "ours_drift": measurements(our_anomalies)})
    check("anomalies_pbtxt_agrees", flagged(our_anomalies) == flagged(tfdv_anomalies), flagged(our_anomalies))
    theirs, mine = measurements(tfdv_anomalies), measurements(our_anomalies)
    check("drift_measurements_agree", theirs.keys() == mine.keys() and all(
        abs(theirs[k] - mine[k]) <= 1e-5 for k in mine), sorted(mine))
    check("eval_against_tfdv_inferred_schema", not tfdv.validate_statistics(evaluation, inferred).anomaly_info,
          flagged(tfdv.validate_statistics(evaluation, inferred)))

    raw_path = os.path.join(args.output_dir, "raw_train.tfrecord")
    count = write_raw_examples(args.train_inputs, raw_path)
    raw = tfdv.generate_statistics_from_tfrecord(raw_path)
    raw_anomalies = tfdv.validate_statistics(raw, ours)
    check("raw_examples_against_schema_pbtxt", count > 0 and not raw_anomalies.anomaly_info,
          {"examples": count, "anomalies": flagged(raw_anomalies)})
    print(json.dumps(results))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
