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

import numpy as np
import pytest

from benchmarks import mixing
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
    proc = run_module("benchmarks.input_pipeline", *TINY, "--work_dir", work_dir, "--repeats", "1", "--examples", "64",
                      "--batch_size", "16", "--blocks_per_batch", "16", "--json_out", report_path)
    with open(report_path) as f:
        report = json.load(f)
    training = ["ours (training)", "ours (training, 16 blocks/batch)", "per-record shuffle (before)"]
    assert list(report["examples_per_s"]) == [*training, "ours (eval order)", "eval order (before)", "ceiling",
                                              "ceiling (block reads)", "seed from_generator", "seed numpy_function",
                                              "seed interleave"]
    best, cpu = report["examples_per_s"], report["cpu_us_per_example"]
    for name, ratios in report["ratios"].items():
        assert ratios["over_ceiling"] == pytest.approx(best[name] / best["ceiling"])
        assert ratios["cpu_over_ceiling"] == pytest.approx(cpu["ceiling"] / cpu[name])
    for name in ("ours (training)", "ours (eval order)"):
        assert f"{name}: {report['ratios'][name]['over_ceiling']:.2f}x the raw-read ceiling" in proc.stdout
    # Mixing of one pass of each training pipeline, of eval order and of the uniform reference.
    mixing_figures = report["mixing"]
    assert list(mixing_figures) == [*training, "ours (eval order)", "uniform shuffle (reference)"]
    shards = report["num_shards"]
    assert all(1 <= m["shards_per_batch"] <= min(16, shards) for m in mixing_figures.values())
    # Eval order reads the shards side by side, front to back.
    assert mixing_figures["ours (eval order)"]["position_corr"] > 0.9


def _shard_batches(rng, shards: int, per_shard: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Shards of records with random x [2, 3] and lengths, as one batch per shard."""
    return [[(rng.normal(size=(per_shard, 2, 3)).astype(np.float32), rng.integers(1, 3, per_shard))]
            for _ in range(shards)]


def test_mixing_figures_of_known_orders() -> None:
    shards = _shard_batches(np.random.default_rng(0), shards=4, per_shard=100)
    index = mixing.Index(shards)
    x, length = shards[2][0]
    np.testing.assert_array_equal(index.locate(x[10:20], length[10:20]), np.arange(210, 220))
    # Shard after shard: one shard per batch, the classes in runs; nothing mixed.
    storage = mixing.measure(index, np.arange(400).reshape(20, 20), num_classes=10)
    assert storage.shards_per_batch == 1 and storage.autocorr_by_shard > 0.95 and storage.spread_by_shard < 0.2
    # The shards side by side (eval order): every shard in every batch, but front to back.
    side_by_side = mixing.measure(index, np.arange(400).reshape(4, 100).T.reshape(20, 20), num_classes=10)
    assert side_by_side.shards_per_batch == 4 and side_by_side.spread_by_shard > 0.9
    assert side_by_side.position_corr > 0.99 and side_by_side.autocorr_in_shard > 0.95
    assert side_by_side.spread_in_shard < 0.2
    # A uniform shuffle mixes every way.
    uniform = mixing.measure(index, mixing.uniform_shuffle(index, 20), num_classes=10)
    assert uniform.shards_per_batch > 3.5 and min(uniform.spread_by_shard, uniform.spread_in_shard) > 0.85
    assert max(abs(uniform.autocorr_by_shard), abs(uniform.autocorr_in_shard), abs(uniform.position_corr)) < 0.15


def test_the_mixing_index_refuses_records_it_cannot_tell_apart() -> None:
    x = np.zeros((2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="cannot tell them apart"):
        mixing.Index([[(x, np.array([1, 1]))]])
