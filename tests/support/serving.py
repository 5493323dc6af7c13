"""Serving checks shared by the trainer tests: raw eval samples as requests, and the exported
signature's answers beside the trained Keras model's on the pipeline's records."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tests.support.helpers import read_split
from trainer import export, outputs


def raw_eval_samples(npz_dir: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The eval file's samples as the pipeline read them (ragged or dense layout)."""
    with np.load(os.path.join(npz_dir, "test-00000.npz")) as f:
        if "lengths" in f:
            bounds = np.cumsum(f["lengths"])[:-1]
            return np.split(f["x"], bounds), f["y"]
        return list(f["x"]), f["y"]


def serve(model_dir: str, samples: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The exported serving signature's outputs for `samples` sent as raw Examples."""
    signature = tf.saved_model.load(os.path.join(model_dir, outputs.SERVING_DIR)).signatures[export.SIGNATURE]
    return {k: v.numpy() for k, v in signature(examples=tf.constant([export.raw_example(s) for s in samples])).items()}


def assert_serving_matches_the_model(net, data_dir: str, npz_dir: str, model_dir: str) -> dict[str, np.ndarray]:
    """Serving on the raw eval samples gives the probabilities `net` gives on the eval records
    (the same samples, in the same order); returns the served outputs."""
    samples, _ = raw_eval_samples(npz_dir)
    records = read_split(data_dir, "eval")
    assert records["length"].tolist() == [len(s) for s in samples]
    want = tf.nn.softmax(net({"x": records["x"], "length": records["length"]})).numpy()
    got = serve(model_dir, samples)
    np.testing.assert_allclose(got["probabilities"], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got["class_id"], want.argmax(-1))
    return got
