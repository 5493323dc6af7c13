"""The DAG: fingerprint -> preprocess -> train -> validate -> (if approved) publish.

`build_pipeline()` returns the kfp pipeline; the local runner calls it, the compiler turns it
into the YAML that Vertex AI Pipelines and Kubeflow run. What varies per run (inputs, runner,
project, region, bucket, thresholds) is a pipeline parameter; what shapes the containers (the
image, accelerators) is fixed when compiling.

Caching: preprocess and train are cached by kfp (locally and on Vertex AI / Kubeflow alike) on
their input values, which include the content fingerprint and code version computed by the
uncached fingerprint step. fingerprint, validate and publish look at things outside the run
(the files, the published model), so they are never cached; they are cheap.
(No `from __future__ import annotations` here: kfp reads the pipeline's annotations as types.)
"""

from collections.abc import Callable

from kfp import compiler, dsl

from workflow import components

PIPELINE_NAME = "npy-tft-workflow"
# The local runner runs every step with this interpreter and ignores the image; a name with
# "python" in it keeps it from warning that the image may not be a Python one.
LOCAL_IMAGE = "python:3.11"


def _op(func: Callable, image: str) -> Callable:
    # The image must hold this project and kfp: nothing is pip-installed when a step starts.
    return dsl.component(func, base_image=image, install_kfp_package=False)


def build_pipeline(image: str = LOCAL_IMAGE, train_accelerator_type: str = "",
                   train_accelerator_count: int = 1) -> Callable:
    """The workflow as a kfp pipeline function, its steps running in `image`."""
    fingerprint_op, preprocess_op, train_op, validate_op, publish_op = (
        _op(f, image) for f in (components.fingerprint, components.preprocess, components.train,
                                components.validate, components.publish))

    # kfp reads parameter defaults from the signature; the lists are never mutated.
    @dsl.pipeline(name=PIPELINE_NAME, description="npy/npz files -> tf.Transform TFRecords -> model -> "
                                                  "validated, published SavedModel")
    def workflow(input_globs: list, eval_globs: list, publish_dir: str, epochs: int = 0, batch_size: int = 0,
                 min_accuracy: float = 0.0, max_regression: float = 0.0, max_mae: float = 0.0, runner: str = "",
                 project: str = "",
                 region: str = "", bucket: str = "", preprocess_args: list = [],  # noqa: B006
                 train_args: list = [], stat_cache: str = ""):  # noqa: B006
        keys = fingerprint_op(input_globs=input_globs, eval_globs=eval_globs, stat_cache=stat_cache)
        keys.set_caching_options(False)
        data = preprocess_op(input_globs=input_globs, eval_globs=eval_globs, runner=runner, project=project,
                             region=region, bucket=bucket, preprocess_args=preprocess_args,
                             key=keys.outputs["preprocess_key"])
        model = train_op(dataset=data.outputs["dataset"], epochs=epochs, batch_size=batch_size,
                         train_args=train_args, key=keys.outputs["train_key"])
        if train_accelerator_type:
            model.set_accelerator_type(train_accelerator_type).set_accelerator_limit(train_accelerator_count)
        check = validate_op(model=model.outputs["model"], publish_dir=publish_dir, min_accuracy=min_accuracy,
                            max_regression=max_regression, max_mae=max_mae)
        check.set_caching_options(False)
        # "Output" by name: kfp 2.17's local runner resolves a condition on a task's single
        # return value, not on a named output of a NamedTuple.
        with dsl.If(check.outputs["Output"] == True, name="approved"):  # noqa: E712 - a kfp expression
            publish_op(model=model.outputs["model"], dataset=data.outputs["dataset"], publish_dir=publish_dir,
                       data_key=keys.outputs["preprocess_key"]).set_caching_options(False)

    return workflow


def compile_pipeline(output: str, image: str, train_accelerator_type: str = "",
                     train_accelerator_count: int = 1) -> None:
    """Writes the pipeline YAML for Vertex AI Pipelines / Kubeflow."""
    compiler.Compiler().compile(build_pipeline(image, train_accelerator_type, train_accelerator_count), output)
