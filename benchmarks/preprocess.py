"""Preprocessing benchmark: our Beam + tf.Transform pipeline against a hand-written NumPy script.

`python -m benchmarks.preprocess [--scale 1] [--memory_factor 4] [-- BEAM_FLAGS...]`

1. Generates (seeded, cached under --work_dir) ragged compressed .npz files: 64 * scale
   files of 2,000 samples, x [T_i in 50..200, 16] float32, int labels; about 1 GB of raw
   float32 at --scale 1. File i is the same at every scale, so 4x holds 1x.
2. Times, in the same run, each side as a subprocess run from its command line:
   (a) `python -m benchmarks.handwritten` (one process, two NumPy passes, Example bytes
   built directly) and (b) `python -m beam_pipeline ... --num_shards 8` (the default
   in-process FnApiRunner; it starts no other process). Both read the same warm files and
   write 8 shards of the same records.
3. Prints, for each: wall time; wall time net of startup (the same command's time on a
   1-file, 16-sample dataset: imports, graph building, Beam stages, manifest); MB/s of raw
   input float32 and examples/s, both ways; peak RSS and CPU time (from os.wait4 on the
   child: the largest RSS of the process or any child it waited for); and ours/baseline.
4. With --memory_factor F, runs our pipeline again on F times the data and prints the
   ratio of peak RSS.
5. Checks that both outputs hold the same number of records and that the statistics agree,
   and that the baseline's records parse with our transformed feature spec.

Extra flags after `--` go to our pipeline (e.g. `-- --direct_num_workers 2
--direct_running_mode multi_processing`); with processes, peak RSS is the largest single
process, not their sum.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import glob
import io
import json
import multiprocessing
import os
import pstats
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_WORK_DIR = os.path.join(tempfile.gettempdir(), "npy_tft_bench")

# The full-size (--scale 1) dataset, about 1 GB of raw float32: 64 x 2,000 samples of [50..200, 16] float32.
FULL_FILES = 64
SAMPLES_PER_FILE = 2000
MIN_LENGTH, MAX_LENGTH = 50, 200
NUM_FEATURES = 16
NUM_CLASSES = 10
NUM_SHARDS = 8
# Channels on different scales and offsets, so normalization has real work to do.
_SCALE = np.linspace(0.5, 4.0, NUM_FEATURES, dtype=np.float32)
_OFFSET = np.linspace(-3.0, 10.0, NUM_FEATURES, dtype=np.float32)
# The startup-overhead dataset: small enough that reading it costs nothing measurable.
OVERHEAD_FILES, OVERHEAD_SAMPLES = 1, 16
MB = 1e6


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A generated dataset of ragged .npz files.

    Attributes:
      path: directory holding train-XXXXX.npz.
      files: number of files.
      examples: samples in all files.
      raw_bytes: bytes of the float32 `x` values (the MB/s figures count these).
      npz_bytes: bytes of the .npz files on disk.
    """

    path: str
    files: int
    examples: int
    raw_bytes: int
    npz_bytes: int

    @property
    def pattern(self) -> str:
        """Glob of the dataset's files."""
        return os.path.join(self.path, "train-*.npz")

    def describe(self) -> str:
        """One line: files, samples, raw and compressed size."""
        return (f"{self.files} files x {self.examples // self.files} samples = {self.examples} examples, "
                f"{self.raw_bytes / MB:.1f} MB raw float32, {self.npz_bytes / MB:.1f} MB .npz")


def _write_file(path: str, seed: int, index: int, samples: int) -> None:
    """Writes file `index` of a dataset; it depends only on (seed, index, samples)."""
    rng = np.random.default_rng([seed, index])
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=samples)
    # Every file holds a longest sample, so the padded x is [200, 16] at any scale and
    # both sides pad to the same length without being told.
    lengths[0] = MAX_LENGTH
    y = rng.integers(0, NUM_CLASSES, size=samples)
    x = rng.standard_normal((int(lengths.sum()), NUM_FEATURES), dtype=np.float32)
    x *= _SCALE
    x += _OFFSET
    temp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez_compressed(temp, x=x, lengths=lengths, y=y)
    os.replace(temp, path)  # atomic: a concurrent benchmark never sees half a file


