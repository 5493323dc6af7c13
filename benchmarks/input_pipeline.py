"""Input-pipeline benchmark: the trainer's tf.data pipeline against raw reads and the seed recipes.

`python -m benchmarks.input_pipeline [--scale 0.25] [--repeats 3]`

Uses the dataset of `benchmarks.preprocess` (same flags, same cache) and our pipeline's
shards of it (made once with `python -m beam_pipeline ... --num_shards 8`, cached). No model:
each pipeline's batches are pulled as fast as it delivers them, on this process's CPUs.

Pipelines, all batch 128, all timed over the same number of examples after one warm-up
batch (which pays for opening files and filling buffers), run round-robin --repeats
times; the best run of each counts:
  ours (training)     trainer.data.make_dataset(load(dir), "train", 128, training=True): shuffled
                      files, interleave(TFRecordDataset), shuffle(10,000), batch, parse_example, prefetch.
  ours (eval order)   the same with training=False: no shuffle, deterministic order (repeated).
  ceiling             raw reads, no parsing: the same files, interleave with the same cycle_length
                      and parallelism, batch, prefetch; batches of serialized records.
  seed from_generator the seeds' from_generator recipe: a Python generator np.loads each .npz,
                      slices each sample, np.pads it to [200, 16] and yields (x, length, label);
                      batch, prefetch.
  seed numpy_function the seeds' `map(tf.numpy_function(np.load ...))` recipe: per file, np.load,
                      np.pad each sample, stack -> [N, 200, 16] + lengths + labels; unbatch, batch,
                      prefetch. map without num_parallel_calls, as the seed writes it.
  seed interleave     seed 004's parallel recipe made runnable: interleave(from_tensor_slices(
                      numpy_function(the same per-file load))) with cycle_length and
                      num_parallel_calls AUTOTUNE; batch, prefetch.
The seed recipes read the original .npz files and deliver unnormalized values (they do
less work than ours, which delivers normalized ones).

Prints examples/s, MB/s of the files each pipeline reads (shards or .npz), and ratios to
the ceiling and to the fastest seed recipe.
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
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from benchmarks import preprocess

BATCH_SIZE = 128


def ensure_shards(work_dir: str, dataset: preprocess.Dataset) -> str:
    """Our pipeline's output for a dataset, made with its CLI unless already cached.

    Returns:
      The output directory (with _SUCCESS).
    """
    path = os.path.join(work_dir, "shards-" + os.path.basename(dataset.path))
    if os.path.exists(os.path.join(path, "_SUCCESS")):
        return path
    temp = tempfile.mkdtemp(dir=work_dir, prefix=".shards-")
    print(f"preprocessing {dataset.pattern} into {path} ...", flush=True)
    cmd = preprocess.pipeline_command(dataset, os.path.join(temp, "out"), [])
    proc = subprocess.run(cmd, cwd=preprocess.REPO, env=preprocess.subprocess_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    try:
        os.rename(os.path.join(temp, "out"), path)
    except OSError:  # another benchmark made it meanwhile: use that one
        pass
    shutil.rmtree(temp)
    return path


def _padded_file(path: bytes | str, max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seeds' per-file load: np.load, then np.pad each sample to max_length, stacked."""
    with np.load(path.decode() if isinstance(path, bytes) else path) as f:
        x, lengths, y = f["x"], f["lengths"].astype(np.int64), f["y"].astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    padded = [np.pad(x[s:s + n], ((0, max_length - n), (0, 0))) for s, n in zip(starts, lengths)]
    return np.stack(padded).astype(np.float32, copy=False), lengths, y


def build_pipelines(info: Any, npz_files: list[str], cycle_length: int,
                    shuffle_buffer: int) -> dict[str, Callable[[], Any]]:
    """Every benchmarked pipeline, as a function that builds a fresh (endless) dataset.

    Args:
      info: `trainer.data.load` of our pipeline's output.
      npz_files: the original .npz files (the seed recipes' input).
      cycle_length: shards read concurrently (the trainer's --cycle_length).
      shuffle_buffer: records in the training pipeline's shuffle buffer (the trainer's --shuffle_buffer).
    """
    import tensorflow as tf

    from trainer import data

    shards = list(info.splits[data.TRAIN].files)
    max_length, num_features = info.x_shape
    x_spec = tf.TensorSpec([max_length, num_features], tf.float32)
    scalar = tf.TensorSpec([], tf.int64)

    def ceiling() -> tf.data.Dataset:
        files = tf.data.Dataset.from_tensor_slices(shards).repeat()
        ds = files.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(shards)),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        return ds.batch(BATCH_SIZE, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    def ours(training: bool) -> Callable[[], tf.data.Dataset]:
        def build() -> tf.data.Dataset:
            ds = data.make_dataset(info, data.TRAIN, BATCH_SIZE, training=training, cycle_length=cycle_length,
                                   shuffle_buffer=shuffle_buffer)
            return ds if training else ds.repeat()  # training mode repeats by itself
        return build

    def generator() -> Iterator[tuple[np.ndarray, int, int]]:
        while True:
            for path in npz_files:
                with np.load(path) as f:
                    x, lengths, y = f["x"], f["lengths"], f["y"]
                start = 0
                for n, label in zip(lengths.tolist(), y.tolist()):
                    yield np.pad(x[start:start + n], ((0, max_length - n), (0, 0))), n, label
                    start += n

    def seed_generator() -> tf.data.Dataset:
        ds = tf.data.Dataset.from_generator(generator, output_signature=(x_spec, scalar, scalar))
        return ds.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)

    def load_file(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x, lengths, y = tf.numpy_function(lambda p: _padded_file(p, max_length), [path],
                                          (tf.float32, tf.int64, tf.int64))
        # numpy_function outputs have unknown shapes; unbatch needs at least the rank.
        return (tf.ensure_shape(x, [None, max_length, num_features]), tf.ensure_shape(lengths, [None]),
                tf.ensure_shape(y, [None]))

    def seed_numpy_function() -> tf.data.Dataset:
        files = tf.data.Dataset.from_tensor_slices(npz_files).repeat()
        return files.map(load_file).unbatch().batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)

    def seed_interleave() -> tf.data.Dataset:
        files = tf.data.Dataset.from_tensor_slices(npz_files).repeat()
        ds = files.interleave(lambda p: tf.data.Dataset.from_tensor_slices(load_file(p)),
                              cycle_length=tf.data.AUTOTUNE, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)

    return {
        "ours (training)": ours(True),
        "ours (eval order)": ours(False),
        "ceiling": ceiling,
        "seed from_generator": seed_generator,
        "seed numpy_function": seed_numpy_function,
        "seed interleave": seed_interleave,
    }


