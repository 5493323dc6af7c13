"""What the pipeline, the trainer and serving share (pure TensorFlow at most, no Beam).

Feature declarations (`features`) and the tf.Transform `preprocessing_fn` (`preprocessing`):
the single place that says what a feature is, how it is padded and how it is normalized; and
the contract of a run's output directory (`outputs`, the typed `manifest`), which the
pipeline writes and every reader opens. The Beam pipeline, the trainer and the serving export
all import this package; it imports neither of them.
"""
