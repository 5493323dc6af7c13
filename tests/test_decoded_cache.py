"""The decoded-values cache between the passes: a hit gives the decoded values and removes
its entry; a miss, a cut entry or a short disk only cost decoding again."""

import io
import os
import subprocess

import numpy as np
import pytest

from beam_pipeline.planning.plan import FileTask
from beam_pipeline.reading import decoded_cache, layouts, npy_io
from beam_pipeline.reading.decoded_cache import DecodedCache

X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)


def _plan() -> layouts.FilePlan:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=X, lengths=np.array([10, 20]), y=np.array([0, 1]))
    return layouts.plan_file(npy_io.ArrayFile(buf.getvalue()), layouts.ReadOptions())


TASK = FileTask("data/a.npz", "train", 100)


def test_the_write_pass_reads_what_the_analyze_pass_decoded(tmp_path):
    np.testing.assert_array_equal(DecodedCache(str(tmp_path), store=True).values(TASK, _plan()), X)
    assert len(os.listdir(tmp_path)) == 1
    # A plan whose values cannot be decoded again: only the cache can give them.
    hit = DecodedCache(str(tmp_path), store=False).values(TASK, None)
    np.testing.assert_array_equal(hit, X)
    assert hit.dtype == X.dtype
    assert os.listdir(tmp_path) == []   # read once, then removed


def test_a_miss_in_the_write_pass_decodes_and_stores_nothing(tmp_path):
    np.testing.assert_array_equal(DecodedCache(str(tmp_path), store=False).values(TASK, _plan()), X)
    assert os.listdir(tmp_path) == []


def test_entries_are_per_sample_range(tmp_path):
    DecodedCache(str(tmp_path), store=True).values(TASK, _plan())
    other = FileTask("data/a.npz", "train", 100, sample_range=(0, 1))
    np.testing.assert_array_equal(DecodedCache(str(tmp_path), store=False).values(other, _plan()), X[:10])
    assert len(os.listdir(tmp_path)) == 1


def test_a_cut_entry_is_a_miss(tmp_path):
    DecodedCache(str(tmp_path), store=True).values(TASK, _plan())
    [entry] = os.listdir(tmp_path)
    with open(tmp_path / entry, "r+b") as f:
        f.truncate(os.path.getsize(tmp_path / entry) - 8)
    np.testing.assert_array_equal(DecodedCache(str(tmp_path), store=False).values(TASK, _plan()), X)


def test_nothing_is_stored_when_the_disk_is_short(tmp_path, monkeypatch):
    monkeypatch.setattr(decoded_cache, "_RESERVE_BYTES", 1 << 62)
    np.testing.assert_array_equal(DecodedCache(str(tmp_path), store=True).values(TASK, _plan()), X)
    assert os.listdir(tmp_path) == []


def test_a_removed_directory_only_costs_decoding(tmp_path):
    gone = str(tmp_path / "gone")
    for store in (True, False):
        np.testing.assert_array_equal(DecodedCache(gone, store=store).values(TASK, _plan()), X)


@pytest.mark.parametrize("dtype", ["float16", "int64", "bool"])
def test_any_value_dtype_round_trips(tmp_path, dtype):
    values = (X * 10).astype(dtype)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=values, lengths=np.array([10, 20]), y=np.array([0, 1]))
    plan = layouts.plan_file(npy_io.ArrayFile(buf.getvalue()), layouts.ReadOptions())
    DecodedCache(str(tmp_path), store=True).values(TASK, plan)
    hit = DecodedCache(str(tmp_path), store=False).values(TASK, None)
    assert hit.dtype == values.dtype and hit.tobytes() == values.tobytes()


@pytest.mark.parametrize("flags,kept", [([], True), (["--no_decoded_cache"], False),
                                        (["--runner=DataflowRunner"], False)])
def test_the_cli_keeps_a_cache_only_for_in_process_runs_and_removes_it(flags, kept, tmp_path):
    from beam_pipeline import cli

    args, beam_args = cli.parse_args(["--input", "a.npz", "--output_dir", str(tmp_path / "out"), *flags])
    with cli._decoded_cache(args, beam_args) as directory:
        assert (directory is not None) == kept
        if kept:
            assert os.path.isdir(directory)
            open(os.path.join(directory, "entry"), "wb").close()
    assert directory is None or not os.path.exists(directory)


def test_caches_of_killed_runs_are_removed_and_live_ones_kept(tmp_path):
    from beam_pipeline import cli

    gone = _finished_pid()
    stale, live = tmp_path / f"npy-tft-decoded-{gone}-abc", tmp_path / f"npy-tft-decoded-{os.getpid()}-def"
    for d in (stale, live):
        d.mkdir()
        (d / "entry").write_bytes(b"x")
    cli._remove_stale_caches(str(tmp_path))
    assert not stale.exists() and live.exists()


def _finished_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
