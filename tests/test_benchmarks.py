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

from tests.support.helpers import REPO

# 2 files x 50 samples (64 * 0.03125 = 2 files).
TINY = ["--scale", "0.03125", "--samples_per_file", "50"]


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `python -m MODULE ARGS` from the repository root, as a user would."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def _table_row(stdout: str, label: str) -> list[float]:
    """The numbers of a side's first row in the printed tables (wall s, startup s, net s, ..., peak RSS, CPU s,
    cores)."""
    line = next(line for line in stdout.splitlines() if line.startswith(label))
    return [float(v) for v in line[len(label):].split()]


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
    with open(report_path) as f:
        report = json.load(f)
    assert report["dataset"]["examples"] == report["verified"]["records"] == 100
    results = report["results"]
    for side, label in (("baseline", "hand-written NumPy"), ("ours", "ours (Beam + tft)")):
        figures = results[side]
        # The rates are the dataset over the measured times, and the printed table says the same.
        assert figures["examples_per_s"] * figures["seconds"] == pytest.approx(100)
        assert figures["examples_per_s_net"] * figures["net_seconds"] == pytest.approx(100)
        row = _table_row(proc.stdout, label)
        assert row[0] == pytest.approx(figures["seconds"], abs=0.06)
        assert row[7] == pytest.approx(figures["peak_rss_mb"], abs=0.6)
    ratio = report["ratio_ours_over_baseline"]["throughput"]
    assert ratio == pytest.approx(results["baseline"]["seconds"] / results["ours"]["seconds"])
    assert f"ours/baseline: throughput {ratio:.2f}x (wall)" in proc.stdout
    memory = report["memory"]
    assert memory["dataset"]["examples"] == 200
    assert memory["peak_rss_ratio"] == pytest.approx(memory["result"]["peak_rss_mb"] / memory["peak_rss_mb_1x"])
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
