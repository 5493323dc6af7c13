"""Helpers shared by the pipeline tests: run the CLI as a user would, read its output back."""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys

import numpy as np

from beam_pipeline.reading import npy_io

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What TensorFlow's C++ runtime prints at start-up when nothing filters it.
TF_NOISE = ("absl::InitializeLog", "oneDNN", "cuda", "cuInit", "cpu_feature_guard", "I0000")


def noise_lines(stderr: str) -> list[str]:
    """The lines of TensorFlow start-up noise in a CLI's stderr."""
    return [line for line in stderr.splitlines() if any(n in line for n in TF_NOISE)]


def run_pipeline(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `python -m beam_pipeline ARGS` in a subprocess and returns the finished process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "beam_pipeline", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_ok(*args: str) -> subprocess.CompletedProcess:
    """Runs the CLI and fails the test with its output unless it exits 0."""
    proc = run_pipeline(*args)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def manifest(out: str) -> dict:
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f)


def as_version_1(m: dict) -> dict:
    """A manifest's JSON as version 1 wrote it: no bucket, padding, drift, timing nor shard length fields."""
    old = {k: v for k, v in m.items() if k not in ("length_buckets", "padding", "drift", "timings")}
    old["splits"] = {name: {**split, "shards": [{k: v for k, v in shard.items() if k != "length"}
                                                for shard in split["shards"]]}
                     for name, split in m["splits"].items()}
    return {**old, "format_version": 1}


def quarantine(out: str) -> list[dict]:
    with open(os.path.join(out, "quarantine", "quarantine.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_split(out: str, split: str) -> dict[str, np.ndarray]:
    """Parses every record of a split with the transformed feature spec (as the trainer does)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    spec = tft.TFTransformOutput(out).transformed_feature_spec()
    files = sorted(glob.glob(os.path.join(out, "data", f"{split}-*")))
    compression = "GZIP" if files and files[0].endswith(".gz") else None
    ds = tf.data.TFRecordDataset(files, compression_type=compression).batch(512)
    parts = [tf.io.parse_example(b, spec) for b in ds]
    return {k: np.concatenate([p[k].numpy() for p in parts]) for k in spec}


def valid_rows(records: dict[str, np.ndarray]) -> np.ndarray:
    """All valid (unpadded) time steps of all records, [sum(length), *trailing]."""
    return np.concatenate([x[:n] for x, n in zip(records["x"], records["length"])])


def write_ragged(path: str, samples: list[np.ndarray], labels) -> None:
    """Writes samples in the ragged layout (x concatenated, lengths, y), compressed."""
    np.savez_compressed(path, x=np.concatenate(samples), lengths=np.array([len(s) for s in samples]),
                        y=np.asarray(labels))


def npz_file(**arrays) -> npy_io.ArrayFile:
    """An in-memory .npz (compressed) opened as the pipeline opens files."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return npy_io.ArrayFile(buf.getvalue())


def npy_file(array) -> npy_io.ArrayFile:
    """An in-memory .npy opened as the pipeline opens files."""
    buf = io.BytesIO()
    np.save(buf, array)
    return npy_io.ArrayFile(buf.getvalue())


def shift_eval_channel(data_dir: str, channel: int, stds: float = 0.5) -> None:
    """Adds `stds` standard deviations (of the training values) to one channel of the sample
    data's eval files (test-*.npz, ragged: x [sum(T), F])."""
    train = np.concatenate([np.load(f)["x"] for f in sorted(glob.glob(os.path.join(data_dir, "train-*.npz")))])
    shift = np.float32(stds * train[:, channel].std())
    for name in sorted(glob.glob(os.path.join(data_dir, "test-*.npz"))):
        arrays = dict(np.load(name))
        arrays["x"][:, channel] += shift
        np.savez_compressed(name, **arrays)
