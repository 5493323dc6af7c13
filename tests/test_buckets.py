"""Length buckets: the bounds, the assignment, and a real run with and without buckets."""

import itertools
import os
import struct

import numpy as np
import pytest

from beam_pipeline.planning import length_buckets
from beam_pipeline.planning.length_buckets import LengthCounts
from tests.support.helpers import manifest, read_split, run_ok, run_pipeline, write_ragged


def _brute_force(hist: LengthCounts, max_length: int, n: int) -> int:
    """The least stored size over every choice of at most n bounds ending at max_length."""
    candidates = [int(v) for v in hist.lengths if v < max_length]
    return min(hist.stored_steps((*combo, max_length))
               for k in range(n) for combo in itertools.combinations(candidates, k))


def test_optimal_bounds_equal_a_brute_force_search():
    rng = np.random.default_rng(0)
    for _ in range(100):
        lengths = rng.integers(1, 25, size=rng.integers(1, 30))
        hist = LengthCounts.of(lengths)
        max_length = int(lengths.max()) + int(rng.integers(0, 3))
        for n in (1, 2, 3, 4):
            bounds = length_buckets.optimal_bounds(hist, max_length, n)
            assert bounds[-1] == max_length and len(bounds) <= n and list(bounds) == sorted(set(bounds))
            assert hist.stored_steps(bounds) == _brute_force(hist, max_length, n)


def test_a_sample_goes_to_the_smallest_bound_that_holds_it():
    bounds = (4, 8, 16)
    lengths = np.array([1, 4, 5, 8, 9, 16, 30])   # exactly at a bound stays in it; longer goes last
    assert length_buckets.assign(lengths, bounds).tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_explicit_bounds_always_end_at_max_length():
    assert length_buckets.explicit_bounds([512, 64, 128, 64], 300) == (64, 128, 300)
    assert length_buckets.explicit_bounds([64, 128], 128) == (64, 128)


def test_auto_adds_buckets_while_they_pay():
    rng = np.random.default_rng(1)
    heavy = LengthCounts.of(np.minimum(np.round(rng.lognormal(5.5, 0.6, 20_000)).astype(int) + 100, 1344))
    uniform = LengthCounts.of(rng.integers(50, 201, 20_000))
    many, few = length_buckets.auto_bounds(heavy, 1344), length_buckets.auto_bounds(uniform, 200)
    assert len(many) > len(few) >= 2
    # Each bucket auto keeps saved at least 5% of what was stored before it.
    for hist, bounds, top in ((heavy, many, 1344), (uniform, few, 200)):
        stored = [hist.stored_steps(length_buckets.optimal_bounds(hist, top, n)) for n in range(1, len(bounds) + 1)]
        assert all(b <= 0.95 * a for a, b in zip(stored, stored[1:]))


