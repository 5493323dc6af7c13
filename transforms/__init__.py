"""Feature declarations and the tf.Transform preprocessing_fn (pure TensorFlow, no Beam).

This package is the single place that says what a feature is, how it is padded and how it
is normalized. The Beam pipeline, the trainer and the serving export all import it; it
imports neither of them.
"""
