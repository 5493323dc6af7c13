"""The transform pass: read a shard's files, transform them (transform.py), write one shard.

Shards are planned from file sizes before the pipeline starts and each shard is written by
one DoFn call, so no step groups the examples themselves (a fixed-count WriteToTFRecord
would shuffle the whole dataset through a GroupByKey). A shard is written under a
temporary name and renamed when complete: a failed or killed run never leaves a
half-written shard under its final name.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_pipeline import errors, progress
from beam_pipeline.finalize import scratch
from beam_pipeline.finalize.records import FileReport, QuarantineRecord, ShardReport
from beam_pipeline.passes import tfrecord, transform
from beam_pipeline.planning import length_buckets
from beam_pipeline.planning.plan import ShardTask
from beam_pipeline.reading import layouts, reader
from beam_pipeline.reading.decoded_cache import DecodedCache
from beam_pipeline.reading.samples import Pool, SampleBatch, concat_batches
from beam_pipeline.statistics import feature_stats
from cli_support import failures, paths
from transforms import features, outputs
from transforms.features import DatasetSpec


class WriteShardFn(beam.DoFn):
    """Reads a shard's files, transforms them (as the saved graph does) and writes the shard.

    Writes the shard, then its reports (the shard's, one per file task, one per refused file
    or sample) and the statistics of its raw samples (feature_stats.py) for the finalize step
    to read; outputs the shard's step name once all of that is committed.
    """

    def __init__(self, output_dir: str, spec: DatasetSpec, opts: layouts.ReadOptions,
                 chunk_bytes: int, compression: str, decoded_cache: str | None = None):
        self._output_dir = output_dir
        self._cache = DecodedCache(decoded_cache, store=False) if decoded_cache else None
        self._spec = spec
        self._opts = opts
        self._chunk_bytes = chunk_bytes
        self._compression = compression
        self._transform = None
        targets = [features.LABEL] if spec.label_type == "regression" else []
        self._framer = tfrecord.ExampleFramer(features.X, [features.LENGTH, features.LABEL], float_scalars=targets)
        self._written = beam.metrics.Metrics.counter("write", "examples_written")
        self._refused = beam.metrics.Metrics.counter("write", "examples_quarantined")

    def _write_batches(self, pending: list[tuple[_FileProgress, SampleBatch]], sinks: list[_ShardFile]) -> None:
        """Transforms buffered batches in one call, writes each record to its length
        bucket's file, and credits each input file with what it wrote or lost."""
        out = self._transform(concat_batches([batch for _, batch in pending]))
        known = out.labels != features.UNKNOWN_LABEL_ID
        if self._spec.label_type != "classification":  # no class ids: every target is known
            known = np.ones_like(known)
        if not known.all():   # selecting copies the batch's values: only when needed
            out = out.select(known)
        bounds = self._spec.bucket_bounds
        bucket = length_buckets.assign(out.lengths, bounds)
        for b, sink in enumerate(sinks):
            # Each record is stored padded with zeros to its bucket's bound.
            part = out if len(sinks) == 1 else out.select(bucket == b)
            if len(part):
                sink.write(self._framer.frame(part.values, part.lengths, bounds[b],
                                              {features.LENGTH: part.lengths, features.LABEL: part.labels}),
                           part.lengths)
        first = 0
        for done, batch in pending:
            part = known[first:first + len(batch)]
            first += len(batch)
            done.written += int(part.sum())
            for i in batch.indices[~part].tolist():
                problem = errors.BadInputError(errors.UNKNOWN_LABEL, "label not in the training vocabulary", i)
                done.unknown_labels.append(problem)

    def process(self, shard: ShardTask, transform_dir: str):
        progress.TRACKER.begin("write")
        if self._transform is None:
            self._transform = transform.BatchTransform.load(transform_dir, self._output_dir, self._spec)
        bounds = self._spec.bucket_bounds
        names = [shard.file_name(self._compression, bound if self._spec.length_buckets else None) for bound in bounds]
        files, pool = [], Pool(self._chunk_bytes)
        # The training split's statistics come from the analyze pass (analyze.py), which has
        # the moments already; the other splits' are gathered here.
        stats = feature_stats.StatsAccumulator.create(self._spec) if shard.split != outputs.TRAIN else None
        with contextlib.ExitStack() as stack:
            sinks = [stack.enter_context(_ShardFile(self._output_dir, name, self._compression)) for name in names]
            for task in shard.tasks:
                read = reader.read_task(task, self._opts, self._spec, self._chunk_bytes, cache=self._cache)
                progress.count_input("write", read)
                done = _FileProgress(read)
                files.append(done)
                batches, read.batches = read.batches, []   # reports outlive the shard; data must not
                for batch in batches:
                    if stats is not None:
                        stats.add(batch)
                    full = pool.add((done, batch), batch.values.nbytes)
                    if full:
                        self._write_batches(full, sinks)
            rest = pool.take()
            if rest:
                self._write_batches(rest, sinks)
        found: list = [ShardReport(shard.split, f"{outputs.DATA_DIR}/{name}", sink.examples, bound,
                                   sorted([k, v] for k, v in sink.lengths.items()))
                       for name, sink, bound in zip(names, sinks, bounds)]
        for done in files:
            report, quarantine = done.results()
            self._written.inc(report.written)
            self._refused.inc(report.quarantined)
            found += [report, *quarantine]
        step = f"shard-{shard.split}-{shard.index:05d}"
        scratch.write_step(self._output_dir, step, found,
                           partial_stats=(shard.split, stats) if stats is not None else None)
        yield step   # the shard is committed: the job's finalize step waits for every one