def ensure_dataset(work_dir: str, files: int, samples: int, seed: int = 0) -> Dataset:
    """Generates a dataset unless it is already cached under work_dir.

    Files live in one pool per (samples, seed) and each dataset directory hard-links the
    first `files` of them, so the 4x dataset reuses the 1x files.

    Args:
      work_dir: cache directory.
      files: number of .npz files.
      samples: samples per file.
      seed: generator seed.

    Returns:
      The dataset.
    """
    name = f"data-{files}x{samples}-seed{seed}"
    path = os.path.join(work_dir, name)
    info_path = os.path.join(path, "dataset.json")
    if not os.path.exists(info_path):
        pool = os.path.join(work_dir, f"pool-{samples}-seed{seed}")
        os.makedirs(pool, exist_ok=True)
        sources = [os.path.join(pool, f"train-{i:05d}.npz") for i in range(files)]
        missing = [i for i, s in enumerate(sources) if not os.path.exists(s)]
        if missing:
            print(f"generating {len(missing)} files of {samples} samples in {pool} ...", flush=True)
            # spawn, not fork: a caller may already hold TensorFlow's threads.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(os.cpu_count(), mp_context=context) as ex:
                list(ex.map(_write_file, [sources[i] for i in missing], [seed] * len(missing), missing,
                            [samples] * len(missing)))
        temp = tempfile.mkdtemp(dir=work_dir, prefix=f".{name}-")
        examples = raw_bytes = npz_bytes = 0
        for source in sources:
            os.link(source, os.path.join(temp, os.path.basename(source)))
            with np.load(source) as f:
                lengths = f["lengths"]
            examples += len(lengths)
            raw_bytes += int(lengths.sum()) * NUM_FEATURES * 4
            npz_bytes += os.path.getsize(source)
        info = {"files": files, "examples": examples, "raw_bytes": raw_bytes, "npz_bytes": npz_bytes}
        with open(os.path.join(temp, "dataset.json"), "w") as f:
            json.dump(info, f)
        try:
            os.rename(temp, path)
        except OSError:  # another benchmark made the same dataset meanwhile: use that one
            shutil.rmtree(temp)
    with open(info_path) as f:
        return Dataset(path=path, **json.load(f))


def code_version() -> dict[str, Any]:
    """The commit measured, and the pipeline files modified on top of it (figures of a dirty
    tree belong to no commit). Both None outside a git checkout (e.g. a `git archive` export)."""
    def git(*args: str) -> str | None:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--", "beam_pipeline", "transforms", "trainer")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": None if status is None else [line[3:] for line in status.splitlines()]}


def warm_cache(paths: list[str]) -> None:
    """Reads files once, so each timed run starts from the same warm page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


def subprocess_env() -> dict[str, str]:
    """The environment of the measured commands: the repo importable, TensorFlow quiet."""
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2")


@dataclasses.dataclass(frozen=True)
class Measured:
    """One measured command.

    Attributes:
      seconds: wall time, process start to exit.
      cpu_seconds: user + system CPU time of the process and the children it waited for.
      peak_rss_mb: the largest resident set of the process or of any child it waited for.
    """

    seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def run_measured(cmd: list[str], log_path: str) -> Measured:
    """Runs a command to completion and measures it; its output goes to log_path.

    os.wait4 reports the resources of this one child, so one measurement never leaks into
    the next (getrusage(RUSAGE_CHILDREN) keeps the maximum over all children ever waited for).

    Raises:
      RuntimeError: the command failed.
    """
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=subprocess_env())
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}\n{tail}")
    # ru_maxrss is in KiB on Linux.
    return Measured(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def pipeline_command(dataset: Dataset, output_dir: str, pipeline_args: list[str]) -> list[str]:
    """Our pipeline's command line, as a user runs it."""
    return [sys.executable, "-m", "beam_pipeline", "--input", dataset.pattern, "--output_dir", output_dir,
            "--num_shards", str(NUM_SHARDS), *pipeline_args]


