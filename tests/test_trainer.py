"""Training end to end: the model learns, padding cannot change a prediction, length-bucketed runs
train and serve like the rest, an interrupted run resumes, serving on raw Examples matches training,
MirroredStrategy over 2 CPUs, the CLI."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from beam_pipeline.sample_data import write_dataset
from tests.support import mounts
from tests.support.helpers import REPO, manifest, noise_lines, read_split, run_ok
from tests.support.serving import assert_serving_matches_the_model, raw_eval_samples, serve
from trainer import data, export, model, outputs, train
from trainer.config import TrainConfig
from trainer.errors import ConfigError

BATCH = 32
# The default sequence model's linear head needs about 20 epochs of these 192 examples to rely on
# the level, which alone tells their classes, over 10,000 random-convolution features (12 scored
# 0.92 to 0.98 on the eval split; its own plan's 50 epochs 0.98 to 1.0).
EPOCHS = 20
VALIDATION_FRACTION = 0.25  # 256 training examples: 0.1 would hold out fewer than the 50 a validation needs
IMAGE_SIZE = 12
IMAGE_CLASSES = ("top", "middle", "bottom")


def _preprocess(root, *flags, name: str = "out") -> str:
    out = str(root / name)
    run_ok("--input", str(root / "npz" / "train-*.npz"), "--eval_input", str(root / "npz" / "test-*.npz"),
           "--output_dir", out, *flags)
    return out


def _config(data_dir, model_dir, **overrides) -> TrainConfig:
    return TrainConfig(str(data_dir), str(model_dir), **{
        "epochs": EPOCHS, "batch_size": BATCH, "progress": 0, "validation_fraction": VALIDATION_FRACTION, **overrides})


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    """The sample data (variable-length [T, 8] sequences, 3 classes); one eval file keeps its order."""
    root = tmp_path_factory.mktemp("sequences")
    write_dataset(str(root / "npz"), train_files=4, test_files=1, per_file=64)
    return _preprocess(root), str(root / "npz")


@pytest.fixture(scope="module")
def bucketed_sequences(sequences):
    """The same samples in length buckets: each stored padded to the smallest of 20, 35, 50 that holds it."""
    npz_dir = sequences[1]
    return _preprocess(Path(npz_dir).parent, "--length_buckets", "20,35", name="bucketed"), npz_dir


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12x12 fixed-shape images with string labels: the class is which band of 4 rows is bright
    (so left-right flips keep it)."""
    root = tmp_path_factory.mktemp("images")
    os.makedirs(root / "npz")
    rng = np.random.default_rng(5)
    for name, n in (("train-00000", 240), ("test-00000", 60)):
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        for i, label in enumerate(y):
            x[i, 4 * label:4 * label + 4] += 2.0
        np.savez(root / "npz" / f"{name}.npz", x=x, y=np.array(IMAGE_CLASSES)[y])
    return _preprocess(root, "--per_element"), str(root / "npz")


class _TraceCount(keras.callbacks.Callback):
    """How many times Keras traced its train function (a retrace per input shape would add more)."""

    def on_train_end(self, logs=None):
        self.traces = self.model.train_function.experimental_get_tracing_count()


def _train_counting_traces(data_dir, model_dir) -> tuple[dict, str, int]:
    traces = _TraceCount()
    metrics = train.train(_config(data_dir, model_dir), extra_callbacks=[traces])
    return metrics, str(model_dir), traces.traces


@pytest.fixture(scope="module")
def trained_sequences(sequences, tmp_path_factory):
    return _train_counting_traces(sequences[0], tmp_path_factory.mktemp("model_seq"))


@pytest.fixture(scope="module")
def trained_bucketed(bucketed_sequences, tmp_path_factory):
    return _train_counting_traces(bucketed_sequences[0], tmp_path_factory.mktemp("model_bucketed"))


