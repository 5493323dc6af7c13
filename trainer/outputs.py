"""A training run's model directory: the contract between the trainer and its readers (the
workflow's validate and publish steps, benchmarks). Light: no TensorFlow.

    serving/        the SavedModel: raw tf.train.Examples in, through the tf.Transform layer
    metrics.json    final metrics and run facts (train.py documents the fields)
    checkpoints/, backup/, logs/   resumption and TensorBoard
"""

SERVING_DIR = "serving"
METRICS_FILE = "metrics.json"
