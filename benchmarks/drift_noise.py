"""Noise and sensitivity of the drift distance (beam_pipeline/statistics/drift.py), to choose thresholds.

`python -m benchmarks.drift_noise [--trials 4] [--rows 4000 100000]`

For several distributions, draws a train split of ROWS values and an eval split of ROWS / 2
values shifted by 0 to 0.5 (in units of the standard normal's sigma), computes both splits'
statistics with StatsAccumulator and their Jensen-Shannon divergence with drift.compare, and
prints the mean / max over --trials as a Markdown table. Shift 0 is the noise a threshold must
stay above; docs/report.md quotes these figures.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from beam_pipeline.reading.samples import SampleBatch
from beam_pipeline.statistics import drift
from beam_pipeline.statistics.feature_stats import StatsAccumulator
from transforms.features import DatasetSpec

SHIFTS = (0.0, 0.1, 0.2, 0.33, 0.5)
STEPS = 25   # rows per sample
SPEC = DatasetSpec((1,), "float32", STEPS)


def distributions(rng: np.random.Generator) -> dict[str, Callable[[int], np.ndarray]]:
    return {
        "normal": lambda n: rng.normal(size=n),
        "Student-t(4)": lambda n: rng.standard_t(4, size=n),
        "Student-t(2)": lambda n: rng.standard_t(2, size=n),
        "lognormal": lambda n: rng.lognormal(size=n),
        "uniform (std 1)": lambda n: rng.random(n) * np.sqrt(12),
    }


def split_stats(values: np.ndarray):
    samples = len(values) // STEPS
    acc = StatsAccumulator.create(SPEC)
    acc.add(SampleBatch("", np.arange(samples), values[:samples * STEPS, None].astype(np.float32),
                        np.full(samples, STEPS, dtype=np.int64), np.zeros(samples, dtype=np.int64)))
    return acc.to_proto()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--rows", type=int, nargs="+", default=[4000, 100_000])
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print("| distribution | train rows | " + " | ".join(f"shift {s:g}" for s in SHIFTS) + " |")
    print("| --- | --- |" + " --- |" * len(SHIFTS))
    for name, draw in distributions(rng).items():
        for rows in args.rows:
            cells = []
            for shift in SHIFTS:
                d = [drift.compare(split_stats(draw(rows)), split_stats(draw(rows // 2) + shift)).get("x[0]").distance
                     for _ in range(args.trials)]
                cells.append(f"{np.mean(d):.4f} / {np.max(d):.4f}")
            print(f"| {name} | {rows:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
