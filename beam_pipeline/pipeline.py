"""The Beam graph: read training files -> analyze; read every split -> transform -> shards.

Each pass reads the input files itself instead of sharing one PCollection: a shared
PCollection would have to be materialized whole between the analyze and transform stages
(the in-process runner held 11.5 GB for 1 GB of input that way). Decompressing twice is
cheaper than holding the dataset in memory, and memory stays flat as data grows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipeline import layouts, plan, reader, reports, samples
from beam_pipeline.analyze import AnalyzeSamples, ValueStatsFn
from beam_pipeline.reports import REPORTS_PREFIX, QuarantineRecord
from beam_pipeline.write import WriteShardFn
from transforms.features import DatasetSpec
from transforms.outputs import QUARANTINE_DIR, QUARANTINE_FILE, WORK_DIR


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything the pipeline's steps need, picklable for remote workers."""

    output_dir: str
    spec: DatasetSpec
    read_options: layouts.ReadOptions
    chunk_bytes: int
    compression: str


class PoolBatches(beam.DoFn):
    """Merges small SampleBatches within a bundle up to ~chunk_bytes (see samples.Pool)."""

    def __init__(self, chunk_bytes: int):
        self._chunk_bytes = chunk_bytes
        self._pool = samples.Pool(chunk_bytes)

    def start_bundle(self):
        self._pool = samples.Pool(self._chunk_bytes)

    def process(self, batch: samples.SampleBatch):
        full = self._pool.add(batch, batch.values.nbytes)
        if full:
            yield samples.concat_batches(full)

    def finish_bundle(self):
        rest = self._pool.take()
        if rest:
            yield beam.transforms.window.GlobalWindows.windowed_value(samples.concat_batches(rest))


class ReadSamples(beam.PTransform):
    """File tasks -> valid SampleBatches (refusals are reported by the transform pass)."""

    def __init__(self, config: RunConfig):
        super().__init__()
        self._config = config

    def expand(self, tasks):
        c = self._config
        return (tasks
                # Without the reshuffle, the runner fuses the read with Create and one
                # worker would read every file.
                | "Distribute" >> beam.Reshuffle()
                | "Read" >> beam.FlatMap(
                    lambda t: reader.read_task(t, c.read_options, c.spec, c.chunk_bytes, digest=False).batches)
                | "Pool" >> beam.ParDo(PoolBatches(c.chunk_bytes)))


@beam.ptransform_fn
def WriteJsonLines(pcoll, path_prefix: str, encode: Callable[[Any], str],  # noqa: N802 - a PTransform
                   single_file: bool = False):
    """Writes records as JSON lines: one file, or runner-chosen shards named PREFIX-*.jsonl."""
    lines = pcoll | "ToJson" >> beam.Map(encode)
    if single_file:
        return lines | "Write" >> beam.io.WriteToText(path_prefix, shard_name_template="", num_shards=1)
    return lines | "Write" >> beam.io.WriteToText(path_prefix, file_name_suffix=".jsonl")


def build_pipeline(p: beam.Pipeline, config: RunConfig, work: plan.Plan) -> None:
    """Adds the whole job to pipeline `p`."""
    out = config.output_dir
    batches = (p
               | "TrainFiles" >> beam.Create(work.analysis)
               | "ReadTrainForAnalysis" >> ReadSamples(config))
    transform_dir = batches | "AnalyzeTrain" >> AnalyzeSamples(config.spec, out)
    stats = batches | "SummarizeValues" >> beam.CombineGlobally(ValueStatsFn(config.spec))

    results = (p
               | "Shards" >> beam.Create(work.shards)
               | "DistributeShards" >> beam.Reshuffle()
               | "TransformAndWrite" >> beam.ParDo(
                   WriteShardFn(out, config.spec, config.read_options, config.chunk_bytes, config.compression),
                   beam.pvalue.AsSingleton(transform_dir)).with_outputs("files", "quarantine", main="shards"))

    steps = (results.shards, results.files, stats) | "Reports" >> beam.Flatten()
    _ = steps | "WriteReports" >> WriteJsonLines(FileSystems.join(out, WORK_DIR, REPORTS_PREFIX), reports.encode)
    _ = results.quarantine | "WriteQuarantine" >> WriteJsonLines(
        FileSystems.join(out, QUARANTINE_DIR, QUARANTINE_FILE), QuarantineRecord.to_json, single_file=True)
