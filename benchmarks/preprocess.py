"""Preprocessing benchmark: our Beam + tf.Transform pipeline against a hand-written NumPy script
and against the stock tf.Transform pipeline.

`python -m benchmarks.preprocess [--scale 1] [--sides baseline ours stock] [--compare_ref REV]
[--memory_factor 4] [-- BEAM_FLAGS...]`

1. Generates (seeded, cached under --work_dir) ragged compressed .npz files: 64 * scale
   files of 2,000 samples, x [T_i in 50..200, 16] float32, int labels; about 1 GB of raw
   float32 at --scale 1. File i is the same at every scale, so 4x holds 1x.
2. Times, in the same run, each side as a subprocess run from its command line, one after
   the other, --repeats times (the fastest run of each counts):
   - baseline: `python -m benchmarks.handwritten` (one process, two NumPy passes, Example
     bytes built directly);
   - ours: `python -m beam_pipeline ... --num_shards 8` (its default in-process
     FnApiRunner);
   - stock: `python -m benchmarks.stock_tft` (tf.Transform as its documentation shows it:
     RecordBatches with a TensorAdapterConfig, AnalyzeAndTransformDataset,
     EncodeTransformedDataset, WriteToTFRecord; on Beam's in-process FnApiRunner);
   - ref, with --compare_ref REV: our pipeline as committed at REV, exported with
     `git archive` and run from that tree with the same flags, so before/after figures
     come from the same machine minutes.
   All read the same warm files and write 8 shards of the same records.
3. Prints, for each: wall time; wall time net of startup (the same command's time on a
   1-file, 16-sample dataset: imports, graph building, Beam stages, manifest); MB/s of raw
   input float32 and examples/s, both ways; CPU time, CPU seconds per GB of raw float32 and
   cores used; peak RSS (CPU and RSS from os.wait4 on the child: the largest RSS of the
   process or any child it waited for). Then the ratios of every side over the baseline and
   of ours over stock and over ref.
4. With --memory_factor F, runs our pipeline again on F times the data and prints the
   ratio of peak RSS.
5. Checks every output against the baseline's: all examples in 8 shards, the same records
   (labels, lengths and values, compared order-independently within float tolerance), the
   transformed feature spec, and our manifests' statistics.

Extra flags after `--` go to our pipeline (e.g. `-- --direct_num_workers 2
--direct_running_mode multi_processing`); with processes, peak RSS is the largest single
process, not their sum.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
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
import tarfile
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from transforms import features

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
GB = 1e9


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


def git(*args: str) -> str | None:
    """Runs git in this checkout: its output, or None where git fails (e.g. in a `git archive` export)."""
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """The commit measured, and the pipeline files modified on top of it (figures of a dirty
    tree belong to no commit). Both None outside a git checkout (e.g. a `git archive` export)."""
    status = git("status", "--porcelain", "--", "beam_pipeline", "transforms", "trainer", "cli_support")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": None if status is None else [line[3:] for line in status.splitlines()]}


def resolve_commit(rev: str) -> str:
    """The short commit a git revision names; exits with an error if it names none."""
    commit = git("rev-parse", "--short", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    if commit is None:
        sys.exit(f"error: --compare_ref {rev}: not a commit of {REPO}")
    return commit


def export_commit(commit: str, directory: str) -> None:
    """Writes the tree of a commit into directory (`git archive`).

    The export holds the committed files only, so "ours at REV" runs REV's code whatever the
    working tree holds, and git's own state (worktrees, index) is left alone.
    """
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")


def warm_cache(paths: list[str]) -> None:
    """Reads files once, so each timed run starts from the same warm page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


def subprocess_env(root: str = REPO) -> dict[str, str]:
    """The environment of the measured commands: the source tree `root` importable first, TensorFlow quiet."""
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
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


