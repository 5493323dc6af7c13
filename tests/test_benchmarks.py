"""Smoke tests: every benchmark runs end to end at a tiny scale, so the scripts don't rot.

Figures at this scale mean nothing; what is checked is that each script runs from its
command line, measures every side and writes its report, that every side of the
preprocessing benchmark writes every example, that the printed figures and ratios are the
JSON report's, and that the hand-written baseline writes exactly the records our pipeline
writes.
"""

from __future__ import annotations

import dataclasses
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
    """The numbers of a side's first row in the printed tables (the COLUMNS of test_preprocess_benchmark)."""
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


@pytest.mark.parametrize("module", ["benchmarks.preprocess", "benchmarks.input_pipeline", "benchmarks.handwritten",
                                    "benchmarks.stock_tft", "benchmarks.buckets", "benchmarks.trainer_accuracy"])
def test_help(module: str) -> None:
    assert "usage: python -m " + module in run_module(module, "--help").stdout


# The printed table's columns: the JSON figure each shows, and its decimals.
COLUMNS = (("seconds", 1), ("overhead_seconds", 1), ("net_seconds", 1), ("mb_per_s", 1), ("mb_per_s_net", 1),
           ("examples_per_s", 0), ("examples_per_s_net", 0), ("cpu_seconds", 1), ("cpu_seconds_per_gb", 1),
           ("cores", 2), ("peak_rss_mb", 0))


def _check_figures(figures: dict, dataset: dict, printed: list[float]) -> None:
    """A side's figures follow from its measured seconds, and its printed row shows them."""
    assert figures["net_seconds"] == pytest.approx(max(figures["seconds"] - figures["overhead_seconds"], 1e-3))
    assert figures["examples_per_s"] * figures["seconds"] == pytest.approx(dataset["examples"])
    assert figures["examples_per_s_net"] * figures["net_seconds"] == pytest.approx(dataset["examples"])
    assert figures["mb_per_s"] * figures["seconds"] == pytest.approx(dataset["raw_bytes"] / 1e6)
    assert figures["cpu_seconds_per_gb"] * dataset["raw_bytes"] / 1e9 == pytest.approx(figures["cpu_seconds"])
    assert figures["cores"] * figures["seconds"] == pytest.approx(figures["cpu_seconds"])
    assert printed == [round(figures[key], decimals) for key, decimals in COLUMNS]


def test_preprocess_benchmark(work_dir: str, tmp_path) -> None:
    report_path = str(tmp_path / "report.json")
    proc = run_module("benchmarks.preprocess", *TINY, "--work_dir", work_dir, "--memory_factor", "2",
                      "--keep_outputs", "--json_out", report_path)
    with open(report_path) as f:
        report = json.load(f)
    results, dataset = report["results"], report["dataset"]
    sides = {"baseline", "ours", "stock"}
    assert set(results) == set(report["outputs"]) == sides
    assert dataset["examples"] == report["verified"]["records"] == 100
    # Every side wrote every example: counted here, from the shards themselves.
    output_records = {side: records(output_dir) for side, output_dir in report["outputs"].items()}
    assert {side: len(r) for side, r in output_records.items()} == dict.fromkeys(sides, 100)
    # Every side but the baseline was checked against it; our manifest's statistics too.
    verified = report["verified"]["sides"]
    assert set(verified) == {"ours", "stock"}
    assert verified["ours"]["max_abs_mean_diff"] is not None and verified["stock"]["max_abs_mean_diff"] is None
    for figures in results.values():
        _check_figures(figures, dataset, _table_row(proc.stdout, figures["label"]))
    # Ratios: every side over the baseline, and ours over stock; each from the JSON's figures.
    assert set(report["ratios"]) == {"ours/baseline", "stock/baseline", "ours/stock"}
    for pair, ratio in report["ratios"].items():
        side, other = (results[key] for key in pair.split("/"))
        assert ratio["throughput"] == pytest.approx(other["seconds"] / side["seconds"])
        assert ratio["throughput_net"] == pytest.approx(other["net_seconds"] / side["net_seconds"])
        assert ratio["cpu_per_gb"] == pytest.approx(side["cpu_seconds_per_gb"] / other["cpu_seconds_per_gb"])
        assert ratio["peak_rss"] == pytest.approx(side["peak_rss_mb"] / other["peak_rss_mb"])
        assert (f"{pair}: throughput {ratio['throughput']:.2f}x (wall), {ratio['throughput_net']:.2f}x (net of "
                f"startup); CPU s per GB {ratio['cpu_per_gb']:.2f}x; peak RSS {ratio['peak_rss']:.2f}x") in proc.stdout
    memory = report["memory"]
    assert memory["dataset"]["examples"] == 200
    assert memory["peak_rss_ratio"] == pytest.approx(memory["result"]["peak_rss_mb"] / memory["peak_rss_mb_1x"])
    # Byte-compatible: the same serialized Examples on both sides, whatever their order.
    assert sorted(output_records["ours"]) == sorted(output_records["baseline"])


