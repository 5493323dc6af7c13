"""The benchmarks' generated data: ragged compressed .npz files, seeded, cached and shared.

`ensure_dataset` writes 64 * scale files of 2,000 samples at --scale 1 (about 1 GB of raw
float32): x [T_i in 50..200, 16] float32, int labels. File i depends only on (seed, index,
samples), so a larger dataset holds a smaller one's files (hard links into one pool).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import shutil
import tempfile

import numpy as np

DEFAULT_WORK_DIR = os.path.join(tempfile.gettempdir(), "npy_tft_bench")

# The full-size (--scale 1) dataset, about 1 GB of raw float32: 64 x 2,000 samples of [50..200, 16] float32.
FULL_FILES = 64
SAMPLES_PER_FILE = 2000
MIN_LENGTH, MAX_LENGTH = 50, 200
NUM_FEATURES = 16
NUM_CLASSES = 10
NUM_SHARDS = 8   # every side writes this many shards
# Channels on different scales and offsets, so normalization has real work to do.
_SCALE = np.linspace(0.5, 4.0, NUM_FEATURES, dtype=np.float32)
_OFFSET = np.linspace(-3.0, 10.0, NUM_FEATURES, dtype=np.float32)

# The startup-overhead dataset: small enough that reading it costs nothing measurable.
OVERHEAD_FILES, OVERHEAD_SAMPLES = 1, 16
MB = 1e6
GB = 1e9


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A generated dataset of ragged .npz files.

    Attributes:
      path: directory holding train-XXXXX.npz.
      files: number of files.
      examples: samples in all files.
      raw_bytes: bytes of the float32 `x` values (the MB/s figures count these).
      npz_bytes: bytes of the .npz files on disk.
    """

    path: str
    files: int
    examples: int
    raw_bytes: int
    npz_bytes: int

    @property
    def pattern(self) -> str:
        """Glob of the dataset's files."""
        return os.path.join(self.path, "train-*.npz")

    def describe(self) -> str:
        """One line: files, samples, raw and compressed size."""
        return (f"{self.files} files x {self.examples // self.files} samples = {self.examples} examples, "
                f"{self.raw_bytes / MB:.1f} MB raw float32, {self.npz_bytes / MB:.1f} MB .npz")


def _write_file(path: str, seed: int, index: int, samples: int) -> None:
    """Writes file `index` of a dataset; it depends only on (seed, index, samples)."""
    rng = np.random.default_rng([seed, index])
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=samples)
    # Every file holds a longest sample, so the padded x is [200, 16] at any scale and
    # both sides pad to the same length without being told.
    lengths[0] = MAX_LENGTH
    y = rng.integers(0, NUM_CLASSES, size=samples)
    x = rng.standard_normal((int(lengths.sum()), NUM_FEATURES), dtype=np.float32)
    x *= _SCALE
    x += _OFFSET
    temp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez_compressed(temp, x=x, lengths=lengths, y=y)
    os.replace(temp, path)  # atomic: a concurrent benchmark never sees half a file


def ensure_dataset(work_dir: str, files: int, samples: int, seed: int = 0) -> Dataset:
    """Generates a dataset unless it is already cached under work_dir.

    Files live in one pool per (samples, seed) and each dataset directory hard-links the
    first `files` of them, so the 4x dataset reuses the 1x files.

    Args:
      work_dir: cache directory.
      files: number of .npz files.
      samples: samples per file.
      seed: generator seed.

    Returns:
      The dataset.
    """
    name = f"data-{files}x{samples}-seed{seed}"
    path = os.path.join(work_dir, name)
    info_path = os.path.join(path, "dataset.json")
    if not os.path.exists(info_path):
        pool = os.path.join(work_dir, f"pool-{samples}-seed{seed}")
        os.makedirs(pool, exist_ok=True)
        sources = [os.path.join(pool, f"train-{i:05d}.npz") for i in range(files)]
        missing = [i for i, s in enumerate(sources) if not os.path.exists(s)]
        if missing:
            print(f"generating {len(missing)} files of {samples} samples in {pool} ...", flush=True)
            # spawn, not fork: a caller may already hold TensorFlow's threads.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(os.cpu_count(), mp_context=context) as ex:
                list(ex.map(_write_file, [sources[i] for i in missing], [seed] * len(missing), missing,
                            [samples] * len(missing)))
        temp = tempfile.mkdtemp(dir=work_dir, prefix=f".{name}-")
        examples = raw_bytes = npz_bytes = 0
        for source in sources:
            os.link(source, os.path.join(temp, os.path.basename(source)))
            with np.load(source) as f:
                lengths = f["lengths"]
            examples += len(lengths)
            raw_bytes += int(lengths.sum()) * NUM_FEATURES * 4
            npz_bytes += os.path.getsize(source)
        info = {"files": files, "examples": examples, "raw_bytes": raw_bytes, "npz_bytes": npz_bytes}
        with open(os.path.join(temp, "dataset.json"), "w") as f:
            json.dump(info, f)
        try:
            os.rename(temp, path)
        except OSError:  # another benchmark made the same dataset meanwhile: use that one
            shutil.rmtree(temp)
    with open(info_path) as f:
        return Dataset(path=path, **json.load(f))


def files_for(scale: float) -> int:
    """Files of a dataset at `scale` (1: the full size, about 1 GB): at least one."""
    return max(1, round(FULL_FILES * scale))