def run_measured(cmd: list[str], log_path: str, root: str = REPO) -> Measured:
    """Runs a command from the source tree `root` to completion and measures it; its output goes to log_path.

    os.wait4 reports the resources of this one child, so one measurement never leaks into
    the next (getrusage(RUSAGE_CHILDREN) keeps the maximum over all children ever waited for).

    Raises:
      RuntimeError: the command failed.
    """
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=subprocess_env(root))
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


def stock_command(dataset: Dataset, output_dir: str) -> list[str]:
    """The stock tf.Transform pipeline's command line, run as its user would: no Beam flags."""
    return [sys.executable, "-m", "benchmarks.stock_tft", "--input", dataset.pattern,
            "--output_dir", output_dir, "--num_shards", str(NUM_SHARDS)]


@dataclasses.dataclass(frozen=True)
class Side:
    """One way of doing the job, measured from its command line.

    Attributes:
      key: its name in --sides, in the ratios and in the JSON report.
      label: its row in the printed tables.
      command: its command line, given the dataset and an output directory.
      root: the source tree it runs from (working directory, first on PYTHONPATH): this
        checkout, or the export of --compare_ref.
      writes_manifest: it is our pipeline, whose manifest's statistics are checked.
    """

    key: str
    label: str
    command: Callable[[Dataset, str], list[str]]
    root: str = REPO
    writes_manifest: bool = False


SIDES = ("baseline", "ours", "stock")


def make_sides(keys: list[str], pipeline_args: list[str]) -> list[Side]:
    """The sides named by --sides, in the order they run."""
    ours = functools.partial(pipeline_command, pipeline_args=pipeline_args)
    every = (Side("baseline", "hand-written NumPy", baseline_command),
             Side("ours", "ours (Beam + tft)", ours, writes_manifest=True),
             Side("stock", "stock tf.Transform", stock_command))
    return [side for side in every if side.key in keys]


def ref_side(commit: str, tree: str, pipeline_args: list[str]) -> Side:
    """Our pipeline as it was at another commit, exported to `tree`, with the same flags."""
    return Side("ref", f"ref: ours at {commit}", functools.partial(pipeline_command, pipeline_args=pipeline_args),
                root=tree, writes_manifest=True)


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


def transformed_feature_spec() -> dict[str, Any]:
    """The records every side writes: what our pipeline's transformed_metadata describes."""
    import tensorflow as tf

    return {features.X: tf.io.FixedLenFeature([MAX_LENGTH, NUM_FEATURES], tf.float32),
            features.LENGTH: tf.io.FixedLenFeature([], tf.int64),
            features.LABEL: tf.io.FixedLenFeature([], tf.int64)}


@dataclasses.dataclass(frozen=True)
class RecordSummary:
    """What an output's train records hold, in a form that does not depend on their order.

    Beam spreads records over shards in no fixed order, so records are compared as sorted
    sequences: if every value of one side is within e of the other side's, the two sorted
    sequences are too, element by element.

    Attributes:
      keys: (label, length) of every record, sorted.
      sums: every record's sum of x (float64), sorted by (label, length, sum), which ties the
        values to their label and length.
      squares: every record's sum of x squared, sorted.
      channel_sums: per channel, the sum of x over all records (about 0 once z-scored).
      channel_squares: per channel, the sum of x squared (the count of valid values once z-scored).
      padding_nonzero: values past a record's length that are not 0.
    """

    keys: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    channel_sums: np.ndarray
    channel_squares: np.ndarray
    padding_nonzero: int


