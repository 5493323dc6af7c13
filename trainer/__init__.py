"""Trainer: tf.data input pipeline over the pipeline's shards, model, strategies, serving export."""
