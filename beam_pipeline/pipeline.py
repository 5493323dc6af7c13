"""The Beam graph: read training files -> analyze; read every split -> transform -> shards.

Each pass reads the input files itself instead of sharing one PCollection: a shared
PCollection would have to be materialized whole between the analyze and transform stages
(the in-process runner held 11.5 GB for 1 GB of input that way). Decompressing twice is
cheaper than holding the dataset in memory, and memory stays flat as data grows.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from beam_pipeline import progress
from beam_pipeline.passes.analyze import AnalyzeSamples
from beam_pipeline.passes.write import WriteShardFn
from beam_pipeline.planning import plan
from beam_pipeline.reading import layouts, reader, samples
from transforms.features import DatasetSpec


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything the pipeline's steps need, picklable for remote workers."""

    output_dir: str
    spec: DatasetSpec
    read_options: layouts.ReadOptions
    chunk_bytes: int
    compression: str


def _read_group(group: plan.ReadGroup, c: RunConfig):
    """The valid samples of a group of file tasks, in batches of about chunk_bytes."""
    pool = samples.Pool(c.chunk_bytes)
    progress.TRACKER.begin("analyze")
    for task in group:
        read = reader.read_task(task, c.read_options, c.spec, c.chunk_bytes, digest=False)
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


def build_pipeline(p: beam.Pipeline, config: RunConfig, work: plan.Plan) -> None:
    """Adds the whole job to pipeline `p`."""
    out = config.output_dir
    batches = (p
               | "TrainFiles" >> beam.Create(work.analysis)
               | "ReadTrainForAnalysis" >> ReadSamples(config))
    transform_dir = batches | "AnalyzeTrain" >> AnalyzeSamples(config.spec, out)

    _ = (p
         | "Shards" >> beam.Create(work.shards)
         | "DistributeShards" >> beam.Reshuffle()
         | "TransformAndWrite" >> beam.ParDo(
             WriteShardFn(out, config.spec, config.read_options, config.chunk_bytes, config.compression),
             beam.pvalue.AsSingleton(transform_dir)))
