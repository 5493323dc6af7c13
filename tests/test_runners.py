"""The pipeline on Beam's distributed code paths gives the same outputs as the in-process run.

Every runner test runs the CLI on one small dataset and compares with one in-process
reference run: statistics, per-split counts and the set of serialized records must match.
The paths exercised are those where a distributed runner breaks a pipeline that works in
process: elements and DoFns pickled across processes (multi_processing), the portable job
API (PortableRunner, LOOPBACK), SDK workers started by a Beam worker pool in another working
directory without the launcher's main session (EXTERNAL, how Flink runs Python workers), and
Dataflow's translation with the project staged through --setup_file (dry run, offline),
and Beam's Prism runner (a Go job server; what DirectRunner runs on where Beam can fetch it).

Not covered here: PROCESS and DOCKER environments, a Flink or Spark job server (no
version of their jars that matches this SDK is served to these machines), and a Dataflow
submission; see docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time

import numpy as np
import pytest

from beam_pipeline.sample_data import write_dataset
from tests.support import runners
from tests.support.helpers import REPO, manifest, run_ok, run_pipeline

# A runner that loses its workers hangs instead of failing, so every run is bounded: run_ok
# by its own 300 s, the worker-pool run by this (to show the pool's log when it hangs).
RUN_TIMEOUT = 240
NUM_SHARDS = "2"  # the same for every run, so the shard plans (and file names) agree
TRAIN_EXAMPLES, EVAL_EXAMPLES = 4 * 64, 2 * 64


@pytest.fixture(autouse=True)
def _private_tmpdir(tmp_path, monkeypatch):
    """The CLI subprocesses get a TMPDIR of their own: Beam leaves its staging directories
    (the sdist, the pipeline's dependencies) behind in the temporary directory."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("runners_data")
    write_dataset(str(root), train_files=4, test_files=2, per_file=64)
    return root


def _args(train: str, evaluation: str, out: str, *beam_flags: str) -> list[str]:
    return ["--input", train, "--eval_input", evaluation, "--output_dir", out, "--num_shards", NUM_SHARDS,
            *beam_flags]


def _run(dataset, out: str, *beam_flags: str) -> subprocess.CompletedProcess:
    return run_ok(*_args(str(dataset / "train-*.npz"), str(dataset / "test-*.npz"), out, *beam_flags))


def _outputs(out: str) -> dict:
    """What must not depend on the runner: statistics, counts, and every record's bytes."""
    import tensorflow as tf

    m = manifest(out)
    files = sorted(glob.glob(os.path.join(out, "data", "*.tfrecord")))
    return {
        "statistics": m["statistics"],
        # Shard file lists are left out: which shard a file lands in is planned before the
        # run, but comparing counts per split is what matters.
        "splits": {split: {k: v for k, v in s.items() if k != "shards"} for split, s in m["splits"].items()},
        "shard_examples": {split: sorted(sh["examples"] for sh in s["shards"]) for split, s in m["splits"].items()},
        "records": sorted(r.numpy() for r in tf.data.TFRecordDataset(files)),
    }


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    """The in-process FnApiRunner (the CLI's default), run once for every comparison."""
    out = str(tmp_path_factory.mktemp("reference") / "out")
    _run(dataset, out)
    ref = _outputs(out)
    assert ref["splits"]["train"]["examples_written"] == TRAIN_EXAMPLES
    assert ref["splits"]["eval"]["examples_written"] == EVAL_EXAMPLES
    assert len(ref["records"]) == TRAIN_EXAMPLES + EVAL_EXAMPLES
    return ref


def _assert_close(got, want, where: str = "statistics") -> None:
    """Equal structure; floats equal up to summation order (runners merge partial sums differently)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, float)):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                                   rtol=1e-12, atol=0, err_msg=where)
    else:
        assert got == want, where


def _assert_same_outputs(out: str, reference: dict) -> None:
    got = _outputs(out)
    _assert_close(got["statistics"], reference["statistics"])
    assert got["splits"] == reference["splits"]
    assert got["shard_examples"] == reference["shard_examples"]
    assert len(got["records"]) == len(reference["records"])
    differ = len(set(got["records"]) ^ set(reference["records"]))
    assert got["records"] == reference["records"], f"{differ} records differ from the in-process run's"


@pytest.mark.parametrize("runner_flags", [
    # Beam 2.77's DirectRunner first tries to download Prism; offline that fails at once and
    # it falls back to the FnApiRunner, which honors --direct_running_mode.
    ["--runner=DirectRunner"],
    # No --runner: the CLI's own FnApiRunner, with the same DirectOptions.
    [],
], ids=["DirectRunner", "default_runner"])
def test_multi_processing_matches_in_process(dataset, reference, tmp_path, runner_flags):
    out = str(tmp_path / "out")
    proc = _run(dataset, out, *runner_flags, "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    if not runner_flags:
        # Log lines of the SDK worker subprocesses are relayed by the local job service:
        # proof that the work crossed process boundaries (every element and DoFn pickled).
        # Not asserted for DirectRunner, which runs on Prism instead where it can download it.
        assert "local_job_service" in proc.stderr
    # Workers in processes of their own: the launcher reports the job's state, never a frozen bar.
    states = [line for line in proc.stderr.splitlines() if line.startswith("job ")]
    assert states and states[-1].startswith("job DONE"), proc.stderr[-3000:]
    assert "analyze:" not in proc.stderr, proc.stderr[-3000:]
    _assert_same_outputs(out, reference)


def test_one_thread_matches_the_default_fast_path(dataset, reference, tmp_path):
    """The default (a thread per core) against one thread: the same statistics to the last bit
    and byte-identical records."""
    out = str(tmp_path / "out")
    _run(dataset, out, "--direct_num_workers=1", "--direct_running_mode=in_memory")
    got = _outputs(out)
    assert got["statistics"] == reference["statistics"]
    _assert_same_outputs(out, reference)


def test_portable_runner_loopback_with_setup_file_matches(dataset, reference, tmp_path):
    """The portable job API (an embedded job server), with the project staged by --setup_file.

    LOOPBACK runs the SDK harness in the launching process, so the staged sdist is built
    and handed to the job server's artifact service but not installed: this shows the
    staging option is accepted and builds offline on the portable path.
    """
    out = str(tmp_path / "out")
    _run(dataset, out, "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK",
         f"--setup_file={os.path.join(REPO, 'setup.py')}")
    _assert_same_outputs(out, reference)


@pytest.mark.parametrize("runner", ["PrismRunner", "DirectRunner"])
def test_prism_matches_in_process(dataset, reference, tmp_path, runner):
    """Beam's Prism runner, a job server in Go with SDK workers on the portable API; and the
    DirectRunner, which is Prism wherever Beam can fetch the binary (online, it downloads
    the release's; here it is given the one .ci/runners.sh built)."""
    out = str(tmp_path / "out")
    proc = _run(dataset, out, f"--runner={runner}", f"--prism_location={runners.prism()}")
    # The job ran on Prism, not on the DirectRunner's fallback when Prism fails to start.
    assert "PrismRunner: pipeline done" in proc.stderr, proc.stderr[-3000:]
    assert not _launched_prisms(), "the CLI left the Prism job server it started running"
    _assert_same_outputs(out, reference)


def _launched_prisms() -> list[int]:
    """Processes of the Prism binary as Beam's launcher starts it (with --log_kind; the
    stand-alone job server of the tests below is started without)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode("utf-8", "replace").split("\0")
            if args[0] == runners.prism() and "--log_kind" in args:
                found.append(int(pid))
    return found


def test_loopback_process_workers_run_the_launchers_python(dataset, reference, tmp_path):
    """SDK workers started as processes by name (`python`), as on Flink: with no such
    interpreter on PATH they would die at start-up and the job would wait for them forever."""
    out = str(tmp_path / "out")
    nothing = tmp_path / "empty"
    nothing.mkdir()
    env = dict(os.environ, PATH=str(nothing), TF_CPP_MIN_LOG_LEVEL="3")   # no `python` to be found
    proc = subprocess.run(
        [sys.executable, "-m", "beam_pipeline",
         *_args(str(dataset / "train-*.npz"), str(dataset / "test-*.npz"), out, "--runner=PortableRunner",
                "--job_endpoint=embed", "--environment_type=LOOPBACK", "--experiments=use_loopback_process_worker")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting worker with command ['python'" in proc.stderr   # the workers were processes
    _assert_same_outputs(out, reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _worker_pool(cwd: str, log_path: str):
    """A Beam worker pool (as a Flink task manager runs beside it), killed with its workers on exit.

    The pool starts every SDK worker with the first `python` on PATH: the test's own
    interpreter must come first, or workers die with "No module named 'apache_beam'" and
    the job waits for them forever.
    """
    port = _free_port()
    # PYTHONPATH: the workers import this checkout's code, whatever an installed copy holds.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    with open(log_path, "wb") as log:
        pool = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: the workers it forks go with it
    try:
        _wait_listening(pool, port, log_path)
        yield f"localhost:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pool.pid, signal.SIGTERM)
        try:
            pool.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pool.pid, signal.SIGKILL)
            pool.wait(timeout=15)


def _wait_listening(server: subprocess.Popen, port: int, log_path: str) -> None:
    """Returns once `server` accepts connections on `port`; fails the test if it exits or takes a minute."""
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, f"{server.args[0]} exited: {_tail(log_path)}"
        with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=1):
            return
        assert time.monotonic() < deadline, f"{server.args[0]} did not listen: {_tail(log_path)}"
        time.sleep(0.2)


def _tail(path: str, n: int = 3000) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")[-n:]


def test_portable_runner_external_worker_pool_matches(dataset, reference, tmp_path):
    """SDK workers from a worker pool: other processes, another working directory, no main session.

    The paths are given relative to the launcher's directory (REPO): the workers, which run
    in the pool's directory, must still find the inputs and write where the launcher reads.
    """
    pool_dir = tmp_path / "pool_cwd"
    pool_dir.mkdir()
    log_path = str(tmp_path / "worker_pool.log")
    out_rel = os.path.relpath(tmp_path / "out", REPO)
    with _worker_pool(str(pool_dir), log_path) as address:
        try:
            proc = run_pipeline(
                *_args(os.path.relpath(dataset, REPO) + "/train-*.npz", os.path.relpath(dataset, REPO) + "/test-*.npz",
                       out_rel, "--runner=PortableRunner", "--job_endpoint=embed",
                       "--environment_type=EXTERNAL", f"--environment_config={address}"),
                timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no result in {RUN_TIMEOUT}s; worker pool log:\n{_tail(log_path)}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}\npool:\n{_tail(log_path)}"
    # The work was done by the pool's workers, not silently in the launcher.
    assert "Starting worker with command" in _tail(log_path, 10**7)
    assert os.listdir(pool_dir) == [], "a worker wrote into its own working directory"
    # Workers elsewhere: the launcher reports the job's state (and whatever counters the runner
    # exposes; this embedded job service exposes none here), not a progress bar.
    states = [line for line in proc.stderr.splitlines() if line.startswith("job ")]
    assert states[0].startswith("job RUNNING") and states[-1].startswith("job DONE"), proc.stderr[-3000:]
    _assert_same_outputs(str(tmp_path / "out"), reference)


@pytest.fixture(scope="module")
def prism_job_server(tmp_path_factory):
    """A Prism job server running on its own, as a cluster's does: its jobs outlive the launcher."""
    port = _free_port()
    log_path = str(tmp_path_factory.mktemp("prism") / "prism.log")
    with open(log_path, "wb") as log:
        server = subprocess.Popen([runners.prism(), f"--job_port={port}", "--serve_http=false"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(server, port, log_path)
        yield f"localhost:{port}", log_path
    finally:
        server.kill()
        server.wait(timeout=15)


def test_killed_launcher_still_leaves_a_complete_output(dataset, reference, tmp_path, prism_job_server):
    """The job finalizes itself (its last step writes the manifest, report and _SUCCESS): the
    launcher is killed once the job runs, and the output still equals the in-process run's."""
    endpoint, server_log = prism_job_server
    out = tmp_path / "out"
    with _worker_pool(str(tmp_path), str(tmp_path / "worker_pool.log")) as address:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "beam_pipeline",
             *_args(str(dataset / "train-*.npz"), str(dataset / "test-*.npz"), str(out), "--runner=PortableRunner",
                    f"--job_endpoint={endpoint}", "--environment_type=EXTERNAL", f"--environment_config={address}")],
            cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stderr=subprocess.PIPE, text=True)
        for line in launcher.stderr:   # until the job server has the job
            if line.startswith("job RUNNING"):
                break
        launcher.kill()
        assert launcher.wait(timeout=30) == -signal.SIGKILL
        assert not (out / "_SUCCESS").exists(), "the job ended before its launcher was killed"
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (out / "_SUCCESS").exists():
            assert time.monotonic() < deadline, f"no _SUCCESS in {RUN_TIMEOUT}s; job server:\n{_tail(server_log)}"
            time.sleep(1)
    _assert_same_outputs(str(out), reference)
    _assert_no_leftovers(out)


def _assert_no_leftovers(out) -> None:
    """The output holds the manifest's shards and nothing half-done: no temporary shard, no scratch space."""
    shards = [sh["file"] for s in manifest(str(out))["splits"].values() for sh in s["shards"]]
    assert sorted(os.path.join("data", name) for name in os.listdir(out / "data")) == sorted(shards)
    assert not (out / ".work").exists()


@pytest.fixture(scope="module")
def dataflow_dry_run(tmp_path_factory):
    """Our pipeline translated by the DataflowRunner with --dry_run=True: everything up to,
    and not including, staging files to GCS and submitting the job, so it runs offline.

    Built through `build_pipeline` rather than the CLI: the CLI scans its inputs before it
    builds the graph (gs:// can't be read offline) and, after a dry run, would look for
    outputs that were never written. Inputs are gs:// placeholders (they are only data in
    the graph). The output directory stays local because tf.Transform creates its temporary
    directory while the graph is built, and that would need GCS.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_pipeline import pipeline
    from beam_pipeline.finalize import finalize
    from beam_pipeline.planning import plan
    from beam_pipeline.reading import layouts
    from transforms.features import DatasetSpec

    bucket = "gs://placeholder-bucket"
    spec = DatasetSpec(trailing_shape=(8,), source_dtype="float32", max_length=50)  # as write_dataset's files
    train = [plan.FileTask(f"{bucket}/data/train-{i:05d}.npz", "train", 40_000) for i in range(4)]
    evaluation = [plan.FileTask(f"{bucket}/data/test-{i:05d}.npz", "eval", 40_000) for i in range(2)]
    shards = [plan.ShardTask("train", i, 2, tuple(train[i::2])) for i in range(2)]
    shards += [plan.ShardTask("eval", i, 2, (evaluation[i],)) for i in range(2)]
    out = str(tmp_path_factory.mktemp("dataflow") / "out")
    config = pipeline.RunConfig(out, spec, layouts.ReadOptions(), 8 << 20, "none")
    options = PipelineOptions([
        "--runner=DataflowRunner", "--dry_run=True", "--project=placeholder-project", "--region=us-central1",
        f"--temp_location={bucket}/tmp", f"--staging_location={bucket}/staging",
        f"--setup_file={os.path.join(REPO, 'setup.py')}", "--job_name=npy-tft-dry-run"])
    p = beam.Pipeline(options=options)
    run = finalize.RunInfo(out, spec, {"train": train, "eval": evaluation}, [], "none", 0.05)
    pipeline.build_pipeline(p, config, plan.Plan(tuple(train), tuple(shards)), run, pipeline.RunClock(0, 0, False))
    result = p.run()
    yield result
    # The runner builds the staged files (the sdist among them) in a temporary directory of
    # its own and leaves it behind.
    for staging_dir in {os.path.dirname(path) for path in _staged(result).values()}:
        if staging_dir.startswith(tempfile.gettempdir()):
            shutil.rmtree(staging_dir, ignore_errors=True)


def test_dataflow_dry_run_translates_the_pipeline(dataflow_dry_run):
    import apache_beam as beam
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners.runner import PipelineState

    result = dataflow_dry_run
    assert result.state == PipelineState.DONE
    job = result.job
    assert job.proto.name == "npy-tft-dry-run"
    assert job.proto.type_ == 1  # JOB_TYPE_BATCH
    top_level = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert {"TrainFiles", "ReadTrainForAnalysis", "AnalyzeTrain", "Shards",
            "TransformAndWrite", "Finalize"} <= top_level
    (env,) = job.proto_pipeline.components.environments.values()
    assert env.urn == "beam:env:docker:v1"  # the only kind of environment Dataflow runs
    image = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
    assert image.endswith(f"_sdk:{beam.__version__}"), image


def _staged(result) -> dict[str, str]:
    """Staged name -> local file of every artifact the job would upload for its workers."""
    from apache_beam.portability.api import beam_runner_api_pb2

    (env,) = result.job.proto_pipeline.components.environments.values()
    staged = {}
    for dep in env.dependencies:
        name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name
        staged[name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
    return staged


def test_setup_file_stages_an_installable_sdist(dataflow_dry_run, tmp_path):
    """--setup_file builds an sdist offline, staged as workflow.tar.gz (what Beam's worker
    boot program pip-installs); installed on its own, it provides every module workers import."""
    staged = _staged(dataflow_dry_run)
    assert "workflow.tar.gz" in staged, staged
    sdist = staged["workflow.tar.gz"]
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "setup.py", "beam_pipeline/pipeline.py", "beam_pipeline/passes/write.py",
            "transforms/preprocessing.py"} <= names

    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                          "--no-build-isolation", "--target", str(target), sdist],
                         capture_output=True, text=True, timeout=120)
    assert pip.returncode == 0, pip.stderr
    # -S: no .pth files, so the editable install of this checkout is invisible and only the
    # sdist's copy can be imported; the virtualenv's site-packages still supply the deps.
    site_packages = sysconfig.get_paths()["purelib"]
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import beam_pipeline.pipeline, beam_pipeline.cli, transforms.preprocessing; "
            "print(beam_pipeline.pipeline.__file__)")
    check = subprocess.run([sys.executable, "-S", "-c", code, str(target), site_packages], cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=""))
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip() == str(target / "beam_pipeline" / "pipeline.py")


def test_without_the_decoded_cache_matches(dataset, reference, tmp_path):
    """The reference run reads the training values back from the decoded cache in the write
    pass; inflating them again gives the same bits."""
    out = str(tmp_path / "out")
    _run(dataset, out, "--no_decoded_cache")
    assert _outputs(out)["statistics"] == reference["statistics"]
    _assert_same_outputs(out, reference)
