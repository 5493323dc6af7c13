"""Command line: run the workflow on this machine, or compile it for Vertex AI Pipelines / Kubeflow.

  python -m workflow run --input 'data/train-*.npz' --eval_input 'data/test-*.npz' \\
      [--root workflow_runs] [--publish_dir published] [--epochs N] [--min_accuracy 0.0] ...
  python -m workflow compile --image IMAGE [--output workflow.yaml]

`run` executes the pipeline with kfp's local runner: each step in a subprocess of this
interpreter, no server, no Docker; a step whose inputs, parameters and code are unchanged
since its last complete run is served from kfp's cache under ROOT/.kfp_cache. It ends with one
line per step (ran / cached / skipped) and the published model, also written to
ROOT/last_run.json.

Exit codes: 0 the workflow completed (also when validation kept the published model);
1 a step failed; 2 a usage error.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import sys
import tempfile
import time
from typing import Any

from cli_support import console, flags, paths
from cli_support.errors import RunFailedError, UsageError
from trainer import outputs as model_outputs
from workflow import publish, report, storage

CACHED_STEPS = ("preprocess", "train")
STEPS = ("fingerprint", "preprocess", "train", "validate", "publish")
SUMMARY_FILE = "last_run.json"
STAT_CACHE_FILE = "fingerprint-stat-cache.json"


def build_parser() -> argparse.ArgumentParser:
    p = flags.StrictParser(prog="python -m workflow", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole workflow here (kfp local runner, cached by content)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--input", action="append", required=True, metavar="GLOB", help="training files; repeatable")
    run.add_argument("--eval_input", action="append", required=True, metavar="GLOB",
                     help="evaluation files (validation needs eval metrics); repeatable")
    run.add_argument("--root", default="workflow_runs",
                     help="local pipeline root: every step's outputs, kfp's cache (.kfp_cache/), the stat cache")
    run.add_argument("--publish_dir", default="published",
                     help="stable location of the published model (LATEST.json, current/, versions/)")
    run.add_argument("--no_cache", action="store_true", help="run every step, even those with a cached result")
    train = run.add_argument_group("training and validation")
    train.add_argument("--epochs", type=int, default=0, help="0: the trainer's default (fitted to the data)")
    train.add_argument("--batch_size", type=int, default=0, help="0: the trainer's default (fitted to the data)")
    train.add_argument("--min_accuracy", type=float, default=0.0,
                       help="classification: a model below this eval accuracy is not published")
    train.add_argument("--max_mae", type=float, default=0.0,
                       help="regression: a model above this eval mean absolute error is not published (0: no limit)")
    train.add_argument("--max_regression", type=float, default=0.0,
                       help="how much worse than the published model a new one may be and still be published: "
                            "eval accuracy lost (classification), or a fraction of its eval MAE (regression)")
    scale = run.add_argument_group("runner (default: Beam's in-process runner)")
    for flag in ("runner", "project", "region"):
        scale.add_argument(f"--{flag}", default="")
    scale.add_argument("--bucket", default="", help="gs:// bucket for Beam's temp and staging files")
    extra = run.add_argument_group("passed through (use the = form: --train_arg=--learning_rate=0.01)")
    extra.add_argument("--preprocess_arg", action="append", default=[], metavar="ARG",
                       help="a flag for `python -m beam_pipeline` (or Beam); repeatable")
    extra.add_argument("--train_arg", action="append", default=[], metavar="ARG",
                       help="a flag for `python -m trainer`; repeatable")
    comp = sub.add_parser("compile", help="write the pipeline YAML for Vertex AI Pipelines / Kubeflow",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    comp.add_argument("--output", default="workflow.yaml")
    comp.add_argument("--image", required=True,
                      help="container image of every step: this project, its stack and kfp installed")
    comp.add_argument("--train_accelerator_type", default="", help="e.g. NVIDIA_L4, NVIDIA_TESLA_T4")
    comp.add_argument("--train_accelerator_count", type=int, default=1)
    return p


def _checked_globs(patterns: list[str]) -> list[str]:
    """Absolute patterns; a local one that matches nothing is a usage error now, not a failed step."""
    patterns = [paths.absolute(p) for p in patterns]
    empty = [p for p in patterns if not paths.is_remote(p) and not glob.glob(p)]
    if empty:
        raise UsageError(f"no file matches {empty[0]}")
    return patterns


def _parameters(args: argparse.Namespace, root: str) -> dict[str, Any]:
    return {"input_globs": _checked_globs(args.input), "eval_globs": _checked_globs(args.eval_input),
            "publish_dir": paths.absolute(args.publish_dir),
            "epochs": args.epochs, "batch_size": args.batch_size, "min_accuracy": args.min_accuracy,
            "max_regression": args.max_regression, "max_mae": args.max_mae, "runner": args.runner,
            "project": args.project, "region": args.region, "bucket": args.bucket,
            "preprocess_args": args.preprocess_arg, "train_args": args.train_arg,
            "stat_cache": os.path.join(root, STAT_CACHE_FILE)}


def _statuses(records: dict[str, dict], completed: bool) -> dict[str, dict]:
    """Each step's outcome. A cacheable step that completed without running was a cache hit."""
    steps = {}
    for step in STEPS:
        if step in records:
            steps[step] = {"status": "ran", **records[step]}
        elif not completed:
            steps[step] = {"status": "not completed"}
        elif step in CACHED_STEPS:
            steps[step] = {"status": "cached"}
        else:
            steps[step] = {"status": "skipped"}
    return steps


