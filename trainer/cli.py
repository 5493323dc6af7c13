"""Command line: `python -m trainer --data_dir out/ --model_dir model/ [--epochs 10] [--strategy auto]`.

Exit codes: 0 success; 1 training failed; 2 a usage error (bad flags, an incomplete or
unusable data_dir, settings that do not fit the data or devices).
"""

from __future__ import annotations

import argparse
import json
import sys

from cli_support import console, flags
from trainer import config as cfg
from trainer import outputs

# TensorFlow loads inside run(), after the flags are parsed and the console is set up.


def build_parser() -> argparse.ArgumentParser:
    """The trainer's flags."""
    defaults = cfg.TrainConfig(data_dir="", model_dir="")
    p = flags.StrictParser(
        prog="python -m trainer", parents=[console.verbosity_parser(quiet=False)],
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
    fit.add_argument("--epochs", type=int, default=defaults.epochs,
                     help="passes over the training split (an epoch: every training example once on average); "
                          "default: enough for about 300 steps (the default sequence model) or 1,500 (images, "
                          "--model), 10 to 300")
    fit.add_argument("--batch_size", type=int, default=defaults.batch_size,
                     help="global batch size, split evenly over the replicas; default: 64, or less so that the "
                          "training split fills 4 batches (8 at least); a batch larger than the split is refused")
    fit.add_argument("--learning_rate", type=float, default=defaults.learning_rate,
                     help="Adam's peak learning rate (cosine decay to 1%% of it over the run)")
    fit.add_argument("--validation_fraction", type=float, default=defaults.validation_fraction,
                     help="records held out of the training split (one in round(1/fraction) of each shard) to "
                          "select the best epoch on, if that makes 50 or more; else (or 0) none: training uses "
                          "every example and keeps the last epoch's weights")
    fit.add_argument("--model", default=defaults.model,
                     help="MODULE:FUNCTION or path/to/file.py:FUNCTION building your tf_keras model from the "
                          "run's DataInfo (see docs/training.md); default: the built-in model")
    fit.add_argument("--steps_per_execution", type=int, default=defaults.steps_per_execution,
                     help="batches per compiled call; raise it (e.g. 32) on TPU, where each call has a fixed cost")
    fit.add_argument("--width", type=int, default=defaults.width, help="channels of the image model's hidden layers")
    fit.add_argument("--seed", type=int, default=defaults.seed,
                     help="seed of initialization, shuffling and the default sequence model's random kernels")
    fit.add_argument("--progress", type=int, choices=(0, 1, 2), default=defaults.progress,
                     help="Keras' progress: 0 none, 1 a bar per epoch, 2 one line per epoch")
    dev = p.add_argument_group("devices")
    dev.add_argument("--strategy", choices=cfg.STRATEGIES, default=defaults.strategy,
                     help="auto: tpu if --tpu (or TPU_NAME) is set, mirrored on 2+ GPUs, else default (one device)")
    dev.add_argument("--jit_compile", action="store_true",
                     help="compile the training step with XLA (as TPUs do); shapes stay static per length bucket")
    dev.add_argument("--mixed_precision", choices=cfg.MIXED_PRECISION, default=defaults.mixed_precision,
                     help="compute in bfloat16 (TPU, recent GPUs) or float16 (GPUs, with loss scaling); "
                          "variables, logits and loss stay float32")
    dev.add_argument("--tpu", default=defaults.tpu,
                     help="Cloud TPU name, grpc:// address, or 'local' on a TPU VM (implies --strategy tpu under auto)")
    aug = p.add_argument_group("augmentation (training only)")
    aug.add_argument("--augment", nargs="+", choices=(*cfg.AUGMENTATIONS, "none"), default=None,
                     help="sequences: noise (gaussian, valid steps only), shift (random rotation within the valid "
                          "length); images: flip_lr, flip_ud (random flips); default: none")
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
                     help="before training, time this many batches of the input pipeline alone and report its "
                          "examples/s in metrics.json; 0: no measurement")
    return p


def run(argv: list[str] | None = None) -> outputs.TrainMetrics:
    """Parses flags, trains, and returns the metrics (also written to model_dir/metrics.json).

    Raises:
      TrainerError: an unusable data_dir or settings that do not fit it.
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    flags = {k: v for k, v in vars(args).items() if k != "verbose"}
    augment = None if args.augment is None else tuple(a for a in args.augment if a != "none")
    config = cfg.TrainConfig(**{**flags, "augment": augment})
    from trainer import data, train  # TensorFlow loads here, once the flags are known to be good

    metrics = train.train(config)
    summary = {k: getattr(metrics, k) for k in (data.TRAIN, data.VALIDATION, data.EVAL, "input_examples_per_sec")
               if getattr(metrics, k) is not None}
    print(f"final metrics: {json.dumps(summary)} ({metrics.model}, {metrics.epochs_run} epochs run; "
          f"written to {config.model_dir}/{outputs.METRICS_FILE})", flush=True)
    return metrics


def main(argv: list[str] | None = None) -> None:
    """Console entry point: trains and exits with a reliable status code (see
    cli_support/console.py): 0 success, 1 failed, 2 usage error, 130 interrupted."""
    verbose, _ = console.verbosity_parser(quiet=False).parse_known_args(sys.argv[1:] if argv is None else argv)
    console.setup(verbose.verbose)
    console.run_main(run, argv, crashed="training failed",
                     interrupted="interrupted (start again with the same flags to resume from the last epoch)")
