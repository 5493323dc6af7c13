"""Cost of the raw-data statistics (beam_pipeline/statistics/feature_stats.py) on a large batch stream.

`python -m benchmarks.feature_stats [--gb 1.0] [--batch_mb 8]`

Feeds --gb of float32 [T in 50..200, 16] samples (the preprocessing benchmark's shape) to
one StatsAccumulator in --batch_mb batches (the pipeline's default size), cycling over up to
64 MB of distinct seeded batches, and prints seconds per GB of:
  - the accumulator as shipped (exact moments and zeros, sampled sketch, labels, lengths);
  - each part alone: Moments.of on whole batches, the zero count, the sketch fed every
    value (measured on the pool of distinct batches and extrapolated: it is linear) and
    the sketch as sampled;
and the time of to_proto(), the size of the pickled accumulator before and after compact(),
and the sampled sketch's largest rank error on channel 0 (against NumPy's exact ranks).
"""

from __future__ import annotations

import argparse
import pickle
import time

import numpy as np
import pyarrow as pa

from beam_pipeline.reading.samples import SampleBatch
from beam_pipeline.statistics.feature_stats import StatsAccumulator, StatsOptions, new_sketch, sketch_rows
from beam_pipeline.statistics.moments import Moments
from transforms.features import DatasetSpec

CHANNELS = 16
POOL_BYTES = 64 << 20


def make_batches(batch_bytes: int, pool_bytes: int, seed: int = 0) -> list[SampleBatch]:
    """Distinct batches totalling pool_bytes, each about batch_bytes of float32 values."""
    rng = np.random.default_rng(seed)
    batches, total = [], 0
    while total < pool_bytes:
        lengths = rng.integers(50, 201, size=max(1, batch_bytes // (125 * CHANNELS * 4)))
        values = rng.standard_t(5, size=(int(lengths.sum()), CHANNELS)).astype(np.float32)
        values[rng.random(values.shape) < 0.01] = 0
        labels = rng.integers(0, 10, size=len(lengths))
        batches.append(SampleBatch("", np.arange(len(lengths)), values, lengths.astype(np.int64), labels))
        total += values.nbytes
    return batches


def seconds_per_gb(batches: list[SampleBatch], gb: float, work) -> float:
    """Calls work(batch) over batches cycled until gb of values went through."""
    target, done, i = gb * (1 << 30), 0, 0
    start = time.perf_counter()
    while done < target:
        batch = batches[i % len(batches)]
        work(batch)
        done += batch.values.nbytes
        i += 1
    return (time.perf_counter() - start) / (done / (1 << 30))


def max_rank_error(acc: StatsAccumulator, batches: list[SampleBatch]) -> float:
    """Largest |rank(q_k) - k/1000| of channel 0's sketch quantiles (data cycled: the pool's
    exact ranks are the stream's)."""
    q, _ = acc.x.quantiles(1000)
    exact = np.sort(np.concatenate([b.values[:, 0] for b in batches]))
    low = np.searchsorted(exact, q[0], side="left") / len(exact)
    high = np.searchsorted(exact, q[0], side="right") / len(exact)
    target = np.linspace(0, 1, len(q[0]))
    return float(np.max(np.maximum(low - target, 0) + np.maximum(target - high, 0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--batch_mb", type=float, default=8.0)
    args = parser.parse_args()
    pool_bytes = min(POOL_BYTES, int(args.gb * (1 << 30)))
    batches = make_batches(int(args.batch_mb * (1 << 20)), pool_bytes)
    spec = DatasetSpec((CHANNELS,), "float32", 200)
    options = StatsOptions()

    acc = StatsAccumulator.create(spec, options)
    rows = [f"accumulator (as shipped)     {seconds_per_gb(batches, args.gb, acc.add):6.2f} s/GB"]
    start = time.perf_counter()
    acc_copy = pickle.loads(pickle.dumps(acc))
    acc_copy.to_proto()
    proto_s = time.perf_counter() - start
    raw_bytes = len(pickle.dumps(acc))
    acc.compact()
    compact_bytes = len(pickle.dumps(acc))

    moments_s = seconds_per_gb(batches, args.gb, lambda b: Moments.of(b.values))
    rows.append(f"  Moments.of, whole batches  {moments_s:6.2f} s/GB (shipped: on ~2 MB chunks, less)")
    rows.append(f"  zero count alone           "
                f"{seconds_per_gb(batches, args.gb, lambda b: np.count_nonzero(b.values == 0, axis=0)):6.2f} s/GB")
    full = new_sketch(CHANNELS, options)
    full_s = seconds_per_gb(batches, pool_bytes / (1 << 30), lambda b: full.AddValues(pa.array(b.values.reshape(-1))))
    rows.append(f"  sketch, every value        {full_s:6.2f} s/GB (on {pool_bytes >> 20} MB, linear)")
    sampled, seen = new_sketch(CHANNELS, options), [0]

    def sample(batch: SampleBatch) -> None:
        sketch_rows(sampled, batch.values, seen[0], options)
        seen[0] += len(batch.values)

    sketch_s = seconds_per_gb(batches, args.gb, sample)
    rows.append(f"  sketch, sampled            {sketch_s:6.2f} s/GB (first {options.exact_rows} rows, "
                f"then ~1 in {options.sample_every})")
    rows.append(f"to_proto (after unpickling)  {proto_s:6.2f} s")
    rows.append(f"pickled accumulator          {raw_bytes / 1e6:6.2f} MB, {compact_bytes / 1e6:.2f} MB compacted")
    rows.append(f"max rank error, channel 0    {max_rank_error(acc, batches):.4f} (epsilon {options.epsilon})")
    print(f"{args.gb:g} GB of float32 [T in 50..200, {CHANNELS}] in {args.batch_mb:g} MB batches")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
