"""Regression and unlabeled runs in the trainer: the default model (the classifier's network
with one output) learns a float target, serving answers in the target's original units on
raw Examples, and unlabeled data is refused."""

import os

import numpy as np
import pytest

from tests.support.helpers import read_split, run_ok, write_ragged
from tests.support.serving import raw_eval_samples, serve
from trainer import data, model, outputs, train
from trainer.config import TrainConfig
from trainer.errors import DataError

OFFSET, SCALE = 500.0, 40.0   # targets far from 0 with a std far from 1: standardization matters


def _write(path, rng, n):
    """Samples whose channel 0 holds a level (plus noise); the target is that level, scaled."""
    levels = rng.normal(size=n)
    samples = [(rng.normal(size=(t, 2)) * 0.3 + [level, 0.0]).astype(np.float32)
               for t, level in zip(rng.integers(5, 16, n), levels)]
    targets = OFFSET + SCALE * levels
    write_ragged(path, samples, targets)
    return targets


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """Float targets that are a function of the samples (the mean of channel 0), standardized."""
    root = tmp_path_factory.mktemp("regression")
    (root / "npz").mkdir()
    rng = np.random.default_rng(5)
    for i in range(4):
        _write(str(root / "npz" / f"train-{i}.npz"), rng, 128)
    targets = _write(str(root / "npz" / "test-00000.npz"), rng, 48)
    out = str(root / "out")
    run_ok("--input", str(root / "npz" / "train-*.npz"), "--eval_input", str(root / "npz" / "test-*.npz"),
           "--output_dir", out, "--label_type", "regression", "--standardize_target")
    return out, str(root / "npz"), targets


@pytest.fixture(scope="module")
def trained(regression, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model"))
    metrics = train.train(TrainConfig(regression[0], model_dir, epochs=10, batch_size=32, width=16, progress=0,
                                      validation_fraction=0.2))
    return metrics, model_dir


def test_regression_learns_and_reports_mse_and_mae(trained):
    metrics, model_dir = trained
    assert metrics.task == "regression"
    # Standardized units: always predicting the mean scores an MSE of about 1 (measured: 0.21).
    assert metrics.eval["mse"] < 0.6 and metrics.eval["mae"] < 0.65, metrics.eval
    assert metrics.eval["mse"] <= metrics.eval["loss"]   # the loss adds the head's weight penalty
    with open(os.path.join(model_dir, outputs.METRICS_FILE)) as f:
        written = outputs.loads(f.read())
    assert written == metrics and written.headline("eval") == metrics.eval["mae"]   # judged by MAE


def test_serving_answers_in_original_units_and_matches_the_model(regression, trained):
    data_dir, npz_dir, targets = regression
    info = data.load(data_dir)
    net = model.build_model(info, width=16)
    net.load_weights(os.path.join(trained[1], "checkpoints", train.FINAL_CHECKPOINT)).expect_partial()
    records = read_split(data_dir, "eval")
    samples, _ = raw_eval_samples(npz_dir)
    assert records["length"].tolist() == [len(s) for s in samples]
    t = info.manifest.statistics.target
    standardized = net({"x": records["x"], "length": records["length"]}).numpy()[:, 0]
    served = serve(trained[1], samples)["value"]
    np.testing.assert_allclose(served, standardized * t.std + t.mean, rtol=1e-5)
    # In the target's units: well inside the spread of the targets (measured: 0.37 of it).
    assert np.abs(served - targets).mean() < 0.65 * targets.std()


def test_unlabeled_data_is_refused_with_one_clear_line(tmp_path):
    np.savez(tmp_path / "train-0.npz", x=np.random.default_rng(1).normal(size=(8, 4, 2)).astype(np.float32))
    run_ok("--input", str(tmp_path / "train-*.npz"), "--output_dir", str(tmp_path / "out"), "--label_type", "none")
    with pytest.raises(DataError, match=r"unlabeled data \(--label_type none\): there is nothing to fit") as e:
        data.load(str(tmp_path / "out"))
    assert "\n" not in str(e.value)


def test_the_default_model_has_one_output_for_regression(regression):
    """The shared network: regression changes only the head's width (and the loss)."""
    info = data.load(regression[0])
    assert (info.task, info.num_outputs, info.num_classes) == ("regression", 1, 0)
    assert model.build_model(info, width=8).output_shape == (None, 1)
