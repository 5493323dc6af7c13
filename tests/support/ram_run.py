"""Runs the pipeline with input and output on ram:// (see gfile_fs.py) and prints a JSON
summary of what it finds there. ram:// lives in one process, so the test runs this module
as a subprocess and checks its report: `python -m tests.support.ram_run`."""

import io
import json
import os
import sys

import numpy as np
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from beam_pipeline import cli, sample_data
from tests.support import gfile_fs


def main() -> None:
    tf.io.gfile.rename = gfile_fs.rename_with_directories(tf.io.gfile.rename)
    rng = np.random.default_rng(0)
    values = []
    for i in range(3):
        x, lengths, y = sample_data.make_split(rng, 20, 3, 2, 6, 2)
        values.append(x)
        buf = io.BytesIO()
        np.savez_compressed(buf, x=x, lengths=lengths, y=y)
        with FileSystems.create(f"ram://in/train-{i}.npz") as f:
            f.write(buf.getvalue())
    m = cli.run(["--input", "ram://in/train-*.npz", "--eval_input", "ram://in/train-2.npz", "--output_dir", "ram://out"])
    import tensorflow_transform as tft
    spec = tft.TFTransformOutput("ram://out").transformed_feature_spec()
    shards = tf.io.gfile.glob("ram://out/data/train-*")
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(shards)]
    reference = np.concatenate(values).astype(np.float64)
    print(json.dumps({
        "entries": sorted(tf.io.gfile.listdir("ram://out")),
        "records": len(parsed),
        "written": m.splits["train"].examples_written,
        "mean_error": float(np.max(np.abs(np.array(m.statistics.x.mean) - reference.mean(0)))),
        "local_entries": sorted(os.listdir(".")),   # run from an empty directory: must stay empty
    }), flush=True)
    sys.stderr.flush()
    os._exit(0)   # see beam_pipeline.cli.main: skip the interpreter teardown that may crash


if __name__ == "__main__":
    main()
