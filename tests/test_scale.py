"""Scale-out properties testable on one machine: no local-path assumptions, large files
split below the file level, thousands of tiny files."""

import json
import os
import subprocess
import sys

import numpy as np

from tests.support.helpers import REPO, manifest, read_split, run_ok, valid_rows, write_ragged


def test_input_and_output_on_a_non_local_filesystem(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-m", "tests.support.ram_run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"_SUCCESS", "manifest.json", "data", "transform_fn", "transformed_metadata"} <= set(report["entries"])
    assert report["records"] == report["written"] == 60
    assert report["mean_error"] < 1e-9
    assert report["local_entries"] == []


def test_large_files_are_split_into_sample_ranges(tmp_path):
    rng = np.random.default_rng(5)
    dense = rng.normal(size=(300, 6, 2)).astype(np.float32)
    np.savez(tmp_path / "dense.npz", x=dense, y=rng.integers(0, 3, 300))
    ragged = [rng.normal(size=(t, 2)).astype(np.float32) for t in rng.integers(1, 7, 250)]
    write_ragged(str(tmp_path / "ragged.npz"), ragged, rng.integers(0, 3, 250))
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "*.npz"), "--output_dir", out, "--samples_per_task", "64",
           "--num_shards", "0")
    m = manifest(out)
    s = m["splits"]["train"]
    assert (s["examples_read"], s["examples_written"], s["files_matched"]) == (550, 550, 2)
    assert len(s["shards"]) == 1      # 550 small samples: one ~150 MB shard's worth
    everything = [*dense, *ragged]
    reference = np.concatenate(everything).astype(np.float64)
    records = read_split(out, "train")
    assert sorted(records["length"].tolist()) == sorted(len(x) for x in everything)
    want = np.sort((reference - reference.mean(0)) / reference.std(0), 0)
    np.testing.assert_allclose(np.sort(valid_rows(records), 0), want, rtol=1e-5, atol=1e-5)


def test_thousands_of_tiny_files(tmp_path):
    rng = np.random.default_rng(6)
    for label in ("left", "right"):
        os.makedirs(tmp_path / label)
        for i in range(1000):
            np.save(tmp_path / label / f"{i:04d}.npy", rng.normal(size=(rng.integers(2, 6), 3)).astype(np.float32))
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "*" / "*.npy"), "--labels_from_dir", "--output_dir", out)
    s = manifest(out)["splits"]["train"]
    assert (s["files_matched"], s["examples_written"]) == (2000, 2000)
