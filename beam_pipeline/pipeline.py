"""The Beam graph: read training files -> analyze; read every split -> transform -> shards;
once every shard is committed, finalize the run (manifest, statistics, report, _SUCCESS).

Finalizing is the job's own last step, not the launcher's: a job whose launcher was killed,
or that was launched detached (templates, a workflow's Dataflow operator), still leaves a
complete output.

Each pass reads the input files itself instead of sharing one PCollection: a shared
PCollection would have to be materialized whole between the analyze and transform stages
(the in-process runner held 11.5 GB for 1 GB of input that way). Reading twice is cheaper
than holding the dataset in memory, and memory stays flat as data grows; where both passes
run on one machine, the write pass reads the analyze pass's decoded values back from local
files (reading/decoded_cache.py) instead of decompressing again.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipeline import progress
from beam_pipeline.finalize import finalize
from beam_pipeline.passes import write
from beam_pipeline.passes.analyze import AnalyzeSamples
from beam_pipeline.planning import plan
from beam_pipeline.reading import layouts, reader, samples
from beam_pipeline.reading.decoded_cache import DecodedCache
from transforms import outputs
from transforms.features import DatasetSpec


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything the pipeline's steps need, picklable for remote workers."""

    output_dir: str
    spec: DatasetSpec
    read_options: layouts.ReadOptions
    chunk_bytes: int
    compression: str
    decoded_cache: str | None = None   # a local directory shared by all workers (decoded_cache.py)


def _read_group(group: plan.ReadGroup, c: RunConfig):
    """The valid samples of a group of file tasks, in batches of about chunk_bytes."""
    pool = samples.Pool(c.chunk_bytes)
    cache = DecodedCache(c.decoded_cache, store=True) if c.decoded_cache else None
    progress.TRACKER.begin("analyze")
    for task in group:
        read = reader.read_task(task, c.read_options, c.spec, c.chunk_bytes, digest=False, cache=cache)
        progress.count_input("analyze", read)
        for batch in read.batches:
            full = pool.add(batch, batch.values.nbytes)
            if full:
                yield samples.concat_batches(full)
    rest = pool.take()
    if rest:
        yield samples.concat_batches(rest)


class ReadSamples(beam.PTransform):
    """Groups of file tasks -> valid SampleBatches (refusals are reported by the transform pass)."""

    def __init__(self, config: RunConfig):
        super().__init__()
        self._config = config

    def expand(self, groups):
        return (groups
                # Without the reshuffle, the runner fuses the read with Create and one
                # worker would read every file.
                | "Distribute" >> beam.Reshuffle()
                | "Read" >> beam.FlatMap(_read_group, self._config))


@dataclasses.dataclass(frozen=True)
class RunClock:
    """When the run and its job started, for the manifest's timings.

    Attributes:
      run_started: time.time() when the launcher started (wall clock: the finalize step may
        run on another machine).
      job_started: time.time() when the launcher started building the job.
      phases_seen: whether the finalize step's process saw the passes' progress (the
        in-process runner's threads); elsewhere the per-phase times are unknown.
    """

    run_started: float
    job_started: float
    phases_seen: bool

    def timings(self) -> dict[str, float | None]:
        now = time.time()
        seen = progress.TRACKER.snapshot() if self.phases_seen else {}
        return {**progress.phase_seconds(seen), "job": now - self.job_started, "total": now - self.run_started}


class FinalizeFn(beam.DoFn):
    """The job's last step, run once after every shard is committed (its side input)."""

    def __init__(self, run: finalize.RunInfo, clock: RunClock):
        self._run = run
        self._clock = clock

    def process(self, _, committed: list[str]):
        out = self._run.output_dir
        if FileSystems.exists(FileSystems.join(out, outputs.SUCCESS)):
            return   # a retry of this step after it completed: its scratch space is gone
        write.remove_unfinished(out)
        m = finalize.finalize_run(self._run, self._clock.timings())
        failure = finalize.too_much_bad_input(m, self._run.max_bad_fraction)
        logging.log(logging.ERROR if failure else logging.INFO, "%d shards committed, run finalized: %s",
                    len(committed), failure or out)


def build_pipeline(p: beam.Pipeline, config: RunConfig, work: plan.Plan, run: finalize.RunInfo,
                   clock: RunClock) -> None:
    """Adds the whole job to pipeline `p`."""
    out = config.output_dir
    batches = (p
               | "TrainFiles" >> beam.Create(work.analysis)
               | "ReadTrainForAnalysis" >> ReadSamples(config))
    transform_dir = batches | "AnalyzeTrain" >> AnalyzeSamples(config.spec, out)

    committed = (p
                 | "Shards" >> beam.Create(work.shards)
                 | "DistributeShards" >> beam.Reshuffle()
                 | "TransformAndWrite" >> beam.ParDo(
                     write.WriteShardFn(out, config.spec, config.read_options, config.chunk_bytes,
                                        config.compression, config.decoded_cache),
                     beam.pvalue.AsSingleton(transform_dir)))
    # One element, processed once the side input (every shard committed) is complete.
    _ = (p
         | "FinalizeTrigger" >> beam.Create([None])
         | "Finalize" >> beam.ParDo(FinalizeFn(run, clock), beam.pvalue.AsList(committed)))
