"""Preprocessing benchmark: our Beam + tf.Transform pipeline against a hand-written NumPy script
and against the stock tf.Transform pipeline.

`python -m benchmarks.preprocess [--scale 1] [--sides baseline ours stock] [--compare_ref REV]
[--memory_factor 4] [-- BEAM_FLAGS...]`

1. Generates (seeded, cached under --work_dir) ragged compressed .npz files: 64 * scale
   files of 2,000 samples, x [T_i in 50..200, 16] float32, int labels; about 1 GB of raw
   float32 at --scale 1. File i is the same at every scale, so 4x holds 1x.
2. Times, in the same run, each side as a subprocess run from its command line, one after
   the other, --repeats times (the fastest run of each counts):
   - baseline: `python -m benchmarks.handwritten` (one process, two NumPy passes, Example
     bytes built directly);
   - ours: `python -m beam_pipeline ... --num_shards 8` (its default in-process
     FnApiRunner);
   - stock: `python -m benchmarks.stock_tft` (tf.Transform as its documentation shows it:
     RecordBatches with a TensorAdapterConfig, AnalyzeAndTransformDataset,
     EncodeTransformedDataset, WriteToTFRecord; on Beam's in-process FnApiRunner);
   - ref, with --compare_ref REV: our pipeline as committed at REV, exported with
     `git archive` and run from that tree with the same flags, so before/after figures
     come from the same machine minutes.
   All read the same warm files and write 8 shards of the same records.
3. Prints, for each: wall time; wall time net of startup (the same command's time on a
   1-file, 16-sample dataset: imports, graph building, Beam stages, manifest); MB/s of raw
   input float32 and examples/s, both ways; CPU time, CPU seconds per GB of raw float32 and
   cores used; peak RSS (CPU and RSS from os.wait4 on the child: the largest RSS of the
   process or any child it waited for). Then the ratios of every side over the baseline and
   of ours over stock and over ref.
4. With --memory_factor F, runs our pipeline again on F times the data and prints the
   ratio of peak RSS.
5. Checks every output against the baseline's: all examples in 8 shards, the same records
   (labels, lengths and values, compared order-independently within float tolerance), the
   transformed feature spec, and our manifests' statistics.

The pieces: synthetic_data.py generates (1), measurement.py measures and compares (2, 3),
verification.py checks (5), source_tree.py exports --compare_ref's commit, profile_pipeline.py
runs --profile; this module runs them in order.

Extra flags after `--` go to our pipeline (e.g. `-- --direct_num_workers 2
--direct_running_mode multi_processing`); with processes, peak RSS is the largest single
process, not their sum.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks.measurement import Measured, Ratio, Result, Side, format_table, ratio_pairs, run_measured, warm_cache
from benchmarks.source_tree import code_version, export_commit, resolve_commit
from benchmarks.synthetic_data import (
    DEFAULT_WORK_DIR,
    NUM_SHARDS,
    OVERHEAD_FILES,
    OVERHEAD_SAMPLES,
    SAMPLES_PER_FILE,
    Dataset,
    ensure_dataset,
    files_for,
)
from benchmarks.verification import Verified, print_verified, verify_outputs


def pipeline_command(dataset: Dataset, output_dir: str, pipeline_args: list[str]) -> list[str]:
    """Our pipeline's command line, as a user runs it."""
    return [sys.executable, "-m", "beam_pipeline", "--input", dataset.pattern, "--output_dir", output_dir,
            "--num_shards", str(NUM_SHARDS), *pipeline_args]


def baseline_command(dataset: Dataset, output_dir: str) -> list[str]:
    """The hand-written baseline's command line."""
    return [sys.executable, "-m", "benchmarks.handwritten", "--input", dataset.pattern,
            "--output_dir", output_dir, "--num_shards", str(NUM_SHARDS)]


def stock_command(dataset: Dataset, output_dir: str) -> list[str]:
    """The stock tf.Transform pipeline's command line, run as its user would: no Beam flags."""
    return [sys.executable, "-m", "benchmarks.stock_tft", "--input", dataset.pattern,
            "--output_dir", output_dir, "--num_shards", str(NUM_SHARDS)]


SIDES = ("baseline", "ours", "stock")


def make_sides(keys: list[str], pipeline_args: list[str]) -> list[Side]:
    """The sides named by --sides, in the order they run."""
    ours = functools.partial(pipeline_command, pipeline_args=pipeline_args)
    every = (Side("baseline", "hand-written NumPy", baseline_command),
             Side("ours", "ours (Beam + tft)", ours, writes_manifest=True),
             Side("stock", "stock tf.Transform", stock_command))
    return [side for side in every if side.key in keys]


