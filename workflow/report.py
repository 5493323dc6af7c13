"""What each step did, for the local run's summary.

kfp's local runner says nothing on the console about a cache hit, and a cached step does not
run at all. So every step that does run appends one JSON line to the file named by
WORKFLOW_STEP_REPORT (the local runner's subprocesses inherit the driver's environment), and
the driver reads it back: a cacheable step without a line was served from kfp's cache. The
variable is not part of any cache key. Where it is unset (Vertex AI, Kubeflow) the line is only
printed to the step's log.
"""

from __future__ import annotations

import json
import os
from typing import Any

REPORT_ENV = "WORKFLOW_STEP_REPORT"
# The line of a step whose CLI failed: {"step": FAILURE, "failed_step": ..., "cause": the CLI's error line}.
FAILURE = "failure"


def record(step: str, **details: Any) -> None:
    """Prints the step's outcome and appends it to the report file, if there is one."""
    line = json.dumps({"step": step, **details}, sort_keys=True)
    print(f"workflow step report: {line}", flush=True)
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def read(path: str) -> dict[str, dict[str, Any]]:
    """The report's lines by step (a step runs at most once per workflow run)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {row.pop("step"): row for row in rows}
