"""End to end through the CLI, as a user runs it: statistics, padding, eval, counts, exit codes."""

import hashlib
import os

import numpy as np
import pytest

from tests.support.helpers import manifest, quarantine, read_split, run_ok, run_pipeline, valid_rows, write_ragged

NUM_FEATURES = 4


def _heavy_tailed(rng, n, min_len, max_len, offset):
    """float32 samples with Student-t tails and a large offset: where float32 sums go wrong."""
    out = []
    for t in rng.integers(min_len, max_len + 1, size=n):
        x = rng.standard_t(1.5, size=(t, NUM_FEATURES)) * np.array([1, 10, 100, 1000]) + offset
        out.append(x.astype(np.float32))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three train files and one eval file (ragged layout), eval longer than train."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(42)
    train = []
    for i in range(3):
        samples = _heavy_tailed(rng, 40, 3, 20, offset=[5e3, -2e4, 0.0, 7.0])
        labels = rng.integers(0, 4, len(samples))
        write_ragged(str(root / f"train-{i}.npz"), samples, labels)
        train += samples
    evaluation = _heavy_tailed(rng, 30, 3, 30, offset=[5e3, -2e4, 0.0, 7.0])
    write_ragged(str(root / "eval-0.npz"), evaluation, rng.integers(0, 4, len(evaluation)))
    return root, train, evaluation


@pytest.fixture(scope="module")
def output(dataset, tmp_path_factory):
    root, _, _ = dataset
    out = str(tmp_path_factory.mktemp("run") / "out")
    proc = run_ok("--input", str(root / "train-*.npz"), "--eval_input", str(root / "eval-*.npz"),
                  "--output_dir", out)
    return out, proc


def test_success_marker_and_summary(output):
    out, proc = output
    assert os.path.exists(os.path.join(out, "_SUCCESS"))
    assert "train: 120/120 examples written" in proc.stdout


