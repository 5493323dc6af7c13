"""Command line: `python -m trainer --data_dir out/ --model_dir model/ [--epochs 10] [--strategy auto]`.

Exit codes: 0 success; 1 training failed; 2 a usage error (bad flags, an incomplete or
unusable data_dir, settings that do not fit the data or devices).
"""

from __future__ import annotations

import os

# Before TensorFlow loads: keep its C++ info logs out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

from trainer import config as cfg  # noqa: E402
from trainer.errors import TrainerError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The trainer's flags."""
    defaults = cfg.TrainConfig(data_dir="", model_dir="")
    p = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train a classifier on the preprocessing pipeline's TFRecord shards, evaluate it after "
                    "every epoch, and export a serving SavedModel that takes raw tf.train.Examples.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = p.add_argument_group("input and output")
    io.add_argument("--data_dir", required=True,
                    help="the pipeline's --output_dir (needs its _SUCCESS): reads data/train-*, data/eval-*")
    io.add_argument("--model_dir", required=True,
                    help="receives logs/ (TensorBoard), checkpoints/, backup/, serving/ and metrics.json; "
                         "a gs:// path on Cloud TPU")
    fit = p.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the training split")
    fit.add_argument("--batch_size", type=int, default=defaults.batch_size,
                     help="global batch size, split evenly over the replicas")
    fit.add_argument("--learning_rate", type=float, default=defaults.learning_rate, help="Adam learning rate")
    fit.add_argument("--steps_per_execution", type=int, default=defaults.steps_per_execution,
                     help="batches per compiled call; raise it (e.g. 32) on TPU, where each call has a fixed cost")
    fit.add_argument("--width", type=int, default=defaults.width, help="channels of the model's hidden layers")
    fit.add_argument("--seed", type=int, default=defaults.seed, help="seed of initialization and shuffling")
    fit.add_argument("--verbose", type=int, choices=(0, 1, 2), default=defaults.verbose,
                     help="0 silent, 1 progress bar, 2 one line per epoch")
    dev = p.add_argument_group("devices")
    dev.add_argument("--strategy", choices=cfg.STRATEGIES, default=defaults.strategy,
                     help="auto: tpu if --tpu (or TPU_NAME) is set, mirrored on 2+ GPUs, else default (one device)")
    dev.add_argument("--tpu", default=defaults.tpu,
                     help="Cloud TPU name, grpc:// address, or 'local' on a TPU VM (implies --strategy tpu under auto)")
    aug = p.add_argument_group("augmentation (training only, off by default)")
    aug.add_argument("--augment", nargs="+", choices=cfg.AUGMENTATIONS, default=list(defaults.augment),
                     help="sequences: noise (gaussian, valid steps only), shift (random rotation within the valid "
                          "length); images: flip_lr, flip_ud (random flips)")
    aug.add_argument("--noise_stddev", type=float, default=defaults.noise_stddev,
                     help="stddev of the noise augmentation, in normalized units")
    inp = p.add_argument_group("input pipeline")
    inp.add_argument("--shuffle_buffer", type=int, default=defaults.shuffle_buffer,
                     help="records in the shuffle buffers, all length buckets together "
                          f"(capped at {cfg.MAX_SHUFFLE_BYTES >> 20} MiB of records)")
    inp.add_argument("--blocks_per_batch", type=int, default=defaults.blocks_per_batch,
                     help="records are read and shuffled in blocks of batch / blocks_per_batch consecutive records of "
                          "one shard, so a batch mixes this many blocks; fewer is faster, more mixes better "
                          "(the per-replica batch size: single records, the slowest)")
    inp.add_argument("--cycle_length", type=int, default=defaults.cycle_length,
                     help="shards read concurrently (per length bucket)")
    inp.add_argument("--throughput_batches", type=int, default=defaults.throughput_batches,
                     help="batches timed to measure the input pipeline's examples/s (reported in metrics.json)")
    return p


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parses flags, trains, and returns the metrics (also written to model_dir/metrics.json).

    Raises:
      TrainerError: an unusable data_dir or settings that do not fit it.
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    config = cfg.TrainConfig(**{**vars(args), "augment": tuple(args.augment)})
    from trainer import data, train  # TensorFlow loads here, once the flags are known to be good

    metrics = train.train(config)
    summary = {k: metrics[k] for k in (data.TRAIN, data.EVAL, "input_examples_per_sec") if k in metrics}
    print(f"final metrics: {json.dumps(summary)} ({metrics['model']}, {metrics['epochs_run']} epochs run; "
          f"written to {config.model_dir}/{train.METRICS_FILE})", flush=True)
    return metrics


def main(argv: list[str] | None = None) -> None:
    """Console entry point: trains and exits with a reliable status code.

    A process that ran tf.Transform code can segfault while tearing down protobuf objects
    at interpreter exit (exit 139 after a complete run). Once outputs are written and the
    streams flushed there is nothing left to finalize, so the process leaves with os._exit
    and the status reflects the run, not the teardown.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    code = 1
    try:
        run(argv)
        code = 0
    except SystemExit as e:  # argparse: --help (0) or bad flags (2)
        code = e.code if isinstance(e.code, int) else 2
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("error: interrupted (start again with the same flags to resume from the last epoch)",
              file=sys.stderr)
        code = 130
    except BaseException as e:  # noqa: BLE001 - report, then exit non-zero
        traceback.print_exc()
        print(f"error: training failed: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
