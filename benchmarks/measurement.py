"""Measuring commands: wall time, CPU time and peak RSS of a child process, and the figures
derived from them (rates, cost per GB, ratios between sides measured in the same run).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

from benchmarks.source_tree import REPO, subprocess_env
from benchmarks.synthetic_data import GB, MB, Dataset


def warm_cache(paths: list[str]) -> None:
    """Reads files once, so each timed run starts from the same warm page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


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