def test_statistics_match_float64_numpy_over_valid_values(dataset, output):
    _, train, _ = dataset
    out, _ = output
    values = np.concatenate(train).astype(np.float64)
    stats = manifest(out)["statistics"]["x"]
    np.testing.assert_allclose(stats["mean"], values.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], values.std(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(stats["min"], values.min(axis=0))
    np.testing.assert_array_equal(stats["max"], values.max(axis=0))
    assert stats["count"] == len(values)


def _expected_normalized(samples, train):
    reference = np.concatenate(train).astype(np.float64)
    return (np.concatenate(samples).astype(np.float64) - reference.mean(0)) / reference.std(0)


def test_train_records_are_normalized_with_full_dataset_statistics(dataset, output):
    _, train, _ = dataset
    records = read_split(output[0], "train")
    got = np.sort(valid_rows(records), axis=0)
    want = np.sort(_expected_normalized(train, train), axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_eval_split_uses_the_training_statistics(dataset, output):
    _, train, evaluation = dataset
    records = read_split(output[0], "eval")
    longest = max(len(s) for s in train)
    got = np.sort(valid_rows(records), axis=0)
    want = np.sort(_expected_normalized([s[:longest] for s in evaluation], train), axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_records_are_padded_with_zeros_to_the_longest_training_sample(dataset, output):
    _, train, evaluation = dataset
    out, _ = output
    longest = max(len(s) for s in train)
    records = read_split(out, "train")
    assert records["x"].shape == (120, longest, NUM_FEATURES)
    assert sorted(records["length"].tolist()) == sorted(len(s) for s in train)
    padding = np.arange(longest)[None, :] >= records["length"][:, None]
    assert np.all(records["x"][padding] == 0)
    m = manifest(out)
    assert m["max_length"] == longest
    assert m["features"]["x"] == {"dtype": "float32", "shape": [longest, NUM_FEATURES],
                                  "description": m["features"]["x"]["description"]}
    # Eval samples longer than the longest training sample are truncated, and counted.
    assert m["splits"]["eval"]["examples_truncated"] == sum(len(s) > longest for s in evaluation)


def test_manifest_counts_reconcile(dataset, output):
    root, _, _ = dataset
    m = manifest(output[0])
    for split, files, n in (("train", 3, 120), ("eval", 1, 30)):
        s = m["splits"][split]
        assert (s["files_matched"], s["files_read"], s["files_quarantined"]) == (files, files, 0)
        assert s["examples_read"] == s["examples_written"] + s["examples_quarantined"] == n
        assert sum(shard["examples"] for shard in s["shards"]) == n
    with open(root / "train-0.npz", "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert {"path": str(root / "train-0.npz"), "split": "train", "bytes": os.path.getsize(root / "train-0.npz"),
            "sha256": digest} in m["inputs"]


def test_completed_output_is_not_overwritten_without_the_flag(dataset, output):
    root, _, _ = dataset
    out, _ = output
    before = os.path.getmtime(os.path.join(out, "manifest.json"))
    proc = run_pipeline("--input", str(root / "train-*.npz"), "--output_dir", out)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "--overwrite" in proc.stderr
    assert os.path.getmtime(os.path.join(out, "manifest.json")) == before


def test_empty_glob_is_a_one_line_error_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run_pipeline("--input", str(tmp_path / "nothing-*.npz"), "--output_dir", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: no input files match {tmp_path / 'nothing-*.npz'} (train split)"
    assert not out.exists()


def test_constant_feature_truncation_and_corrupt_file(tmp_path):
    rng = np.random.default_rng(1)
    samples = [np.column_stack([np.full(t, 3.25), rng.normal(size=t)]).astype(np.float32)
               for t in rng.integers(2, 12, size=30)]
    write_ragged(str(tmp_path / "a.npz"), samples[:15], np.zeros(15, int))
    write_ragged(str(tmp_path / "b.npz"), samples[15:], np.ones(15, int))
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    out = str(tmp_path / "out")
    proc = run_ok("--input", str(tmp_path / "*.npz"), "--output_dir", out, "--max_length", "5",
                  "--max_bad_fraction", "0.5", "--num_shards", "3")
    records = read_split(out, "train")
    assert np.all(records["x"][..., 0] == 0)                     # constant channel -> exactly 0
    assert np.all(np.isfinite(records["x"]))
    m = manifest(out)
    assert m["statistics"]["x"]["std"][0] == 0
    s = m["splits"]["train"]
    assert s["examples_truncated"] == sum(len(x) > 5 for x in samples)
    assert (s["examples_written"], s["files_quarantined"], len(s["shards"])) == (30, 1, 3)
    assert [(q["file"], q["reason"]) for q in quarantine(out)] == [(str(tmp_path / "c.npz"), "corrupt")]
    assert "1/3 files quarantined" in proc.stdout


def test_too_much_bad_input_fails_the_run_without_success_marker(tmp_path):
    write_ragged(str(tmp_path / "a.npz"), [np.ones((3, 2), np.float32)] * 4, [0, 1, 0, 1])
    (tmp_path / "b.npz").write_bytes(b"garbage")
    out = tmp_path / "out"
    proc = run_pipeline("--input", str(tmp_path / "*.npz"), "--output_dir", str(out))
    assert proc.returncode == 1
    assert "--max_bad_fraction" in proc.stderr.strip().splitlines()[-1]
    assert (out / "manifest.json").exists() and not (out / "_SUCCESS").exists()


def test_eval_integer_label_unseen_in_training_is_quarantined(tmp_path):
    write_ragged(str(tmp_path / "train.npz"), [np.ones((2, 2), np.float32) * i for i in range(4)], [0, 1, 2, 1])
    write_ragged(str(tmp_path / "eval.npz"), [np.ones((2, 2), np.float32)] * 3, [2, 3, 0])
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "train.npz"), "--eval_input", str(tmp_path / "eval.npz"), "--output_dir", out,
           "--max_bad_fraction", "0.5")
    m = manifest(out)
    assert m["num_classes"] == 3 and m["compression"] == "none"
    assert sorted(read_split(out, "eval")["label"].tolist()) == [0, 2]
    assert [(q["sample_index"], q["reason"]) for q in quarantine(out)] == [(1, "unknown_label")]


def test_transform_graph_refuses_a_length_that_disagrees_with_the_values(output):
    import tensorflow as tf
    import tensorflow_transform as tft

    tft_output = tft.TFTransformOutput(output[0])
    values = tf.RaggedTensor.from_row_lengths(tf.ones([3 * NUM_FEATURES]), [3 * NUM_FEATURES])
    raw = {"x": values, "label": tf.constant([0], tf.int64)}
    good = tft_output.transform_raw_features({**raw, "length": tf.constant([3], tf.int64)})
    assert good["length"].numpy().tolist() == [3]
    with pytest.raises(tf.errors.InvalidArgumentError, match="length"):
        tft_output.transform_raw_features({**raw, "length": tf.constant([2], tf.int64)})
