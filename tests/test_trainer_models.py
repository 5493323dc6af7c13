"""The trainer with the user's own model (--model), XLA (--jit_compile) and mixed precision
(--mixed_precision), on CPU: each trains, exports, and serves what the trained model computes."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.support.helpers import REPO
from tests.support.serving import assert_serving_matches_the_model
from tests.test_trainer import _config, sequences  # noqa: F401  (a fixture)
from trainer import data, model, train, user_model
from trainer.config import TrainConfig
from trainer.errors import ConfigError

EXAMPLE = os.path.join(REPO, "docs", "example_model.py") + ":build"


def _final_model(data_dir: str, model_dir: str, config: TrainConfig) -> keras.Model:
    with model.precision(config.mixed_precision):
        net = model.make_model(data.load(data_dir), config)
    net.load_weights(os.path.join(model_dir, "checkpoints", train.FINAL_CHECKPOINT)).expect_partial()
    return net


def test_a_users_model_from_a_file_trains_exports_and_serves_what_it_computes(sequences, tmp_path):  # noqa: F811
    config = _config(sequences[0], tmp_path, model=EXAMPLE)
    metrics = train.train(config)
    assert metrics.model == "example_gru" and metrics.eval["accuracy"] >= 0.6  # 3 classes: it learns
    net = _final_model(sequences[0], str(tmp_path), config)
    assert net.name == "example_gru"
    assert_serving_matches_the_model(net, sequences[0], sequences[1], str(tmp_path))


def test_a_model_is_named_by_module_or_file_and_a_bad_one_is_refused(tmp_path):
    assert user_model.load("trainer.model:build_model") is model.build_model
    for spec, message in (("no_function", "expected MODULE:FUNCTION"), ("no_such_module:f", "cannot import"),
                          (str(tmp_path / "none.py") + ":f", "no file"), ("trainer.model:nothing", "no function")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            user_model.load(spec)
    with pytest.raises(ConfigError, match="not a tf_keras Model"):
        user_model.checked(tf.keras.layers.Dense(1), "m:f")
    x = keras.Input((3,), name="features")
    with pytest.raises(ConfigError, match=re.escape("the model's inputs are ['features']")):
        user_model.checked(keras.Model(x, keras.layers.Dense(2)(x)), "m:f")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_xla_and_mixed_precision_train_with_float32_logits_and_serve(sequences, tmp_path, policy):  # noqa: F811
    config = _config(sequences[0], tmp_path, jit_compile=True, mixed_precision=policy, epochs=3)
    metrics = train.train(config)
    assert (metrics.jit_compile, metrics.mixed_precision) == (True, policy)
    assert np.isfinite(metrics.train["loss"]) and metrics.eval["accuracy"] >= 0.8
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training
    net = _final_model(sequences[0], str(tmp_path), config)
    assert {layer.compute_dtype for layer in net.layers} >= {policy.split("_")[1], "float32"}  # hidden: 16 bits
    assert net.output.dtype == tf.float32
    assert_serving_matches_the_model(net, sequences[0], sequences[1], str(tmp_path))
