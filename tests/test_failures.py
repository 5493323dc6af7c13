"""A failed run, caused for real: one line that says what failed, on which file and what to do;
no traceback without -v; nothing left behind; and the next run succeeds once the cause is gone.

Full disks are small tmpfs mounts and read-only directories read-only bind mounts
(tests/support/mounts.py: root only; skipped elsewhere, except under CI=true).
"""

import datetime
import gzip
import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from beam_pipeline.sample_data import write_dataset
from tests.support import mounts
from tests.support.denying_gcs import DENIED, denying_gcs
from tests.support.helpers import REPO, run_pipeline


@pytest.fixture
def small_disk(tmp_path):
    with mounts.small_disk(tmp_path / "disk", "3m") as disk:
        yield disk


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 training files (2.6 MB of .npz, ~5 MB of records) and one eval file."""
    root = tmp_path_factory.mktemp("data")
    write_dataset(str(root), train_files=4, test_files=1, per_file=400, max_len=100)
    return root


def _train(data) -> list[str]:
    return ["--input", str(data / "train-*.npz"), "--num_shards", "1"]


def _last_line(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.strip().splitlines()[-1]


def _assert_one_line_failure(proc: subprocess.CompletedProcess, line: str, code: int = 1) -> None:
    assert proc.returncode == code, proc.stderr[-3000:]
    assert re.fullmatch(line, _last_line(proc)), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-3000:]


def _files(directory) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), directory) for d, _, fs in os.walk(directory) for f in fs)


def test_a_full_disk_names_the_shard_frees_its_space_and_the_next_run_succeeds(data, small_disk):
    out = small_disk / "out"
    proc = run_pipeline(*_train(data), "--output_dir", str(out))
    _assert_one_line_failure(proc, re.escape(f"error: no space left on device while writing {out}/data/"
                                             "train-00000-of-00001.tfrecord (") + r"\d+\.\d MB written\): "
                                   "free space or choose another --output_dir")
    assert _files(small_disk) == []            # the partial shard and the scratch space are gone

    verbose = run_pipeline(*_train(data), "--output_dir", str(out), "-v")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "No space left on device" in verbose.stderr

    mounts.mount("-o", "remount,size=20m", str(small_disk))
    proc = run_pipeline(*_train(data), "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "_SUCCESS").exists()


def test_overwrite_says_before_starting_that_the_completed_run_goes(data, small_disk, tmp_path):
    # --overwrite deletes the old run first (cli._prepare_output says why): a failed rerun leaves
    # no usable output, and the user was told so before the job started.
    out = small_disk / "out"
    write_dataset(str(tmp_path / "tiny"), train_files=1, test_files=0, per_file=20)
    first = run_pipeline("--input", str(tmp_path / "tiny" / "*.npz"), "--output_dir", str(out))
    assert first.returncode == 0 and (out / "_SUCCESS").exists(), first.stderr[-3000:]

    refused = run_pipeline(*_train(data), "--output_dir", str(out))
    assert refused.returncode == 2 and (out / "_SUCCESS").exists()   # without --overwrite nothing is touched

    proc = run_pipeline(*_train(data), "--output_dir", str(out), "--overwrite")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == (f"--overwrite: deleting the completed run in {out} now; "
                        "if this run fails, no usable output remains there")
    assert lines[-1].startswith("error: no space left on device while writing")
    assert _files(small_disk) == []


@pytest.fixture
def read_only_dir(tmp_path):
    with mounts.read_only(tmp_path / "read-only") as directory:
        yield directory


def test_an_output_dir_that_cannot_be_written_fails_before_the_job_starts(data, read_only_dir):
    out = read_only_dir / "out"
    proc = run_pipeline(*_train(data), "--output_dir", str(out))
    line = f"error: {mounts.read_only_kind()} while writing {out}: choose another --output_dir"
    _assert_one_line_failure(proc, re.escape(line))
    assert "building the job" not in proc.stderr   # refused before TensorFlow loads and the job is built


def _run_and_meanwhile(args: list[str], trigger: str, action) -> subprocess.CompletedProcess:
    """Runs the CLI; once `trigger` exists (a path the job creates), calls `action()`."""
    proc = subprocess.Popen([sys.executable, "-m", "beam_pipeline", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    deadline = time.monotonic() + 120
    while not os.path.exists(trigger) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the trigger"
    action(proc)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds")


@pytest.mark.parametrize("change", ["deleted", "rewritten", "rewritten in place, same size"])
def test_an_input_that_changes_while_the_job_runs_stops_it(data, tmp_path, change):
    inputs = tmp_path / "inputs"
    shutil.copytree(data, inputs)
    victim = inputs / "test-00000.npz"     # read by the scan, then only by the write pass
    before, listed = victim.stat().st_size, victim.stat().st_mtime
    original = victim.read_bytes()
    out = tmp_path / "out"

    def meddle(_):
        if change == "deleted":
            victim.unlink()
        elif change == "rewritten in place, same size":
            time.sleep(0.01)   # a later modification time, at any filesystem's resolution here
            victim.write_bytes(original[::-1])
        else:
            write_dataset(str(tmp_path / "other"), train_files=0, test_files=1, per_file=300, seed=3)
            shutil.copy(tmp_path / "other" / "test-00000.npz", victim)

    # tf.Transform's temporary directory appears once the job runs: after the scan, before the write pass.
    args = [*_train(inputs), "--eval_input", str(victim), "--output_dir", str(out)]
    proc = _run_and_meanwhile(args, str(out / ".work" / "tft"), meddle)
    if change == "deleted":
        line = f"error: input {victim} disappeared while the job ran: restore it, or run again without it"
    elif change == "rewritten":
        line = (f"error: input {victim} changed while the job ran ({before:,} bytes when listed, "
                f"{victim.stat().st_size:,} now): run again once the inputs stay unchanged")
    else:
        line = (f"error: input {victim} changed while the job ran (rewritten since it was listed, {_utc(listed)}: "
                f"modified at {_utc(victim.stat().st_mtime)}): run again once the inputs stay unchanged")
    _assert_one_line_failure(proc, re.escape(line))
    assert _files(out) == []

    victim.write_bytes(original)
    assert run_pipeline(*args).returncode == 0


def test_ctrl_c_stops_promptly_with_130_and_leaves_nothing(data, tmp_path):
    out = tmp_path / "out"
    interrupted = {}

    def interrupt(proc):
        interrupted["at"] = time.monotonic()
        proc.send_signal(signal.SIGINT)

    proc = _run_and_meanwhile([*_train(data), "--output_dir", str(out)], str(out / ".work" / "tft"), interrupt)
    assert time.monotonic() - interrupted["at"] < 10
    _assert_one_line_failure(proc, "error: interrupted", code=130)
    assert _files(out) == []


def _write_huge_npy_gz(path, samples: int, sample_shape: tuple[int, ...]) -> None:
    """A .npy.gz of zeros, float32 [samples, *sample_shape]: a few MB on disk however large
    decoded, written in a moment (one compressed gzip member per sample, repeated: a gzip file
    may hold many members)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (samples, *sample_shape)})
    member = gzip.compress(np.zeros(sample_shape, np.float32).tobytes(), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(header.getvalue(), mtime=0))
        for _ in range(samples):
            f.write(member)


