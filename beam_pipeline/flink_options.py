"""Options of Beam's Flink job server that Beam's Python SDK does not declare, and the CLI's
default for them.

The Java job server reads every pipeline option it is sent, but the Python SDK sends only the
options some PipelineOptions class declares (the CLI refuses any other flag as a typo), so
these are declared here.

Why the default: on a cluster with a restart strategy, Beam's Flink batch jobs exchange data
in PIPELINED mode unless told otherwise, and a failed task then restarts together with every
task it is pipelined with. Killing one SDK worker while shards were being written restarted
tf.Transform's step that publishes transform_fn/, which moves its temporary directory into
place and cannot run twice: the job failed with `NotFoundError: .../transform_tmp/...`.
With BATCH_FORCED every exchange is blocking, only the failed write tasks restart, and the
job completed with the same bytes as an undisturbed run (docs/scaling.md).
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

BATCH_FORCED = "BATCH_FORCED"


class FlinkJobServerOptions(PipelineOptions):
    """Java-side FlinkPipelineOptions, forwarded to the job server."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--execution_mode_for_batch", choices=("PIPELINED", BATCH_FORCED), default=None,
            help="Flink's data exchange mode for batch jobs; the CLI's default on FlinkRunner is "
                 "BATCH_FORCED, so a failed task restarts alone")


def set_defaults(options: PipelineOptions) -> None:
    """The CLI's defaults for a FlinkRunner job; a flag the user gave wins."""
    flink = options.view_as(FlinkJobServerOptions)
    if flink.execution_mode_for_batch is None:
        flink.execution_mode_for_batch = BATCH_FORCED