def ref_side(commit: str, tree: str, pipeline_args: list[str]) -> Side:
    """Our pipeline as it was at another commit, exported to `tree`, with the same flags."""
    return Side("ref", f"ref: ours at {commit}", functools.partial(pipeline_command, pipeline_args=pipeline_args),
                root=tree, writes_manifest=True)


def profile_pipeline(dataset: Dataset, output_dir: str, pipeline_args: list[str], profile_path: str,
                     log_path: str) -> str:
    """Runs our pipeline in-process under cProfile (main thread) and returns the top entries.

    TensorFlow's and zlib's C code show up as the time of the Python call that entered them.
    """
    flags = pipeline_command(dataset, output_dir, pipeline_args)[3:]  # after python -m beam_pipeline
    cmd = [sys.executable, "-m", "benchmarks.profile_pipeline", profile_path, *flags]
    run_measured(cmd, log_path)
    text = io.StringIO()
    pstats.Stats(profile_path, stream=text).sort_stats("tottime").print_stats(25)
    return text.getvalue()


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.preprocess", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.25,
                   help="dataset size: 64 * scale files (at least 1); 1 is ~1 GB of raw float32")
    p.add_argument("--samples_per_file", type=int, default=SAMPLES_PER_FILE, help="samples per file")
    p.add_argument("--seed", type=int, default=0, help="data generator seed")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES),
                   help="the sides to run (default: all); the baseline is required, every check and ratio "
                        "is against it. E.g. --sides baseline ours skips the slow stock tf.Transform side")
    p.add_argument("--compare_ref", metavar="REV",
                   help="also run our pipeline as it was at git revision REV (exported with git archive), "
                        "with the same flags, as the side 'ref'")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed runs of each side, alternating; the fastest of each counts")
    p.add_argument("--memory_factor", type=float, default=0,
                   help="also run our pipeline on this many times the data and report the peak-RSS ratio "
                        "(4 checks that memory stays flat in data size); 0 skips it")
    p.add_argument("--work_dir", default=DEFAULT_WORK_DIR,
                   help="cache of generated datasets; each run's outputs go to a fresh directory inside")
    p.add_argument("--keep_outputs", action="store_true", help="keep this run's output directories")
    p.add_argument("--profile", metavar="PATH",
                   help="also run our pipeline once under cProfile, write the profile to PATH, print its top")
    p.add_argument("--json_out", metavar="PATH", help="write every figure to this JSON file")
    p.add_argument("pipeline_args", nargs="*", metavar="-- BEAM_FLAGS",
                   help="flags passed on to our pipeline, and to ours at --compare_ref (after --)")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, checked against each other."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if "baseline" not in args.sides:
        parser.error("--sides must include baseline: every check and ratio is against it")
    if "ours" not in args.sides and (args.memory_factor or args.profile):
        parser.error("--memory_factor and --profile measure our pipeline: --sides must include ours")
    return args


def measure(sides: list[Side], dataset: Dataset, tiny: Dataset, repeats: int,
            out: Callable[[str], str]) -> tuple[dict[str, float], dict[str, list[Measured]]]:
    """Measures every side's startup on the tiny dataset, then runs the sides in turn, `repeats` times.

    Returns:
      Each side's startup seconds, and each side's runs.
    """
    overhead = {side.key: run_measured(side.command(tiny, out(f"{side.key}-startup")),
                                       out(f"{side.key}-startup.log"), side.root).seconds
                for side in sides}
    warm_cache(glob.glob(dataset.pattern))
    runs: dict[str, list[Measured]] = {side.key: [] for side in sides}
    for i in range(repeats):
        for side in sides:
            shutil.rmtree(out(side.key), ignore_errors=True)
            runs[side.key].append(run_measured(side.command(dataset, out(side.key)), out(f"{side.key}-{i}.log"),
                                               side.root))
            print(f"  {side.label}: {runs[side.key][-1].seconds:.1f} s", flush=True)
    return overhead, runs


