"""Our pipeline run in this process under cProfile (`benchmarks.preprocess --profile`).

`python -m benchmarks.profile_pipeline PROFILE_PATH PIPELINE_FLAGS...` writes the main thread's
profile to PROFILE_PATH (pstats reads it).
"""

from __future__ import annotations

import cProfile
import os
import sys

from beam_pipeline import cli

if __name__ == "__main__":
    profiler = cProfile.Profile()
    profiler.runcall(cli.run, sys.argv[2:])
    profiler.dump_stats(sys.argv[1])
    sys.stdout.flush()
    os._exit(0)  # as cli.main does: skip the interpreter teardown that can crash after a run