def summarize_records(output_dir: str) -> RecordSummary:
    """Parses every train record of an output with transformed_feature_spec() and summarizes them."""
    import tensorflow as tf

    spec = transformed_feature_spec()
    records = tf.data.TFRecordDataset(shard_paths(output_dir)).batch(512).map(lambda b: tf.io.parse_example(b, spec))
    labels, lengths, sums, squares = [], [], [], []
    channel_sums = channel_squares = np.zeros(NUM_FEATURES)
    padding_nonzero = 0
    for batch in records.as_numpy_iterator():
        x = batch[features.X].astype(np.float64)
        labels.append(batch[features.LABEL])
        lengths.append(batch[features.LENGTH])
        x2 = np.square(x)
        sums.append(x.sum(axis=(1, 2)))
        squares.append(x2.sum(axis=(1, 2)))
        channel_sums = channel_sums + x.sum(axis=(0, 1))
        channel_squares = channel_squares + x2.sum(axis=(0, 1))
        padding_nonzero += np.count_nonzero(x[np.arange(MAX_LENGTH) >= lengths[-1][:, None]])
    label, length, total = (np.concatenate(a) for a in (labels, lengths, sums))
    order = np.lexsort((total, length, label))
    return RecordSummary(keys=np.stack([label, length], axis=1)[order], sums=total[order],
                         squares=np.sort(np.concatenate(squares)), channel_sums=channel_sums,
                         channel_squares=channel_squares, padding_nonzero=padding_nonzero)


@dataclasses.dataclass(frozen=True)
class Verified:
    """What was checked of one side's output against the baseline's.

    Attributes:
      records: records in its train shards (equal to the dataset's examples).
      max_record_diff: the largest difference of a record's sum of x, or sum of x squared,
        from the baseline's (records in RecordSummary's order).
      max_channel_diff: the largest difference of a per-channel sum of x, or of x squared.
      max_abs_mean_diff: the manifest's mean against the baseline's; None without a manifest.
      max_abs_std_diff: the manifest's std against the baseline's; None without a manifest.
    """

    records: int
    max_record_diff: float
    max_channel_diff: float
    max_abs_mean_diff: float | None = None
    max_abs_std_diff: float | None = None


# Float tolerance of the record comparison: every side normalizes in float64 and rounds to
# float32, so a value differs from the baseline's by at most an ulp (where the float64
# statistics differ in their last bits); a record sums 3,200 of them.
RECORD_TOLERANCE = {"rtol": 1e-6, "atol": 1e-3}


