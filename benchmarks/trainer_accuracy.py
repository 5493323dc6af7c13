"""Trainer benchmark: the trainer's defaults against MiniRocket on real time-series datasets.

`python -m benchmarks.trainer_accuracy [--datasets ACSF1 ...] [--aeon_python PATH] [--trainer_flags ...]`

The datasets are UCR/UEA archives that `aeon` ships inside its package (no download). aeon
cannot share this stack's virtualenv (it pins pandas < 3.1), so benchmarks/minirocket_side.py
runs under `--aeon_python` (a virtualenv with `pip install aeon==1.6.0`): it writes each
dataset's train and test split as ragged .npz files and scores MiniRocket (aeon's defaults) on
them. Then, on the very same files, our side runs as a user would:
  python -m beam_pipeline --input train.npz --eval_input test.npz --output_dir OUT
  python -m trainer --data_dir OUT --model_dir MODEL            (defaults, plus --trainer_flags)
and scores the exported serving signature on raw test Examples (the test file's samples as
requests, unnormalized and unpadded), so the accuracy includes the whole serving path.
`--npz_dir DIR` skips the aeon side and reads DIR/NAME/{train,test}.npz instead (the smoke test).
Prints one row per dataset: accuracies, and seconds of MiniRocket's fit + predict and our training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from benchmarks import source_tree
from cli_support import console
from trainer import outputs

DATASETS = ("ACSF1", "PickupGestureWiimoteZ", "JapaneseVowels", "BasicMotions")
AEON_PYTHON = os.path.expanduser("~/.cache/npy-tft/aeon-venv/bin/python")
SIDE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "minirocket_side.py")


def minirocket(aeon_python: str, datasets: list[str], npz_dir: str) -> dict[str, dict[str, Any]]:
    """Writes the datasets' .npz files and returns MiniRocket's results per dataset."""
    proc = subprocess.run([aeon_python, SIDE_SCRIPT, npz_dir, *datasets], check=True, capture_output=True,
                          text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {row["dataset"]: row for row in rows}


def _run(module: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=source_tree.REPO,
                          env=source_tree.subprocess_env(), capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"python -m {module} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")


def serving_accuracy(serving_dir: str, test_npz: str) -> float:
    """Accuracy of the serving signature on the test file's samples sent as raw Examples."""
    import tensorflow as tf

    from trainer import export

    with np.load(test_npz) as f:
        samples, labels = np.split(f["x"], np.cumsum(f["lengths"])[:-1]), f["y"]
    serve = tf.saved_model.load(serving_dir).signatures[export.SIGNATURE]
    predicted = serve(examples=tf.constant([export.raw_example(s) for s in samples]))["class_id"].numpy()
    return float((predicted == labels).mean())


def ours(name: str, npz_dir: str, work: str, trainer_flags: list[str]) -> dict[str, Any]:
    """Pipeline, trainer (defaults), serving accuracy on one dataset's files."""
    data = os.path.join(npz_dir, name)
    out, model_dir = os.path.join(work, name, "out"), os.path.join(work, name, "model")
    _run("beam_pipeline", "--input", os.path.join(data, "train.npz"), "--eval_input", os.path.join(data, "test.npz"),
         "--output_dir", out, "--overwrite", "-q")
    _run("trainer", "--data_dir", out, "--model_dir", model_dir, "--progress", "0", *trainer_flags)
    with open(os.path.join(model_dir, outputs.METRICS_FILE)) as f:
        metrics = outputs.loads(f.read())
    return {"accuracy": serving_accuracy(metrics.serving_dir, os.path.join(data, "test.npz")),
            "keras_eval_accuracy": metrics.eval["accuracy"],
            "train_seconds": metrics.train_seconds, "epochs_run": metrics.epochs_run,
            "steps_per_epoch": metrics.steps_per_epoch, "global_batch_size": metrics.global_batch_size,
            "best_epoch": metrics.best_epoch}


def format_rows(results: list[dict[str, Any]]) -> str:
    lines = ["| dataset | train / test | MiniRocket accuracy (s) | ours accuracy "
             "| ours training s (epochs x steps, batch) |",
             "| --- | --- | --- | --- | --- |"]
    for r in results:
        mr, us = r.get("minirocket"), r["ours"]
        peer = f"{mr['accuracy']:.3f} ({mr['seconds']:.1f})" if mr else "-"
        lines.append(f"| {r['dataset']} | {r.get('sizes', '-')} | {peer} | {us['accuracy']:.3f} | "
                     f"{us['train_seconds']:.0f} ({us['epochs_run']} x {us['steps_per_epoch']}, "
                     f"{us['global_batch_size']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    console.setup(False)
    p = argparse.ArgumentParser(prog="python -m benchmarks.trainer_accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--aeon_python", default=os.environ.get("AEON_PYTHON", AEON_PYTHON),
                   help="an interpreter with aeon 1.6 (MiniRocket and the datasets)")
    p.add_argument("--npz_dir", help="read NAME/{train,test}.npz from here and skip MiniRocket")
    p.add_argument("--work_dir", help="keep the outputs here (default: a temporary directory)")
    p.add_argument("--trainer_flags", nargs=argparse.REMAINDER, default=[],
                   help="flags for every `python -m trainer` run (last on the command line)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or tmp
        npz_dir = args.npz_dir or os.path.join(work, "npz")
        peers = {} if args.npz_dir else minirocket(args.aeon_python, args.datasets, npz_dir)
        results = []
        for name in args.datasets:
            row: dict[str, Any] = {"dataset": name, "ours": ours(name, npz_dir, work, args.trainer_flags)}
            if name in peers:
                row["minirocket"] = peers[name]
                row["sizes"] = f"{peers[name]['train_examples']} / {peers[name]['test_examples']}"
            results.append(row)
            print(json.dumps(row), flush=True)
    print(format_rows(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
