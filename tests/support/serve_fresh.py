"""Serves requests with an exported model in a process that imports TensorFlow only, as a
serving host would (tests/test_trainer.py).

`python -m tests.support.serve_fresh SERVING_DIR REQUESTS.tfrecord OUT.npy` saves the served
probabilities to OUT.npy and prints which of our packages (and tf.Transform's, Keras') loaded:
`modules: []` when the export is self-contained.
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf

_OURS = ("trainer", "transforms", "beam_pipeline", "tensorflow_transform", "tf_keras")


def main(serving_dir: str, requests: str, out: str) -> None:
    serve = tf.saved_model.load(serving_dir).signatures["serving_default"]
    examples = tf.constant([r.numpy() for r in tf.data.TFRecordDataset(requests)])
    np.save(out, serve(examples=examples)["probabilities"].numpy())
    print("modules:", sorted(m for m in sys.modules if m.split(".")[0] in _OURS))


if __name__ == "__main__":
    main(*sys.argv[1:])
