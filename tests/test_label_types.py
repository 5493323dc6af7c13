"""--label_type regression and none, end to end through the CLI: what the records, the
manifest and the report hold, checked against NumPy float64 references."""

import os

import numpy as np
import pytest

from tests.support.helpers import manifest, quarantine, read_split, run_ok, run_pipeline, write_ragged
from transforms import manifest as manifest_lib


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two train files and one eval file (ragged), float targets with a large offset; one
    training target is NaN (quarantined), one file's targets are ints (accepted as floats)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(7)
    targets = []
    for i in range(2):
        samples = [rng.normal(size=(t, 2)).astype(np.float32) for t in rng.integers(3, 9, 20)]
        y = rng.normal(1e3, 25.0, len(samples)) if i == 0 else rng.integers(900, 1100, len(samples))
        if i == 0:
            y[3] = np.nan
        write_ragged(str(root / f"train-{i}.npz"), samples, y)
        targets.append(np.asarray(y, dtype=np.float32))
    samples = [rng.normal(size=(t, 2)).astype(np.float32) for t in rng.integers(3, 9, 10)]
    write_ragged(str(root / "eval-0.npz"), samples, rng.normal(1e3, 25.0, len(samples)))
    train = np.concatenate(targets).astype(np.float64)
    return root, train[np.isfinite(train)]


def _run(root, out, *flags):
    return run_ok("--input", str(root / "train-*.npz"), "--eval_input", str(root / "eval-*.npz"),
                  "--output_dir", str(out), *flags)


@pytest.fixture(scope="module")
def standardized(data, tmp_path_factory):
    root, _ = data
    out = tmp_path_factory.mktemp("reg") / "out"
    _run(root, out, "--label_type", "regression", "--standardize_target")
    return str(out)


def test_regression_manifest_records_the_target_statistics(data, standardized):
    _, train = data
    m = manifest_lib.read_local(standardized)
    assert (m.label_type, m.spec.label_kind, m.num_classes) == ("regression", "float", 0)
    assert m.features["label"].dtype == "float32"
    t = m.statistics.target
    np.testing.assert_allclose([t.mean, t.std, t.min, t.max], [train.mean(), train.std(), train.min(), train.max()],
                               rtol=1e-12)
    assert t.standardized


def test_regression_records_hold_standardized_targets(data, standardized):
    _, train = data
    labels = np.sort(read_split(standardized, "train")["label"])
    expected = np.sort((train - train.mean()) / train.std()).astype(np.float32)
    np.testing.assert_allclose(labels, expected, rtol=1e-6, atol=1e-6)


def test_a_nan_target_is_quarantined_with_its_reason(standardized):
    [record] = quarantine(standardized)
    assert (record["reason"], record["sample_index"]) == ("bad_label", 3)
    assert "NaN" in record["message"]


def test_report_shows_the_target_distribution(standardized):
    with open(os.path.join(standardized, "report.html"), encoding="utf-8") as f:
        page = f.read()
    assert "Regression targets" in page and "histogram of the target" in page


def test_regression_without_standardizing_keeps_original_units(data, tmp_path):
    root, train = data
    _run(root, tmp_path / "out", "--label_type", "regression")
    labels = np.sort(read_split(str(tmp_path / "out"), "train")["label"])
    np.testing.assert_array_equal(labels, np.sort(train).astype(np.float32))
    assert not manifest(str(tmp_path / "out"))["statistics"]["target"]["standardized"]


def test_unlabeled_files_need_no_label_array(tmp_path):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "train-0.npz", x=rng.normal(size=(12, 5, 3)).astype(np.float32))
    _ = run_ok("--input", str(tmp_path / "train-*.npz"), "--output_dir", str(tmp_path / "out"),
               "--label_type", "none")
    m = manifest_lib.read_local(str(tmp_path / "out"))
    assert (m.label_type, m.num_classes, m.statistics.target) == ("none", 0, None)
    np.testing.assert_array_equal(read_split(str(tmp_path / "out"), "train")["label"], np.zeros(12, np.int64))


def test_float_targets_without_the_flag_name_the_file_and_reason(data, tmp_path):
    root, _ = data
    proc = run_pipeline("--input", str(root / "train-0.npz"), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "train-0.npz" in proc.stderr and "not whole numbers" in proc.stderr


def test_standardize_target_needs_regression(data, tmp_path):
    root, _ = data
    proc = run_pipeline("--input", str(root / "train-*.npz"), "--output_dir", str(tmp_path / "out"),
                        "--standardize_target")
    assert proc.returncode != 0 and "--standardize_target needs --label_type regression" in proc.stderr