NUM_FEATURES = 3


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One dataset preprocessed twice, with one length and with buckets 4,8 (max_length 12)."""
    root = tmp_path_factory.mktemp("buckets")
    rng = np.random.default_rng(3)
    train_lengths = [1, 4, 4, 5, 8, 9, 10] * 6          # samples exactly at bounds 4 and 8 included
    eval_lengths = [3, 8, 11, 12, 20]                    # 11, 12: longer than any training sample; 20: truncated
    train = [rng.normal(size=(t, NUM_FEATURES)).astype(np.float32) for t in train_lengths]
    evaluation = [rng.normal(size=(t, NUM_FEATURES)).astype(np.float32) for t in eval_lengths]
    write_ragged(str(root / "train-0.npz"), train[:20], rng.integers(0, 3, 20))
    write_ragged(str(root / "train-1.npz"), train[20:], rng.integers(0, 3, len(train) - 20))
    write_ragged(str(root / "eval-0.npz"), evaluation, [0, 1, 2, 0, 1])
    common = ["--input", str(root / "train-*.npz"), "--eval_input", str(root / "eval-*.npz"), "--max_length", "12",
              "--num_shards", "2"]
    plain, bucketed = str(root / "plain"), str(root / "bucketed")
    run_ok(*common, "--output_dir", plain)
    run_ok(*common, "--output_dir", bucketed, "--length_buckets", "4,8")
    return plain, bucketed, train, evaluation


def _records(out: str, shard: dict) -> list[bytes]:
    with open(os.path.join(out, shard["file"]), "rb") as f:
        content = f.read()
    found, position = [], 0
    while position < len(content):
        (length,) = struct.unpack_from("<Q", content, position)
        found.append(content[position + 12:position + 12 + length])
        position += 16 + length
    return found


def _parse(out: str, shard: dict, max_length: int) -> dict[str, np.ndarray]:
    import tensorflow as tf
    import tensorflow_transform as tft

    spec = dict(tft.TFTransformOutput(out).transformed_feature_spec())
    spec["x"] = tf.io.FixedLenFeature([shard["length"], NUM_FEATURES], tf.float32)
    parsed = tf.io.parse_example(tf.constant(_records(out, shard), tf.string), spec)
    return {k: v.numpy() for k, v in parsed.items()}


def test_buckets_hold_every_example_once_padded_to_their_bound(runs):
    plain, bucketed, _, _ = runs
    m = manifest(bucketed)
    assert m["length_buckets"]["bounds"] == [4, 8, 12]
    reference = {split: read_split(plain, split) for split in ("train", "eval")}
    for split, summary in m["splits"].items():
        got = {"x": [], "length": [], "label": []}
        for shard in summary["shards"]:
            assert f"-L{shard['length']:05d}-" in shard["file"]
            records = _parse(bucketed, shard, m["max_length"])
            lo = max([b for b in m["length_buckets"]["bounds"] if b < shard["length"]], default=0)
            assert np.all((records["length"] > lo) & (records["length"] <= shard["length"]))
            assert len(records["length"]) == shard["examples"]
            # The same values as the one-length output, with the padding beyond the bound cut.
            got["x"] += [np.pad(x, ((0, m["max_length"] - shard["length"]), (0, 0))) for x in records["x"]]
            got["length"] += records["length"].tolist()
            got["label"] += records["label"].tolist()
        want = reference[split]
        order_got = np.lexsort((np.array(got["x"])[:, 0, 0], got["length"]))
        order_want = np.lexsort((want["x"][:, 0, 0], want["length"]))
        np.testing.assert_array_equal(np.array(got["x"])[order_got], want["x"][order_want])
        np.testing.assert_array_equal(np.array(got["length"])[order_got], want["length"][order_want])
        per_bucket = {b["length"]: b["examples"] for b in m["length_buckets"]["splits"][split]}
        assert sum(per_bucket.values()) == summary["examples_written"] == len(want["length"])
        # Each bucket's padding: the share of its stored steps beyond the samples' lengths.
        lengths = np.array(got["length"])
        bound_of = np.array(m["length_buckets"]["bounds"])[np.searchsorted(m["length_buckets"]["bounds"], lengths)]
        for b in m["length_buckets"]["splits"][split]:
            inside = lengths[bound_of == b["length"]]
            want_padding = 1 - inside.sum() / (len(inside) * b["length"]) if len(inside) else 0.0
            assert b["padding_fraction"] == pytest.approx(want_padding, abs=1e-6)
    # Eval samples longer than every training sample go to the last bucket (12 is max_length).
    assert {b["length"]: b["examples"] for b in m["length_buckets"]["splits"]["eval"]} == {4: 1, 8: 1, 12: 3}


def test_statistics_do_not_change_with_buckets(runs):
    plain, bucketed, _, _ = runs
    assert manifest(plain)["statistics"] == manifest(bucketed)["statistics"]


def test_padding_figures_equal_a_numpy_count(runs):
    plain, bucketed, train, evaluation = runs
    for out, bounds in ((plain, [12]), (bucketed, [4, 8, 12])):
        padding = manifest(out)["padding"]
        for split, samples in (("train", train), ("eval", evaluation)):
            lengths = np.minimum([len(s) for s in samples], 12)
            stored = np.array(bounds)[np.searchsorted(bounds, lengths)]
            figures = padding[split]
            assert figures["valid_values"] == lengths.sum() * NUM_FEATURES
            assert figures["stored_values"] == stored.sum() * NUM_FEATURES
            assert figures["padding_fraction"] == pytest.approx(1 - lengths.sum() / stored.sum(), abs=1e-6)
            one_length = 1 - lengths.sum() / (12 * len(lengths))
            assert figures["padding_fraction_with_buckets"]["1"] == pytest.approx(one_length, abs=1e-6)
    assert manifest(plain)["length_buckets"] is None


def test_bad_bucket_flags_are_usage_errors(tmp_path):
    for value in ("many", "0", "4,x"):
        proc = run_pipeline("--input", "x.npz", "--output_dir", str(tmp_path / "o"), "--length_buckets", value)
        assert proc.returncode == 2 and "--length_buckets" in proc.stderr, proc.stderr
