"""What the fingerprint, preprocess and train steps do, inside their kfp components.

Each step passes paths, never data: preprocess hands the pipeline's --output_dir to train as its
--data_dir. The two CLIs stay black boxes run in subprocesses, so TensorFlow never loads in the
orchestrator and each CLI still runs alone exactly as it does here.

Everything this module runs for preprocess or train is part of that step's code version (see
PREPROCESS_CODE, TRAIN_CODE): editing it reruns them. Validation and publishing live in
workflow.publish so that changing them reruns neither.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from cli_support import paths
from trainer import outputs as model_outputs
from transforms import outputs
from transforms.manifest import Manifest
from workflow import fingerprint as fp
from workflow import report, storage

# The sources each step runs: a change to any of them reruns the step (and what follows it).
PREPROCESS_CODE = ("beam_pipeline", "transforms", "cli_support", "workflow.steps", "workflow.storage")
TRAIN_CODE = ("trainer", "transforms", "cli_support", "workflow.steps", "workflow.storage")


def location(uri: str, path: str) -> str:
    """Where a step reads or writes an artifact: its URI on a remote store, else its local path.

    On Vertex AI an artifact's `path` is a /gcs/... FUSE mount of its gs:// URI. Beam and
    TensorFlow read and write gs:// natively, and Dataflow workers cannot see the mount.
    """
    return uri if paths.is_remote(uri) else path


def fingerprint(input_globs: Sequence[str], eval_globs: Sequence[str], stat_cache: str) -> tuple[str, str]:
    """The cache keys kfp cannot compute: (preprocess key: input content + code, train key: code)."""
    data = fp.data_fingerprint({"train": input_globs, "eval": eval_globs}, stat_cache)
    preprocess_key = hashlib.sha256(f"{data.key}\0{fp.code_version(PREPROCESS_CODE)}".encode()).hexdigest()
    train_key = fp.code_version(TRAIN_CODE)
    report.record("fingerprint", files=data.files, hashed=data.hashed, reused=data.reused, remote=data.remote,
                  preprocess_key=preprocess_key, train_key=train_key)
    return preprocess_key, train_key


def beam_flags(runner: str, project: str, region: str, bucket: str) -> list[str]:
    """Beam options from the pipeline's parameters. No runner: the CLI's in-process FnApiRunner."""
    flags = ["--runner", runner] if runner else []
    flags += ["--project", project] if project else []
    flags += ["--region", region] if region else []
    if bucket:
        root = "gs://" + bucket.removeprefix("gs://").rstrip("/")
        flags += ["--temp_location", f"{root}/beam/tmp", "--staging_location", f"{root}/beam/staging"]
    return flags


def run_cli(step: str, module: str, args: Sequence[str]) -> None:
    """Runs `python -m MODULE ARGS` with this interpreter; its output goes to the step's log.

    Raises:
      SystemExit: the CLI exited non-zero (1: the run failed, 2: a usage error): the step ends
        with its status. Its error line, already in the step's log, is reported
        (report.FAILURE) for the run's summary; a traceback of this function would add nothing.
    """
    command = [sys.executable, "-m", module, *args]
    print(f"running: {shlex.join(command)}", flush=True)
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    cause = None
    for line in proc.stderr:   # copied through as it comes; the CLI's last "error: " line says why it failed
        sys.stderr.write(line)
        if line.startswith("error: "):
            cause = line.removeprefix("error: ").strip()
    code = proc.wait()
    if code != 0:
        cause = cause or f"python -m {module} exited with status {code}"
        report.record(report.FAILURE, failed_step=step, cause=cause)
        sys.exit(code)


def preprocess(input_globs: Sequence[str], eval_globs: Sequence[str], output_dir: str, flags: Sequence[str],
               key: str) -> dict[str, Any]:
    """Runs the Beam job into output_dir (flags: the pipeline's and Beam's); returns facts for the artifact."""
    argv = [a for g in input_globs for a in ("--input", g)] + [a for g in eval_globs for a in ("--eval_input", g)]
    # --overwrite: a retried execution reuses its output directory.
    run_cli("preprocess", "beam_pipeline", [*argv, "--output_dir", output_dir, "--overwrite", *flags])
    manifest = Manifest.from_json(storage.read_json(storage.join(output_dir, outputs.MANIFEST)))
    facts = {"key": key, "examples": {s: v.examples_written for s, v in manifest.splits.items()},
             "inputs": len(manifest.inputs)}
    report.record("preprocess", output=output_dir, **facts)
    return facts


def copy_report(output_dir: str, path: str) -> None:
    """Copies the run's report.html to `path` (the preprocess step's HTML artifact)."""
    storage.copy_file(storage.join(output_dir, outputs.REPORT), path)


def read_metrics(model_dir: str) -> model_outputs.TrainMetrics:
    """The trainer's metrics.json in model_dir (local or remote)."""
    return model_outputs.TrainMetrics.from_json(storage.read_json(storage.join(model_dir, model_outputs.METRICS_FILE)))


def train(data_dir: str, model_dir: str, epochs: int, batch_size: int, extra_args: Sequence[str],
          key: str) -> dict[str, Any]:
    """Trains into model_dir (a fresh directory per execution); returns its final metrics.
    epochs and batch_size 0 leave them to the trainer, which fits them to the data."""
    sizes = [a for flag, n in (("--epochs", epochs), ("--batch_size", batch_size)) if n for a in (flag, str(n))]
    run_cli("train", "trainer", ["--data_dir", data_dir, "--model_dir", model_dir, *sizes, *extra_args])
    metrics = read_metrics(model_dir)
    facts = {"key": key, "task": metrics.task, "train": metrics.train, "eval": metrics.eval}
    report.record("train", output=model_dir, **facts)
    return facts


def metric_values(facts: dict[str, Any]) -> dict[str, float]:
    """The numbers of train's facts as `SPLIT_NAME` metrics (e.g. eval_accuracy), for kfp."""
    return {f"{split}_{name}": float(value) for split in ("train", "eval")
            for name, value in (facts.get(split) or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def record_metrics(artifact: Any, figures: dict[str, float]) -> None:
    """Logs each figure on a kfp `Metrics` artifact (the run page shows them) and writes them
    to its file as JSON: kfp's local runner takes a cached step whose output artifact has no
    file for a miss, and would rerun it."""
    for name, value in figures.items():
        artifact.log_metric(name, value)
    storage.write_json(artifact.path, figures)
