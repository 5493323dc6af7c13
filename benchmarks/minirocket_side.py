"""The MiniRocket side of the trainer benchmark, run under an interpreter that has `aeon`.

`python benchmarks/minirocket_side.py OUT_DIR DATASET [DATASET ...]`

aeon 1.6 pins pandas < 3.1, which this stack's constraints do not allow, so this script runs
as a subprocess under its own virtualenv (see benchmarks/trainer_accuracy.py) and imports
nothing of this repository. For each dataset (one of the UCR/UEA archives aeon ships inside
its package: read from the package, never downloaded) it
  - writes OUT_DIR/DATASET/train.npz and test.npz in the pipeline's ragged layout: `x`
    [sum(T_i), channels] float32 (time first, as the pipeline reads sequences), `lengths`,
    `y` (class ids: the sorted training labels' positions);
  - fits MiniRocket (aeon's defaults) on the training split and scores the test split. MiniRocket
    needs equal lengths: unequal-length series are zero-padded at the end to the longest series
    of both splits (what aeon's Padder does).
and prints one JSON line per dataset: name, examples, classes, channels, lengths, accuracy, seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

import numpy as np


def _series(collection) -> list[np.ndarray]:
    """aeon's [N, C, T] array or list of [C, T] arrays -> list of [T, C] float32."""
    return [np.asarray(s, np.float32).T for s in collection]


def _padded(series: list[np.ndarray], length: int) -> np.ndarray:
    """[N, C, length]: each series zero-padded at the end."""
    out = np.zeros((len(series), series[0].shape[1], length), np.float32)
    for i, s in enumerate(series):
        out[i, :, :len(s)] = s.T
    return out


def run(name: str, out_dir: str) -> dict:
    from aeon.classification.convolution_based import MiniRocketClassifier
    from aeon.datasets import load_classification

    splits = {split: load_classification(name, split=split) for split in ("train", "test")}
    classes = sorted(set(splits["train"][1]))
    series = {split: _series(X) for split, (X, _) in splits.items()}
    labels = {split: np.array([classes.index(v) for v in y]) for split, (_, y) in splits.items()}
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    for split, samples in series.items():
        np.savez_compressed(os.path.join(out_dir, name, f"{split}.npz"), x=np.concatenate(samples),
                            lengths=np.array([len(s) for s in samples]), y=labels[split])
    longest = max(len(s) for samples in series.values() for s in samples)
    start = time.perf_counter()
    clf = MiniRocketClassifier()
    clf.fit(_padded(series["train"], longest), labels["train"])
    accuracy = float((clf.predict(_padded(series["test"], longest)) == labels["test"]).mean())
    lengths = [len(s) for samples in series.values() for s in samples]
    return {"dataset": name, "train_examples": len(series["train"]), "test_examples": len(series["test"]),
            "classes": len(classes), "channels": int(series["train"][0].shape[1]),
            "lengths": [min(lengths), max(lengths)], "accuracy": accuracy,
            "seconds": round(time.perf_counter() - start, 2)}


def main(argv: list[str]) -> None:
    warnings.simplefilter("ignore")  # aeon's deprecation notices are not the benchmark's output
    out_dir, names = argv[0], argv[1:]
    for name in names:
        print(json.dumps(run(name, out_dir)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
