"""A generated torture set: good files mixed with every kind of broken input.

`build(root)` writes the training files of a run that uses `--labels_sibling _y.npy` and
returns (the good samples, {file name: expected quarantine reason}) so tests can check that
each bad item is quarantined for the right reason and the good data is written exactly.
"""

from __future__ import annotations

import gzip
import io
import os

import numpy as np

SIBLING = "_y.npy"
FEATURES = 3


def _npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _write(root: str, name: str, data: bytes, labels=None) -> None:
    with open(os.path.join(root, name), "wb") as f:
        f.write(data)
    if labels is not None:
        stem = name.split(".")[0]
        np.save(os.path.join(root, stem + SIBLING), np.asarray(labels))


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def build(root: str, seed: int = 0) -> tuple[list[np.ndarray], dict[str, str], dict[tuple[str, int], str]]:
    """Writes the torture set into root.

    Returns:
      good: every sample that must be written (arrays [T, FEATURES]).
      bad_files: file name -> reason code for files quarantined whole.
      bad_samples: (file name, sample index) -> reason code for single quarantined samples.
    """
    rng = np.random.default_rng(seed)

    def seqs(n, t):
        return [rng.normal(size=(t, FEATURES)).astype(np.float32) * 3 + 1 for _ in range(n)]

    good, bad_files, bad_samples = [], {}, {}

    # Ragged .npz with NaN, Inf and empty samples among good ones.
    ragged = [rng.normal(size=(t, FEATURES)).astype(np.float32) for t in rng.integers(1, 9, 12)]
    ragged[2][0, 1] = np.nan
    ragged[5][-1, 0] = np.inf
    ragged[7] = ragged[7][:0]
    for i, reason in ((2, "non_finite"), (5, "non_finite"), (7, "empty_sample")):
        bad_samples[("ragged.npz", i)] = reason
    good += [s for i, s in enumerate(ragged) if i not in (2, 5, 7)]
    _write(root, "ragged.npz", _npz_bytes(x=np.concatenate(ragged), lengths=[len(s) for s in ragged]),
           labels=rng.integers(0, 3, len(ragged)))

    # Dense .npy (one negative label) and dense .npy.gz.
    dense = seqs(6, 5)
    labels = rng.integers(0, 3, 6)
    labels[4] = -1
    bad_samples[("dense.npy", 4)] = "bad_label"
    good += [s for i, s in enumerate(dense) if i != 4]
    _write(root, "dense.npy", _npy_bytes(np.stack(dense)), labels=labels)
    gz = seqs(4, 4)
    good += gz
    _write(root, "dense_gz.npy.gz", gzip.compress(_npy_bytes(np.stack(gz))), labels=[0, 1, 2, 0])

    valid_npz = _npz_bytes(x=np.stack(seqs(4, 5)))
    valid_npy = _npy_bytes(np.stack(seqs(4, 5)))
    four = [0, 1, 0, 1]
    cases = {
        "trunc_zip.npz": (valid_npz[: len(valid_npz) // 2], four, "corrupt"),
        "trunc.npy": (valid_npy[:-7], four, "truncated"),
        "garbage.npy": (os.urandom(300), four, "corrupt"),
        "bad_gzip.npy.gz": (gzip.compress(valid_npy)[:20] + b"\x00" * 50, four, "corrupt"),
        "pickled.npy": (_npy_bytes(np.array([[1, None]], dtype=object), allow_pickle=True), [0], "pickled"),
        "bomb.npy": (_npy_bytes(np.zeros((1, 5, FEATURES), np.float32)).replace(b"(1, 5, 3)", b"(10000000000, 5, 3)"),
                     [0], "too_large"),
        "complex.npy": (_npy_bytes(np.zeros((4, 5, FEATURES), np.complex64)), four, "bad_dtype"),
        "strings.npy": (_npy_bytes(np.full((4, 5, FEATURES), "a")), four, "bad_dtype"),
        "wrong_shape.npy": (_npy_bytes(np.zeros((4, 5, FEATURES + 1), np.float32)), four, "shape_mismatch"),
        "wrong_dtype.npy": (_npy_bytes(np.zeros((4, 5, FEATURES), np.float64)), four, "dtype_mismatch"),
        "no_labels.npy": (valid_npy, None, "missing_label"),
        "bad_lengths.npz": (_npz_bytes(x=np.zeros((7, FEATURES), np.float32), lengths=[3, 3]), [0, 1], "bad_lengths"),
        "neg_lengths.npz": (_npz_bytes(x=np.zeros((2, FEATURES), np.float32), lengths=[4, -2]), [0, 1], "bad_lengths"),
        "label_count.npy": (valid_npy, [0, 1, 0], "label_count"),
        "float_labels.npy": (valid_npy, [0.5, 1, 0, 1], "bad_label"),
        "empty.npy": (b"", four, "empty_file"),
        "zero_samples.npy": (_npy_bytes(np.zeros((0, 5, FEATURES), np.float32)), np.zeros(0, int), "empty_file"),
    }
    for name, (data, file_labels, reason) in cases.items():
        _write(root, name, data, labels=file_labels)
        bad_files[name] = reason
    os.mkfifo(os.path.join(root, "fifo.npy"))     # matched by the glob; reading it would block forever
    bad_files["fifo.npy"] = "empty_file"
    return good, bad_files, bad_samples