def _detail(step: str, s: dict[str, Any]) -> str:
    if s["status"] == "cached":
        return "inputs, parameters and code unchanged since its last complete run"
    if s["status"] != "ran":
        return "validation did not approve the model" if step == "publish" else ""
    if step == "fingerprint":
        return f"{s['files']} files: {s['hashed']} hashed, {s['reused']} unchanged (size+mtime), {s['remote']} remote"
    if step == "preprocess":
        return f"examples {s['examples']} -> {s['output']}"
    if step == "train":
        return f"eval {s['eval']} -> {s['output']}"
    if step == "validate":
        return f"{'approved' if s['approved'] else 'REJECTED'}: {s['reason']}"
    return f"{s['result']}: version {s['version']}"


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"\n== workflow {summary['status']} in {summary['elapsed_s']:.1f} s")
    for step, s in summary["steps"].items():
        print(f"  {step:<12} {s['status']:<8} {_detail(step, s)}")
    current = summary["published"]
    if current is None:
        print("published model: none")
        return
    where = storage.join(summary["publish_dir"], current["path"], model_outputs.SERVING_DIR)
    print(f"published model: {where} (version {current['version']}; eval {json.dumps(current['metrics']['eval'])})")
    if not paths.is_remote(where):
        print(f"  stable path: {os.path.join(summary['publish_dir'], publish.CURRENT_LINK, model_outputs.SERVING_DIR)}")


def run_local(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the pipeline with kfp's local runner; returns (and writes) the run's summary."""
    from kfp import local

    from workflow import pipeline

    root = os.path.abspath(args.root)
    params = _parameters(args, root)
    os.makedirs(root, exist_ok=True)
    fd, report_path = tempfile.mkstemp(dir=root, prefix=".report-", suffix=".jsonl")
    os.close(fd)
    os.environ[report.REPORT_ENV] = report_path
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, enable_caching=not args.no_cache)
    start, error = time.perf_counter(), None
    try:
        pipeline.build_pipeline()(**params)
    except RuntimeError as e:   # kfp: a task finished with status FAILURE
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(e))   # kfp colors task names
    finally:
        records = report.read(report_path)
        os.unlink(report_path)
    failure = records.get(report.FAILURE)
    if error and failure:   # kfp names the task; its CLI said why
        error = f"step {failure['failed_step']}: {failure['cause']}"
    summary = {"status": "failed" if error else "succeeded", "error": error,
               "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
               "elapsed_s": round(time.perf_counter() - start, 2), "steps": _statuses(records, error is None),
               "publish_dir": params["publish_dir"], "published": publish.published(params["publish_dir"])}
    storage.write_json(os.path.join(root, SUMMARY_FILE), summary)
    _print_summary(summary)
    return summary


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parses flags and runs or compiles; returns the run's summary ({} for compile).

    Raises:
      UsageError: inputs that match nothing.
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "compile":
        from workflow import pipeline

        pipeline.compile_pipeline(args.output, args.image, args.train_accelerator_type, args.train_accelerator_count)
        print(f"pipeline written to {args.output}")
        return {}
    return run_local(args)


def _run_or_fail(argv: list[str] | None) -> dict[str, Any]:
    summary = run(argv)
    if summary.get("status") == "failed":
        raise RunFailedError(f"the workflow failed: {summary['error']}")
    return summary


def main(argv: list[str] | None = None) -> None:
    """Console entry point: 0 done, 1 a step failed, 2 a usage error, 130 interrupted."""
    console.run_main(_run_or_fail, argv, interrupted="interrupted", crashed="the workflow crashed")


if __name__ == "__main__":
    main()