@pytest.fixture(scope="module")
def trained_images(images, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model_img")
    return train.train(_config(images[0], model_dir, augment=("flip_lr",), epochs=6)), str(model_dir)


def _backup_files(model_dir) -> list[str]:
    """BackupAndRestore's checkpoint files (it keeps them in a subdirectory per worker)."""
    return [f for _, _, files in os.walk(os.path.join(model_dir, "backup")) for f in files if f.endswith(".index")]


def test_the_sequence_model_learns_and_writes_every_output(sequences, trained_sequences):
    metrics, model_dir, _ = trained_sequences
    assert metrics.model == "minirocket_linear"
    assert metrics.eval["accuracy"] >= 0.95 and metrics.train["accuracy"] >= 0.9
    assert metrics.eval["loss"] < 0.5
    # 256 training examples, one in 4 of each shard's records held out for validation.
    held = sum(s["examples"] // 4 for s in manifest(sequences[0])["splits"]["train"]["shards"])
    assert metrics.examples == {"train": 256 - held, "validation": held, "eval": 64} and held >= 50
    steps = math.ceil(metrics.examples["train"] / BATCH)
    assert (metrics.epochs_run, metrics.steps_per_epoch, metrics.length_buckets) == (EPOCHS, steps, [50])
    assert 1 <= metrics.best_epoch <= EPOCHS and metrics.validation["accuracy"] >= 0.9
    assert metrics.input_examples_per_sec is None  # measured only when asked for
    assert len(metrics.epoch_seconds) == EPOCHS and sum(metrics.epoch_seconds) <= metrics.train_seconds
    assert (metrics.strategy, metrics.num_replicas) == ("default", 1)  # "auto" on a CPU-only host
    with open(os.path.join(model_dir, outputs.METRICS_FILE)) as f:
        assert outputs.loads(f.read()) == metrics
    assert tf.io.gfile.glob(os.path.join(model_dir, "logs", "train", "events.out.tfevents.*"))
    assert tf.io.gfile.glob(os.path.join(model_dir, "logs", "validation", "events.out.tfevents.*"))
    assert os.path.exists(os.path.join(model_dir, "checkpoints", f"epoch-{EPOCHS:03d}.index"))
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith(train.FINAL_CHECKPOINT)
    assert not _backup_files(model_dir)  # removed on completion
    assert os.path.exists(os.path.join(model_dir, "serving", "saved_model.pb"))


def test_the_image_model_learns_with_flips(trained_images):
    metrics, _ = trained_images
    assert metrics.model == "image_cnn"
    assert metrics.eval["accuracy"] >= 0.9


def _trained_model(data_dir: str, model_dir: str) -> tuple[keras.Model, data.DataInfo]:
    info = data.load(data_dir)
    net = model.build_model(info)
    net.load_weights(os.path.join(model_dir, "checkpoints", train.FINAL_CHECKPOINT)).expect_partial()
    return net, info


def test_padding_cannot_change_a_prediction(sequences, trained_sequences):
    net, _ = _trained_model(sequences[0], trained_sequences[1])
    records = read_split(sequences[0], "eval")
    want = net({"x": records["x"], "length": records["length"]}).numpy()
    # Garbage in the padding, and 16 more padded steps (the same model: it takes any length).
    x = records["x"].copy()
    steps = np.arange(x.shape[1])[None, :]
    x[steps >= records["length"][:, None]] = 1e3
    x = np.concatenate([x, np.full((len(x), 16, x.shape[2]), -7.0, np.float32)], axis=1)
    got = net({"x": x, "length": records["length"]}).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Less padding: the samples that fit in 30 steps, cut to 30 (as a length bucket stores them).
    fits = records["length"] <= 30
    assert 0 < fits.sum() < len(fits)
    got = net({"x": records["x"][fits, :30], "length": records["length"][fits]}).numpy()
    np.testing.assert_allclose(got, want[fits], rtol=1e-5, atol=1e-5)


def test_a_bucketed_run_trains_with_one_traced_train_function(bucketed_sequences, trained_bucketed,
                                                              trained_sequences):
    metrics, _, traces = trained_bucketed
    info = data.with_validation(data.load(bucketed_sequences[0]), VALIDATION_FRACTION)
    assert metrics.length_buckets == [20, 35, 50]
    # An epoch sees every training example once on average: no bucket's remainder is left out.
    steps = math.ceil(info.splits["train"].num_examples / BATCH)
    assert metrics.steps_per_epoch == steps > sum(b.num_examples // BATCH for b in info.splits["train"].buckets)
    assert metrics.eval["accuracy"] >= 0.9 and metrics.train["accuracy"] >= 0.9  # 36 steps: it learns
    # Batches of three shapes, yet no more traces than with one shape: the graph has a None time dimension.
    assert traces == trained_sequences[2]


@pytest.mark.parametrize("kind", ["sequences", "images"])
def test_an_empty_batch_gets_no_predictions(kind, request):
    # tf.distribute gives a replica an empty batch, unknown dimensions 0, when evaluation data
    # ends mid-step; oneDNN's convolution alone would return a wrongly shaped result for it.
    data_dir = request.getfixturevalue(kind)[0]
    net, info = _trained_model(data_dir, request.getfixturevalue(f"trained_{kind}")[1])
    shapes = [(0, *info.x_shape)] if info.is_image else [(0, *info.x_shape), (0, 0, *info.x_shape[1:])]
    for shape in shapes:
        assert net({"x": np.zeros(shape, np.float32), "length": np.zeros([0], np.int64)}).shape == (0, 3)


class _InterruptedError(Exception):
    pass


class _InterruptAfter(keras.callbacks.Callback):
    """Stops training like a crash would, after the given (0-based) epoch was backed up."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _InterruptedError()


def test_an_interrupted_run_resumes_after_the_last_completed_epoch(sequences, tmp_path):
    config = _config(sequences[0], tmp_path / "model", epochs=4)
    with pytest.raises(_InterruptedError):
        train.train(config, extra_callbacks=[_InterruptAfter(1)])
    assert _backup_files(tmp_path / "model")
    assert not (tmp_path / "model" / "metrics.json").exists()
    metrics = train.train(config)
    assert (metrics.first_epoch, metrics.epochs_run) == (3, 2)
    assert metrics.eval["accuracy"] >= 0.8  # (4 epochs)


def test_settings_that_do_not_fit_the_data_are_refused(sequences, tmp_path):
    train_examples = data.with_validation(data.load(sequences[0]), VALIDATION_FRACTION).splits["train"].num_examples
    with pytest.raises(ConfigError, match=re.escape(f"larger than the {train_examples} training examples (after")):
        train.train(_config(sequences[0], tmp_path, batch_size=train_examples + 1))
    with pytest.raises(ConfigError, match="must be >= 1"):
        train.train(_config(sequences[0], tmp_path, epochs=0))
    with pytest.raises(ConfigError, match="does not apply to sequences"):
        train.train(_config(sequences[0], tmp_path, augment=("flip_ud",)))


def test_model_selection_restores_the_best_validated_epoch():
    net = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    best = train.BestWeights()
    best.set_model(net)
    for epoch, logs in enumerate([{"val_accuracy": 0.5, "val_loss": 1.0}, {"val_accuracy": 0.7, "val_loss": 2.0},
                                  {"val_accuracy": 0.7, "val_loss": 1.5}, {"val_accuracy": 0.6, "val_loss": 0.1},
                                  {}]):  # the last epoch was not validated
        net.set_weights([np.full((2, 1), float(epoch), np.float32), np.zeros(1, np.float32)])
        best.on_epoch_end(epoch, logs)
    best.on_train_end()
    # Accuracy first, then the lower loss: the third epoch.
    assert best.best_epoch == 3 and net.get_weights()[0][0, 0] == 2.0  # its weights (set to the epoch index)


def test_left_out_settings_fit_the_data():
    # A batch the training split fills 4 times (8 at least, 64 at most), a multiple of the replicas.
    assert [train.auto_batch_size(n, 1) for n in (3, 20, 36, 100, 255, 256, 10**6)] == [3, 8, 8, 16, 32, 64, 64]
    assert [train.auto_batch_size(n, 2) for n in (3, 36)] == [2, 8]


def test_the_plan_sees_every_example_once_per_epoch_and_enough_steps(sequences):
    info = data.load(sequences[0])
    assert data.with_validation(info, 0.1) is info  # 25 validation examples are too few to select on
    # 256 training examples: batch 64, 4 steps per epoch. The default model's linear head needs
    # 300 steps: 75 epochs; a user's model 1,500 steps, which would take 375 epochs: capped.
    auto = train.plan(TrainConfig(sequences[0], ""), info, replicas=1)
    assert auto == train.Plan(64, math.ceil(model.LINEAR_HEAD_STEPS / 4), 4)
    users = TrainConfig(sequences[0], "", model="docs/example_model.py:build")
    assert train.plan(users, info, 1) == train.Plan(batch_size=64, epochs=train.MAX_AUTO_EPOCHS, steps_per_epoch=4)
    info = data.with_validation(info, VALIDATION_FRACTION)
    steps = math.ceil(info.splits["train"].num_examples / 32)  # 192 or so: batch 32, the last one runs over
    assert train.plan(users, info, 1) == train.Plan(32, math.ceil(train.MIN_STEPS / steps), steps)
    given = train.plan(TrainConfig(sequences[0], "", epochs=3, batch_size=100), info, 1)
    assert given == train.Plan(100, 3, math.ceil(info.splits["train"].num_examples / 100))


# --- serving ------------------------------------------------------------------------------

def _label_ids(data_dir: str, labels: np.ndarray) -> np.ndarray:
    vocabulary = manifest(data_dir)["label_vocabulary"]
    return np.array([vocabulary.index(str(v)) for v in labels]) if vocabulary else labels


@pytest.mark.parametrize("kind", ["sequences", "images"])
def test_serving_raw_examples_matches_the_model_on_transformed_records(kind, request):
    data_dir, npz_dir = request.getfixturevalue(kind)
    model_dir = request.getfixturevalue(f"trained_{kind}")[1]
    _, labels = raw_eval_samples(npz_dir)
    records = read_split(data_dir, "eval")
    # The records are the same samples in the same order.
    assert records["label"].tolist() == _label_ids(data_dir, labels).tolist()
    got = assert_serving_matches_the_model(_trained_model(data_dir, model_dir)[0], data_dir, npz_dir, model_dir)
    assert (got["class_id"] == records["label"]).mean() >= 0.9
    if kind == "images":  # string labels come back as names too
        assert (got["class_name"].astype(str) == labels).mean() >= 0.9


def test_serving_raw_examples_matches_the_model_on_bucketed_records(sequences, bucketed_sequences,
                                                                   trained_bucketed):
    data_dir, npz_dir = bucketed_sequences
    net, info = _trained_model(data_dir, trained_bucketed[1])
    samples, _ = raw_eval_samples(npz_dir)
    served = serve(trained_bucketed[1], samples)["probabilities"]
    # Which sample a bucketed record holds: the unbucketed run's records are the samples, in order.
    plain = read_split(sequences[0], "eval")
    sample_of = {(int(n), x[0].tobytes()): i for i, (x, n) in enumerate(zip(plain["x"], plain["length"]))}
    compared = 0
    for bucket in info.splits["eval"].buckets:
        records = tf.io.parse_example(next(iter(tf.data.TFRecordDataset(list(bucket.files)).batch(1000))),
                                      info.bucket_spec(bucket.length))
        x, length = records["x"].numpy(), records["length"].numpy()
        assert x.shape[1] == bucket.length < info.x_shape[0] or bucket.length == info.x_shape[0]
        want = tf.nn.softmax(net({"x": x, "length": length})).numpy()
        index = [sample_of[(int(n), xi[0].tobytes())] for xi, n in zip(x, length)]
        np.testing.assert_allclose(served[index], want, rtol=1e-4, atol=1e-5)
        compared += len(index)
    assert compared == len(samples) == 64 and len(info.splits["eval"].buckets) == 3


@pytest.mark.parametrize("kind", ["sequences", "images"])
def test_the_serving_model_loads_in_a_fresh_process_with_tensorflow_only(kind, request, tmp_path):
    data_dir, npz_dir = request.getfixturevalue(kind)
    serving_dir = os.path.join(request.getfixturevalue(f"trained_{kind}")[1], outputs.SERVING_DIR)
    requests = [export.raw_example(s) for s in raw_eval_samples(npz_dir)[0]]
    with tf.io.TFRecordWriter(str(tmp_path / "requests.tfrecord")) as writer:
        for r in requests:
            writer.write(r)
    # As on a serving host: importing tf.Transform here set TF_USE_LEGACY_KERAS, which would make
    # the child's TensorFlow load tf_keras.
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # The export must carry the transform graph and its assets (the images' label vocabulary):
    # the preprocessing run's copy is out of reach meanwhile.
    transform_fn = os.path.join(data_dir, "transform_fn")
    os.rename(transform_fn, transform_fn + ".away")
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.support.serve_fresh", serving_dir,
                               str(tmp_path / "requests.tfrecord"), str(tmp_path / "probabilities.npy")],
                              cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    finally:
        os.rename(transform_fn + ".away", transform_fn)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "modules: []" in proc.stdout
    here = tf.saved_model.load(serving_dir).signatures[export.SIGNATURE](examples=tf.constant(requests))
    np.testing.assert_allclose(np.load(tmp_path / "probabilities.npy"), here["probabilities"].numpy(), atol=1e-6)


# --- distribution and the CLI -------------------------------------------------------------

def test_mirrored_strategy_over_two_logical_cpus_trains_and_evaluates(sequences, bucketed_sequences, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tests.support.mirrored_train", sequences[0], str(tmp_path / "model"),
                           bucketed_sequences[0], str(tmp_path / "bucketed")],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["shapes"] == [[12, 50, 8]] * 2  # per-replica batches of the global 24
    metrics = outputs.TrainMetrics.from_json(result["metrics"])
    # An epoch: ceil(256 / 24) steps.
    assert (metrics.strategy, metrics.num_replicas, metrics.steps_per_epoch) == ("mirrored", 2, 11)
    # 64 eval examples: the last of 3 global batches is partial (16) and still evaluated.
    assert metrics.eval["accuracy"] >= 0.9
    # Length buckets: both replicas of a step get the same bucket; every bucket comes up.
    assert all(a == b for a, b in result["lengths"]) and {a for a, _ in result["lengths"]} == {20, 35, 50}
    bucketed = outputs.TrainMetrics.from_json(result["bucketed"])
    assert bucketed.steps_per_epoch == data.train_steps(data.load(bucketed_sequences[0]), 24)
    assert bucketed.eval["accuracy"] >= 0.9


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The trainer's CLI as a user runs it: no TF_* settings in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)


def test_cli_end_to_end_with_augmentation(sequences, tmp_path):
    model_dir = tmp_path / "model"
    proc = _cli("--data_dir", sequences[0], "--model_dir", str(model_dir), "--epochs", "3",
                "--batch_size", str(BATCH), "--augment", "noise", "shift", "--throughput_batches", "5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Epoch 3/3" in proc.stdout and "final metrics:" in proc.stdout
    assert not noise_lines(proc.stderr), proc.stderr
    metrics = outputs.loads((model_dir / outputs.METRICS_FILE).read_text())
    assert metrics.eval["accuracy"] >= 0.9 and metrics.epochs_run == 3
    assert (model_dir / "serving" / "saved_model.pb").exists()


def test_cli_refuses_an_incomplete_run_with_exit_code_2(sequences, tmp_path):
    incomplete = tmp_path / "out"
    incomplete.mkdir()
    (incomplete / "manifest.json").write_text((open(os.path.join(sequences[0], "manifest.json"))).read())
    proc = _cli("--data_dir", str(incomplete), "--model_dir", str(tmp_path / "model"))
    assert proc.returncode == 2
    assert "_SUCCESS" in proc.stderr and "Traceback" not in proc.stderr and not noise_lines(proc.stderr)
    # -v: the same error, with TensorFlow's logs back.
    verbose = _cli("--data_dir", str(incomplete), "--model_dir", str(tmp_path / "model"), "-v")
    assert verbose.returncode == 2 and "_SUCCESS" in verbose.stderr and noise_lines(verbose.stderr), verbose.stderr


def test_cli_failures_are_one_line_and_leave_no_partial_export(sequences, tmp_path):
    with mounts.read_only(tmp_path / "read-only") as read_only:
        proc = _cli("--data_dir", sequences[0], "--model_dir", str(read_only / "model"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (f"error: {mounts.read_only_kind()} while writing "
                                                    f"{read_only / 'model'}: choose another --model_dir")
    # A disk that fills up when the serving model is exported, after the epochs' checkpoints.
    with mounts.small_disk(tmp_path / "disk", "1m") as disk:
        proc = _cli("--data_dir", sequences[0], "--model_dir", str(disk / "model"), "--epochs", "1",
                    "--batch_size", str(BATCH), "--throughput_batches", "1")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert re.fullmatch(r"error: training failed: no space left on device \(.*No space left on device.*\): "
                            r"free space or write elsewhere \(-v shows the traceback\)",
                            proc.stderr.strip().splitlines()[-1]), proc.stderr[-3000:]
        assert not (disk / "model" / outputs.SERVING_DIR).exists()


def test_cli_help_documents_every_flag_and_bad_flags_exit_2():
    proc = _cli("--help")
    assert proc.returncode == 0
    from trainer.cli import build_parser

    for action in build_parser()._actions:
        assert action.help, action.dest
        assert all(flag in proc.stdout for flag in action.option_strings)
    proc = _cli("--data_dir", "out", "--model_dir", "model", "--strategy", "gpu")
    assert proc.returncode == 2 and "invalid choice: 'gpu'" in proc.stderr


@pytest.mark.parametrize("flag, meant", [("--model_d", "--model_dir"), ("--data", "--data_dir"),
                                         ("--epoch", "--epochs"), ("--batchsize", "--batch_size")])
def test_a_flag_the_trainer_does_not_have_is_refused_with_the_closest_one(flag, meant, tmp_path, capsys):
    # Abbreviations and typos alike: argparse's prefix matching once read --model as --model_dir.
    from trainer import cli

    given = {"--data_dir": str(tmp_path / "data"), "--model_dir": str(tmp_path / "model")}
    given.pop(meant, None)
    argv = [a for pair in given.items() for a in pair] + [flag, "3"]
    with pytest.raises(SystemExit) as exit_:
        cli.run(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"python -m trainer: error: unknown flag: {flag} (did you mean {meant}?); see --help"
    assert not (tmp_path / "model").exists() and not (tmp_path / "3").exists()


def test_the_trainer_needs_no_beam():
    code = ("import sys, trainer.cli, trainer.train; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'beam_pipeline', 'apache_beam'}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"
