"""The write pass's transform: the NumPy arithmetic gives the saved graph's bits, for every
normalization, statistics axis and value dtype; a probe that differs falls back to the graph."""

import dataclasses

import numpy as np
import pytest

from beam_pipeline.finalize.records import ValueStats
from beam_pipeline.passes import transform
from beam_pipeline.reading.samples import SampleBatch
from tests.support.helpers import manifest, run_ok
from transforms import features
from transforms.features import DatasetSpec


def _sequences(rng: np.random.Generator) -> list[np.ndarray]:
    samples = [rng.normal(3.0, 2.0, size=(int(n), 3)).astype(np.float32) for n in rng.integers(1, 30, 40)]
    for s in samples:
        s[:, 1] = 7.5   # a constant channel: normalized to exactly 0
    return samples


def _images(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(-300, 300, size=(5, 2)).astype(np.int16) for _ in range(30)]


def _wide_ints(rng: np.random.Generator) -> list[np.ndarray]:
    # int32 travels as int64 into the graph, which casts it to float64
    return [rng.integers(-2**31, 2**31 - 1, size=int(n)).astype(np.int32) for n in rng.integers(1, 9, 25)]


CASES = {
    "zscore per channel": (_sequences, []),
    "minmax per element, int16": (_images, ["--normalize", "minmax", "--per_element"]),
    "none, int32 1-D samples": (_wide_ints, ["--normalize", "none"]),
}


@pytest.fixture(scope="module", params=list(CASES))
def run(request, tmp_path_factory):
    """A pipeline run's output, and its training samples as one SampleBatch (labels 0..3,
    and 9 and -1 that the transform maps to the unknown id, as the graph does)."""
    make, flags = CASES[request.param]
    root = tmp_path_factory.mktemp("transform")
    samples = make(np.random.default_rng(0))
    labels = np.arange(len(samples)) % 4
    np.savez_compressed(root / "train.npz", x=np.concatenate(samples), lengths=[len(s) for s in samples], y=labels)
    run_ok("--input", str(root / "train.npz"), "--output_dir", str(root / "out"), "-q", *flags)
    out = str(root / "out")
    batch = SampleBatch("train.npz", np.arange(len(samples)), np.concatenate(samples),
                        np.array([len(s) for s in samples], np.int64), np.concatenate([labels[:-2], [9, -1]]))
    return out, DatasetSpec.from_json(manifest(out)["spec"]), batch


def _value_stats(out: str) -> ValueStats:
    """The training statistics as the analyze pass reports them, from the manifest."""
    m = manifest(out)["statistics"]
    x = m["x"]
    return ValueStats(count=x["count"], mean=x["mean"], std=x["std"], min=x["min"], max=x["max"], samples=0, steps=0,
                      longest=0, labels=m["train_label_counts"])


def test_numpy_transform_gives_the_graph_bits(run):
    out, spec, batch = run
    graph = transform.graph_transform(transform.load_graph(out, spec), spec, batch)
    fast = transform.Normalizer.of(spec, _value_stats(out))(batch)
    assert fast.values.dtype == graph.values.dtype == np.float32
    assert fast.values.tobytes() == graph.values.tobytes()
    np.testing.assert_array_equal(fast.lengths, graph.lengths)
    np.testing.assert_array_equal(fast.labels, graph.labels)
    assert list(fast.labels[-2:]) == [features.UNKNOWN_LABEL_ID] * 2


def test_the_write_pass_uses_numpy_after_its_probe(run):
    out, spec, batch = run
    step = transform.BatchTransform(transform.load_graph(out, spec), spec,
                                    transform.Normalizer.of(spec, _value_stats(out)))
    step(batch)
    assert step.uses_numpy


def test_a_probe_that_differs_falls_back_to_the_graph(run):
    out, spec, batch = run
    graph = transform.load_graph(out, spec)
    numpy = transform.Normalizer.of(spec, _value_stats(out))
    wrong = dataclasses.replace(numpy, largest_label=numpy.largest_label - 1)   # one label id off
    step = transform.BatchTransform(graph, spec, wrong)
    got = step(batch)
    assert not step.uses_numpy
    assert got.values.tobytes() == transform.graph_transform(graph, spec, batch).values.tobytes()


def test_string_labels_take_the_graph():
    spec = DatasetSpec(trailing_shape=(2,), source_dtype="float32", max_length=4, label_kind="string")
    stats = ValueStats(count=1, mean=[0, 0], std=[1, 1], min=[0, 0], max=[1, 1], samples=1, steps=1, longest=1,
                       labels={"a": 1})
    assert transform.Normalizer.of(spec, stats) is None