def _max_diff(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    return float(np.max(np.abs(np.subtract(a, b)), initial=0.0))


def compare_records(summary: RecordSummary, base: RecordSummary) -> tuple[float, float]:
    """Asserts that a side's records hold the baseline's values; returns the largest record and channel
    differences."""
    assert summary.padding_nonzero == base.padding_nonzero == 0, (summary.padding_nonzero, base.padding_nonzero)
    np.testing.assert_array_equal(summary.keys, base.keys)
    for ours, theirs in ((summary.sums, base.sums), (summary.squares, base.squares),
                         (summary.channel_sums, base.channel_sums), (summary.channel_squares, base.channel_squares)):
        np.testing.assert_allclose(ours, theirs, **RECORD_TOLERANCE)
    return (max(_max_diff(summary.sums, base.sums), _max_diff(summary.squares, base.squares)),
            max(_max_diff(summary.channel_sums, base.channel_sums),
                _max_diff(summary.channel_squares, base.channel_squares)))


def compare_manifest(output_dir: str, base: dict[str, Any]) -> tuple[float, float]:
    """Asserts that our pipeline's manifest reports the baseline's counts and statistics; returns the largest
    mean and std differences."""
    with open(os.path.join(output_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["splits"]["train"]["examples_written"] == base["examples"]
    assert manifest["max_length"] == base["max_length"] == MAX_LENGTH
    stats = manifest["statistics"]["x"]
    assert stats["count"] == base["count"], (stats["count"], base["count"])
    np.testing.assert_allclose(stats["mean"], base["mean"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["std"], base["std"], rtol=1e-9, atol=1e-9)
    return _max_diff(stats["mean"], base["mean"]), _max_diff(stats["std"], base["std"])


def verify_outputs(sides: list[Side], output_dirs: dict[str, str], dataset: Dataset) -> dict[str, Verified]:
    """Asserts that every side wrote the baseline's records: every example, in NUM_SHARDS shards, with the
    baseline's values; that tf.Transform's metadata describes those records; and that our manifests hold the
    baseline's statistics.

    Returns:
      What was checked, per side other than the baseline.
    """
    import tensorflow_transform as tft

    for side in sides:
        paths = shard_paths(output_dirs[side.key])
        assert len(paths) == NUM_SHARDS, (side.key, paths)
        records = count_records(paths)
        assert records == dataset.examples, (side.key, records, dataset.examples)
    base_dir = output_dirs["baseline"]
    with open(os.path.join(base_dir, "stats.json")) as f:
        base_stats = json.load(f)
    assert base_stats["examples"] == dataset.examples
    base = summarize_records(base_dir)
    checked = {}
    for side in sides:
        if side.key == "baseline":
            continue
        output_dir = output_dirs[side.key]
        assert tft.TFTransformOutput(output_dir).transformed_feature_spec() == transformed_feature_spec(), side.key
        record_diff, channel_diff = compare_records(summarize_records(output_dir), base)
        manifest_diffs = compare_manifest(output_dir, base_stats) if side.writes_manifest else (None, None)
        checked[side.key] = Verified(dataset.examples, record_diff, channel_diff, *manifest_diffs)
    return checked


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

    @property
    def cpu_seconds_per_gb(self) -> float:
        """CPU seconds per GB of raw input float32: what the job costs, however many cores it used."""
        return self.run.cpu_seconds / (self.dataset.raw_bytes / GB)

    @property
    def cores(self) -> float:
        """Cores used on average: CPU seconds over wall seconds."""
        return self.run.cpu_seconds / self.run.seconds

    def rates(self) -> dict[str, float]:
        """Raw-input MB/s and examples/s, over wall time and net of startup."""
        d, wall, net = self.dataset, self.run.seconds, self.net_seconds
        return {"mb_per_s": d.raw_bytes / MB / wall, "mb_per_s_net": d.raw_bytes / MB / net,
                "examples_per_s": d.examples / wall, "examples_per_s_net": d.examples / net}

    def to_json(self) -> dict[str, Any]:
        """The figures, for --json_out."""
        return {"label": self.name, **dataclasses.asdict(self.run), "overhead_seconds": self.overhead_seconds,
                "net_seconds": self.net_seconds, **self.rates(), "cpu_seconds_per_gb": self.cpu_seconds_per_gb,
                "cores": self.cores}


@dataclasses.dataclass(frozen=True)
class Ratio:
    """One side's figures over another's, both measured in the same run.

    Attributes:
      throughput: the other's wall seconds over this side's (above 1: this side is faster).
      throughput_net: the same, net of each side's startup.
      cpu_per_gb: this side's CPU seconds per GB over the other's (below 1: this side costs less).
      peak_rss: this side's peak RSS over the other's.
    """

    throughput: float
    throughput_net: float
    cpu_per_gb: float
    peak_rss: float

    @classmethod
    def of(cls, side: Result, other: Result) -> Ratio:
        """side / other."""
        return cls(throughput=other.run.seconds / side.run.seconds,
                   throughput_net=other.net_seconds / side.net_seconds,
                   cpu_per_gb=side.cpu_seconds_per_gb / other.cpu_seconds_per_gb,
                   peak_rss=side.run.peak_rss_mb / other.run.peak_rss_mb)

    def describe(self) -> str:
        """The ratios, on one line."""
        return (f"throughput {self.throughput:.2f}x (wall), {self.throughput_net:.2f}x (net of startup); "
                f"CPU s per GB {self.cpu_per_gb:.2f}x; peak RSS {self.peak_rss:.2f}x")


def ratio_pairs(keys: list[str]) -> list[tuple[str, str]]:
    """The (side, other) pairs reported: every side over the baseline, and ours over stock
    tf.Transform and over ours at --compare_ref."""
    pairs = [(key, "baseline") for key in keys if key != "baseline"]
    return pairs + [("ours", other) for other in ("stock", "ref") if "ours" in keys and other in keys]


def format_table(results: list[Result]) -> str:
    """The figures of each side, one row each."""
    head = (f"{'':<22}{'wall s':>8}{'startup s':>10}{'net s':>8}{'MB/s':>8}{'MB/s net':>10}"
            f"{'ex/s':>9}{'ex/s net':>10}{'CPU s':>8}{'CPU s/GB':>10}{'cores':>7}{'peak RSS MB':>12}")
    rows = [head]
    for r in results:
        x = r.rates()
        rows.append(f"{r.name:<22}{r.run.seconds:>8.1f}{r.overhead_seconds:>10.1f}{r.net_seconds:>8.1f}"
                    f"{x['mb_per_s']:>8.1f}{x['mb_per_s_net']:>10.1f}{x['examples_per_s']:>9.0f}"
                    f"{x['examples_per_s_net']:>10.0f}{r.run.cpu_seconds:>8.1f}{r.cpu_seconds_per_gb:>10.1f}"
                    f"{r.cores:>7.2f}{r.run.peak_rss_mb:>12.0f}")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.preprocess", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.25,
                   help="dataset size: 64 * scale files (at least 1); 1 is ~1 GB of raw float32")
    p.add_argument("--samples_per_file", type=int, default=SAMPLES_PER_FILE, help="samples per file")
    p.add_argument("--seed", type=int, default=0, help="data generator seed")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES),
                   help="the sides to run (default: all); the baseline is required, every check and ratio "
                        "is against it. E.g. --sides baseline ours skips the slow stock tf.Transform side")
    p.add_argument("--compare_ref", metavar="REV",
                   help="also run our pipeline as it was at git revision REV (exported with git archive), "
                        "with the same flags, as the side 'ref'")
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
                   help="flags passed on to our pipeline, and to ours at --compare_ref (after --)")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, checked against each other."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if "baseline" not in args.sides:
        parser.error("--sides must include baseline: every check and ratio is against it")
    if "ours" not in args.sides and (args.memory_factor or args.profile):
        parser.error("--memory_factor and --profile measure our pipeline: --sides must include ours")
    return args