# Shards in progress are named TEMP_PREFIX + a unique id + the final name.
_TEMP_PREFIX = ".tmp-"


def remove_unfinished(output_dir: str) -> None:
    """Deletes what shard writes that never completed left (a worker killed mid-write: the
    runner retried its bundle, which wrote the shard again under another temporary name)."""
    [result] = FileSystems.match([FileSystems.join(output_dir, outputs.DATA_DIR, _TEMP_PREFIX + "*")])
    if result.metadata_list:
        FileSystems.delete([m.path for m in result.metadata_list])


class _ShardFile:
    """One output file, written under a temporary name and renamed once complete: a failed
    or killed run never leaves a half-written shard under its final name."""

    def __init__(self, output_dir: str, name: str, compression: str):
        data_dir = FileSystems.join(output_dir, outputs.DATA_DIR)
        self._final = FileSystems.join(data_dir, name)
        self._temp = FileSystems.join(data_dir, f"{_TEMP_PREFIX}{uuid.uuid4().hex}-{name}")
        self._compression = CompressionTypes.GZIP if compression == "gzip" else CompressionTypes.UNCOMPRESSED
        self._local = not paths.is_remote(output_dir)
        self.examples = 0
        self._bytes = 0
        self.lengths: collections.Counter = collections.Counter()

    def __enter__(self) -> _ShardFile:
        self._sink = FileSystems.create(self._temp, compression_type=self._compression)
        return self

    def write(self, frames: np.ndarray, lengths: np.ndarray) -> None:
        """Appends framed records (ExampleFramer.frame) whose `length` features are `lengths`."""
        # A local file takes the array's buffer as it is; other filesystems' writers (TensorFlow's
        # GFile behind gs:// or ram://, for one) take bytes only: one more copy for those.
        data = frames if self._local else frames.tobytes()
        with failures.writing(self._final, "--output_dir", lambda: self._bytes):
            self._sink.write(data)
        self._bytes += frames.nbytes
        self.examples += len(lengths)
        self.lengths.update(lengths.tolist())

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self._discard()
            return
        self._sink.close()
        if FileSystems.exists(self._final):
            FileSystems.delete([self._final])
        FileSystems.rename([self._temp], [self._final])

    def _discard(self) -> None:
        """Removes the partial file of a failed shard: on a full disk, its space is what is missing."""
        with contextlib.suppress(Exception):   # closing flushes, which fails again on a full disk
            self._sink.close()
        with contextlib.suppress(Exception):
            FileSystems.delete([self._temp])


@dataclasses.dataclass
class _FileProgress:
    """One file task's read, and what the transform pass has done with its samples so far."""

    read: reader.TaskRead
    written: int = 0
    unknown_labels: list[errors.BadInputError] = dataclasses.field(default_factory=list)

    def results(self) -> tuple[FileReport, list[QuarantineRecord]]:
        """The file's final report and quarantine records, once its shard is complete."""
        task, report = self.read.task, self.read.report
        quarantine = self.read.quarantine + [QuarantineRecord.of(task.path, task.split, p, 1)
                                             for p in self.unknown_labels]
        report = dataclasses.replace(report, written=self.written,
                                     quarantined=report.quarantined + len(self.unknown_labels))
        return report, quarantine
