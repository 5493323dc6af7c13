"""Benchmarks of the preprocessing pipeline and the trainer's input pipeline.

`python -m benchmarks.preprocess --help` and `python -m benchmarks.input_pipeline --help`;
`docs/performance.md` holds the figures measured with them. Every figure is compared with
a baseline measured in the same run: the machines these run on are shared and noisy.
"""
