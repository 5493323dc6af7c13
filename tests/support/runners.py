"""The real Beam runners the tests run the job on, as .ci/runners.sh installs them.

Missing, a runner's tests skip with the reason on a workstation and fail under CI (CI set),
where .ci/run installs them first: a green CI always means they ran.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

import pytest

# Where .ci/runners.sh caches what it builds or downloads (outside the clone, reused across runs).
CACHE = os.environ.get("NPY_TFT_RUNNERS_CACHE", os.path.expanduser("~/.cache/npy-tft-runners"))
BEAM_VERSION = version("apache-beam")


def require(path: str, what: str) -> str:
    """`path` when it exists; otherwise a skip (a failure under CI) that says how to get it."""
    if os.path.exists(path):
        return path
    message = f"{what} is not installed at {path}: run .ci/runners.sh {sys.executable}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def prism() -> str:
    """The Prism binary built from Beam's Go module at the SDK's own version."""
    return require(os.path.join(CACHE, "bin", f"prism-v{BEAM_VERSION}"), "Beam's Prism runner")
