"""The workflow: fingerprint -> preprocess -> train -> validate -> publish, as a Kubeflow pipeline.

It runs embedded on one machine (kfp's local runner, cached by content) and compiles to the
pipeline YAML that Vertex AI Pipelines and Kubeflow run. The steps call the two CLIs
(`python -m beam_pipeline`, `python -m trainer`) in subprocesses; nothing in `beam_pipeline`,
`trainer` or `transforms` imports this package. See docs/workflow.md.

This module stays import-free: step processes import `workflow.*` modules without loading kfp.
"""
