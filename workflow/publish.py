"""The validate and publish steps: a model goes out only if it is good enough and not worse.

A published model lives at a stable location, PUBLISH_DIR:

  versions/<version>/   serving/ (the SavedModel), metrics.json, manifest.json and report.html
                        (the data's), publish.json (what was published, from which run, when)
  LATEST.json           the pointer: which version is current, its metrics and provenance
  current -> versions/<version>   (local filesystems only) a symlink servers can load from

A version directory is complete before anything points at it, and is never changed after.
Locally it is copied into versions/.staging-* and renamed into place, then the pointer and the
symlink are each replaced with one atomic rename: a server sees the old model or the new one,
never a part. On GCS there is no atomic directory rename; the version is written under its
own prefix, which nothing names yet, and the pointer object is written last (an object becomes
visible only once complete), so servers must resolve LATEST.json (see docs/workflow.md).
A step killed at any point leaves the previous pointer, so the previous model, in place.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import os
import shutil
import uuid
from typing import Any

from cli_support import paths
from trainer.outputs import HEADLINE, METRICS_FILE, SERVING_DIR, TrainMetrics
from transforms import outputs
from workflow import report, steps, storage

POINTER = "LATEST.json"
CURRENT_LINK = "current"
VERSIONS_DIR = "versions"
RECORD_FILE = "publish.json"


@dataclasses.dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str


def published(publish_dir: str) -> dict[str, Any] | None:
    """The pointer of the currently published model, or None before the first publish."""
    return storage.read_json(storage.join(publish_dir, POINTER))


def decide(candidate_uri: str, metrics: TrainMetrics, current: dict[str, Any] | None, min_accuracy: float,
           max_regression: float, max_mae: float = 0.0) -> Decision:
    """Whether the candidate may replace the published model, judged by its task's headline
    figure on the eval split (trainer/outputs.HEADLINE).

    Classification: eval accuracy >= min_accuracy, and at most max_regression below the
    published model's. Regression: eval MAE <= max_mae (0: no threshold), and at most
    max_regression (a fraction) above the published model's. A NaN is refused. The published
    models' figures were measured on the eval split of their own run: when the eval files
    change, the comparison is across two eval sets (see docs/workflow.md); a published model
    of another task is not compared.
    """
    if current is not None and current["model_uri"] == candidate_uri:
        return Decision(True, f"already the published model (version {current['version']})")
    name = HEADLINE[metrics.task]
    value = metrics.headline("eval")
    if value is None:
        return Decision(False, "the candidate has no eval metrics")
    if math.isnan(value):
        return Decision(False, f"eval {name} is NaN")
    passes, threshold = _threshold(metrics.task, value, min_accuracy, max_mae)
    if not passes:
        return Decision(False, f"eval {name} {value:.4f} is {threshold}")
    baseline = _published_figure(current, metrics.task)
    if baseline is None:
        nothing = "nothing published yet" if current is None else "the published version is of another task"
        return Decision(True, f"eval {name} {value:.4f} {threshold}; {nothing}")
    if metrics.task == "regression":
        limit, better = baseline * (1 + max_regression), value <= baseline * (1 + max_regression)
        rule = f"{baseline:.4f} x (1 + max_regression {max_regression}) = {limit:.4f}"
    else:
        limit, better = baseline - max_regression, value >= baseline - max_regression
        rule = f"{baseline:.4f} - max_regression {max_regression}"
    if not better:
        return Decision(False, f"worse than the published version {current['version']}: eval {name} "
                               f"{value:.4f} against {rule}")
    return Decision(True, f"eval {name} {value:.4f} {threshold} and against published {rule}")


def _threshold(task: str, value: float, min_accuracy: float, max_mae: float) -> tuple[bool, str]:
    """Whether the headline figure passes the task's own threshold, and the threshold in words."""
    if task == "regression":
        if not max_mae:
            return True, "(no --max_mae threshold)"
        ok = value <= max_mae
        return ok, f"<= {max_mae}" if ok else f"above the threshold {max_mae}"
    ok = value >= min_accuracy
    return ok, f">= {min_accuracy}" if ok else f"below the threshold {min_accuracy}"


def _published_figure(current: dict[str, Any] | None, task: str) -> float | None:
    """The published model's headline figure for `task` (records before tasks were recorded
    are classification)."""
    if current is None or current["metrics"].get("task", "classification") != task:
        return None
    value = (current["metrics"].get("eval") or {}).get(HEADLINE[task])
    return None if value is None else float(value)