def measure_memory(big: Dataset, factor: float, ours: Result, ours_runs: list[Measured], pipeline_args: list[str],
                   out: Callable[[str], str]) -> dict[str, Any]:
    """Runs our pipeline on `factor` times the data and prints its peak RSS over the largest at 1x.

    Returns:
      The figures, for the report.
    """
    warm_cache(glob.glob(big.pattern))
    scaled = run_measured(pipeline_command(big, out("ours-big"), pipeline_args), out("ours-big.log"))
    one_x = max(r.peak_rss_mb for r in ours_runs)
    big_result = Result(f"ours at {factor:g}x", scaled, ours.overhead_seconds, big)
    print(f"memory: {big.describe()}")
    print(format_table([ours, big_result]))
    print(f"peak RSS of ours at {factor:g}x / 1x data: {scaled.peak_rss_mb:.0f} / {one_x:.0f} MB = "
          f"{scaled.peak_rss_mb / one_x:.2f}x", flush=True)
    return {"factor": factor, "dataset": dataclasses.asdict(big), "peak_rss_mb_1x": one_x,
            "result": big_result.to_json(), "peak_rss_ratio": scaled.peak_rss_mb / one_x}


@dataclasses.dataclass(frozen=True)
class Timed:
    """The timed runs of every side: each side's runs, its best with the derived figures, and
    the ratios between sides."""

    runs: dict[str, list[Measured]]
    results: dict[str, Result]
    ratios: dict[str, Ratio]


def time_sides(sides: list[Side], dataset: Dataset, tiny: Dataset, repeats: int, out: Callable[[str], str]) -> Timed:
    """Measures the sides (the fastest run of each counts) and prints their figures and ratios."""
    overhead, runs = measure(sides, dataset, tiny, repeats, out)
    results = {side.key: Result(side.label, min(runs[side.key], key=lambda m: m.seconds), overhead[side.key],
                                dataset)
               for side in sides}
    ratios = {f"{key}/{other}": Ratio.of(results[key], results[other]) for key, other in ratio_pairs(list(results))}
    print(format_table(list(results.values())))
    for pair, ratio in ratios.items():
        print(f"{pair}: {ratio.describe()}", flush=True)
    return Timed(runs, results, ratios)


def report_of(command: list[str], code: dict[str, Any], ref: dict[str, str] | None, dataset: Dataset, timed: Timed,
              checked: dict[str, Verified], outputs: dict[str, str] | None) -> dict[str, Any]:
    """Every figure of the run, for --json_out."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"nproc": os.cpu_count(),
                    "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)},
        "command": ["python", "-m", "benchmarks.preprocess", *command],
        "code": code,
        "compare_ref": ref,
        "dataset": dataclasses.asdict(dataset),
        "results": {key: r.to_json() for key, r in timed.results.items()},
        "all_seconds": {key: [m.seconds for m in r] for key, r in timed.runs.items()},
        "verified": {"records": dataset.examples, "sides": {k: dataclasses.asdict(v) for k, v in checked.items()}},
        "ratios": {pair: dataclasses.asdict(r) for pair, r in timed.ratios.items()},
        "outputs": outputs,
    }


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the report."""
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    dataset = ensure_dataset(args.work_dir, files_for(args.scale), args.samples_per_file, args.seed)
    tiny = ensure_dataset(args.work_dir, OVERHEAD_FILES, OVERHEAD_SAMPLES, args.seed)
    big = None
    if args.memory_factor:
        big = ensure_dataset(args.work_dir, files_for(args.scale * args.memory_factor), args.samples_per_file,
                             args.seed)
    ref = {"rev": args.compare_ref, "commit": resolve_commit(args.compare_ref)} if args.compare_ref else None
    run_dir = tempfile.mkdtemp(dir=args.work_dir, prefix="run-")
    out = functools.partial(os.path.join, run_dir)
    code = code_version()
    sides = make_sides(args.sides, args.pipeline_args)
    if ref is not None:
        export_commit(ref["commit"], out("ref-tree"))
        sides.append(ref_side(ref["commit"], out("ref-tree"), args.pipeline_args))
    print(f"dataset: {dataset.describe()}\ncode: {code}\ncompare_ref: {ref}\nrun directory: {run_dir}", flush=True)

    timed = time_sides(sides, dataset, tiny, args.repeats, out)
    output_dirs = {side.key: out(side.key) for side in sides}
    checked = verify_outputs(sides, output_dirs, dataset)
    print_verified(checked, dataset.examples)
    report = report_of(sys.argv[1:] if argv is None else argv, code, ref, dataset, timed, checked,
                       output_dirs if args.keep_outputs else None)
    if big is not None:
        report["memory"] = measure_memory(big, args.memory_factor, timed.results["ours"], timed.runs["ours"],
                                          args.pipeline_args, out)
    if args.profile:
        print(profile_pipeline(dataset, out("profiled"), args.pipeline_args, args.profile, out("profile.log")))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)
    if not args.keep_outputs:
        shutil.rmtree(run_dir)


if __name__ == "__main__":
    main()
