"""The workflow's kfp components: lightweight Python components, one per step.

kfp ships each function's source (not this module) to the step's container and runs it with
the image's Python, so every function is self-contained: its imports are inside it and it
only hands its arguments to workflow.steps / workflow.publish, which the image has installed
(locally: this checkout). Their source is part of kfp's cache key; the code they call enters
the key through the fingerprint step's code versions.

Steps pass paths: an artifact is a directory (its URI) that the next step reads. Besides,
preprocess's report.html is an `HTML` artifact and the train and validate metrics `Metrics`
artifacts (`log_metric`): Vertex AI Pipelines and Kubeflow show those on the run's page.
(No `from __future__ import annotations` here: kfp reads the annotations as types.)
"""

from typing import NamedTuple

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output


def fingerprint(input_globs: list, eval_globs: list, stat_cache: str) -> NamedTuple(
        "Keys", [("preprocess_key", str), ("train_key", str)]):
    """Never cached: hashes the inputs' content and the steps' code into the next steps' keys."""
    from workflow import steps

    return steps.fingerprint(input_globs, eval_globs, stat_cache)


def preprocess(input_globs: list, eval_globs: list, runner: str, project: str, region: str, bucket: str,
               preprocess_args: list, key: str, dataset: Output[Dataset], report: Output[HTML]):
    """The Beam + tf.Transform job: input files -> TFRecord shards, transform graph, manifest;
    its report.html as the `report` artifact."""
    from workflow import steps

    flags = steps.beam_flags(runner, project, region, bucket) + list(preprocess_args)
    output_dir = steps.location(dataset.uri, dataset.path)
    dataset.metadata.update(steps.preprocess(input_globs, eval_globs, output_dir, flags, key))
    steps.copy_report(output_dir, report.path)


def train(dataset: Input[Dataset], epochs: int, batch_size: int, train_args: list, key: str,
          model: Output[Model], metrics: Output[Metrics]):
    """The trainer: shards -> model_dir with serving/ (a SavedModel) and metrics.json, whose
    final train and eval figures also go to `metrics`."""
    from workflow import steps

    data_dir = steps.location(dataset.uri, dataset.path)
    model_dir = steps.location(model.uri, model.path)
    facts = steps.train(data_dir, model_dir, epochs, batch_size, train_args, key)
    model.metadata.update(facts)
    steps.record_metrics(metrics, steps.metric_values(facts))


def validate(model: Input[Model], publish_dir: str, min_accuracy: float, max_regression: float, max_mae: float,
             metrics: Output[Metrics]) -> bool:
    """Never cached (it reads the published model, which changes outside this run). The
    decision and the figures it compared go to `metrics`."""
    from workflow import publish as publishing
    from workflow import steps

    approved, figures = publishing.validate(steps.location(model.uri, model.path), model.uri, publish_dir,
                                            min_accuracy, max_regression, max_mae)
    steps.record_metrics(metrics, figures)
    return approved


def publish(model: Input[Model], dataset: Input[Dataset], publish_dir: str, data_key: str) -> str:
    """Never cached: copies the approved model to PUBLISH_DIR and switches the pointer."""
    from workflow import publish as publishing
    from workflow import steps

    return publishing.publish(steps.location(model.uri, model.path), model.uri,
                           steps.location(dataset.uri, dataset.path), dataset.uri, publish_dir, data_key)