def validate(model_dir: str, model_uri: str, publish_dir: str, min_accuracy: float,
             max_regression: float, max_mae: float = 0.0) -> tuple[bool, dict[str, float]]:
    """The validate step: decides and reports. Returns the decision (True lets the publish
    step run) and its figures: approved (1 or 0), the candidate's eval headline figure
    (eval_accuracy or eval_mae) and the published model's, where there are."""
    metrics = steps.read_metrics(model_dir)
    current = published(publish_dir)
    decision = decide(model_uri, metrics, current, min_accuracy, max_regression, max_mae)
    report.record("validate", approved=decision.approved, reason=decision.reason, eval=metrics.eval)
    figures = {"approved": float(decision.approved)}
    name = HEADLINE[metrics.task]
    if metrics.headline("eval") is not None:
        figures[f"eval_{name}"] = metrics.headline("eval")
    baseline = _published_figure(current, metrics.task)
    if baseline is not None:
        figures[f"published_eval_{name}"] = baseline
    return decision.approved, figures


def _published_metrics(metrics: TrainMetrics) -> dict[str, Any]:
    """What the pointer keeps of the metrics: what the next validation compares with."""
    return {"task": metrics.task, "train": metrics.train, "eval": metrics.eval}


def _version_name(model_uri: str) -> str:
    """Sortable by time, unique per candidate: two publishers never write the same version."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{now}-{hashlib.sha256(model_uri.encode()).hexdigest()[:8]}"


def _fill_version(folder: str, model_dir: str, dataset_dir: str, record: dict[str, Any]) -> None:
    storage.copy_tree(storage.join(model_dir, SERVING_DIR), storage.join(folder, SERVING_DIR))
    for src, name in ((model_dir, METRICS_FILE), (dataset_dir, outputs.MANIFEST)):
        storage.write_json(storage.join(folder, name), storage.read_json(storage.join(src, name)))
    storage.copy_file(storage.join(dataset_dir, outputs.REPORT), storage.join(folder, outputs.REPORT))
    storage.write_json(storage.join(folder, RECORD_FILE), record)


def _write_local_version(publish_dir: str, version: str, model_dir: str, dataset_dir: str,
                         record: dict[str, Any]) -> None:
    """Copies into a staging directory, then renames it into versions/: complete or absent."""
    versions = os.path.join(publish_dir, VERSIONS_DIR)
    staging = os.path.join(versions, f".staging-{version}")
    os.makedirs(staging)
    try:
        _fill_version(staging, model_dir, dataset_dir, record)
        os.rename(staging, os.path.join(versions, version))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _point_link(publish_dir: str, version: str) -> None:
    """Swaps the `current` symlink with one rename (a symlink cannot be retargeted in place)."""
    link = os.path.join(publish_dir, CURRENT_LINK)
    tmp = os.path.join(publish_dir, f".{CURRENT_LINK}-{uuid.uuid4().hex}")   # unique: a killed run may leave one
    os.symlink(os.path.join(VERSIONS_DIR, version), tmp)
    os.replace(tmp, link)


def publish(model_dir: str, model_uri: str, dataset_dir: str, dataset_uri: str, publish_dir: str,
            data_key: str) -> str:
    """The publish step: makes the candidate the current model; returns its version."""
    current = published(publish_dir)
    if current is not None and current["model_uri"] == model_uri:
        if not paths.is_remote(publish_dir):
            _point_link(publish_dir, current["version"])   # in case a run was killed between the two switches
        report.record("publish", result="up to date", version=current["version"], publish_dir=publish_dir)
        return current["version"]
    version = _version_name(model_uri)
    record = {"version": version, "path": f"{VERSIONS_DIR}/{version}", "model_uri": model_uri,
              "dataset_uri": dataset_uri, "data_key": data_key,
              "metrics": _published_metrics(steps.read_metrics(model_dir)),
              "published_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "previous_version": current["version"] if current else None}
    if paths.is_remote(publish_dir):
        _fill_version(storage.join(publish_dir, VERSIONS_DIR, version), model_dir, dataset_dir, record)
    else:
        _write_local_version(publish_dir, version, model_dir, dataset_dir, record)
    storage.write_json(storage.join(publish_dir, POINTER), record)   # the switch: one atomic write
    if not paths.is_remote(publish_dir):
        _point_link(publish_dir, version)
    report.record("publish", result="published", version=version, publish_dir=publish_dir)
    return version