def _files_for(scale: float) -> int:
    return max(1, round(FULL_FILES * scale))


def measure(sides: list[Side], dataset: Dataset, tiny: Dataset, repeats: int,
            out: Callable[[str], str]) -> tuple[dict[str, float], dict[str, list[Measured]]]:
    """Measures every side's startup on the tiny dataset, then runs the sides in turn, `repeats` times.

    Returns:
      Each side's startup seconds, and each side's runs.
    """
    overhead = {side.key: run_measured(side.command(tiny, out(f"{side.key}-startup")),
                                       out(f"{side.key}-startup.log"), side.root).seconds
                for side in sides}
    warm_cache(glob.glob(dataset.pattern))
    runs: dict[str, list[Measured]] = {side.key: [] for side in sides}
    for i in range(repeats):
        for side in sides:
            shutil.rmtree(out(side.key), ignore_errors=True)
            runs[side.key].append(run_measured(side.command(dataset, out(side.key)), out(f"{side.key}-{i}.log"),
                                               side.root))
            print(f"  {side.label}: {runs[side.key][-1].seconds:.1f} s", flush=True)
    return overhead, runs


def print_verified(checked: dict[str, Verified], records: int) -> None:
    """One line per side: what its output was checked against."""
    print(f"verified: {records} records in {NUM_SHARDS} shards on every side")
    for key, v in checked.items():
        manifest = ("" if v.max_abs_mean_diff is None else
                    f"; manifest statistics agree (max |mean diff| {v.max_abs_mean_diff:.1e}, "
                    f"max |std diff| {v.max_abs_std_diff:.1e})")
        print(f"  {key}: records hold the baseline's values (max |record sum diff| {v.max_record_diff:.1e}, "
              f"max |channel sum diff| {v.max_channel_diff:.1e}){manifest}", flush=True)