def _head_commit() -> str | None:
    """This checkout's commit; None in a `git archive` export."""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.mark.skipif(_head_commit() is None, reason="--compare_ref exports a commit: needs a git checkout")
def test_compare_ref_side_runs_the_exported_commit(tmp_path) -> None:
    """--compare_ref's side runs the committed code of REV, imported before this checkout's, with our flags.

    The rest of its path (timing, checks, ratios) is the one every side takes, run above; a
    second pipeline run here would cost the smoke test ~20 s.
    """
    from benchmarks import measurement, preprocess, source_tree, synthetic_data

    tree = str(tmp_path / "tree")
    commit = source_tree.resolve_commit("HEAD")
    assert commit == _head_commit()
    source_tree.export_commit(commit, tree)
    side = preprocess.ref_side(commit, tree, ["--quiet"])
    log = str(tmp_path / "imports.log")
    measurement.run_measured([sys.executable, "-c", "import beam_pipeline, transforms; "
                             "print(beam_pipeline.__file__, transforms.__file__)"], log, side.root)
    with open(log) as f:
        imported = f.read().split()
    assert imported == [os.path.join(tree, "beam_pipeline", "__init__.py"), os.path.join(tree, "transforms",
                                                                                          "__init__.py")]
    dataset = synthetic_data.Dataset(path="in", files=1, examples=1, raw_bytes=1, npz_bytes=1)
    assert side.command(dataset, "out") == preprocess.pipeline_command(dataset, "out", ["--quiet"])
    assert side.writes_manifest and side.label == f"ref: ours at {commit}"


def test_compare_records_catches_a_wrong_record() -> None:
    """The output check fails on one value off by more than float rounding, on a wrong label, on padding."""
    from benchmarks.verification import RecordSummary, compare_records

    rng = np.random.default_rng(0)
    base = RecordSummary(keys=np.array([[0, 50], [1, 200]]), sums=rng.normal(size=2), squares=np.sort(rng.random(2)),
                         channel_sums=rng.normal(size=16), channel_squares=np.full(16, 1e4), padding_nonzero=0)
    assert compare_records(dataclasses.replace(base, sums=base.sums + 1e-5), base) == (pytest.approx(1e-5), 0.0)
    wrong = [dataclasses.replace(base, sums=base.sums + [0, 0.01]),
             dataclasses.replace(base, keys=np.array([[0, 50], [2, 200]])),
             dataclasses.replace(base, channel_squares=base.channel_squares * 1.001),
             dataclasses.replace(base, padding_nonzero=1)]
    for summary in wrong:
        with pytest.raises(AssertionError):
            compare_records(summary, base)


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


def test_buckets_benchmark(tmp_path) -> None:
    """All three sides train and report; on heavy-tailed lengths buckets store less than one length,
    and stripped ragged records less still."""
    report_path = str(tmp_path / "report.json")
    proc = run_module("benchmarks.buckets", "--samples", "300", "--epochs", "2", "--distributions", "heavy_tailed",
                      "--json_out", report_path)
    with open(report_path) as f:
        result = json.load(f)["results"]["heavy_tailed"]
    sides = result["sides"]
    assert list(sides) == ["one length", "buckets", "ragged + bucket_by_sequence_length"]
    assert sides["ragged + bucket_by_sequence_length"]["bytes"] < sides["buckets"]["bytes"] < sides["one length"][
        "bytes"]
    assert result["bounds"][-1] == max(result["bounds"]) and len(result["bounds"]) >= 2
    assert result["padding"]["padding_fraction"] < result["padding"]["padding_fraction_with_buckets"]["1"]
    for side, r in sides.items():
        row = next(line for line in proc.stdout.splitlines() if line.startswith(side))
        assert f"{r['bytes'] / sides['one length']['bytes']:.2f}" in row and f"{r['eval_accuracy']:.3f}" in row


def test_trainer_accuracy_benchmark_scores_the_serving_signature(tmp_path) -> None:
    """Our side on ready-made files (no aeon in this environment): the pipeline, the trainer and the
    serving signature on raw test samples, whose accuracy is the trainer's own on the eval records."""
    from benchmarks import buckets

    os.makedirs(tmp_path / "npz" / "sines")
    buckets.write_split(str(tmp_path / "npz" / "sines" / "train.npz"), "uniform", 120, seed=1)
    buckets.write_split(str(tmp_path / "npz" / "sines" / "test.npz"), "uniform", 60, seed=2)
    proc = run_module("benchmarks.trainer_accuracy", "--npz_dir", str(tmp_path / "npz"), "--datasets", "sines",
                      "--work_dir", str(tmp_path / "work"), "--json", str(tmp_path / "r.json"),
                      "--trainer_flags", "--epochs", "2")
    (row,) = json.loads((tmp_path / "r.json").read_text())
    ours = row["ours"]
    assert ours["accuracy"] == pytest.approx(ours["keras_eval_accuracy"], abs=1e-6)
    assert (ours["epochs_run"], ours["global_batch_size"], ours["steps_per_epoch"]) == (2, 16, 8)  # 120 examples
    assert f"| sines | - | - | {ours['accuracy']:.3f} |" in proc.stdout
