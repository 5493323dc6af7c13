"""Beam pipeline: NumPy files -> tf.Transform -> padded, normalized TFRecord shards."""