def baseline_command(dataset: Dataset, output_dir: str) -> list[str]:
    """The hand-written baseline's command line."""
    return [sys.executable, "-m", "benchmarks.handwritten", "--input", dataset.pattern,
            "--output_dir", output_dir, "--num_shards", str(NUM_SHARDS)]


def count_records(paths: list[str]) -> int:
    """Counts TFRecords by walking the frames' length fields (no data is read or parsed)."""
    count = 0
    for path in paths:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            position = 0
            while position < size:
                (length,) = struct.unpack("<Q", f.read(8))
                position += 8 + 4 + length + 4
                f.seek(position)
                count += 1
    return count


def shard_paths(output_dir: str) -> list[str]:
    """The train shards of a pipeline or baseline output directory."""
    return sorted(glob.glob(os.path.join(output_dir, "data", "train-*.tfrecord")))


def verify_outputs(ours_dir: str, baseline_dir: str, dataset: Dataset) -> dict[str, Any]:
    """Asserts both outputs hold every example and agree on the statistics.

    Also parses the first records of every baseline shard with our transformed feature spec.

    Returns:
      What was checked, for the report.
    """
    with open(os.path.join(ours_dir, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(baseline_dir, "stats.json")) as f:
        base = json.load(f)
    ours_shards, base_shards = shard_paths(ours_dir), shard_paths(baseline_dir)
    counts = {"ours": count_records(ours_shards), "baseline": count_records(base_shards)}
    assert len(ours_shards) == len(base_shards) == NUM_SHARDS, (ours_shards, base_shards)
    assert counts["ours"] == counts["baseline"] == dataset.examples, (counts, dataset.examples)
    assert manifest["splits"]["train"]["examples_written"] == base["examples"] == dataset.examples
    assert manifest["max_length"] == base["max_length"] == MAX_LENGTH
    stats = manifest["statistics"]["x"]
    assert stats["count"] == base["count"], (stats["count"], base["count"])
    np.testing.assert_allclose(stats["mean"], base["mean"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["std"], base["std"], rtol=1e-9, atol=1e-9)

    import tensorflow as tf
    import tensorflow_transform as tft

    spec = tft.TFTransformOutput(ours_dir).transformed_feature_spec()
    for path in base_shards:
        for batch in tf.data.TFRecordDataset(path).batch(16).take(1):
            parsed = tf.io.parse_example(batch, spec)
            assert parsed["x"].shape[1:] == (MAX_LENGTH, NUM_FEATURES), parsed["x"].shape

    def worst(key: str) -> float:
        return float(np.max(np.abs(np.subtract(stats[key], base[key]))))

    return {"records": counts["ours"], "max_abs_mean_diff": worst("mean"), "max_abs_std_diff": worst("std")}


PROFILE_CODE = """
import cProfile, os, sys
from beam_pipeline import cli
cProfile.run("cli.run(sys.argv[2:])", sys.argv[1])
sys.stdout.flush()
os._exit(0)  # as cli.main does: skip the interpreter teardown that can crash after a run
"""


def profile_pipeline(dataset: Dataset, output_dir: str, pipeline_args: list[str], profile_path: str,
                     log_path: str) -> str:
    """Runs our pipeline in-process under cProfile (main thread) and returns the top entries.

    TensorFlow's and zlib's C code show up as the time of the Python call that entered them.
    """
    flags = pipeline_command(dataset, output_dir, pipeline_args)[3:]  # after python -m beam_pipeline
    cmd = [sys.executable, "-c", PROFILE_CODE, profile_path, *flags]
    run_measured(cmd, log_path)
    text = io.StringIO()
    pstats.Stats(profile_path, stream=text).sort_stats("tottime").print_stats(25)
    return text.getvalue()


@dataclasses.dataclass(frozen=True)
class Result:
    """A side's best timed run, with the derived rates."""

    name: str
    run: Measured
    overhead_seconds: float
    dataset: Dataset

    @property
    def net_seconds(self) -> float:
        """Wall time net of startup overhead (never below a millisecond)."""
        return max(self.run.seconds - self.overhead_seconds, 1e-3)

    def rates(self) -> dict[str, float]:
        """Raw-input MB/s and examples/s, over wall time and net of startup."""
        d, wall, net = self.dataset, self.run.seconds, self.net_seconds
        return {"mb_per_s": d.raw_bytes / MB / wall, "mb_per_s_net": d.raw_bytes / MB / net,
                "examples_per_s": d.examples / wall, "examples_per_s_net": d.examples / net}

    def to_json(self) -> dict[str, Any]:
        """The figures, for --json_out."""
        return {**dataclasses.asdict(self.run), "overhead_seconds": self.overhead_seconds,
                "net_seconds": self.net_seconds, **self.rates()}


def format_table(results: list[Result]) -> str:
    """The figures of each side, one row each."""
    head = (f"{'':<22}{'wall s':>8}{'startup s':>10}{'net s':>8}{'MB/s':>8}{'MB/s net':>10}"
            f"{'ex/s':>9}{'ex/s net':>10}{'peak RSS MB':>12}{'CPU s':>8}{'cores':>7}")
    rows = [head]
    for r in results:
        x = r.rates()
        rows.append(f"{r.name:<22}{r.run.seconds:>8.1f}{r.overhead_seconds:>10.1f}{r.net_seconds:>8.1f}"
                    f"{x['mb_per_s']:>8.1f}{x['mb_per_s_net']:>10.1f}{x['examples_per_s']:>9.0f}"
                    f"{x['examples_per_s_net']:>10.0f}{r.run.peak_rss_mb:>12.0f}{r.run.cpu_seconds:>8.1f}"
                    f"{r.run.cpu_seconds / r.run.seconds:>7.2f}")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.preprocess", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.25,
                   help="dataset size: 64 * scale files (at least 1); 1 is ~1 GB of raw float32")
    p.add_argument("--samples_per_file", type=int, default=SAMPLES_PER_FILE, help="samples per file")
    p.add_argument("--seed", type=int, default=0, help="data generator seed")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed runs of each side, alternating; the fastest of each counts")
    p.add_argument("--memory_factor", type=float, default=0,
                   help="also run our pipeline on this many times the data and report the peak-RSS ratio "
                        "(4 checks that memory stays flat in data size); 0 skips it")
    p.add_argument("--work_dir", default=DEFAULT_WORK_DIR,
                   help="cache of generated datasets; each run's outputs go to a fresh directory inside")
    p.add_argument("--keep_outputs", action="store_true", help="keep this run's output directories")
    p.add_argument("--profile", metavar="PATH",
                   help="also run our pipeline once under cProfile, write the profile to PATH, print its top")
    p.add_argument("--json_out", metavar="PATH", help="write every figure to this JSON file")
    p.add_argument("pipeline_args", nargs="*", metavar="-- BEAM_FLAGS",
                   help="flags passed on to our pipeline (after --)")
    return p


def _files_for(scale: float) -> int:
    return max(1, round(FULL_FILES * scale))


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the report."""
    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        sys.exit("error: --repeats must be >= 1")
    os.makedirs(args.work_dir, exist_ok=True)
    dataset = ensure_dataset(args.work_dir, _files_for(args.scale), args.samples_per_file, args.seed)
    tiny = ensure_dataset(args.work_dir, OVERHEAD_FILES, OVERHEAD_SAMPLES, args.seed)
    big = None
    if args.memory_factor:
        big = ensure_dataset(args.work_dir, _files_for(args.scale * args.memory_factor), args.samples_per_file,
                             args.seed)
    run_dir = tempfile.mkdtemp(dir=args.work_dir, prefix="run-")
    code = code_version()
    print(f"dataset: {dataset.describe()}\ncode: {code}\nrun directory: {run_dir}", flush=True)

    def out(name: str) -> str:
        return os.path.join(run_dir, name)

    labels = {"baseline": "hand-written NumPy", "ours": "ours (Beam + tft)"}
    commands = {"baseline": lambda d, o: baseline_command(d, o),
                "ours": lambda d, o: pipeline_command(d, o, args.pipeline_args)}
    overhead = {}
    for side, command in commands.items():
        overhead[side] = run_measured(command(tiny, out(f"{side}-startup")), out(f"{side}-startup.log")).seconds
    warm_cache(glob.glob(dataset.pattern))
    runs: dict[str, list[Measured]] = {side: [] for side in commands}
    for i in range(args.repeats):
        for side, command in commands.items():
            shutil.rmtree(out(side), ignore_errors=True)
            runs[side].append(run_measured(command(dataset, out(side)), out(f"{side}-{i}.log")))
            print(f"  {labels[side]}: {runs[side][-1].seconds:.1f} s", flush=True)
    check = verify_outputs(out("ours"), out("baseline"), dataset)
    base, ours = (Result(labels[side], min(runs[side], key=lambda m: m.seconds), overhead[side], dataset)
                  for side in commands)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"nproc": os.cpu_count(),
                    "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)},
        "command": ["python", "-m", "benchmarks.preprocess", *(sys.argv[1:] if argv is None else argv)],
        "code": code,
        "dataset": dataclasses.asdict(dataset),
        "results": {side: r.to_json() for side, r in (("baseline", base), ("ours", ours))},
        "all_seconds": {side: [m.seconds for m in r] for side, r in runs.items()},
        "verified": check,
        "ratio_ours_over_baseline": {
            "throughput": base.run.seconds / ours.run.seconds,
            "throughput_net": base.net_seconds / ours.net_seconds,
            "peak_rss": ours.run.peak_rss_mb / base.run.peak_rss_mb,
        },
        "outputs": {"baseline": out("baseline"), "ours": out("ours")} if args.keep_outputs else None,
    }
    print(format_table([base, ours]))
    ratios = report["ratio_ours_over_baseline"]
    print(f"ours/baseline: throughput {ratios['throughput']:.2f}x (wall), {ratios['throughput_net']:.2f}x "
          f"(net of startup); peak RSS {ratios['peak_rss']:.2f}x")
    print(f"verified: {check['records']} records in {NUM_SHARDS} shards on each side, statistics agree "
          f"(max |mean diff| {check['max_abs_mean_diff']:.1e}, max |std diff| {check['max_abs_std_diff']:.1e})",
          flush=True)

    if big is not None:
        warm_cache(glob.glob(big.pattern))
        scaled = run_measured(pipeline_command(big, out("ours-big"), args.pipeline_args), out("ours-big.log"))
        one_x = max(r.peak_rss_mb for r in runs["ours"])
        big_result = Result(f"ours at {args.memory_factor:g}x", scaled, overhead["ours"], big)
        report["memory"] = {"factor": args.memory_factor, "dataset": dataclasses.asdict(big),
                            "peak_rss_mb_1x": one_x, "result": big_result.to_json(),
                            "peak_rss_ratio": scaled.peak_rss_mb / one_x}
        print(f"memory: {big.describe()}")
        print(format_table([ours, big_result]))
        print(f"peak RSS of ours at {args.memory_factor:g}x / 1x data: {scaled.peak_rss_mb:.0f} / "
              f"{one_x:.0f} MB = {report['memory']['peak_rss_ratio']:.2f}x", flush=True)

    if args.profile:
        print(profile_pipeline(dataset, out("profiled"), args.pipeline_args, args.profile, out("profile.log")))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)
    if not args.keep_outputs:
        shutil.rmtree(run_dir)


if __name__ == "__main__":
    main()
