"""Command line: `python -m beam_pipeline --input 'data/train-*.npz' --output_dir out/ [Beam flags]`.

Flags this tool does not know are handed to Beam's PipelineOptions, so any runner works
(`--runner`, `--direct_num_workers`, Dataflow and Flink options). Without `--runner`, the
job runs on the in-process FnApiRunner (Beam 2.77's DirectRunner would first try to
download the Prism binary, which fails offline), one thread per core.

Exit codes: 0 success; 1 the run failed (pipeline error, or more bad input than
--max_bad_fraction allows); 2 a usage error (bad flags, empty glob, completed output present).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from beam_pipeline.errors import RunFailedError, UsageError
from beam_pipeline.planning import length_buckets, plan
from beam_pipeline.reading import layouts
from cli_support import console, failures, flags, paths
from transforms import features, manifest, outputs
from transforms.manifest import Manifest

if TYPE_CHECKING:
    from beam_pipeline.finalize.finalize import RunInfo
    from beam_pipeline.pipeline import RunClock

# Beam and TensorFlow load inside the functions that need them: --help and flag errors stay instant.


def build_parser() -> argparse.ArgumentParser:
    """The tool's own flags; unknown flags go to Beam."""
    p = flags.StrictParser(
        prog="python -m beam_pipeline", parents=[console.verbosity_parser(quiet=True)],
        description="Turn .npy/.npz files into padded, normalized TFRecord shards with tf.Transform. "
                    "Flags not listed here are passed to Beam's PipelineOptions (e.g. --runner).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = p.add_argument_group("input and output")
    io.add_argument("--input", action="append", required=True, metavar="GLOB",
                    help="training files (.npy, .npz, .npy.gz); repeatable; any Beam filesystem (gs://, s3://)")
    io.add_argument("--eval_input", action="append", default=[], metavar="GLOB",
                    help="evaluation files, transformed with the training statistics; repeatable")
    io.add_argument("--output_dir", required=True, help="where transform_fn/, data/, manifest.json go")
    io.add_argument("--overwrite", action="store_true",
                    help="replace a completed run in --output_dir (otherwise that is an error); it is deleted "
                         "before the new run starts")
    io.add_argument("--num_shards", type=int, default=0,
                    help="shards per split; 0 picks shards of ~150 MB (at most one per input file)")
    io.add_argument("--compression", choices=("none", "gzip"), default="none",
                    help="TFRecord compression (gzip is ~13x slower to write, ~6x to read)")
    lay = p.add_argument_group("layout (auto-detected per file unless --layout is given)")
    lay.add_argument("--layout", choices=layouts.LAYOUTS, default="auto",
                     help="dense: x[N,T,...]+y[N]; ragged: x[sum T,...]+lengths[N]+y[N]; "
                          "per_key: x_000000.. + y; per_file: one sample per file")
    lay.add_argument("--x_key", default="x", help="name of the sample array (prefix of per-key arrays)")
    lay.add_argument("--y_key", default="y", help="name of the label array")
    lay.add_argument("--label_type", choices=tuple(features.LABEL_TYPES), default="classification",
                     help="classification: class ids (ints or strings); regression: numeric targets, "
                          "written as float32; none: unlabeled data (no label array; every record's "
                          "label is a placeholder 0, which the trainer refuses to fit)")
    lay.add_argument("--standardize_target", action="store_true",
                     help="with --label_type regression: write (target - mean) / std with the training "
                          "split's statistics (kept in the transform graph and the manifest; the trainer's "
                          "serving signature returns the original units)")
    lay.add_argument("--lengths_key", default="lengths", help="name of the ragged layout's row lengths")
    labels = lay.add_mutually_exclusive_group()
    labels.add_argument("--labels_csv", metavar="PATH",
                        help="CSV of path,label rows for one-sample-per-file inputs")
    labels.add_argument("--labels_from_dir", action="store_true",
                        help="one-sample-per-file inputs take their label from the parent directory name")
    labels.add_argument("--labels_sibling", metavar="SUFFIX",
                        help="labels live beside each input: NAME.npz -> NAME<SUFFIX> (e.g. _labels.npy); "
                             "files ending in SUFFIX are not read as inputs")
    norm = p.add_argument_group("statistics and padding")
    norm.add_argument("--normalize", choices=features.NORMALIZE_MODES, default="zscore",
                      help="zscore: (x-mean)/std; minmax: (x-min)/(max-min); none. A constant feature becomes 0")
    norm.add_argument("--per_element", action="store_true",
                      help="statistics per element of the sample (fixed-shape data such as images) "
                           "instead of per channel of the last axis")
    norm.add_argument("--max_length", default="auto",
                      help="pad to this many steps; 'auto' = the longest training sample. Longer samples "
                           "are truncated and counted")
    norm.add_argument("--length_buckets", default="off", metavar="off|auto|N|B1,B2,...",
                      help="store each sequence padded to the smallest of a few lengths instead of max_length: "
                           "N buckets chosen from the training lengths to minimize the stored size, 'auto' (also "
                           "picks N), or explicit bounds; the largest bound is always max_length")
    bad = p.add_argument_group("bad input")
    bad.add_argument("--max_bad_fraction", type=float, default=0.05,
                     help="fail the run when a split loses more than this fraction of its samples or files")
    bad.add_argument("--max_sample_bytes", type=int, default=layouts.ReadOptions.max_sample_bytes,
                     help="refuse samples larger than this (checked from headers, before reading)")
    bad.add_argument("--max_file_bytes", type=int, default=layouts.ReadOptions.max_file_bytes,
                     help="refuse files whose decoded arrays exceed this (checked from headers)")
    perf = p.add_argument_group("performance")
    perf.add_argument("--samples_per_task", type=int, default=20_000,
                      help="files with more samples are read as several sample ranges, in parallel")
    perf.add_argument("--batch_mb", type=float, default=8.0,
                      help="MB of raw values per batch handed to tf.Transform and the transform graph")
    perf.add_argument("--no_decoded_cache", action="store_true",
                      help="on the in-process runner, inflate the training files again in the write pass instead "
                           "of keeping their decoded values in a temporary local directory between the passes "
                           "(needs free disk space about the size of the raw training values)")
    return p


def _unknown_flags(beam_args: list[str]) -> str | None:
    """What to say about the flags neither this tool nor any Beam PipelineOptions class
    defines (typos, mostly; each with the closest real flag); None when there are none.

    Beam itself would only log and drop them; a misspelt --max_lenght silently falling back
    to the default is worse than an error.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_pipeline import flink_options  # noqa: F401 - declares the Flink job server's options

    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # the way Beam's own get_all_options builds its parser
    _, unknown = parser.parse_known_args(beam_args)
    return flags.unknown_flags_message(unknown, flags.option_strings(build_parser()) + flags.option_strings(parser))


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The tool's flags, with local paths made absolute (workers open them in their own working
    directory: a relative path would quarantine every input and write shards where the launcher
    never looks); and the flags for Beam.

    Raises:
      UsageError: a flag neither this tool nor Beam has (named first, even when a required
        flag is missing too: `--output` for `--output_dir` is the likely reason).
    """
    parser = build_parser()
    with flags.nothing_required(parser):
        _, rest = parser.parse_known_args(argv)
    unknown = _unknown_flags(rest) if rest else None   # Beam's options load only when needed
    if unknown:
        raise UsageError(unknown)
    args, beam_args = parser.parse_known_args(argv)
    args.input = [paths.absolute(p) for p in args.input]
    args.eval_input = [paths.absolute(p) for p in args.eval_input]
    if args.labels_csv:  # its relative rows are resolved against its own directory
        args.labels_csv = paths.absolute(args.labels_csv)
    args.output_dir = paths.absolute(args.output_dir).rstrip("/") or "/"
    return args, beam_args


def _in_process(beam_args: list[str]) -> bool:
    """Whether the job runs on the CLI's in-process runner (no --runner given)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    return PipelineOptions(beam_args).view_as(StandardOptions).runner is None


def _workers_are_threads(beam_args: list[str]) -> bool:
    """Whether the job's workers are threads of this process, whose progress the display sees:
    the in-process runner, unless --direct_running_mode multi_processing puts them in
    processes of their own (then the launcher reports the job's state, as for remote runners)."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    mode = PipelineOptions(beam_args).view_as(DirectOptions).direct_running_mode
    return _in_process(beam_args) and mode != "multi_processing"


def check_args(args: argparse.Namespace, beam_args: list[str]) -> None:
    """Checks the flags before anything runs.

    Raises:
      UsageError: a flag error.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    if args.num_shards < 0:
        raise UsageError("--num_shards must be >= 0")
    if args.standardize_target and args.label_type != "regression":
        raise UsageError("--standardize_target needs --label_type regression")
    if args.length_buckets not in ("off", "auto"):
        _bucket_values(args.length_buckets)
    runner = str(PipelineOptions(beam_args).view_as(StandardOptions).runner or "")
    local = [path for path in (*args.input, *args.eval_input, args.output_dir) if not paths.is_remote(path)]
    if "Dataflow" in runner and local:
        # Caught here, not after minutes of job start-up with every file quarantined.
        raise UsageError(f"--runner={runner}: workers cannot see local paths such as {local[0]}; "
                         "put --input, --eval_input and --output_dir on gs://")


def _match_inputs(args: argparse.Namespace) -> dict[str, list[plan.FileTask]]:
    """Every input file, per split.

    Raises:
      UsageError: a split's globs match nothing.
      RunFailedError: the filesystem failed (unreachable, access refused).
    """
    from beam_pipeline.planning import scan

    label_flags = dict(labels_csv=args.labels_csv, labels_from_dir=args.labels_from_dir,
                       labels_sibling=args.labels_sibling)
    try:
        matched = {outputs.TRAIN: scan.match_files(args.input, outputs.TRAIN, **label_flags)}
        if args.eval_input:
            matched[outputs.EVAL] = scan.match_files(args.eval_input, outputs.EVAL, **label_flags)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - a filesystem's error (a remote store refusing access)
        raise RunFailedError(f"cannot list the inputs: {failures.describe(e)}") from e
    return matched


def _prepare_output(output_dir: str, overwrite: bool) -> None:
    """Clears what an earlier run left in output_dir and checks that it can be written.

    --overwrite deletes a completed run before the new one starts, and says so: keeping it
    until the new run is complete would take twice the space (a full disk is the likeliest
    reason a rerun fails) and, on gs:// or s3://, a copy of every object to move the new run
    into place. Write the new run to another --output_dir to keep the old one until it is done.

    Raises:
      UsageError: a completed run is there and overwrite is False.
      RunFailedError: output_dir cannot be created or written.
    """
    from apache_beam.io.filesystems import FileSystems

    with failures.writing(output_dir, "--output_dir"):   # a remote store refusing access, say
        completed = FileSystems.exists(FileSystems.join(output_dir, outputs.SUCCESS))
    if completed:
        if not overwrite:
            raise UsageError(f"{output_dir} already holds a completed run; pass --overwrite to replace it")
        print(f"--overwrite: deleting the completed run in {output_dir} now; if this run fails, "
              "no usable output remains there", file=sys.stderr, flush=True)
    _remove_entries(output_dir)
    probe = FileSystems.join(output_dir, outputs.WORK_DIR, "write-probe")
    with failures.writing(output_dir, "--output_dir"):   # caught here, before minutes of work
        FileSystems.create(probe).close()   # creates the directories on the way
    FileSystems.delete([probe])


def _remove_entries(output_dir: str) -> None:
    """Deletes everything a run writes in output_dir (outputs.ENTRIES), and nothing else."""
    from apache_beam.io.filesystems import FileSystems

    found = [FileSystems.join(output_dir, e) for e in outputs.ENTRIES]
    found = [path for path in found if FileSystems.exists(path)]
    if found:
        FileSystems.delete(found)


def _read_options(args: argparse.Namespace) -> layouts.ReadOptions:
    return layouts.ReadOptions(layout=args.layout, x_key=args.x_key, y_key=args.y_key,
                               lengths_key=args.lengths_key, max_sample_bytes=args.max_sample_bytes,
                               max_file_bytes=args.max_file_bytes, label_type=args.label_type)


def _chunk_bytes(args: argparse.Namespace) -> int:
    return max(1, int(args.batch_mb * (1 << 20)))


def _plan(args: argparse.Namespace, matched: dict[str, list[plan.FileTask]]
          ) -> tuple[features.DatasetSpec, plan.Plan, dict[str, int]]:
    """Scans every file's headers, decides the dataset spec, and plans both passes; also
    returns each file's sample count."""
    from beam_pipeline.planning import scan

    opts = _read_options(args)
    scans = {split: scan.scan_files(tasks, opts) for split, tasks in matched.items()}
    spec = scan.infer_spec(scans[outputs.TRAIN], scans.get(outputs.EVAL, []), max_length=args.max_length,
                           normalize=args.normalize, per_element=args.per_element)
    if args.standardize_target:
        spec = dataclasses.replace(spec, standardize_target=True)
    if args.length_buckets != "off":
        spec = dataclasses.replace(spec, length_buckets=_bucket_bounds(args.length_buckets, spec, scans[outputs.TRAIN]))
    logging.info("dataset spec: %s", spec)
    files = {split: [(s.task, s.plan.num_samples if s.plan is not None else 0) for s in split_scans]
             for split, split_scans in scans.items()}
    work = plan.make_plan(files, spec, num_shards=args.num_shards, samples_per_task=args.samples_per_task,
                          group_bytes=_chunk_bytes(args))
    return spec, work, {task.path: n for units in files.values() for task, n in units}


def _bucket_values(flag: str) -> list[int]:
    """--length_buckets N or B1,B2,... as numbers (UsageError when it is neither)."""
    try:
        values = [int(v) for v in flag.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UsageError(f"--length_buckets must be off, auto, a count or comma-separated bounds >= 1; got {flag!r}")
    return values


def _bucket_bounds(flag: str, spec: features.DatasetSpec, train: list) -> tuple[int, ...]:
    """--length_buckets as bounds, chosen from the scanned training lengths (cut to max_length)."""
    if spec.per_element:
        raise UsageError("--length_buckets applies to sequences; --per_element data has one length")
    lengths = [np.minimum(s.plan.lengths, spec.max_length) for s in train if s.plan is not None]
    hist = length_buckets.LengthCounts.of(np.concatenate(lengths) if lengths else np.zeros(0, np.int64))
    if flag == "auto":
        return length_buckets.auto_bounds(hist, spec.max_length)
    values = _bucket_values(flag)
    if len(values) == 1:
        return length_buckets.optimal_bounds(hist, spec.max_length, values[0])
    return length_buckets.explicit_bounds(values, spec.max_length)


def _new_pipeline(beam_args: list[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from beam_pipeline import flink_options

    options = PipelineOptions(beam_args)
    if not _in_process(beam_args):
        if options.view_as(StandardOptions).runner == "FlinkRunner":
            flink_options.set_defaults(options)
        return beam.Pipeline(options=options)
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    # Both cores by default: one bundle thread per core (NumPy, TensorFlow and file I/O
    # release the GIL). The outputs do not depend on it (see plan.py and analyze.py).
    # Beam's defaults are 1 worker and "in_memory"; a flag the user gave wins.
    given = set(options.get_all_options(drop_default=True))
    direct = options.view_as(DirectOptions)
    if "direct_num_workers" not in given:
        direct.direct_num_workers = len(os.sched_getaffinity(0))
    if "direct_running_mode" not in given:
        direct.direct_running_mode = "multi_threading"
    return beam.Pipeline(runner=FnApiRunner(), options=options)


def _run_job(args: argparse.Namespace, beam_args: list[str], spec: features.DatasetSpec, work: plan.Plan,
             run_info: RunInfo, clock: RunClock) -> bool:
    """Builds and runs the Beam job, which ends by finalizing the run; False for a dry run
    (built, not run).

    Raises:
      RunFailedError: the job did not finish.
    """
    from beam_pipeline import pipeline

    with _decoded_cache(args, beam_args) as cache:
        config = pipeline.RunConfig(args.output_dir, spec, _read_options(args), _chunk_bytes(args), args.compression,
                                    cache)
        return _build_and_run(config, args, beam_args, work, run_info, clock)


@contextlib.contextmanager
def _decoded_cache(args: argparse.Namespace, beam_args: list[str]):
    """A temporary local directory for the decoded training values (reading/decoded_cache.py),
    removed when the job ends; None where workers may be on other machines, or if turned off."""
    if args.no_decoded_cache or not _in_process(beam_args):
        yield None
        return
    _remove_stale_caches(tempfile.gettempdir())
    directory = tempfile.mkdtemp(prefix=f"{_CACHE_PREFIX}{os.getpid()}-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_CACHE_PREFIX = "npy-tft-decoded-"


def _remove_stale_caches(parent: str) -> None:
    """Removes the cache directories of runs that were killed (their process is gone): a
    killed process cannot remove its own."""
    for name in os.listdir(parent):
        pid = name[len(_CACHE_PREFIX):].split("-")[0]
        if name.startswith(_CACHE_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)   # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, under another user
        return True
    return True


def _build_and_run(config, args: argparse.Namespace, beam_args: list[str], work: plan.Plan, run_info: RunInfo,
                   clock: RunClock) -> bool:
    """_run_job's job, given its config (a pipeline.RunConfig)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import StandardOptions, TestOptions

    from beam_pipeline import pipeline, progress

    p = _new_pipeline(beam_args)
    pipeline.build_pipeline(p, config, work, run_info, clock)
    # TensorFlow, Beam and the built job leave millions of long-lived objects that Python's
    # cyclic collector would otherwise rescan again and again while the data flows (~1.5 s
    # of CPU per GB measured); freezing them keeps them out of every later collection.
    gc.freeze()
    dry_run = p.options.view_as(TestOptions).dry_run
    # Workers elsewhere (remote runners, worker processes): say what the runner knows meanwhile.
    watch = not (_workers_are_threads(beam_args) or args.quiet or dry_run)
    try:
        with progress.JobWatcher() if watch else contextlib.nullcontext() as watcher:
            result = p.run()
            if watcher is not None:
                watcher.started(result)
            state = None if dry_run else result.wait_until_finish()
    except Exception as e:  # noqa: BLE001 - whatever a step raised, in one line (the traceback with -v)
        raise RunFailedError(failures.worker_cause(e) or f"the job failed: {failures.describe(e)}") from e
    if dry_run:
        runner = p.options.view_as(StandardOptions).runner
        print(f"dry run: the job was built for {runner} but not run; nothing was written", flush=True)
        return False
    if state not in (None, beam.runners.runner.PipelineState.DONE):
        raise RunFailedError(f"the pipeline ended in state {state}")
    return True


def _summary_line(m: Manifest, output_dir: str) -> str:
    parts = []
    for split, s in m.splits.items():
        parts.append(f"{split}: {s.examples_written}/{s.examples_read} examples written, "
                     f"{s.examples_quarantined} quarantined, {s.examples_truncated} truncated, "
                     f"{s.files_quarantined}/{s.files_matched} files quarantined, {len(s.shards)} shards")
    return "; ".join(parts) + f". Output: {output_dir} ({outputs.MANIFEST})"


def _totals(tasks: list[plan.FileTask], samples: dict[str, int]):
    from beam_pipeline import progress

    return progress.Totals(len(tasks), sum(plan.input_bytes(t, samples.get(t.path, 0)) for t in tasks))


def run(argv: list[str] | None = None) -> Manifest | None:
    """Runs the whole job and returns the manifest (None for a dry run).

    Raises:
      UsageError: bad flags, empty globs, or a completed output without --overwrite.
      RunFailedError: the job failed, or more bad input than --max_bad_fraction allows.
    """
    started = time.time()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, beam_args = parse_args(argv)
    check_args(args, beam_args)
    from beam_pipeline import progress

    progress.TRACKER.reset()
    with progress.Display(console.stderr_is_terminal(), enabled=not args.quiet) as display:
        matched = _match_inputs(args)
        _prepare_output(args.output_dir, args.overwrite)
        with _removed_on_failure(args.output_dir):
            display.expect("scan", _totals([t for tasks in matched.values() for t in tasks], {}))
            # TensorFlow and tf.Transform load only now, so usage errors above stay fast and quiet.
            spec, work, samples = _plan(args, matched)
            display.expect("analyze", _totals([t for group in work.analysis for t in group], samples))
            display.expect("write", _totals([t for shard in work.shards for t in shard.tasks], samples))
            if not args.quiet:
                print("building the job (TensorFlow loads, tf.Transform traces the graph) ...", file=sys.stderr,
                      flush=True)
            from beam_pipeline import pipeline
            from beam_pipeline.finalize import finalize

            run_info = finalize.RunInfo(args.output_dir, spec, matched, argv, args.compression,
                                        args.max_bad_fraction)
            clock = pipeline.RunClock(started, time.time(), phases_seen=_workers_are_threads(beam_args))
            if not _run_job(args, beam_args, spec, work, run_info, clock):
                return None
            m = _finalized_manifest(run_info)
    print(_summary_line(m, args.output_dir), flush=True)
    return m


def _finalized_manifest(run_info: RunInfo) -> Manifest:
    """The manifest the job's finalize step wrote.

    Raises:
      TooMuchBadInputError: the run had too much bad input.
      RunFailedError: the job ended without finalizing.
    """
    from apache_beam.io.filesystems import FileSystems

    from beam_pipeline.finalize import finalize

    out = run_info.output_dir
    try:
        with FileSystems.open(FileSystems.join(out, outputs.MANIFEST)) as f:
            m = manifest.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise RunFailedError(f"the job ended without writing {outputs.MANIFEST} in {out}: {e}") from e
    if not FileSystems.exists(FileSystems.join(out, outputs.SUCCESS)):
        bad_input = finalize.too_much_bad_input(m, run_info.max_bad_fraction)
        if bad_input:
            raise finalize.TooMuchBadInputError(bad_input)
        raise RunFailedError(f"the job ended without marking {out} complete ({outputs.SUCCESS})")
    return m


@contextlib.contextmanager
def _removed_on_failure(output_dir: str) -> Iterator[None]:
    """A run that fails or is interrupted leaves nothing in output_dir: no later run can use
    any of it (each starts by clearing it), and a full disk must not stay full. Except too
    much bad input: that run's manifest and quarantine file say what was wrong."""
    from beam_pipeline.finalize.finalize import TooMuchBadInputError

    with console.on_interrupt(lambda: _remove_entries(output_dir)):
        try:
            yield
        except TooMuchBadInputError:
            raise
        except BaseException:
            try:
                _remove_entries(output_dir)
            except Exception as e:  # noqa: BLE001 - the run's own failure is the one to report
                logging.warning("could not remove the failed run's files from %s: %s", output_dir, e)
            raise


def _keep_freed_memory() -> None:
    """Has glibc's malloc keep freed buffers for reuse rather than unmap each one.

    The passes allocate and free buffers of tens of MB per batch; above its mmap threshold
    malloc maps and unmaps each, and with several threads the page faults and TLB
    shootdowns cost seconds of system time per GB (measured at 1 GB: 21 s -> 18.5 s wall,
    same peak RSS within 10%). A no-op where libc is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for option, value in ((_M_MMAP_THRESHOLD, 256 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 256 << 20)):
        libc.mallopt(option, value)


# mallopt() parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def _workers_run_this_python() -> None:
    """Puts this interpreter's directory first on PATH, for the SDK workers Beam starts as
    `python` (LOOPBACK with --experiments=use_loopback_process_worker, as on Flink): another
    interpreter dies with "No module named 'apache_beam'" and the runner waits for it forever."""
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the job and exits with a reliable status code (see
    cli_support/console.py): 0 success, 1 failed, 2 usage error."""
    verbose, _ = console.verbosity_parser(quiet=True).parse_known_args(sys.argv[1:] if argv is None else argv)
    console.setup(verbose.verbose)
    _keep_freed_memory()
    _workers_run_this_python()
    console.run_main(run, argv, interrupted="interrupted", crashed="the pipeline failed")