def measure_memory(big: Dataset, factor: float, ours: Result, ours_runs: list[Measured], pipeline_args: list[str],
                   out: Callable[[str], str]) -> dict[str, Any]:
    """Runs our pipeline on `factor` times the data and prints its peak RSS over the largest at 1x.

    Returns:
      The figures, for the report.
    """
    warm_cache(glob.glob(big.pattern))
    scaled = run_measured(pipeline_command(big, out("ours-big"), pipeline_args), out("ours-big.log"))
    one_x = max(r.peak_rss_mb for r in ours_runs)
    big_result = Result(f"ours at {factor:g}x", scaled, ours.overhead_seconds, big)
    print(f"memory: {big.describe()}")
    print(format_table([ours, big_result]))
    print(f"peak RSS of ours at {factor:g}x / 1x data: {scaled.peak_rss_mb:.0f} / {one_x:.0f} MB = "
          f"{scaled.peak_rss_mb / one_x:.2f}x", flush=True)
    return {"factor": factor, "dataset": dataclasses.asdict(big), "peak_rss_mb_1x": one_x,
            "result": big_result.to_json(), "peak_rss_ratio": scaled.peak_rss_mb / one_x}


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the report."""
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    dataset = ensure_dataset(args.work_dir, _files_for(args.scale), args.samples_per_file, args.seed)
    tiny = ensure_dataset(args.work_dir, OVERHEAD_FILES, OVERHEAD_SAMPLES, args.seed)
    big = None
    if args.memory_factor:
        big = ensure_dataset(args.work_dir, _files_for(args.scale * args.memory_factor), args.samples_per_file,
                             args.seed)
    ref = {"rev": args.compare_ref, "commit": resolve_commit(args.compare_ref)} if args.compare_ref else None
    run_dir = tempfile.mkdtemp(dir=args.work_dir, prefix="run-")
    code = code_version()

    def out(name: str) -> str:
        return os.path.join(run_dir, name)

    sides = make_sides(args.sides, args.pipeline_args)
    if ref is not None:
        export_commit(ref["commit"], out("ref-tree"))
        sides.append(ref_side(ref["commit"], out("ref-tree"), args.pipeline_args))
    print(f"dataset: {dataset.describe()}\ncode: {code}\ncompare_ref: {ref}\nrun directory: {run_dir}", flush=True)

    overhead, runs = measure(sides, dataset, tiny, args.repeats, out)
    results = {side.key: Result(side.label, min(runs[side.key], key=lambda m: m.seconds), overhead[side.key],
                                dataset)
               for side in sides}
    ratios = {f"{key}/{other}": Ratio.of(results[key], results[other]) for key, other in ratio_pairs(list(results))}
    print(format_table(list(results.values())))
    for pair, ratio in ratios.items():
        print(f"{pair}: {ratio.describe()}", flush=True)
    output_dirs = {side.key: out(side.key) for side in sides}
    checked = verify_outputs(sides, output_dirs, dataset)
    print_verified(checked, dataset.examples)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"nproc": os.cpu_count(),
                    "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)},
        "command": ["python", "-m", "benchmarks.preprocess", *(sys.argv[1:] if argv is None else argv)],
        "code": code,
        "compare_ref": ref,
        "dataset": dataclasses.asdict(dataset),
        "results": {key: r.to_json() for key, r in results.items()},
        "all_seconds": {key: [m.seconds for m in r] for key, r in runs.items()},
        "verified": {"records": dataset.examples, "sides": {k: dataclasses.asdict(v) for k, v in checked.items()}},
        "ratios": {pair: dataclasses.asdict(r) for pair, r in ratios.items()},
        "outputs": output_dirs if args.keep_outputs else None,
    }

    if big is not None:
        report["memory"] = measure_memory(big, args.memory_factor, results["ours"], runs["ours"], args.pipeline_args,
                                          out)

    if args.profile:
        print(profile_pipeline(dataset, out("profiled"), args.pipeline_args, args.profile, out("profile.log")))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)
    if not args.keep_outputs:
        shutil.rmtree(run_dir)


if __name__ == "__main__":
    main()
