"""Smoke tests: every benchmark runs end to end at a tiny scale, so the scripts don't rot.

Figures at this scale mean nothing; what is checked is that each script runs from its
command line, measures every side and writes its report, and that the hand-written
baseline writes exactly the records our pipeline writes.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import subprocess
import sys

import pytest

from tests.helpers import REPO

# 2 files x 50 samples (64 * 0.03125 = 2 files).
TINY = ["--scale", "0.03125", "--samples_per_file", "50"]


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `python -m MODULE ARGS` from the repository root, as a user would."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def records(output_dir: str) -> list[bytes]:
    """Every TFRecord of an output's train shards (frames read directly: length, CRC, data, CRC)."""
    out = []
    for path in sorted(glob.glob(os.path.join(output_dir, "data", "train-*.tfrecord"))):
        with open(path, "rb") as f:
            content = f.read()
        position = 0
        while position < len(content):
            (length,) = struct.unpack_from("<Q", content, position)
            out.append(content[position + 12:position + 12 + length])
            position += 16 + length
    return out


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One dataset cache shared by both benchmarks, as in real use."""
    return str(tmp_path_factory.mktemp("bench"))


@pytest.mark.parametrize("module", ["benchmarks.preprocess", "benchmarks.input_pipeline", "benchmarks.handwritten"])
def test_help(module: str) -> None:
    assert "usage: python -m " + module in run_module(module, "--help").stdout


def test_preprocess_benchmark(work_dir: str, tmp_path) -> None:
    report_path = str(tmp_path / "report.json")
    proc = run_module("benchmarks.preprocess", *TINY, "--work_dir", work_dir, "--memory_factor", "2",
                      "--keep_outputs", "--json_out", report_path)
    assert "ours/baseline: throughput" in proc.stdout
    with open(report_path) as f:
        report = json.load(f)
    assert report["dataset"]["examples"] == report["verified"]["records"] == 100
    for side in ("baseline", "ours"):
        figures = report["results"][side]
        assert figures["seconds"] > 0 and figures["peak_rss_mb"] > 0 and figures["examples_per_s"] > 0
    assert report["ratio_ours_over_baseline"]["throughput"] > 0
    assert report["memory"]["dataset"]["examples"] == 200
    assert report["memory"]["peak_rss_ratio"] > 0
    # Byte-compatible: the same serialized Examples on both sides, whatever their order.
    ours, baseline = records(report["outputs"]["ours"]), records(report["outputs"]["baseline"])
    assert len(ours) == 100
    assert sorted(ours) == sorted(baseline)


def test_input_pipeline_benchmark(work_dir: str, tmp_path) -> None:
    report_path = str(tmp_path / "report.json")
    run_module("benchmarks.input_pipeline", *TINY, "--work_dir", work_dir, "--repeats", "1",
               "--examples", "256", "--json_out", report_path)
    with open(report_path) as f:
        report = json.load(f)
    assert set(report["examples_per_s"]) == {"ours (training)", "ours (eval order)", "ceiling",
                                             "seed from_generator", "seed numpy_function", "seed interleave"}
    assert all(rate > 0 for rate in report["examples_per_s"].values())
    assert report["ratios"]["ours (training)"]["over_ceiling"] > 0


def test_feature_stats_benchmark() -> None:
    out = run_module("benchmarks.feature_stats", "--gb", "0.02", "--batch_mb", "1").stdout
    for row in ("accumulator (as shipped)", "sketch, every value", "sketch, sampled", "pickled accumulator"):
        assert row in out
    error = float(out.split("max rank error, channel 0")[1].split()[0])
    assert error <= 0.01   # within the sketch's epsilon


def test_drift_noise_benchmark() -> None:
    rows = run_module("benchmarks.drift_noise", "--trials", "1", "--rows", "2000").stdout.strip().splitlines()
    assert len(rows) == 2 + 5   # header, separator, one row per distribution
    normal = rows[2].split("|")
    assert float(normal[3].split("/")[0]) < float(normal[7].split("/")[0])   # no shift < shift 0.5
