"""The preprocessing CLI's flag handling: errors caught before anything runs, with exit code 2."""

from tests.support.helpers import run_pipeline


def test_help_and_flag_errors_exit_cleanly():
    assert run_pipeline("--help").returncode == 0
    typo = run_pipeline("--input", "x", "--output_dir", "y", "--max_lenght", "5")
    assert typo.returncode == 2 and "unknown flag(s) --max_lenght" in typo.stderr


def test_dataflow_runner_refuses_local_paths_before_starting():
    proc = run_pipeline("--input", "data/*.npz", "--output_dir", "gs://bucket/out", "--runner", "DataflowRunner")
    assert proc.returncode == 2 and "workers cannot see local paths" in proc.stderr
