"""The preprocessing CLI as a user meets it: flag errors (exit 2), progress, a clean console."""

import json
import os
import subprocess
import sys

from beam_pipeline.sample_data import write_dataset
from tests.support.helpers import REPO, noise_lines, run_pipeline


def test_help_and_flag_errors_exit_cleanly():
    assert run_pipeline("--help").returncode == 0
    typo = run_pipeline("--input", "x", "--output_dir", "y", "--max_lenght", "5")
    assert typo.returncode == 2
    assert typo.stderr.strip() == "error: unknown flag: --max_lenght (did you mean --max_length?); see --help"
    beam_typo = run_pipeline("--input", "x", "--output_dir", "y", "--direct_num_worker=2")
    assert beam_typo.returncode == 2 and "--direct_num_worker (did you mean --direct_num_workers?)" in beam_typo.stderr


def test_an_abbreviated_flag_is_not_taken_for_the_flag(tmp_path):
    # argparse's default prefix matching would read --output as --output_dir.
    proc = run_pipeline("--input", str(tmp_path / "*.npz"), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown flag: --output (did you mean --output_dir?); see --help"
    assert not (tmp_path / "out").exists()


def test_dataflow_runner_refuses_local_paths_before_starting():
    proc = run_pipeline("--input", "data/*.npz", "--output_dir", "gs://bucket/out", "--runner", "DataflowRunner")
    assert proc.returncode == 2 and "workers cannot see local paths" in proc.stderr


def _run_clean(*args: str):
    """The CLI as a user runs it: no TF_CPP_MIN_LOG_LEVEL of the test environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run([sys.executable, "-m", "beam_pipeline", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_run_shows_progress_per_phase_and_no_tensorflow_noise(tmp_path):
    write_dataset(str(tmp_path / "data"), train_files=3, test_files=1, per_file=20)
    flags = ["--input", str(tmp_path / "data" / "train-*.npz"), "--eval_input", str(tmp_path / "data" / "test-*.npz")]
    proc = _run_clean(*flags, "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert not noise_lines(proc.stderr), proc.stderr
    # Not a terminal: plain lines, the last of each phase complete, with its inputs and examples.
    finals = {line.split(":")[0]: line for line in proc.stderr.splitlines() if "100%" in line}
    assert set(finals) == {"scan", "analyze", "write"}, proc.stderr
    assert "4/4 inputs, 80 examples" in finals["write"] and "3/3 inputs, 60 examples" in finals["analyze"]
    timings = json.load(open(tmp_path / "out" / "manifest.json"))["timings"]
    assert set(timings) == {"scan", "analyze", "write", "job", "total"}
    assert timings["analyze"] <= timings["job"] <= timings["total"]

    quiet = _run_clean(*flags, "--output_dir", str(tmp_path / "quiet"), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr

    verbose = _run_clean(*flags, "--output_dir", str(tmp_path / "verbose"), "-v", "--quiet")
    assert verbose.returncode == 0 and noise_lines(verbose.stderr), verbose.stderr


def test_errors_still_reach_the_user_through_the_filter(tmp_path):
    proc = _run_clean("--input", str(tmp_path / "nothing-*.npz"), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "error: no input files match" in proc.stderr


def test_a_directory_for_a_glob_gets_a_suggestion(tmp_path):
    (tmp_path / "data").mkdir()
    proc = run_pipeline("--input", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert f"is a directory: did you mean '{tmp_path / 'data'}/*.npz'" in proc.stderr, proc.stderr


def test_flink_jobs_default_to_blocking_exchanges_sent_to_the_job_server():
    """On FlinkRunner the CLI asks for BATCH_FORCED (a failed task restarts alone; see
    beam_pipeline/flink_options.py), in the options the job server receives; a flag given wins."""
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    from beam_pipeline import cli

    def sent(beam_args: list[str]) -> dict:
        cli.check_args(cli.parse_args(["--input", "x", "--output_dir", "y", *beam_args])[0], beam_args)
        options = cli._new_pipeline(beam_args).options.get_all_options()
        return dict(JobServiceHandle.encode_pipeline_options({k: v for k, v in options.items() if v is not None}))

    key = "beam:option:execution_mode_for_batch:v1"
    assert sent(["--runner=FlinkRunner"])[key] == "BATCH_FORCED"
    assert sent(["--runner=FlinkRunner", "--execution_mode_for_batch=PIPELINED"])[key] == "PIPELINED"
    assert key not in sent(["--runner=PortableRunner"])
