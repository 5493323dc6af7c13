"""Bad input, partial output, nothing lost: the torture set through the CLI, a killed run,
determinism, and random corruption of valid files."""

import glob
import gzip
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_pipeline import errors
from beam_pipeline.planning.plan import FileTask
from beam_pipeline.reading import layouts, reader
from tests.support import torture
from tests.support.helpers import REPO, manifest, quarantine, read_split, run_ok, run_pipeline, valid_rows, write_ragged
from transforms.features import DatasetSpec


@pytest.fixture(scope="module")
def torture_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("torture")
    good, bad_files, bad_samples = torture.build(str(root))
    out = str(tmp_path_factory.mktemp("run") / "out")
    proc = run_ok("--input", str(root / "*.np*"), "--labels_sibling", torture.SIBLING, "--output_dir", out,
                  "--max_bad_fraction", "1.0")
    return root, out, proc, good, bad_files, bad_samples


def test_every_bad_item_is_quarantined_with_its_reason(torture_run):
    root, out, _, _, bad_files, bad_samples = torture_run
    got_files = {os.path.basename(q["file"]): q["reason"] for q in quarantine(out) if q["sample_index"] is None}
    got_samples = {(os.path.basename(q["file"]), q["sample_index"]): q["reason"]
                   for q in quarantine(out) if q["sample_index"] is not None}
    assert got_files == bad_files
    assert got_samples == bad_samples


def test_good_data_is_written_and_statistics_ignore_bad_samples(torture_run):
    _, out, _, good, _, _ = torture_run
    reference = np.concatenate(good).astype(np.float64)
    stats = manifest(out)["statistics"]["x"]
    np.testing.assert_allclose(stats["mean"], reference.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], reference.std(0), rtol=1e-6)
    rows = valid_rows(read_split(out, "train"))
    want = (reference - reference.mean(0)) / reference.std(0)
    np.testing.assert_allclose(np.sort(rows, 0), np.sort(want, 0), rtol=1e-5, atol=1e-5)


def test_counts_reconcile_in_manifest_and_summary(torture_run):
    _, out, proc, good, bad_files, bad_samples = torture_run
    s = manifest(out)["splits"]["train"]
    assert s["files_read"] + s["files_quarantined"] == s["files_matched"] == 3 + len(bad_files)
    assert s["files_quarantined"] == len(bad_files)
    assert s["examples_read"] == s["examples_written"] + s["examples_quarantined"]
    assert s["examples_written"] == len(good)
    assert s["examples_quarantined"] >= len(bad_samples)
    assert f"train: {len(good)}/{s['examples_read']} examples written" in proc.stdout


def test_default_bad_fraction_fails_the_run_with_a_summary(torture_run, tmp_path):
    root = torture_run[0]
    out = tmp_path / "out"
    proc = run_pipeline("--input", str(root / "*.np*"), "--labels_sibling", torture.SIBLING, "--output_dir", str(out))
    assert proc.returncode == 1
    assert "files quarantined, more than --max_bad_fraction=0.05" in proc.stderr.strip().splitlines()[-1]
    assert not (out / "_SUCCESS").exists() and (out / "manifest.json").exists()


def test_same_input_gives_the_same_statistics_counts_and_records(torture_run, tmp_path):
    root, first, _, _, _, _ = torture_run
    second = str(tmp_path / "again")
    run_ok("--input", str(root / "*.np*"), "--labels_sibling", torture.SIBLING, "--output_dir", second,
           "--max_bad_fraction", "1.0")
    a, b = manifest(first), manifest(second)
    assert a["statistics"] == b["statistics"] and a["splits"] == b["splits"]

    def records(out):
        import tensorflow as tf
        return sorted(r.numpy() for r in tf.data.TFRecordDataset(glob.glob(f"{out}/data/*.tfrecord")))

    assert records(first) == records(second)


def test_a_killed_run_leaves_no_success_marker_and_no_partial_shard(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12):
        samples = [rng.normal(size=(t, 16)).astype(np.float32) for t in rng.integers(50, 200, 400)]
        write_ragged(str(tmp_path / f"part-{i}.npz"), samples, rng.integers(0, 5, 400))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "beam_pipeline", "--input", str(tmp_path / "*.npz"),
                             "--output_dir", str(out), "--num_shards", "12"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not glob.glob(str(out / "data" / "*")):
        time.sleep(0.05)                          # wait until shard writing has started
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert glob.glob(str(out / "data" / "*")), "the run ended before shard writing started"
    assert not (out / "_SUCCESS").exists()
    import tensorflow as tf
    for shard in glob.glob(str(out / "data" / "train-*")):   # final names hold complete shards only
        assert sum(1 for _ in tf.data.TFRecordDataset(shard)) > 0
    from trainer import data
    from trainer.errors import DataError
    with pytest.raises(DataError, match="_SUCCESS"):
        data.load(str(out))                                   # the trainer refuses the partial output


def test_an_unreadable_file_is_quarantined_and_a_vanished_one_stops_the_run(tmp_path):
    (tmp_path / "dir.npz").mkdir()    # there, but cannot be read as a file (even by root)
    task = FileTask(str(tmp_path / "dir.npz"), "train", 10)
    read = reader.read_task(task, layouts.ReadOptions(), DatasetSpec((2,), "float32", 4), 1 << 20)
    assert read.quarantine[0].reason == errors.UNREADABLE and not read.batches
    # Listed when the run began, gone now: the passes would not all read the same data.
    gone = FileTask(str(tmp_path / "gone.npz"), "train", 10)
    with pytest.raises(errors.RunFailedError, match="gone.npz disappeared while the job ran"):
        reader.read_task(gone, layouts.ReadOptions(), DatasetSpec((2,), "float32", 4), 1 << 20)


def _valid_files() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 2)).astype(np.float32)
    npz = io.BytesIO()
    np.savez_compressed(npz, x=x, lengths=[2, 4], y=[0, 1])
    stored = io.BytesIO()
    np.savez(stored, x=x.reshape(2, 3, 2), y=[0, 1])
    npy = io.BytesIO()
    np.save(npy, x.reshape(2, 3, 2))
    return {"a.npz": npz.getvalue(), "b.npz": stored.getvalue(), "c.npy": npy.getvalue(),
            "d.npy.gz": gzip.compress(npy.getvalue())}


VALID = _valid_files()
SPEC = DatasetSpec((2,), "float32", 4)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(VALID)),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_random_corruption_never_crashes_or_hangs_the_reader(tmp_path, name, flips, cut):
    data = bytearray(VALID[name])
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / name
    path.write_bytes(bytes(data))
    np.save(tmp_path / (name.split(".")[0] + "_y.npy"), np.array([0, 1]))
    sibling = str(tmp_path / (name.split(".")[0] + "_y.npy")) if name.endswith((".npy", ".gz")) else None
    task = FileTask(str(path), "train", len(data), labels_path=sibling)
    read = reader.read_task(task, layouts.ReadOptions(max_file_bytes=1 << 20), SPEC, 1 << 20)
    written = sum(len(b) for b in read.batches)
    assert read.report.samples == written + read.report.quarantined
    assert all(q.reason in errors.REASONS for q in read.quarantine)