def examples_per_second(dataset: Any, examples: int) -> float:
    """Pulls batches until `examples` examples arrived, after one untimed warm-up batch.

    Every pipeline's elements end with a [batch] tensor (labels, or serialized records),
    which gives the batch size.
    """
    import tensorflow as tf

    iterator = iter(dataset)
    next(iterator)
    seen = 0
    start = time.perf_counter()
    while seen < examples:
        seen += int(tf.nest.flatten(next(iterator))[-1].shape[0])
    return seen / (time.perf_counter() - start)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.input_pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.25, help="dataset size: 64 * scale files of 2,000 samples")
    p.add_argument("--samples_per_file", type=int, default=preprocess.SAMPLES_PER_FILE, help="samples per file")
    p.add_argument("--seed", type=int, default=0, help="data generator seed")
    p.add_argument("--examples", type=int, default=0,
                   help="examples timed per run; 0 = one pass over the dataset")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each pipeline, round-robin; best counts")
    p.add_argument("--cycle_length", type=int, default=0,
                   help="shards read concurrently; 0 = the trainer's default")
    p.add_argument("--shuffle_buffer", type=int, default=0,
                   help="records in ours (training)'s shuffle buffer; 0 = the trainer's default")
    p.add_argument("--work_dir", default=preprocess.DEFAULT_WORK_DIR,
                   help="cache of datasets and of our shards of them (made once: delete WORK_DIR/shards-* "
                        "after changing the output format)")
    p.add_argument("--json_out", metavar="PATH", help="write every figure to this JSON file")
    return p


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the report."""
    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        sys.exit("error: --repeats must be >= 1")
    os.makedirs(args.work_dir, exist_ok=True)
    files = max(1, round(preprocess.FULL_FILES * args.scale))
    dataset = preprocess.ensure_dataset(args.work_dir, files, args.samples_per_file, args.seed)
    shards_dir = ensure_shards(args.work_dir, dataset)
    code = preprocess.code_version()
    print(f"dataset: {dataset.describe()}\ncode: {code}\nshards: {shards_dir}", flush=True)

    # TensorFlow loads only now: the data generation above forks no TensorFlow threads.
    from trainer import config, data

    info = data.load(shards_dir)
    npz_files = sorted(glob.glob(dataset.pattern))
    pipelines = build_pipelines(info, npz_files, args.cycle_length or config.DEFAULT_CYCLE_LENGTH,
                                args.shuffle_buffer or config.DEFAULT_SHUFFLE_BUFFER)
    shard_bytes = sum(os.path.getsize(f) for f in info.splits[data.TRAIN].files)
    bytes_per_example = {name: (dataset.npz_bytes if name.startswith("seed") else shard_bytes) / dataset.examples
                         for name in pipelines}
    examples = args.examples or dataset.examples
    preprocess.warm_cache(npz_files + list(info.splits[data.TRAIN].files))

    runs: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(args.repeats):
        for name, build in pipelines.items():
            runs[name].append(examples_per_second(build(), examples))
            print(f"  {name}: {runs[name][-1]:,.0f} examples/s", flush=True)
    best = {name: max(r) for name, r in runs.items()}
    ceiling = best["ceiling"]
    fastest_seed = max(v for name, v in best.items() if name.startswith("seed"))

    print(f"{'':<22}{'examples/s':>12}{'read MB/s':>11}{'/ ceiling':>11}{'/ best seed':>13}")
    for name, rate in best.items():
        print(f"{name:<22}{rate:>12,.0f}{rate * bytes_per_example[name] / preprocess.MB:>11.1f}"
              f"{rate / ceiling:>11.2f}{rate / fastest_seed:>13.2f}")
    ratios = {name: {"over_ceiling": best[name] / ceiling, "over_fastest_seed": best[name] / fastest_seed}
              for name in ("ours (training)", "ours (eval order)")}
    for name, r in ratios.items():
        print(f"{name}: {r['over_ceiling']:.2f}x the raw-read ceiling (target >= 0.8), "
              f"{r['over_fastest_seed']:.2f}x the fastest seed recipe (target >= 3)")
    if args.json_out:
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "machine": {"nproc": os.cpu_count()},
            "command": ["python", "-m", "benchmarks.input_pipeline", *(sys.argv[1:] if argv is None else argv)],
            "code": code,
            "dataset": dataclasses.asdict(dataset),
            "examples_timed": examples,
            "cycle_length": args.cycle_length or config.DEFAULT_CYCLE_LENGTH,
            "shuffle_buffer": args.shuffle_buffer or config.DEFAULT_SHUFFLE_BUFFER,
            "batch_size": BATCH_SIZE,
            "examples_per_s": best,
            "all_examples_per_s": runs,
            "read_mb_per_s": {name: best[name] * bytes_per_example[name] / preprocess.MB for name in best},
            "ratios": ratios,
        }
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
