"""The user's own model (--model MODULE:FUNCTION or --model path/to/file.py:FUNCTION).

FUNCTION(info: trainer.data.DataInfo) -> an uncompiled Keras model (tf_keras, Keras 2) from
{"x": [B, T, *trailing] float32, "length": [B] int64} to logits [B, num_classes] (regression,
`info.task == "regression"`: the predicted target [B, 1]). Everything
else stays the trainer's: input pipeline, strategy (the function runs under its scope),
compilation, checkpoints, resumption, metrics and the serving export. `info` has the shapes
(`info.x_shape`, `info.is_image`), `info.num_classes` and the manifest. Example: docs/example_model.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable

import tf_keras as keras

from trainer.errors import ConfigError
from transforms import features


def _module(name: str):
    if name.endswith(".py"):
        if not os.path.isfile(name):
            raise ConfigError(f"--model: no file {name}")
        module_name = "user_model_" + os.path.splitext(os.path.basename(name))[0]
        spec = importlib.util.spec_from_file_location(module_name, name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # so the module's own classes can be found again by name
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ConfigError(f"--model: cannot import {name}: {e}") from e


def load(spec: str) -> Callable[..., keras.Model]:
    """The model-building function `spec` names.

    Raises:
      ConfigError: `spec` is not MODULE:FUNCTION, or names nothing callable.
    """
    name, sep, function = spec.rpartition(":")
    if not sep or not name or not function:
        raise ConfigError(f"--model {spec!r}: expected MODULE:FUNCTION or path/to/file.py:FUNCTION")
    builder = getattr(_module(name), function, None)
    if not callable(builder):
        raise ConfigError(f"--model {spec!r}: {name} has no function {function!r}")
    return builder


def checked(net: object, spec: str) -> keras.Model:
    """`net` if it is a Keras model taking the trainer's inputs, else a ConfigError saying what is wrong."""
    if not isinstance(net, keras.Model):
        raise ConfigError(f"--model {spec!r} returned {type(net).__name__}, not a tf_keras Model "
                          "(the trainer and tf.Transform's layer use Keras 2: import tf_keras as keras)")
    names = sorted(getattr(net, "input_names", None) or [])
    if names and names != sorted([features.X, features.LENGTH]):
        raise ConfigError(f"--model {spec!r}: the model's inputs are {names}; the trainer feeds "
                          f"{{'{features.X}', '{features.LENGTH}'}}")
    return net
