"""Real TFDV 1.16.1 on pipeline outputs: the round trip of tests/support/tfdv_round_trip.py.

TFDV lives in a virtualenv of its own (`bash .ci/tfdv_venv` builds it, outside the clone);
without it this test skips and says why, unless REQUIRE_TFDV=1 (CI with the venv) makes
that a failure. Data: the sample dataset, once as it is and once with eval's channel 5
shifted by half its standard deviation, which TFDV must flag as drift, and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from beam_pipeline import sample_data
from tests.support.helpers import manifest, shift_eval_channel

TFDV_PYTHON = Path(os.environ.get("NPY_TFT_TFDV_VENV", Path.home() / ".cache/npy-tft/tfdv-1.16.1")) / "bin/python"
SCRIPT = Path(__file__).parent / "support" / "tfdv_round_trip.py"
SHIFTED_CHANNEL = 5


@pytest.fixture(scope="module")
def tfdv_python() -> Path:
    if not TFDV_PYTHON.exists():
        message = f"TFDV's virtualenv is not built ({TFDV_PYTHON} missing): bash .ci/tfdv_venv builds it"
        if os.environ.get("REQUIRE_TFDV") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return TFDV_PYTHON


def round_trip(tfdv_python: Path, tmp: Path, shifted: bool) -> dict:
    data, out = tmp / "data", tmp / "out"
    sample_data.write_dataset(str(data))
    if shifted:
        shift_eval_channel(str(data), SHIFTED_CHANNEL)
    subprocess.run([sys.executable, "-m", "beam_pipeline", "--input", str(data / "train-*.npz"), "--eval_input",
                    str(data / "test-*.npz"), "--output_dir", str(out), "-q"], check=True)
    expect = [f"x[{SHIFTED_CHANNEL}]@train_bins"] if shifted else []
    run = subprocess.run([str(tfdv_python), str(SCRIPT), "--output_dir", str(out), "--train_inputs",
                          str(data / "train-*.npz"), "--expect_drift", *expect], capture_output=True, text=True)
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_tfdv_validates_clean_data_with_no_anomaly(tfdv_python, tmp_path):
    results = round_trip(tfdv_python, tmp_path, shifted=False)
    assert results["eval_against_schema_pbtxt"]["detail"]["tfdv"] == {}
    assert results["raw_examples_against_schema_pbtxt"]["detail"]["anomalies"] == {}
    assert results["schema_matches_tfdv_infer_schema"]["detail"] == "equal"


def test_tfdv_flags_the_shifted_channel_and_nothing_else(tfdv_python, tmp_path):
    results = round_trip(tfdv_python, tmp_path, shifted=True)
    flagged = results["eval_against_schema_pbtxt"]["detail"]["tfdv"]
    assert flagged == {f"x[{SHIFTED_CHANNEL}]@train_bins": ["COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"]}
    assert manifest(str(tmp_path / "out"))["drift"]["drifted"] == [f"x[{SHIFTED_CHANNEL}]"]
