"""Length-bucket benchmark: what padding costs, on long-tailed and on uniform sequence lengths.

`python -m benchmarks.buckets [--samples 6000] [--epochs 4]`

Generates (seeded) one-channel sequences whose class is the frequency of a noisy sine, with
lengths either heavy-tailed (lognormal, 100..1,344 steps, like appliance current traces) or
uniform (50..200, the preprocessing benchmark's). For each length distribution it compares,
side by side in one run:
  (a) one length:  `python -m beam_pipeline` as is: every record padded to max_length;
  (b) our buckets: the same with `--length_buckets auto`; the trainer reads it with no flag;
  (c) ragged + bucket_by_sequence_length: the usual read-time recipe, built from (b)'s records
      with the padding stripped (the same normalized values): variable-length records parsed
      one by one, then `tf.data.Dataset.bucket_by_sequence_length` on (b)'s bounds.
and reports output bytes, pipeline wall time, the training input pipeline's examples/s (no
model; after every bucket delivered a batch, as the trainer measures it), seconds per training
epoch with the trainer's masked CNN on this CPU (its own fit, evaluation included; the median
of the epochs after the first, which traces and compiles) and the last epoch's eval accuracy.
All three train the same model, seed and batch size.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks import source_tree
from cli_support import console
from trainer import outputs
from transforms.manifest import read_local

DISTRIBUTIONS = ("heavy_tailed", "uniform")
NUM_CLASSES = 3
BATCH_SIZE = 64
WIDTH = 32


def lengths_of(distribution: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if distribution == "heavy_tailed":
        return np.clip(np.round(rng.lognormal(5.5, 0.6, n)) + 100, 100, 1344).astype(np.int64)
    return rng.integers(50, 201, n)


def write_split(path: str, distribution: str, n: int, seed: int) -> None:
    """One ragged .npz: a noisy sine per sample, its frequency set by the class."""
    rng = np.random.default_rng(seed)
    lengths, labels = lengths_of(distribution, rng, n), rng.integers(0, NUM_CLASSES, n)
    steps = np.concatenate([np.arange(t) for t in lengths])
    frequency = np.repeat(0.02 + 0.01 * labels, lengths)
    phase = np.repeat(rng.uniform(0, 2 * np.pi, n), lengths)
    x = np.sin(2 * np.pi * frequency * steps + phase) + rng.normal(0, 2.0, len(steps))
    np.savez_compressed(path, x=x.astype(np.float32)[:, None], lengths=lengths, y=labels)


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(path, "data", "*")))


def steady_epoch_seconds(seconds: list[float]) -> float:
    """An epoch's time once traced and compiled: the median of the epochs after the first."""
    return float(np.median(seconds[1:]))


def run_pipeline(data: str, out: str, *flags: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "beam_pipeline", "--input", f"{data}/train-*.npz", "--eval_input",
                    f"{data}/eval-*.npz", "--output_dir", out, "-q", *flags],
                   check=True, cwd=source_tree.REPO, env=source_tree.subprocess_env(), stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def train_cli(out: str, model_dir: str, epochs: int) -> outputs.TrainMetrics:
    """The trainer's CLI on an output; returns its metrics.json."""
    subprocess.run([sys.executable, "-m", "trainer", "--data_dir", out, "--model_dir", model_dir, "--epochs",
                    str(epochs), "--batch_size", str(BATCH_SIZE), "--width", str(WIDTH), "--progress", "0",
                    # as the ragged side trains: no augmentation, no validation hold-out; its input measured
                    "--augment", "none", "--validation_fraction", "0", "--throughput_batches", "50"],
                   check=True, cwd=source_tree.REPO, env=source_tree.subprocess_env(), stdout=subprocess.DEVNULL)
    with open(os.path.join(model_dir, outputs.METRICS_FILE)) as f:
        return outputs.loads(f.read())


def write_ragged(bucketed: str, target: str) -> int:
    """(b)'s records with the padding stripped, as variable-length Examples in target/data/;
    returns their bytes."""
    import tensorflow as tf

    m = read_local(bucketed)
    os.makedirs(os.path.join(target, "data"), exist_ok=True)
    import tensorflow_transform as tft

    base = tft.TFTransformOutput(bucketed).transformed_feature_spec()
    for split, summary in m.splits.items():
        with tf.io.TFRecordWriter(os.path.join(target, "data", f"{split}-00000.tfrecord")) as writer:
            for shard in summary.shards:
                spec = dict(base, x=tf.io.FixedLenFeature([m.shard_length(shard), 1], tf.float32))
                for batch in tf.data.TFRecordDataset(os.path.join(bucketed, shard.file)).batch(256):
                    parsed = tf.io.parse_example(batch, spec)
                    for x, n, y in zip(parsed["x"].numpy(), parsed["length"].numpy(), parsed["label"].numpy()):
                        example = tf.train.Example(features=tf.train.Features(feature={
                            "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[:n, 0])),
                            "length": tf.train.Feature(int64_list=tf.train.Int64List(value=[n])),
                            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[y]))}))
                        writer.write(example.SerializeToString())
    return dir_bytes(target)


