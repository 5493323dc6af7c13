"""Input-pipeline benchmark: the trainer's tf.data pipeline against raw reads, the pipeline before
block shuffling and the seed recipes; and how mixed each training pipeline's batches are.

`python -m benchmarks.input_pipeline [--scale 0.25] [--repeats 3] [--blocks_per_batch 128 32 8] [--no_seeds]`

Uses the dataset of `benchmarks.preprocess` (same flags, same cache) and our pipeline's
shards of it (made once with `python -m beam_pipeline ... --num_shards 8`, cached). No model:
each pipeline's batches are pulled as fast as it delivers them, on this process's CPUs.

Pipelines, all batch --batch_size (128), all timed over the same number of examples after one
warm-up batch (which pays for opening files and filling buffers), run round-robin --repeats
times (a different one first each time, a second's pause before each); the best run of each
counts:
  ours (training)        trainer.data.make_dataset(load(dir), "train", 128, training=True): shuffled
                         files, interleave(TFRecordDataset(file).batch(8)) (16 blocks per batch),
                         shuffle blocks (10,000 records), rebatch, parse_example, prefetch.
  ours (training, N blocks/batch)  the same with --blocks_per_batch N, for each N of --blocks_per_batch
                         (128: single records, as before, through the same stages).
  per-record shuffle (before)  the training pipeline before block shuffling: shuffled files,
                         interleave(TFRecordDataset), shuffle(10,000) records, batch, parse_example,
                         prefetch.
  ours (eval order)      make_dataset(training=False), repeated: the same blocks in a fixed order,
                         rebatch, parse_example, prefetch.
  eval order (before)    interleave(TFRecordDataset) in a fixed order, batch, parse_example, prefetch.
  ceiling                raw reads, no parsing: the same files, interleave(TFRecordDataset) with the
                         same cycle_length and parallelism, batch, prefetch; batches of serialized
                         records (the ceiling the targets refer to).
  ceiling (block reads)  raw reads as ours reads them: interleave(TFRecordDataset(file).batch(8)),
                         rebatch, prefetch. Ours over this is what parsing and shuffling cost.
  seed from_generator    the seeds' from_generator recipe: a Python generator np.loads each .npz,
                         slices each sample, np.pads it to [200, 16] and yields (x, length, label);
                         batch, prefetch.
  seed numpy_function    the seeds' `map(tf.numpy_function(np.load ...))` recipe: per file, np.load,
                         np.pad each sample, stack -> [N, 200, 16] + lengths + labels; unbatch, batch,
                         prefetch. map without num_parallel_calls, as the seed writes it.
  seed interleave        the seeds' parallel recipe, made runnable: interleave(from_tensor_slices(
                         numpy_function(the same per-file load))) with cycle_length and
                         num_parallel_calls AUTOTUNE; batch, prefetch.
The seed recipes read the original .npz files and deliver unnormalized values (they do
less work than ours, which delivers normalized ones). --no_seeds leaves them out.

Prints examples/s (the best run), MB/s of the files each pipeline reads (shards or .npz),
process CPU time per example (the least of the runs: it varies much less than the rate on a
shared machine), and ratios: examples/s to the ceiling's, to the block-read ceiling's and to
the fastest seed recipe's, and the ceiling's CPU time per example to the pipeline's. Then the mixing
figures (benchmarks/mixing.py) of one pass of each training pipeline, of eval order (no
shuffle) and of a uniform random permutation (the reference).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
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

from benchmarks import measurement, mixing, preprocess, source_tree, synthetic_data
from cli_support import console

BATCH_SIZE = 128
SETTLE_SECONDS = 1.0
BEFORE = "per-record shuffle (before)"
BLOCK_CEILING = "ceiling (block reads)"


def ensure_shards(work_dir: str, dataset: synthetic_data.Dataset) -> str:
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
    proc = subprocess.run(cmd, cwd=source_tree.REPO, env=source_tree.subprocess_env(), capture_output=True, text=True)
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


def _parse_fn(info: Any) -> Callable[[Any], Any]:
    """parse_example of a batch of an unbucketed run's records, as the trainer delivers them."""
    import tensorflow as tf

    from transforms import features

    def parse(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        parsed = tf.io.parse_example(serialized, info.feature_spec)
        return {features.X: parsed[features.X], features.LENGTH: parsed[features.LENGTH]}, parsed[features.LABEL]

    return parse


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What the benchmarked pipelines read, and how.

    Attributes:
      info: `trainer.data.load` of our pipeline's output (an unbucketed run).
      npz_files: the original .npz files (the seed recipes' input).
      batch_size: examples per batch.
      reading: the trainer's `data.Reading` (shuffle buffer, blocks per batch, cycle length).
    """

    info: Any
    npz_files: list[str]
    batch_size: int
    reading: Any

    @property
    def shards(self) -> list[str]:
        from trainer import data

        return list(self.info.splits[data.TRAIN].files)

    @property
    def cycle_length(self) -> int:
        return min(self.reading.cycle_length, len(self.shards))


def _ceiling(inputs: Inputs) -> Any:
    """Raw reads, no parsing: batches of serialized records."""
    import tensorflow as tf

    files = tf.data.Dataset.from_tensor_slices(inputs.shards).repeat()
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=inputs.cycle_length,
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(inputs.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _block_ceiling(inputs: Inputs) -> Any:
    """Raw reads as ours reads them: blocks of records, rebatched."""
    import tensorflow as tf

    block = inputs.reading.block(inputs.batch_size)
    files = tf.data.Dataset.from_tensor_slices(inputs.shards).repeat()
    ds = files.interleave(lambda f: tf.data.TFRecordDataset(f).batch(block), cycle_length=inputs.cycle_length,
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.rebatch(inputs.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _ours(inputs: Inputs, training: bool, blocks: int) -> Any:
    """The trainer's own pipeline, with `blocks` blocks per batch."""
    from trainer import data

    ds = data.make_dataset(inputs.info, data.TRAIN, inputs.batch_size, training=training,
                           reading=dataclasses.replace(inputs.reading, blocks_per_batch=blocks))
    return ds if training else ds.repeat()  # training mode repeats by itself


def _before(inputs: Inputs, training: bool) -> Any:
    """trainer/data.py before block shuffling (3ec56e1): records interleaved, shuffled one by one."""
    import tensorflow as tf

    from trainer import data

    shards, autotune = inputs.shards, tf.data.AUTOTUNE
    files = tf.data.Dataset.from_tensor_slices(shards)
    files = files.shuffle(len(shards)).repeat() if training else files.repeat()
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=inputs.cycle_length, num_parallel_calls=autotune,
                          deterministic=not training)
    if training:
        ds = ds.shuffle(min(inputs.reading.shuffle_buffer, inputs.info.splits[data.TRAIN].num_examples))
    ds = ds.batch(inputs.batch_size, drop_remainder=training)
    return ds.map(_parse_fn(inputs.info), num_parallel_calls=autotune, deterministic=not training).prefetch(autotune)


def _padded_samples(npz_files: list[str], max_length: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """The seeds' generator: every sample of every file, padded to max_length, endlessly."""
    while True:
        for path in npz_files:
            with np.load(path) as f:
                x, lengths, y = f["x"], f["lengths"], f["y"]
            start = 0
            for n, label in zip(lengths.tolist(), y.tolist()):
                yield np.pad(x[start:start + n], ((0, max_length - n), (0, 0))), n, label
                start += n


def _seed_generator(inputs: Inputs) -> Any:
    import tensorflow as tf

    max_length, num_features = inputs.info.x_shape
    scalar = tf.TensorSpec([], tf.int64)
    ds = tf.data.Dataset.from_generator(lambda: _padded_samples(inputs.npz_files, max_length),
                                        output_signature=(tf.TensorSpec([max_length, num_features], tf.float32),
                                                          scalar, scalar))
    return ds.batch(inputs.batch_size).prefetch(tf.data.AUTOTUNE)


def _load_file(path: Any, x_shape: tuple[int, int]) -> tuple[Any, Any, Any]:
    """The seeds' per-file load (`_padded_file`) as a tf.numpy_function."""
    import tensorflow as tf

    max_length, num_features = x_shape
    x, lengths, y = tf.numpy_function(lambda p: _padded_file(p, max_length), [path], (tf.float32, tf.int64, tf.int64))
    # numpy_function outputs have unknown shapes; unbatch needs at least the rank.
    return (tf.ensure_shape(x, [None, max_length, num_features]), tf.ensure_shape(lengths, [None]),
            tf.ensure_shape(y, [None]))


def _seed_numpy_function(inputs: Inputs) -> Any:
    import tensorflow as tf

    files = tf.data.Dataset.from_tensor_slices(inputs.npz_files).repeat()
    return (files.map(lambda p: _load_file(p, inputs.info.x_shape)).unbatch().batch(inputs.batch_size)
            .prefetch(tf.data.AUTOTUNE))


def _seed_interleave(inputs: Inputs) -> Any:
    import tensorflow as tf

    files = tf.data.Dataset.from_tensor_slices(inputs.npz_files).repeat()
    ds = files.interleave(lambda p: tf.data.Dataset.from_tensor_slices(_load_file(p, inputs.info.x_shape)),
                          cycle_length=tf.data.AUTOTUNE, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(inputs.batch_size).prefetch(tf.data.AUTOTUNE)


def build_pipelines(inputs: Inputs, blocks_per_batch: list[int], seeds: bool) -> dict[str, Callable[[], Any]]:
    """Every benchmarked pipeline, as a function that builds a fresh (endless) dataset.

    Args:
      inputs: what they read, and how.
      blocks_per_batch: further blocks per batch to measure ours (training) with.
      seeds: whether to include the seed recipes.
    """
    default_blocks = inputs.reading.blocks_per_batch
    pipelines = {
        "ours (training)": functools.partial(_ours, inputs, True, default_blocks),
        **{f"ours (training, {n} blocks/batch)": functools.partial(_ours, inputs, True, n) for n in blocks_per_batch},
        BEFORE: functools.partial(_before, inputs, True),
        "ours (eval order)": functools.partial(_ours, inputs, False, default_blocks),
        "eval order (before)": functools.partial(_before, inputs, False),
        "ceiling": functools.partial(_ceiling, inputs),
        BLOCK_CEILING: functools.partial(_block_ceiling, inputs),
    }
    if seeds:
        pipelines |= {"seed from_generator": functools.partial(_seed_generator, inputs),
                      "seed numpy_function": functools.partial(_seed_numpy_function, inputs),
                      "seed interleave": functools.partial(_seed_interleave, inputs)}
    return pipelines


def shard_index(info: Any) -> mixing.Index:
    """The mixing index of a run's training shards (read in storage order, parsed as the trainer parses)."""
    import tensorflow as tf

    from trainer import data

    parse = _parse_fn(info)

    def batches(path: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for features, _ in tf.data.TFRecordDataset(path).batch(4096).map(parse):
            yield features["x"].numpy(), features["length"].numpy()

    return mixing.Index(batches(path) for path in info.splits[data.TRAIN].files)


def one_pass(dataset: Any, index: mixing.Index, batch_size: int) -> np.ndarray:
    """Storage ranks of the records of a pipeline's first pass (len(index) // batch_size batches)."""
    iterator = iter(dataset)
    return np.stack([index.locate(features["x"].numpy(), features["length"].numpy())
                     for features, _ in (next(iterator) for _ in range(max(1, len(index) // batch_size)))])


@dataclasses.dataclass(frozen=True)
class Run:
    """One timed run: examples per second, and process CPU time per example (all threads).

    CPU time per example varies much less than the rate on a machine shared with other jobs.
    """

    examples_per_s: float
    cpu_us_per_example: float


def settle() -> None:
    """Lets the previous pipeline's background work end before the next one is timed.

    Its prefetch threads, or a numpy_function still loading a file, would otherwise take
    CPU from the next pipeline's first batches.
    """
    gc.collect()
    time.sleep(SETTLE_SECONDS)


def timed_run(dataset: Any, examples: int) -> Run:
    """Pulls batches until `examples` examples arrived, after one untimed warm-up batch.

    Every pipeline's elements end with a [batch] tensor (labels, or serialized records),
    which gives the batch size.
    """
    import tensorflow as tf

    iterator = iter(dataset)
    next(iterator)
    seen = 0
    start, cpu = time.perf_counter(), time.process_time()
    while seen < examples:
        seen += int(tf.nest.flatten(next(iterator))[-1].shape[0])
    return Run(seen / (time.perf_counter() - start), (time.process_time() - cpu) / seen * 1e6)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.input_pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.25, help="dataset size: 64 * scale files of 2,000 samples")
    p.add_argument("--samples_per_file", type=int, default=synthetic_data.SAMPLES_PER_FILE, help="samples per file")
    p.add_argument("--seed", type=int, default=0, help="data generator seed")
    p.add_argument("--examples", type=int, default=0,
                   help="examples timed per run; 0 = one pass over the dataset")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each pipeline, round-robin; best counts")
    p.add_argument("--batch_size", type=int, default=BATCH_SIZE, help="examples per batch")
    p.add_argument("--cycle_length", type=int, default=0,
                   help="shards read concurrently; 0 = the trainer's default")
    p.add_argument("--shuffle_buffer", type=int, default=0,
                   help="records in the training pipelines' shuffle buffer; 0 = the trainer's default")
    p.add_argument("--blocks", type=int, default=0,
                   help="blocks per batch of ours and of the block-read ceiling; 0 = the trainer's default")
    p.add_argument("--blocks_per_batch", type=int, nargs="*", default=[],
                   help="also measure ours (training) with each of these blocks per batch (batch size: single records)")
    p.add_argument("--no_seeds", action="store_true", help="leave the (slow) seed recipes out")
    p.add_argument("--work_dir", default=synthetic_data.DEFAULT_WORK_DIR,
                   help="cache of datasets and of our shards of them (made once: delete WORK_DIR/shards-* "
                        "after changing the output format)")
    p.add_argument("--json_out", metavar="PATH", help="write every figure to this JSON file")
    return p


@dataclasses.dataclass(frozen=True)
class Rates:
    """Each pipeline's best examples/s and least CPU time per example over its runs, and its
    ratios to the ceilings and to the fastest seed recipe."""

    best: dict[str, float]
    cpu: dict[str, float]
    ratios: dict[str, dict[str, float]]

    @classmethod
    def of(cls, runs: dict[str, list[Run]]) -> Rates:
        best = {name: max(run.examples_per_s for run in r) for name, r in runs.items()}
        cpu = {name: min(run.cpu_us_per_example for run in r) for name, r in runs.items()}
        fastest_seed = max((v for name, v in best.items() if name.startswith("seed")), default=None)
        ratios = {name: {"over_ceiling": rate / best["ceiling"], "over_block_ceiling": rate / best[BLOCK_CEILING],
                         "cpu_over_ceiling": cpu["ceiling"] / cpu[name],
                         **({"over_fastest_seed": rate / fastest_seed} if fastest_seed else {})}
                  for name, rate in best.items()}
        return cls(best, cpu, ratios)


def time_pipelines(pipelines: dict[str, Callable[[], Any]], examples: int, repeats: int) -> dict[str, list[Run]]:
    """Times every pipeline `repeats` times, round-robin, each going first once."""
    runs: dict[str, list[Run]] = {name: [] for name in pipelines}
    names = list(pipelines)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            settle()
            runs[name].append(timed_run(pipelines[name](), examples))
            print(f"  {name}: {runs[name][-1].examples_per_s:,.0f} examples/s, "
                  f"{runs[name][-1].cpu_us_per_example:.1f} CPU us/example", flush=True)
    return runs


def mixing_figures(info: Any, pipelines: dict[str, Callable[[], Any]], batch_size: int,
                   seed: int) -> dict[str, mixing.Mixing]:
    """The mixing of one pass of each training pipeline, of eval order and of a uniform shuffle."""
    index = shard_index(info)
    shuffled = [name for name in pipelines if name.startswith("ours (training") or name == BEFORE]
    figures = {name: mixing.measure(index, one_pass(pipelines[name](), index, batch_size), info.num_classes)
               for name in [*shuffled, "ours (eval order)"]}
    figures["uniform shuffle (reference)"] = mixing.measure(
        index, mixing.uniform_shuffle(index, batch_size, seed), info.num_classes)
    return figures


def _print_rates(rates: Rates, bytes_per_example: dict[str, float]) -> None:
    columns = {"over_ceiling": "/ ceiling", "over_block_ceiling": "/ block reads",
               "cpu_over_ceiling": "CPU: ceiling/", "over_fastest_seed": "/ best seed"}
    shown = [c for c in columns if any(c in r for r in rates.ratios.values())]
    print(f"{'':<32}{'examples/s':>12}{'read MB/s':>11}{'CPU us/ex':>11}" + "".join(f"{columns[c]:>15}" for c in shown))
    for name, rate in rates.best.items():
        print(f"{name:<32}{rate:>12,.0f}{rate * bytes_per_example[name] / synthetic_data.MB:>11.1f}"
              f"{rates.cpu[name]:>11.2f}" + "".join(f"{rates.ratios[name][c]:>15.2f}" for c in shown))
    for name in ("ours (training)", BEFORE, "ours (eval order)", "eval order (before)"):
        ratios = rates.ratios[name]
        seed_part = (f", {ratios['over_fastest_seed']:.2f}x the fastest seed recipe (target >= 3)"
                     if "over_fastest_seed" in ratios else "")
        print(f"{name}: {ratios['over_ceiling']:.2f}x the raw-read ceiling (target >= 0.8){seed_part}")


def _print_mixing(figures: dict[str, mixing.Mixing]) -> None:
    names = [f.name for f in dataclasses.fields(mixing.Mixing)]
    print(f"{'mixing of one pass':<32}" + "".join(f"{n:>22}" for n in names))
    for pipeline, m in figures.items():
        print(f"{pipeline:<32}" + "".join(f"{getattr(m, n):>22.3f}" for n in names))


def report_of(command: list[str], code: dict[str, Any], dataset: synthetic_data.Dataset, examples: int,
              inputs: Inputs, runs: dict[str, list[Run]], rates: Rates, bytes_per_example: dict[str, float],
              figures: dict[str, mixing.Mixing]) -> dict[str, Any]:
    """Every figure of the run, for --json_out."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"nproc": os.cpu_count()},
        "command": ["python", "-m", "benchmarks.input_pipeline", *command],
        "code": code,
        "dataset": dataclasses.asdict(dataset),
        "examples_timed": examples,
        "reading": dataclasses.asdict(inputs.reading),
        "batch_size": inputs.batch_size,
        "num_shards": len(inputs.shards),
        "examples_per_s": rates.best,
        "cpu_us_per_example": rates.cpu,
        "runs": {name: [dataclasses.asdict(run) for run in r] for name, r in runs.items()},
        "read_mb_per_s": {name: rates.best[name] * bytes_per_example[name] / synthetic_data.MB for name in rates.best},
        "ratios": rates.ratios,
        "mixing": {name: dataclasses.asdict(m) for name, m in figures.items()},
    }


def _reading(args: argparse.Namespace) -> Any:
    """The trainer's reading settings, with the flags that override them."""
    from trainer import data

    defaults = data.Reading()
    return data.Reading(args.shuffle_buffer or defaults.shuffle_buffer, args.blocks or defaults.blocks_per_batch,
                        args.cycle_length or defaults.cycle_length)


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the report."""
    args = build_parser().parse_args(argv)
    if min(args.repeats, args.batch_size, *args.blocks_per_batch, 1) < 1:
        sys.exit("error: --repeats, --batch_size and --blocks_per_batch must be >= 1")
    os.makedirs(args.work_dir, exist_ok=True)
    dataset = synthetic_data.ensure_dataset(args.work_dir, synthetic_data.files_for(args.scale), args.samples_per_file,
                                            args.seed)
    shards_dir = ensure_shards(args.work_dir, dataset)
    code = source_tree.code_version()
    print(f"dataset: {dataset.describe()}\ncode: {code}\nshards: {shards_dir}", flush=True)

    # TensorFlow loads only now: the data generation above forks no TensorFlow threads.
    console.setup(verbose=False)
    from trainer import data

    inputs = Inputs(data.load(shards_dir), sorted(glob.glob(dataset.pattern)), args.batch_size, _reading(args))
    pipelines = build_pipelines(inputs, args.blocks_per_batch, seeds=not args.no_seeds)
    shard_bytes = sum(os.path.getsize(f) for f in inputs.shards)
    bytes_per_example = {name: (dataset.npz_bytes if name.startswith("seed") else shard_bytes) / dataset.examples
                         for name in pipelines}
    examples = args.examples or dataset.examples
    measurement.warm_cache(inputs.npz_files + inputs.shards)
    runs = time_pipelines(pipelines, examples, args.repeats)
    rates = Rates.of(runs)
    _print_rates(rates, bytes_per_example)
    figures = mixing_figures(inputs.info, pipelines, args.batch_size, args.seed)
    _print_mixing(figures)
    if args.json_out:
        report = report_of(sys.argv[1:] if argv is None else argv, code, dataset, examples, inputs, runs, rates,
                           bytes_per_example, figures)
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
