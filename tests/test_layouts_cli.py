"""Every layout, file kind and label source through the CLI, read back with real readers."""

import gzip
import io
import os

import numpy as np
import pytest

from tests.support.helpers import manifest, quarantine, read_split, run_ok, run_pipeline, valid_rows

RNG = np.random.default_rng(7)


def _seq(t, f=3):
    return RNG.normal(size=(t, f)).astype(np.float32)


def _npy_gz(path, array):
    buf = io.BytesIO()
    np.save(buf, array)
    with open(path, "wb") as f:
        f.write(gzip.compress(buf.getvalue()))


def _assert_rows_normalized(out, samples):
    """The written valid rows are exactly the inputs, z-scored with float64 statistics."""
    reference = np.concatenate(samples).astype(np.float64)
    want = np.sort((reference - reference.mean(0)) / reference.std(0), axis=0)
    got = np.sort(valid_rows(read_split(out, "train")), axis=0).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dense_npy_gz_with_sibling_label_files(tmp_path):
    x = [RNG.normal(size=(6, 5, 2)).astype(np.float64) for _ in range(2)]
    for i, xi in enumerate(x):
        _npy_gz(tmp_path / f"part{i}.npy.gz", xi)
        np.save(tmp_path / f"part{i}_labels.npy", np.array([0, 1, 2, 0, 1, 2]))
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "part*"), "--labels_sibling", "_labels.npy", "--output_dir", out)
    m = manifest(out)
    assert m["splits"]["train"]["files_matched"] == 2      # the label files are not inputs
    assert m["spec"]["source_dtype"] == "float64" and m["features"]["x"]["shape"] == [5, 2]
    _assert_rows_normalized(out, [s for xi in x for s in xi])
    assert sorted(read_split(out, "train")["label"].tolist()) == [0] * 4 + [1] * 4 + [2] * 4


def test_per_key_string_labels_and_an_unknown_eval_label(tmp_path):
    train = [_seq(t) for t in (3, 5, 2, 4)]
    np.savez(tmp_path / "train.npz", **{f"x_{i:06d}": s for i, s in enumerate(train)},
             y=np.array(["cat", "dog", "cat", "bird"]))
    np.savez(tmp_path / "eval.npz", x_000000=_seq(2), x_000001=_seq(3), y=np.array(["dog", "fish"]))
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "train.npz"), "--eval_input", str(tmp_path / "eval.npz"),
           "--output_dir", out, "--max_bad_fraction", "0.5")
    m = manifest(out)
    # Most frequent first; the vocabulary comes from the training split only.
    assert m["label_vocabulary"][0] == "cat" and sorted(m["label_vocabulary"]) == ["bird", "cat", "dog"]
    assert m["num_classes"] == 3
    ids = {w: i for i, w in enumerate(m["label_vocabulary"])}
    assert sorted(read_split(out, "train")["label"].tolist()) == sorted(ids[w] for w in ["cat", "dog", "cat", "bird"])
    assert read_split(out, "eval")["label"].tolist() == [ids["dog"]]
    [record] = quarantine(out)
    assert (record["split"], record["sample_index"], record["reason"]) == ("eval", 1, "unknown_label")
    s = m["splits"]["eval"]
    assert (s["examples_read"], s["examples_written"], s["examples_quarantined"]) == (2, 1, 1)
    _assert_rows_normalized(out, train)


def test_one_sample_per_file_with_labels_from_a_csv(tmp_path):
    samples = [_seq(t) for t in (4, 2, 6)]
    for i, s in enumerate(samples):
        np.save(tmp_path / f"s{i}.npy", s)
    (tmp_path / "labels.csv").write_text("path,label\ns0.npy,1\ns1.npy,0\n" + f"{tmp_path / 's2.npy'},1\n")
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "*.npy"), "--labels_csv", str(tmp_path / "labels.csv"), "--output_dir", out)
    records = read_split(out, "train")
    assert sorted(zip(records["length"].tolist(), records["label"].tolist())) == [(2, 0), (4, 1), (6, 1)]
    _assert_rows_normalized(out, samples)


def test_one_sample_per_file_labelled_by_directory(tmp_path):
    samples = {"cat": [_seq(3), _seq(5)], "dog": [_seq(4)]}
    for label, items in samples.items():
        os.makedirs(tmp_path / label)
        for i, s in enumerate(items):
            np.save(tmp_path / label / f"{i}.npy", s)
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "*" / "*.npy"), "--labels_from_dir", "--output_dir", out)
    m = manifest(out)
    assert m["statistics"]["train_label_counts"] == {"cat": 2, "dog": 1}
    assert m["spec"]["label_kind"] == "string" and m["num_classes"] == 2


@pytest.mark.parametrize("normalize", ["minmax", "none"])
def test_uint8_images_per_element(tmp_path, normalize):
    images = RNG.integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = 9                                    # one constant element
    np.savez_compressed(tmp_path / "img.npz", x=images, y=RNG.integers(0, 2, 20))
    out = str(tmp_path / "out")
    run_ok("--input", str(tmp_path / "img.npz"), "--output_dir", out, "--per_element", "--normalize", normalize,
           "--compression", "gzip")
    assert all(s["file"].endswith(".tfrecord.gz") for s in manifest(out)["splits"]["train"]["shards"])
    records = read_split(out, "train")
    assert records["x"].shape == (20, 4, 4, 3) and set(records["length"].tolist()) == {4}
    pixels = images.astype(np.float64)
    lo, hi = pixels.min(0), pixels.max(0)
    if normalize == "minmax":
        want = np.where(hi > lo, (pixels - lo) / np.where(hi > lo, hi - lo, 1), 0)
    else:
        want = pixels
    # Records come back in any order: compare each element's sorted values.
    got, want = np.sort(records["x"].reshape(20, -1), 0), np.sort(want.reshape(20, -1), 0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    stats = manifest(out)["statistics"]["x"]
    assert stats["axis"] == "element" and np.array(stats["mean"]).shape == (4, 4, 3)


def test_a_run_without_a_readable_training_file_names_the_first_refused_file_and_why(tmp_path):
    # Float targets (not whole numbers) are not class ids: every file is refused as bad_label.
    rng = np.random.default_rng(0)
    for name in ("b", "a"):
        np.savez(tmp_path / f"{name}.npz", x=rng.normal(size=(4, 5, 2)).astype(np.float32), y=rng.normal(size=4))
    proc = run_pipeline("--input", str(tmp_path / "*.npz"), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert f"no readable training file among 2 ({{'bad_label': 2}}); the first, {tmp_path / 'a.npz'}: bad_label: " \
           in proc.stderr, proc.stderr