def train_ragged(bucketed: str, ragged: str, epochs: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.ragged_train", bucketed, ragged, str(epochs), str(BATCH_SIZE),
               str(WIDTH)]
    proc = subprocess.run(command, check=True, cwd=source_tree.REPO, env=source_tree.subprocess_env(),
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(distribution: str, args: argparse.Namespace, work: str) -> dict[str, Any]:
    data = os.path.join(work, f"data-{distribution}")
    os.makedirs(data, exist_ok=True)
    write_split(os.path.join(data, "train-0.npz"), distribution, args.samples, args.seed)
    write_split(os.path.join(data, "eval-0.npz"), distribution, args.samples // 4, args.seed + 1)
    one, bucketed = os.path.join(work, f"one-{distribution}"), os.path.join(work, f"buckets-{distribution}")
    pipeline_s = {"one length": run_pipeline(data, one), "buckets": run_pipeline(data, bucketed, "--length_buckets",
                                                                                 "auto")}
    rows = {}
    for side, out in (("one length", one), ("buckets", bucketed)):
        metrics = train_cli(out, os.path.join(work, f"model-{side}-{distribution}"), args.epochs)
        rows[side] = {"bytes": dir_bytes(out), "pipeline_s": pipeline_s[side],
                      "input_examples_per_sec": metrics.input_examples_per_sec,
                      "epoch_s": steady_epoch_seconds(metrics.epoch_seconds),
                      "eval_accuracy": metrics.eval["accuracy"]}
    ragged = os.path.join(work, f"ragged-{distribution}")
    ragged_bytes = write_ragged(bucketed, ragged)
    ragged_metrics = train_ragged(bucketed, ragged, args.epochs)
    rows["ragged + bucket_by_sequence_length"] = {
        "bytes": ragged_bytes, "pipeline_s": None, "input_examples_per_sec": ragged_metrics["input_examples_per_sec"],
        "epoch_s": steady_epoch_seconds(ragged_metrics["epoch_seconds"]),
        "eval_accuracy": ragged_metrics["eval_accuracy"]}
    m = read_local(bucketed)
    return {"bounds": list(m.length_buckets.bounds), "padding": dataclasses.asdict(m.padding["train"]), "sides": rows}


def format_rows(result: dict[str, Any]) -> str:
    one = result["sides"]["one length"]
    lines = [f"{'':<36}{'MB':>8}{'/ one':>7}{'pipeline s':>11}{'input ex/s':>12}{'epoch s':>9}{'/ one':>7}"
             f"{'eval acc':>10}"]
    for side, r in result["sides"].items():
        pipeline_s = f"{r['pipeline_s']:.1f}" if r["pipeline_s"] is not None else "-"
        lines.append(f"{side:<36}{r['bytes'] / 1e6:>8.1f}{r['bytes'] / one['bytes']:>7.2f}{pipeline_s:>11}"
                     f"{r['input_examples_per_sec']:>12,.0f}{r['epoch_s']:>9.1f}{r['epoch_s'] / one['epoch_s']:>7.2f}"
                     f"{r['eval_accuracy']:>10.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.buckets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=6000, help="training samples per distribution (eval: a quarter)")
    p.add_argument("--epochs", type=int, default=4,
                   help="training epochs of every side (2 or more: the first, which traces, is not timed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distributions", nargs="+", choices=DISTRIBUTIONS, default=list(DISTRIBUTIONS))
    p.add_argument("--json_out", metavar="PATH", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    console.setup(verbose=False)  # write_ragged loads TensorFlow here
    work = tempfile.mkdtemp(prefix="npy_tft_buckets_")
    command = ["python", "-m", "benchmarks.buckets", *(sys.argv[1:] if argv is None else argv)]
    report: dict[str, Any] = {"command": command, "code": source_tree.code_version(), "results": {}}
    try:
        for distribution in args.distributions:
            result = measure(distribution, args, work)
            report["results"][distribution] = result
            print(f"{distribution}: bounds {result['bounds']}, padding {result['padding']['padding_fraction']:.1%} "
                  f"(one length: {result['padding']['padding_fraction_with_buckets']['1']:.1%})")
            print(format_rows(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