def test_exhausted_memory_in_a_worker_names_the_file(tmp_path):
    # 8 GiB decoded: a run peaks at ~4.5 GB of address space, so under a 10 GiB limit
    # (RLIMIT_AS, as `prlimit --as` sets it) reading this file is what cannot fit.
    big = tmp_path / "big.npy.gz"
    _write_huge_npy_gz(big, 2048, (1024, 1024))
    np.save(tmp_path / "big_labels.npy", np.zeros(2048, np.int64))
    out = tmp_path / "out"
    limit = 10 << 30
    proc = subprocess.run([sys.executable, "-m", "beam_pipeline", "--input", str(big), "--labels_sibling",
                           "_labels.npy", "--max_file_bytes", str(16 << 30), "--output_dir", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    size = big.stat().st_size / 1e6
    _assert_one_line_failure(proc, re.escape(f"error: out of memory reading {big} ({size:.1f} MB): give the workers "
                                             "more memory, or lower --samples_per_task and --batch_mb"))
    assert _files(out) == []


def test_a_remote_store_that_refuses_access_is_named(tmp_path):
    write_dataset(str(tmp_path / "in"), train_files=1, test_files=0, per_file=10)
    with denying_gcs(str(tmp_path / "key.json")) as gcs:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **gcs)

        def cli(*args):
            return subprocess.run([sys.executable, "-m", "beam_pipeline", *args], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=300)

        reading = cli("--input", "gs://bucket/train-*.npz", "--output_dir", str(tmp_path / "out"))
        writing = cli("--input", str(tmp_path / "in" / "*.npz"), "--output_dir", "gs://bucket/out")
    # google-auth may log, from a thread of its own, that it cannot reach Google offline: the
    # error line is the only one, not necessarily the last.
    for proc in (reading, writing):
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [line] = [x for x in reading.stderr.splitlines() if x.startswith("error:")]
    assert re.fullmatch(re.escape("error: cannot list the inputs: permission denied on gs://bucket/train-*.npz "
                                  "(Forbidden: 403 GET ") + r"\S+" + re.escape(f": {DENIED}): check the path's "
                                  "permissions (or your credentials for a remote store)"), line)
    [line] = [x for x in writing.stderr.splitlines() if x.startswith("error:")]
    assert line == "error: permission denied while writing gs://bucket/out: choose another --output_dir"
    assert not (tmp_path / "out").exists()


def test_the_console_filter_drops_whole_tracebacks_and_nothing_else():
    from cli_support.tracebacks import TracebackDropper

    lines = ["scan: 100% 2/2 inputs", "Traceback (most recent call last):", '  File "w.py", line 3, in f',
             "    f()", "OSError: [Errno 28] No space left on device", "",
             "During handling of the above exception, another exception occurred:", "",
             "Traceback (most recent call last):", '  File "r.py", line 9, in g',
             "RuntimeError: Traceback (most recent call last):", '  File "w.py", line 3, in f',
             "cli_support.errors.RunFailedError: no space left [while running 'Write']", "",
             "write: 100% 2/2 inputs", "error: no space left on device while writing out/data/x: free space"]
    dropper = TracebackDropper()
    kept = [line for line in lines if dropper.keep(line.encode())]
    assert kept == ["scan: 100% 2/2 inputs", "write: 100% 2/2 inputs",
                    "error: no space left on device while writing out/data/x: free space"]
    assert dropper.holds(b"Trace") and not dropper.holds(b"write: 5")
