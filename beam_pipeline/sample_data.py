"""A small seeded sample dataset: variable-length [T_i, F] float32 samples in .npz files.

`python -m beam_pipeline.sample_data --out sample_data` writes train-*.npz and test-*.npz
(ragged layout: `x` [sum(T_i), F], `lengths` [N], `y` [N]). The class shifts the mean of a
few channels, so a model can learn it.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def make_split(rng: np.random.Generator, n: int, num_features: int, min_len: int, max_len: int,
               num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (x [sum(T_i), F] float32, lengths [N] int64, y [N] int64)."""
    lengths = rng.integers(min_len, max_len + 1, size=n)
    y = rng.integers(0, num_classes, size=n)
    x = rng.normal(0.0, 1.0, size=(int(lengths.sum()), num_features)).astype(np.float32)
    x *= np.linspace(0.5, 4.0, num_features, dtype=np.float32)   # channels on different scales
    x += np.linspace(-3.0, 10.0, num_features, dtype=np.float32)
    x[:, : min(3, num_features)] += np.repeat(y, lengths)[:, None].astype(np.float32)
    return x, lengths.astype(np.int64), y.astype(np.int64)


def write_dataset(out_dir: str, *, train_files: int = 4, test_files: int = 2, per_file: int = 64,
                  num_features: int = 8, min_len: int = 10, max_len: int = 50, num_classes: int = 3,
                  seed: int = 0) -> None:
    """Writes train-XXXXX.npz and test-XXXXX.npz into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", train_files), ("test", test_files)):
        for i in range(count):
            x, lengths, y = make_split(rng, per_file, num_features, min_len, max_len, num_classes)
            np.savez_compressed(os.path.join(out_dir, f"{prefix}-{i:05d}.npz"), x=x, lengths=lengths, y=y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="sample_data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_dataset(args.out, seed=args.seed)
    print(f"sample data written to {args.out}/")


if __name__ == "__main__":
    main()
