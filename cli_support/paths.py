"""Local paths and URLs (gs://, s3://, any Beam or TensorFlow filesystem) told apart, one way.

Light on purpose, like the rest of cli_support: the CLIs, the pipeline's workers and the
workflow's steps all import it.
"""

from __future__ import annotations

import os


def is_remote(path: str) -> bool:
    """Whether a path is a URL of some filesystem (`scheme://...`) rather than a local path."""
    return "://" in path


def absolute(path: str) -> str:
    """A local path made absolute; a URL as it is.

    Whoever opens the path later may run in another working directory (a step's process, a
    Flink task manager, a Beam worker pool), where a relative path names another file, or none.
    """
    return path if is_remote(path) else os.path.abspath(path)
